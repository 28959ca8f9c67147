"""Recovery at open (storage/loader.py), driven through the public API.

A crash is ``Log._simulate_crash()``: no barrier, no seal, no checkpoint, no marker: the
files as kill -9 leaves them (the page cache keeps the mapped writes), active segment
still at its fallocated length with a zero tail.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest

import pylog
from pylog.records import scan_valid_prefix
from pylog.storage import files

SMALL = {"segment.bytes": 4096, "index.interval.bytes": 200}


def _crash(log) -> None:
    log._simulate_crash()


def _values(p) -> list[bytes]:
    return [r.value for r in p.iter(p.log_start_offset)]


def _pdir(root: Path, topic="t", partition=0) -> Path:
    return root / files.partition_dir_name(topic, partition)


def _logs(root: Path, topic="t") -> list[Path]:
    return sorted(_pdir(root, topic).glob("*.log"))


def _batch_spans(path: Path) -> list[tuple[int, int]]:
    """(start, end) of each valid batch in a .log file."""
    data = path.read_bytes()
    rep = scan_valid_prefix(data, files.parse_base_offset(path.name)[0])
    spans, pos = [], 0
    from pylog.records import read_header
    while pos < rep.valid_bytes:
        h = read_header(data, pos)
        spans.append((pos, pos + h.size))
        pos += h.size
    return spans


def test_clean_reopen_trusts_the_files(tmp_path):
    with pylog.open(tmp_path) as log:
        t = log.create_topic("t", config=SMALL)
        for i in range(200):
            t.append(b"v%03d" % i)
        segs = len(t.partition(0).segments)
    assert segs > 3
    assert (tmp_path / files.CLEAN_SHUTDOWN_FILE).exists()
    with pylog.open(tmp_path) as log:
        assert not (tmp_path / files.CLEAN_SHUTDOWN_FILE).exists()   # deleted first
        rep, = log.recovery_reports
        assert rep.mode == "clean" and rep.recovered == [] and not rep.lost_data
        assert rep.segments == segs and rep.log_end_offset == 200
        assert _values(log.topic("t").partition(0)) == [b"v%03d" % i for i in range(200)]


def test_unclean_reopen_recovers_from_the_recovery_point_on(tmp_path):
    log = pylog.open(tmp_path)
    t = log.create_topic("t", config=SMALL)
    for i in range(100):
        t.append(b"a%03d" % i)
    p = t.partition(0)
    p.flush()
    log.write_checkpoints()
    rp = p.recovery_point
    assert rp == 100
    for i in range(100):
        t.append(b"b%03d" % i)
    _crash(log)
    with pylog.open(tmp_path) as log:
        rep, = log.recovery_reports
        assert rep.mode == "unclean" and not rep.lost_data
        recovered = {r["segment"] for r in rep.recovered}
        bases = [files.parse_base_offset(n)[0] for n in recovered]
        assert min(bases) <= rp and len(recovered) < rep.segments
        p = log.topic("t").partition(0)
        assert len(_values(p)) == 200 and p.recovery_point == 200


def test_marker_is_deleted_before_loading_so_a_crash_then_means_full_recovery(tmp_path):
    with pylog.open(tmp_path) as log:
        log.create_topic("t").partition(0).append(b"x")
    log = pylog.open(tmp_path)
    _crash(log)
    with pylog.open(tmp_path) as log:
        assert log.recovery_reports[0].mode == "unclean"
        assert _values(log.topic("t").partition(0)) == [b"x"]


@pytest.fixture
def fast_path(tmp_path):
    """A directory on tmpfs when there is one: these tests reopen a log a few hundred
    times and test recovery logic, not the file system's fsync latency."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        d = Path(tempfile.mkdtemp(prefix="pylog-test-", dir="/dev/shm"))
        yield d
        shutil.rmtree(d, ignore_errors=True)
    else:
        yield tmp_path


@pytest.mark.parametrize("how", ["truncate", "zero"])
def test_recovery_truncates_torn_batch_at_every_byte(fast_path, how):
    tmp_path = fast_path
    src = tmp_path / "src"
    log = pylog.open(src)
    p = log.create_topic("t", config={"segment.bytes": 1 << 16}).partition(0)
    p.append_batch([b"first", b"batch"])
    p.append_batch([b"second"], keys=[b"k"], headers=[[("h", b"v")]])
    p.append_batch([b"torn-%d" % i for i in range(3)], keys=[b"key"] * 3)
    _crash(log)
    path, = _logs(src)
    spans = _batch_spans(path)
    start, end = spans[-1]
    original = path.read_bytes()
    for cut in range(start, end):
        if how == "zero" and not original[cut:end].strip(b"\x00"):
            continue                                  # zeroing changes nothing here
        work = tmp_path / f"w{cut}"
        shutil.copytree(src, work)
        wpath = work / path.relative_to(src)
        if how == "truncate":
            os.truncate(wpath, cut)
        else:
            with open(wpath, "r+b") as f:
                f.seek(cut)
                f.write(b"\x00" * (end - cut))
        with pylog.open(work) as log:
            p = log.topic("t").partition(0)
            assert _values(p) == [b"first", b"batch", b"second"], cut
            assert p.log_end_offset == 3
            rep, = log.recovery_reports
            assert rep.bytes_dropped <= cut - start
            p.append(b"after")                        # the log accepts writes again
        with pylog.open(work) as log:
            assert _values(log.topic("t").partition(0))[-1] == b"after"
        shutil.rmtree(work)


