"""Log.close() leaves nothing mapped (issue 18, defect 10): a process that opened a log
on a tmpfs can unmount it after close, while views a caller still holds stay valid
until dropped; a read after close is a clear error."""
from __future__ import annotations

import subprocess

import pytest

import pylog
from pylog.errors import StorageError


def mapped(under) -> list[str]:
    with open("/proc/self/maps") as f:
        return [line.split()[-1] for line in f if str(under) in line]


def test_close_unmaps_every_segment_file(tmp_path):
    log = pylog.open(tmp_path / "d")
    p = log.create_topic("t", config={"segment.bytes": 4096}).partition(0)
    for i in range(200):
        p.append(b"v%d" % i)
    assert list(p.iter())[-1].value == b"v199"
    assert mapped(tmp_path)
    log.close()
    assert mapped(tmp_path) == []          # `log` and `p` still referenced here
    with pytest.raises(StorageError, match="closed"):
        p.read(0)


def test_a_held_view_keeps_its_mapping_until_dropped(tmp_path):
    log = pylog.open(tmp_path / "d")
    p = log.create_topic("t").partition(0)
    p.append(b"hello")
    view = p.read_raw(0)
    cols = p.read_columns(0)
    log.close()
    assert b"hello" in bytes(view) and bytes(cols.value(0)) == b"hello"
    assert any(name.endswith(".log") for name in mapped(tmp_path))
    del view, cols
    assert mapped(tmp_path) == []


def test_a_closed_log_on_tmpfs_can_be_unmounted(small_fs):
    log = pylog.open(small_fs / "d")
    p = log.create_topic("t").partition(0)
    p.append_batch([b"x" * 100] * 100)
    list(p.iter())
    log.close()
    r = subprocess.run(["umount", str(small_fs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small_fs)])
