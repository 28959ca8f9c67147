"""pylog-fsck as a user meets it: the console script on real data directories.

Scenarios: a clean log, a crashed log, a torn tail repaired into quarantine/, a
second repair that changes nothing, a live directory (read-only check allowed,
repair refused naming the pid), --topic, --deep, --json, and bad input (exit 8/16,
never a traceback).  The randomized corruption runs are in tests/reliability/.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pylog
from pylog.fsck import main, run
from pylog.crc import crc32c
from pylog.records import encode_batch
from pylog.storage import files

FSCK = str(Path(sys.executable).parent / "pylog-fsck")
CONFIG = {"segment.bytes": 4 << 10, "index.interval.bytes": 256}


def fsck(*args) -> subprocess.CompletedProcess:
    exe = [FSCK] if os.path.exists(FSCK) else [sys.executable, "-m", "pylog.fsck.cli"]
    return subprocess.run(exe + [str(a) for a in args], capture_output=True, text=True,
                          timeout=120)


def _fill(data: Path, *, crash: bool = False) -> dict:
    log = pylog.open(str(data))
    t = log.create_topic("orders", 2, CONFIG)
    log.create_topic("audit", 1, CONFIG)
    for i in range(400):
        t.append(b"v%d" % i * (i % 13), key=b"k%d" % (i % 7), timestamp=1_000_000 + i)
    log.topic("audit").partition(0).append_batch([b"a", b"b"], timestamps=[5, 6])
    want = {i: list(t.partition(i).iter(0)) for i in range(2)}
    if crash:
        log.write_checkpoints()
        log._simulate_crash()
    else:
        log.close()
    return want


def _last_log(data: Path, topic="orders", part=0) -> Path:
    return sorted((data / f"{topic}-{part}").glob("*.log"))[-1]


def test_fsck_clean_log_exits_0_with_summary(tmp_path):
    _fill(tmp_path / "d")
    r = fsck(tmp_path / "d")
    assert r.returncode == 0, r.stdout
    assert "summary:" in r.stdout and "0 errors" in r.stdout
    j = json.loads(fsck(tmp_path / "d", "--json", "--deep").stdout)
    assert j["summary"]["exit_code"] == 0
    assert j["summary"]["records"] == 402 and j["summary"]["partitions"] == 3


def test_fsck_after_kill_is_clean_and_recovery_keeps_it_clean(tmp_path):
    d = tmp_path / "d"
    _fill(d, crash=True)
    assert fsck(d).returncode == 0                 # preallocated tails are not errors
    pylog.open(str(d)).close()                     # recovery, then a clean close
    assert fsck(d).returncode == 0


def test_repair_truncates_torn_tail_into_quarantine(tmp_path):
    d = tmp_path / "d"
    want = _fill(d)
    seg = _last_log(d)
    size = seg.stat().st_size
    with open(seg, "r+b") as fh:                   # tear the last batch's last 5 bytes
        fh.seek(size - 5)
        fh.write(b"\xde\xad\xbe\xef\x00")
    r = fsck(d, "--json")
    assert r.returncode == 4
    found = [f for f in json.loads(r.stdout)["findings"] if f["severity"] == "error"]
    assert found[0]["kind"] == "bad-crc" and found[0]["file"].endswith(seg.name)
    assert found[0]["offsets"][0] == want[0][-1].offset    # the last record's batch
    r = fsck(d, "--repair")
    assert r.returncode == 1, r.stdout
    q = list((d / "quarantine" / "orders-0").iterdir())
    data_files = [p for p in q if not p.name.endswith(".note.json")]
    assert len(data_files) == 1 and data_files[0].stat().st_size > 0
    note = json.loads(next(p for p in q if p.name.endswith(".note.json")).read_text())
    assert note["origin"].endswith(seg.name) and note["first_offset_dropped"] == \
        want[0][-1].offset
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name != ".lock"}
    r = fsck(d, "--repair")
    assert r.returncode == 0, r.stdout             # a second repair changes nothing
    assert before == {p: p.read_bytes() for p in d.rglob("*")
                      if p.is_file() and p.name != ".lock"}
    with pylog.open(str(d)) as log:
        got = list(log.topic("orders").partition(0).iter(0))
    assert got == want[0][:-1]


def test_repair_rebuilds_deleted_and_garbage_indexes(tmp_path):
    d = tmp_path / "d"
    _fill(d)
    segs = sorted((d / "orders-1").glob("*.log"))
    segs[0].with_suffix(".index").unlink()
    segs[1].with_suffix(".timeindex").write_bytes(b"  ")
    r = run(str(d))
    kinds = {f.kind for f in r.findings if f.severity == "error"}
    assert {"index-missing", "timeindex-length"} <= kinds
    assert run(str(d), repair=True).exit_code() == 1
    assert run(str(d)).exit_code() == 0


def test_fsck_on_live_directory_reads_but_refuses_repair(tmp_path):
    d = tmp_path / "d"
    _fill(d)
    log = pylog.open(str(d))
    try:
        log.topic("orders").append(b"live")
        r = fsck(d)
        assert r.returncode == 0 and "Traceback" not in r.stderr
        r = fsck(d, "--repair")
        assert r.returncode == 8
        assert f"pid {os.getpid()}" in r.stderr and "refusing to repair" in r.stderr
        log.topic("orders").append(b"still writable")   # fsck took nothing from it
    finally:
        log.close()


def test_topic_filter_checks_only_that_topic(tmp_path):
    d = tmp_path / "d"
    _fill(d)
    seg = _last_log(d, "audit")
    with open(seg, "r+b") as fh:
        fh.seek(30)
        fh.write(b"\xff")
    assert run(str(d), topic="orders").exit_code() == 0
    r = run(str(d), topic="audit")
    assert r.exit_code() == 4 and {p.topic for p in r.partitions} == {"audit"}


def test_deep_decodes_records_that_pass_the_crc(tmp_path):
    d = tmp_path / "d"
    with pylog.open(str(d)) as log:
        log.create_topic("t", 1).partition(0).append_batch([b"ok"], timestamps=[100])
    # The engine refuses such a batch (append_raw decodes it), so write the bytes the
    # way a buggy or foreign writer would: straight onto the sealed segment.
    bad = bytearray(encode_batch([b"abc", b"def"], timestamps=[1, 2], base_offset=1))
    bad[61] = 0x7F                                 # first record's length varint: bogus
    bad[17:21] = crc32c(bytes(bad[21:])).to_bytes(4, "big")
    with open(d / "t-0" / "00000000000000000000.log", "ab") as fh:
        fh.write(bad)
    assert run(str(d)).exit_code() == 0            # headers, chain and CRC are fine
    r = run(str(d), deep=True)
    found = [f for f in r.findings if f.kind == "bad-records"]
    assert r.exit_code() == 4 and found[0].position > 0 and found[0].offsets[0] == 1


def test_metadata_and_checkpoint_problems_are_reported(tmp_path):
    d = tmp_path / "d"
    _fill(d)
    (d / files.RECOVERY_POINT_CHECKPOINT).write_text("0\n1\norders 0 999999\n")
    (d / "orders-0" / "00000000000000000000.log.deleted").write_bytes(b"x")
    (d / "notes.txt").write_text("mine")
    r = run(str(d))
    kinds = {f.kind: f for f in r.findings}
    assert kinds["recovery-point-beyond-end"].severity == "error"
    assert kinds["temp-file"].file == "orders-0/00000000000000000000.log.deleted"
    assert kinds["stray-file"].file == "notes.txt"
    assert run(str(d), repair=True).exit_code() == 1
    assert (d / "notes.txt").exists()             # strays are left alone
    assert run(str(d)).exit_code() == 0
    (d / files.METADATA_FILE).write_text("{not json")
    r = run(str(d), repair=True)                   # rebuilt (issue 18, defect 4)
    assert r.exit_code() == 1 and any(f.kind == "metadata" and f.fixed
                                      for f in r.findings)
    assert run(str(d)).exit_code() == 0


@pytest.mark.parametrize("case", ["missing", "file", "not-pylog", "empty",
                                  "unreadable-log", "dangling-segment"])
def test_bad_input_is_a_clear_message_not_a_traceback(tmp_path, case):
    target = tmp_path / "x"
    if case == "file":
        target.write_text("hello")
    elif case == "not-pylog":
        target.mkdir()
        (target / "photo.jpg").write_bytes(b"\xff\xd8")
    elif case == "empty":
        target.mkdir()
    elif case in ("unreadable-log", "dangling-segment"):
        _fill(target)
        seg = _last_log(target)
        seg.unlink()
        if case == "unreadable-log":
            seg.mkdir()                            # a directory where a .log should be
        else:
            seg.symlink_to(tmp_path / "nowhere")
    r = fsck(target)
    assert r.returncode == 8, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    out = r.stderr + r.stdout
    assert str(target) in out or "orders-0" in out


def test_usage_errors_exit_16(tmp_path):
    for args in ([], ["--bogus", str(tmp_path)], [str(tmp_path), "extra"]):
        r = fsck(*args)
        assert r.returncode == 16 and "Traceback" not in r.stderr


def test_main_returns_exit_code_and_prints_no_progress_when_not_a_tty(tmp_path, capsys):
    _fill(tmp_path / "d")
    assert main([str(tmp_path / "d")]) == 0
    err = capsys.readouterr().err
    assert "%" not in err                          # no progress bar off a terminal


@pytest.mark.parametrize("where,kill_in", [
    ("tail", "pylog.fsck.repair._truncate"), ("tail", "pylog.fsck.repair._rebuild_indexes"),
    ("tail", "pylog.fsck.repair._rewrite_checkpoints"),
    # a bad batch mid-log is salvaged as recovery does it (storage/salvage.py)
    ("mid", "pylog.storage.lost.LostOffsets.add"), ("mid", "pylog.storage.salvage._split_off"),
    ("mid", "pylog.fsck.repair.scan_partition"),
    ("mid", "pylog.fsck.repair._rewrite_checkpoints")])
def test_crash_during_repair_is_finished_by_the_next_repair(tmp_path, where, kill_in):
    """KAFKA-10471's lesson for fsck: a repair killed half way leaves a directory the
    next repair completes (each step is idempotent), with the same result."""
    d = tmp_path / "d"
    want = _fill(d)
    segs = sorted((d / "orders-0").glob("*.log"))
    seg = segs[1] if where == "mid" else segs[-1]
    with open(seg, "r+b") as fh:                   # inside some batch
        fh.seek(seg.stat().st_size // 2 if where == "mid" else seg.stat().st_size - 20)
        fh.write(b"\x00\x01")
    (d / files.RECOVERY_POINT_CHECKPOINT).write_text("0\n1\norders 0 999999\n")
    ref = tmp_path / "ref"
    shutil.copytree(d, ref)
    assert run(str(ref), repair=True).exit_code() == 1
    mod, _, attr = kill_in.rpartition(".")
    if mod.endswith(".LostOffsets"):
        mod, attr = mod.rpartition(".")[0], "LostOffsets." + attr
    code = (f"import sys, os; import {mod} as r\n"
            f"def boom(*a, **k):\n    os._exit(9)\nr.{attr} = boom\n"
            "from pylog.fsck import run; run(sys.argv[1], repair=True)")
    p = subprocess.run([sys.executable, "-c", code, str(d)], timeout=60)
    assert p.returncode == 9
    assert run(str(d), repair=True).exit_code() == 1
    assert run(str(d)).exit_code() == 0
    with pylog.open(str(d)) as log, pylog.open(str(ref)) as log2:
        a = list(log.topic("orders").partition(0).iter(0))
        b = list(log2.topic("orders").partition(0).iter(0))
    assert a == b and 0 < len(a) < len(want[0])
    if where == "tail":
        assert a == want[0][:len(a)]
    else:                                          # only the bad batch is gone
        kept = {r.offset for r in a}
        assert a == [r for r in want[0] if r.offset in kept] and a[-1] == want[0][-1]


def test_fresh_directory_without_topics_is_clean(tmp_path):
    """pylog.open then close with no topic leaves no topic-metadata.json: not an error
    (a crash loop that kills the first writer before it creates a topic found this)."""
    pylog.open(str(tmp_path / "d")).close()
    assert run(str(tmp_path / "d")).exit_code() == 0


def test_repair_of_one_topic_keeps_the_other_topics_checkpoint_entries(tmp_path):
    d = tmp_path / "d"
    _fill(d)
    ck = d / files.RECOVERY_POINT_CHECKPOINT
    lines = ck.read_text().splitlines()
    lines = [ln if not ln.startswith("orders 0 ") else "orders 0 999999" for ln in lines]
    ck.write_text("\n".join(lines) + "\n")
    assert run(str(d), topic="orders", repair=True).exit_code() == 1
    text = ck.read_text()
    assert "audit 0 2" in text and "orders 0 999999" not in text
    assert run(str(d)).exit_code() == 0


def test_altered_index_interval_is_a_warning_not_corruption(tmp_path):
    """index.interval.bytes may change while a segment is written: its index is then
    valid but not what one rebuild rule gives.  Read-only: exit 0 with a warning;
    --repair rebuilds it with the current value."""
    d = tmp_path / "d"
    with pylog.open(str(d)) as log:
        p = log.create_topic("t", 1, {"index.interval.bytes": 100}).partition(0)
        for i in range(60):
            p.append(b"x" * 50)
        log.alter_topic_config("t", {"index.interval.bytes": 700})
        for i in range(60):
            p.append(b"y" * 50)
    r = run(str(d))
    assert r.exit_code() == 0
    assert any(f.kind == "index-mismatch" and f.severity == "warning" for f in r.findings)
    assert run(str(d), repair=True).exit_code() == 1
    assert run(str(d)).exit_code() == 0 and not run(str(d)).findings
