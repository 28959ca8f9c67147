"""Recovery tells torn tails from media corruption (issue 18, defect 2).

A bad batch in a sealed segment, or one followed by valid batches, is quarantined: its
bytes are copied to ``<data>/quarantine/``, its offsets recorded in lost-offsets.json,
every intact batch after it stays readable at its own offset, the log end does not
move, and pylog-fsck shows the range until an operator clears it.  Only the active
segment's invalid tail with nothing valid after it is cut (a torn write)."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

import pylog
from pylog.errors import CorruptRecordError
from pylog.fsck.cli import main as fsck_main
from pylog.records import read_header
from pylog.storage import files

N = 12
# Four one-record batches per segment; index.interval.bytes stays at its default
# (4096), so the clean open walks every batch (the issue's reproduction).
CONFIG = {"segment.bytes": 750}


def value(i: int) -> bytes:
    return b"value-%d-" % i + b"A" * 100


def build(d: Path, *, clean: bool, config=None) -> None:
    log = pylog.open(d)
    p = log.create_topic("t", config=dict(CONFIG, **(config or {}))).partition(0)
    for i in range(N):
        p.append(value(i), key=b"k%d" % i)
    if clean:
        log.close()
    else:
        log._simulate_crash()


def segs(d: Path) -> list[Path]:
    return sorted((d / "t-0").glob("*.log"))


def spans(path: Path) -> list[tuple[int, int, int]]:
    """(start, end, base offset) of each batch, up to the zero tail of an active file."""
    buf, out, pos = path.read_bytes(), [], 0
    while pos + 61 <= len(buf) and (length := int.from_bytes(buf[pos + 8:pos + 12], "big")):
        h = read_header(buf, pos)
        out.append((pos, pos + 12 + length, h.base_offset))
        pos += 12 + length
    return out


def flip(path: Path, pos: int, mask: int = 0x01) -> bytes:
    """Flip bits at ``pos``; returns the batch-sized neighbourhood for later checks."""
    buf = bytearray(path.read_bytes())
    buf[pos] ^= mask
    path.write_bytes(bytes(buf))
    return bytes(buf)


@pytest.fixture(scope="module", params=["clean", "unclean"])
def pristine(request, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp(request.param) / "data"
    build(d, clean=request.param == "clean")
    assert [len(spans(s)) for s in segs(d)] == [4, 4, 4]
    return d


@pytest.fixture
def data(pristine, tmp_path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(pristine, d)
    return d


def fsck(d: Path, *args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = fsck_main([str(d), "--json", "--no-progress", *args])
    return code, json.loads(out.getvalue())


def assert_only_lost(d: Path, bad: int, seg: Path, start: int, end: int, damaged: bytes,
                     *, leo: int = N) -> None:
    with pylog.open(d) as log:
        p = log.partition("t", 0)
        got = [(r.offset, r.key, r.value) for r in p.iter(p.log_start_offset)]
        assert got == [(o, b"k%d" % o, value(o)) for o in range(N) if o != bad]
        assert p.log_end_offset == leo
        assert p.log_start_offset == (1 if bad == 0 else 0)   # a lost first batch: after it
        (rep,) = log.recovery_reports
        (q,) = rep.quarantined
        assert (q["start"], q["end"], q["segment"]) == (bad, bad + 1, seg.name)
        assert q["byte_range"] == [start, end]
        assert (d / q["quarantine"]).read_bytes() == damaged[start:end]
        assert [(r["start"], r["end"]) for r in p.lost.ranges] == [(bad, bad + 1)]


@pytest.mark.parametrize("k,j", [(k, j) for k in range(3) for j in range(4) if (k, j) != (2, 3)])
def test_a_flip_in_any_batch_but_the_torn_tail_loses_only_that_batch(data, k, j):
    seg = segs(data)[k]
    start, end, base = spans(seg)[j]
    damaged = flip(seg, seg.read_bytes().index(b"value-%d-" % base) + 12)
    assert_only_lost(data, base, seg, start, end, damaged)
    # What follows stays in the log: the next open finds nothing new to do.
    with pylog.open(data) as log:
        assert log.recovery_reports[0].quarantined == []
        assert len(list(log.partition("t", 0).iter())) == N - 1
    code, rep = fsck(data)
    kinds = [f["kind"] for f in rep["findings"] if f["severity"] != "info"]
    assert code == 0 and kinds == ["lost-offsets"], rep["findings"]


@pytest.mark.parametrize("k", [1, 2])
def test_every_byte_of_a_mid_log_batch(pristine, tmp_path, k):
    """A flip at any byte of the middle batch of a sealed (k=1) or the active (k=2)
    segment: that batch is quarantined or repaired, all others read back unchanged."""
    seg_name = segs(pristine)[k].name
    start, end, base = spans(segs(pristine)[k])[1]
    for pos in range(start, end):
        d = tmp_path / f"p{pos}"
        shutil.copytree(pristine, d)
        seg = d / "t-0" / seg_name
        damaged = flip(seg, pos, 1 << (pos % 8))
        with pylog.open(d) as log:
            p = log.partition("t", 0)
            got = {r.offset: (r.key, r.value) for r in p.iter(0)}
            rep = log.recovery_reports[0]
            if 12 <= pos - start < 16:       # partitionLeaderEpoch: outside the CRC
                assert len(got) == N and rep.quarantined == [] and rep.warnings, pos
            else:
                assert set(got) == set(range(N)) - {base}, pos
                (q,) = rep.quarantined
                assert (d / q["quarantine"]).read_bytes() == damaged[start:end], pos
            assert all(got[o] == (b"k%d" % o, value(o)) for o in got), pos
            assert p.log_end_offset == N
        shutil.rmtree(d)


def test_the_issue_reproduction_keeps_11_of_12(tmp_path):
    """Clean close, one bit flipped inside record 1's value in a sealed segment."""
    d = tmp_path / "data"
    build(d, clean=True)
    seg = segs(d)[0]
    start, end, _ = spans(seg)[1]
    damaged = flip(seg, seg.read_bytes().index(b"value-1-AAAA") + 9)
    assert_only_lost(d, 1, seg, start, end, damaged)
    assert len(segs(d)) == 4                          # offsets 2-3 split off, 4-11 kept
    code, rep = fsck(d)
    assert code == 0
    (f,) = [f for f in rep["findings"] if f["kind"] == "lost-offsets"]
    assert f["severity"] == "warning" and f["offsets"] == [1, 1] and "quarantine" in f["message"]
    # The operator looks, then clears: a note stays, fsck is quiet, reads as before.
    code, rep = fsck(d, "--clear-lost")
    assert code == 0 and [f["severity"] for f in rep["findings"]
                          if f["kind"] == "lost-offsets"] == ["info"]
    with pylog.open(d) as log:
        assert log.partition("t", 0).lost.count == 0
        assert [r.offset for r in log.partition("t", 0).iter(0)] == [0] + list(range(2, N))