def test_a_torn_tail_is_cut_and_zeroed_so_no_stale_batch_returns(tmp_path):
    """The active segment's invalid tail with no valid batch after it is a torn write:
    cut, and zeroed so a later append of the same size cannot chain onto stale bytes."""
    log = pylog.open(tmp_path)
    p = log.create_topic("t").partition(0)
    for v in (b"A" * 20, b"B" * 20, b"C" * 20):
        p.append(v, timestamp=1000)
    _crash(log)
    path, = _logs(tmp_path)
    (_, a_end), (b_start, b_end), (c_start, c_end) = _batch_spans(path)
    with open(path, "r+b") as f:                     # tear C: its CRC fails
        f.seek(c_end - 3)
        f.write(b"\xff")
    log = pylog.open(tmp_path)
    p = log.topic("t").partition(0)
    rep, = log.recovery_reports
    assert rep.recovered and rep.recovered[-1]["stop_position"] == c_start
    assert rep.quarantined == [] and rep.bytes_dropped > 0
    assert _values(p) == [b"A" * 20, b"B" * 20]
    assert path.read_bytes()[b_end:c_end] == b"\x00" * (c_end - b_end)   # zeroed
    p.append(b"D" * 20, timestamp=1000)
    _crash(log)
    with pylog.open(tmp_path) as log:
        assert _values(log.topic("t").partition(0)) == [b"A" * 20, b"B" * 20, b"D" * 20]


def test_a_bad_batch_followed_by_valid_ones_is_quarantined_and_the_rest_split_off(tmp_path):
    log = pylog.open(tmp_path)
    p = log.create_topic("t").partition(0)
    for v in (b"A" * 20, b"B" * 20, b"C" * 20):
        p.append(v, timestamp=1000)
    _crash(log)
    path, = _logs(tmp_path)
    (_, a_end), (b_start, b_end), _ = _batch_spans(path)
    bad = bytearray(path.read_bytes()[b_start:b_end])
    bad[-3] ^= 0xFF
    with open(path, "r+b") as f:
        f.seek(b_start)
        f.write(bad)
    with pylog.open(tmp_path) as log:
        p = log.topic("t").partition(0)
        rep, = log.recovery_reports
        (q,) = rep.quarantined
        assert (q["start"], q["end"], q["byte_range"]) == (1, 2, [b_start, b_end])
        assert (tmp_path / q["quarantine"]).read_bytes() == bytes(bad)
        assert [(r.offset, r.value) for r in p.iter(0)] == [(0, b"A" * 20), (2, b"C" * 20)]
        assert p.log_end_offset == 3
        assert p.append(b"D") == 3
    assert [f.name for f in _logs(tmp_path)][:2] == ["00000000000000000000.log",
                                                     "00000000000000000002.log"]


def test_corrupt_middle_segment_keeps_every_later_segment(tmp_path):
    log = pylog.open(tmp_path)
    t = log.create_topic("t", config=SMALL)
    for i in range(300):
        t.append(b"m%03d" % i)
    _crash(log)
    logs = _logs(tmp_path)
    assert len(logs) >= 4
    victim = logs[1]
    spans = _batch_spans(victim)
    with open(victim, "r+b") as f:
        f.seek(spans[2][0] + 30)                     # inside batch 2's CRC range
        f.write(b"\x55\xaa")
    base = files.parse_base_offset(victim.name)[0]
    with pylog.open(tmp_path) as log:
        rep, = log.recovery_reports
        assert rep.deleted_segments == [] and rep.lost_data
        assert [(q["start"], q["end"]) for q in rep.quarantined] == [(base + 2, base + 3)]
        p = log.topic("t").partition(0)
        assert p.log_end_offset == 300
        assert [r.offset for r in p.iter(0)] == [o for o in range(300) if o != base + 2]
        assert _values(p) == [b"m%03d" % i for i in range(300) if i != base + 2]
    assert len(_logs(tmp_path)) == len(logs) + 1     # the split-off tail


