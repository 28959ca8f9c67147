"""FORMAT.md's index rules (§5, §6) as an oracle, checked against the indexes the C
core writes on append, on seal and when recovery rebuilds them."""
from __future__ import annotations

import random
import re
import struct
from pathlib import Path

import pytest

from pylog import records as R
from pylog.records import encode_batch, iter_headers

try:
    from pylog._ffi import SegmentMaps, ffi, lib, segment_config
except Exception:                                   # the C core is not built
    pass

BASE = 1000
FORMAT_MD = Path(__file__).resolve().parents[1] / "FORMAT.md"
_FFI = "pylog._ffi" if "ffi" in globals() else None
needs_c = pytest.mark.skipif(_FFI is None, reason="pylog._ffi is not built")


def test_format_md_header_table_matches_the_code():
    """The byte table in FORMAT.md §3.1 and pylog.records' offsets are the same."""
    text = FORMAT_MD.read_text().split("### 3.1", 1)[1].split("###", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (\d+) \| (\w+) \| `(\w+)` \|", text, re.M)
    assert len(rows) == 13
    snake = {name: re.sub(r"(?<!^)([A-Z])", r"_\1", name).upper() for *_, name in rows}
    assert [int(off) for off, *_ in rows] == [
        getattr(R, "OFF_" + snake[name].replace("PARTITION_LEADER_EPOCH", "LEADER_EPOCH"))
        for *_, name in rows]
    sizes = {"i8": 1, "i16": 2, "i32": 4, "u32": 4, "i64": 8}
    assert all(int(size) == sizes[t] for _, size, t, _ in rows)
    ends = [int(off) + int(size) for off, size, *_ in rows]
    assert ends[:-1] == [int(off) for off, *_ in rows[1:]] and ends[-1] == R.BATCH_HEADER_SIZE


def expected_indexes(log: bytes, base: int, interval: int, sealed: bool):
    """FORMAT.md §5 rule 2 and §6 rules 2-3, written from the text, not from C."""
    index, timeindex = [], []
    since, max_ts, max_off, last_ts = 0, -1, base, -1
    for pos, h in iter_headers(log):
        if h.max_timestamp > max_ts:
            max_ts, max_off = h.max_timestamp, h.last_offset
        if since > interval:
            index.append((h.last_offset - base, pos))
            if max_ts > last_ts:
                timeindex.append((max_ts, max_off - base))
                last_ts = max_ts
            since = 0
        since += h.size
    if sealed and max_ts > last_ts:
        timeindex.append((max_ts, max_off - base))
    return index, timeindex


def _read_indexes(seg):
    idx = bytes(ffi.buffer(seg.index.map, seg.index.size))
    tix = bytes(ffi.buffer(seg.timeindex.map, seg.timeindex.size))
    return ([struct.unpack_from(">II", idx, i) for i in range(0, len(idx), 8)],
            [struct.unpack_from(">qI", tix, i) for i in range(0, len(tix), 12)])


def _paths(tmp_path):
    return [ffi.new("char[]", str(tmp_path / ("%020d%s" % (BASE, s))).encode())
            for s in (".log", ".index", ".timeindex")]


def _batches(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        count = rng.randint(1, 5)
        ts = [rng.randint(0, 10_000) for _ in range(count)]     # not monotonic
        out.append(encode_batch([b"v" * rng.randint(0, 300)] * count, timestamps=ts))
    return out


@needs_c
@pytest.mark.parametrize("interval", [0, 1, 500, 4096])
def test_c_core_indexes_follow_format_rules(tmp_path, interval):
    rng = random.Random(interval)
    cfg = segment_config(segment_bytes=1 << 20, index_bytes=1 << 16,
                         index_interval_bytes=interval, grow_chunk=1 << 16)
    seg = ffi.new("pl_segment *")
    names = _paths(tmp_path)
    assert lib.pl_segment_create(seg, *names, BASE, cfg) == 0
    maps = SegmentMaps(seg)
    out = ffi.new("int64_t[2]")
    for b in _batches(rng, 60):
        assert lib.pl_segment_append(seg, ffi.from_buffer(b), len(b), out, out + 1) == 0
    log = bytes(ffi.buffer(seg.log.map, seg.log.size))
    assert _read_indexes(seg) == expected_indexes(log, BASE, interval, sealed=False)
    assert lib.pl_segment_seal(seg) == 0
    assert _read_indexes(seg) == expected_indexes(log, BASE, interval, sealed=True)
    assert lib.pl_segment_close(seg) == 0
    del maps

    # Recovery from the .log alone rebuilds the same entries (§5 rule 2, last sentence).
    (tmp_path / ("%020d.index" % BASE)).write_bytes(b"\xff" * 24)
    seg2 = ffi.new("pl_segment *")
    assert lib.pl_segment_open(seg2, *names, BASE, cfg, lib.PL_OPEN_ACTIVE) == 0
    maps2 = SegmentMaps(seg2)
    rep = ffi.new("pl_recover_report *")
    assert lib.pl_segment_recover(seg2, rep) == 0
    assert rep.valid_bytes == len(log) and rep.stop_reason == 0
    # Recovery appends the final time-index entry, as a seal does (Kafka's recover).
    assert _read_indexes(seg2) == expected_indexes(log, BASE, interval, sealed=True)
    lib.pl_segment_close(seg2)
    del maps2