def lose_offset_6(d: Path, config=None) -> None:
    """A clean log with one bit flipped in record 6 (a sealed segment's middle)."""
    build(d, clean=True, config=config)
    seg = segs(d)[1]
    flip(seg, seg.read_bytes().index(b"value-6-") + 20)


def test_policy_raise_names_the_lost_range(tmp_path):
    d = tmp_path / "data"
    lose_offset_6(d, {"pylog.lost.offsets.policy": "raise"})
    with pylog.open(d) as log:
        p = log.partition("t", 0)
        assert [r.offset for r in p.read(4, 100)] == [4, 5]
        with pytest.raises(CorruptRecordError, match=r"offset 6 lost to corruption"):
            p.read(6)
        assert p.read(7)[0].value == value(7)


def test_policy_skip_logs_one_warning_per_range(tmp_path, caplog):
    d = tmp_path / "data"
    lose_offset_6(d)
    with pylog.open(d) as log:
        p = log.partition("t", 0)
        caplog.clear()
        for _ in range(3):
            assert [r.offset for r in p.read(6, 2)] == [7, 8]
        assert sum("read skips offset 6" in m for m in caplog.messages) == 1


def test_a_crash_between_split_and_cut_converges(tmp_path):
    """Interrupted salvage (the split-off segment written, the cut not yet done): the
    next open redoes it and ends in the same log, with one lost range."""
    d = tmp_path / "data"
    build(d, clean=False)
    seg = segs(d)[0]
    start, end, _ = spans(seg)[1]
    damaged = flip(seg, start + 70)
    with pylog.open(d):
        pass
    seg.write_bytes(damaged)                          # as if the cut never happened
    (d / files.CLEAN_SHUTDOWN_FILE).unlink()
    assert_only_lost(d, 1, seg, start, end, damaged)


def test_the_last_batch_of_the_active_segment_is_a_torn_tail(tmp_path):
    d = tmp_path / "data"
    build(d, clean=False)
    seg = segs(d)[2]
    flip(seg, seg.read_bytes().index(b"value-11-") + 20)
    with pylog.open(d) as log:
        p = log.partition("t", 0)
        assert p.log_end_offset == N - 1 and len(list(p.iter(0))) == N - 1
        rep = log.recovery_reports[0]
        assert rep.quarantined == [] and rep.bytes_dropped > 0
    assert not (d / "quarantine").exists()