def _lookups_match_scan(p) -> None:
    recs = list(p.iter(p.log_start_offset))
    for r in recs:
        assert p.read(r.offset, max_records=1)[0] == r
        raw = bytes(p.read_raw(r.offset, 1))
        assert raw and int.from_bytes(raw[:8], "big") <= r.offset
    stamps = sorted({r.timestamp for r in recs})
    for ts in [stamps[0] - 1] + stamps + [s + 1 for s in stamps]:
        expect = next((r.offset for r in recs if r.timestamp >= ts), None)
        assert p.offset_for_time(ts) == expect, ts


@pytest.mark.parametrize("damage", ["delete", "spaces", "garbage", "zero-pad"])
@pytest.mark.parametrize("clean", [True, False])
def test_damaged_indexes_are_rebuilt_and_lookups_match_a_scan(tmp_path, damage, clean):
    rng = random.Random(7)
    log = pylog.open(tmp_path)
    p = log.create_topic("t", config=SMALL).partition(0)
    for i in range(120):
        n = rng.randint(1, 4)
        p.append_batch([b"x%d-%d" % (i, j) for j in range(n)],
                       timestamps=[1000 + i * 10 + rng.randint(-30, 30) for _ in range(n)])
    expect = _values(p)
    if clean:
        log.close()
    else:
        _crash(log)
    for idx in sorted(_pdir(tmp_path).glob("*index")):
        if damage == "delete":
            idx.unlink()
        elif damage == "spaces":
            idx.write_bytes(b"  ")
        elif damage == "garbage":
            idx.write_bytes(rng.randbytes(96))
        else:
            with open(idx, "ab") as f:
                f.write(b"\x00" * 48)
    with pylog.open(tmp_path) as log:
        p = log.topic("t").partition(0)
        assert _values(p) == expect
        rep, = log.recovery_reports
        assert not rep.lost_data
        _lookups_match_scan(p)
        offsets, times = p.index_arrays()
        assert list(offsets["relative_offset"]) == sorted(offsets["relative_offset"])
        assert list(times["timestamp"]) == sorted(times["timestamp"])


def test_timestamp_and_offset_lookups_match_a_scan_across_segments(tmp_path):
    rng = random.Random(3)
    with pylog.open(tmp_path) as log:
        p = log.create_topic("t", config=SMALL).partition(0)
        for i in range(150):
            n = rng.randint(1, 3)
            p.append_batch([b"r%d" % i] * n,
                           timestamps=[rng.randint(0, 5000) for _ in range(n)])
        _lookups_match_scan(p)


def test_orphan_indexes_and_temporary_files_are_resolved(tmp_path):
    with pylog.open(tmp_path) as log:
        log.create_topic("t").partition(0).append(b"x")
    d = _pdir(tmp_path)
    (d / "00000000000000000999.index").write_bytes(b"\x00" * 8)
    (d / "00000000000000000999.timeindex").write_bytes(b"")
    (d / "00000000000000000000.log.deleted").write_bytes(b"old")
    (d / "00000000000000000005.log.cleaned").write_bytes(b"old")
    with pylog.open(tmp_path) as log:
        rep, = log.recovery_reports
        assert set(rep.removed_files) >= {"00000000000000000999.index",
                                          "00000000000000000000.log.deleted",
                                          "00000000000000000005.log.cleaned"}
        assert _values(log.topic("t").partition(0)) == [b"x"]
    assert sorted(x.name for x in d.iterdir()) == [
        "00000000000000000000.index", "00000000000000000000.log",
        "00000000000000000000.timeindex", "partition.metadata"]


def test_garbage_checkpoints_are_treated_as_absent_with_a_warning(tmp_path):
    log = pylog.open(tmp_path)
    log.create_topic("t").partition(0).append_batch([b"a", b"b"])
    log.write_checkpoints()
    _crash(log)
    (tmp_path / files.RECOVERY_POINT_CHECKPOINT).write_bytes(b"0\n7\nt 0 zz\n")
    (tmp_path / files.LOG_START_CHECKPOINT).write_bytes(b"\xff\xfe")
    with pylog.open(tmp_path) as log:
        assert len(log.warnings) == 2 and "treated as absent" in log.warnings[0]
        assert log.recovery_reports[0].warnings[:2] == log.warnings
        assert _values(log.topic("t").partition(0)) == [b"a", b"b"]


def test_checkpoints_hold_recovery_points_and_log_start_offsets(tmp_path):
    from pylog.storage.checkpoint import read_offset_checkpoint
    with pylog.open(tmp_path) as log:
        t = log.create_topic("t", partitions=2)
        t.partition(1).append_batch([b"a", b"b", b"c"])
    rps, warn = read_offset_checkpoint(tmp_path / files.RECOVERY_POINT_CHECKPOINT)
    starts, _ = read_offset_checkpoint(tmp_path / files.LOG_START_CHECKPOINT)
    assert warn is None and rps == {("t", 0): 0, ("t", 1): 3}
    assert starts == {("t", 0): 0, ("t", 1): 0}
