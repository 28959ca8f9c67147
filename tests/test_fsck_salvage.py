"""pylog-fsck --repair keeps what follows a bad batch, as recovery on open does
(storage/salvage.py): a corrupt batch in the middle of the log costs only that batch —
its bytes in quarantine/, its offsets in lost-offsets.json — and every later record
stays readable at its own offset.  Only a torn tail of the last segment (nothing valid
after it) is still cut there."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

import pylog
from pylog.fsck.cli import main as fsck_main
from pylog.records import read_header

N = 12
CONFIG = {"segment.bytes": 750}            # four one-record batches per segment


def value(i: int) -> bytes:
    return b"value-%d-" % i + b"A" * 100


def fsck(d: Path, *args: str) -> tuple[int, list]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = fsck_main([str(d), "--json", "--no-progress", *args])
    return code, json.loads(out.getvalue())["findings"]


def segs(d: Path) -> list[Path]:
    return sorted((d / "t-0").glob("*.log"))


def spans(path: Path) -> list[tuple[int, int, int]]:
    buf, out, pos = path.read_bytes(), [], 0
    while pos + 61 <= len(buf) and (length := int.from_bytes(buf[pos + 8:pos + 12], "big")):
        out.append((pos, pos + 12 + length, read_header(buf, pos).base_offset))
        pos += 12 + length
    return out


@pytest.fixture(scope="module", params=["clean", "unclean"])
def pristine(request, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp(request.param) / "data"
    log = pylog.open(d)
    p = log.create_topic("t", config=CONFIG).partition(0)
    for i in range(N):
        p.append(value(i), key=b"k%d" % i)
    if request.param == "clean":
        log.close()
    else:
        log._simulate_crash()
    assert [len(spans(s)) for s in segs(d)] == [4, 4, 4]
    return d


@pytest.mark.parametrize("k,j", [(k, j) for k in range(3) for j in range(4)
                                 if (k, j) != (2, 3)])
def test_repair_of_a_mid_log_bad_batch_keeps_every_later_record(pristine, tmp_path, k, j):
    d = tmp_path / "data"
    shutil.copytree(pristine, d)
    seg = segs(d)[k]
    start, end, bad = spans(seg)[j]
    buf = bytearray(seg.read_bytes())
    buf[buf.index(b"value-%d-" % bad) + 12] ^= 0x04
    seg.write_bytes(bytes(buf))
    code, found = fsck(d)
    assert code == 4 and any(f["kind"] == "bad-crc" for f in found), found
    code, found = fsck(d, "--repair")
    assert code == 1, found
    assert not [f for f in found if f["severity"] == "error" and not f["fixed"]], found
    code, found = fsck(d)
    assert code == 0 and [f["kind"] for f in found if f["severity"] != "info"] == \
        ["lost-offsets"], found
    lost = json.loads((d / "t-0" / "lost-offsets.json").read_text())["ranges"]
    assert [(r["start"], r["end"]) for r in lost] == [(bad, bad + 1)]
    assert (d / lost[0]["quarantine"]).read_bytes()[:end - start] == buf[start:end]
    with pylog.open(d) as log:
        p = log.partition("t", 0)
        got = [(r.offset, r.key, r.value) for r in p.iter(p.log_start_offset)]
        assert got == [(o, b"k%d" % o, value(o)) for o in range(N) if o != bad]
        assert p.log_end_offset == N
        assert [(r["start"], r["end"]) for r in p.lost.ranges] == [(bad, bad + 1)]
        if bad + 1 < N:
            assert p.read(bad + 1)[0].value == value(bad + 1)
    assert fsck(d)[0] == 0


def test_a_torn_tail_of_the_last_segment_is_still_cut_into_quarantine(pristine,
                                                                      tmp_path):
    d = tmp_path / "data"
    shutil.copytree(pristine, d)
    seg = segs(d)[2]
    start, end, bad = spans(seg)[3]
    buf = bytearray(seg.read_bytes())
    buf[start + 70] ^= 0x01
    seg.write_bytes(bytes(buf))
    assert fsck(d, "--repair")[0] == 1
    assert fsck(d)[0] == 0
    assert not (d / "t-0" / "lost-offsets.json").exists()
    kept = [p for p in (d / "quarantine" / "t-0").iterdir()
            if not p.name.endswith(".note.json")]
    # (up to its last non-zero byte, as the cut keeps it)
    assert [p.read_bytes().rstrip(b"\0") for p in kept] == [buf[start:end].rstrip(b"\0")]
    with pylog.open(d) as log:
        assert [r.offset for r in log.partition("t", 0).iter(0)] == list(range(N - 1))
