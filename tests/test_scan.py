"""csrc/scan.c: pl_batch_scan (fsck's first pass) and pl_index_rule, against the
pure-Python reference codec and a straightforward loop."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from pylog._ffi import ffi, lib
from pylog.records import encode_batch


def _log(sizes: list[int]) -> bytes:
    out, offset = [], 0
    for i, n in enumerate(sizes):
        out.append(encode_batch([bytes([i % 251]) * n], base_offset=offset))
        offset += 1
    return b"".join(out)


def _scan(buf: bytes, start: int, cap: int):
    positions = np.zeros(cap, dtype=np.int64)
    headers = np.zeros(cap * 61, dtype=np.uint8)
    out = ffi.new("uint64_t[2]")
    rc = lib.pl_batch_scan(ffi.from_buffer(buf), len(buf), start,
                           ffi.from_buffer("int64_t[]", positions),
                           ffi.from_buffer("uint8_t[]", headers), cap, out, out + 1)
    n = int(out[0])
    return rc, positions[:n].tolist(), headers[:n * 61].tobytes(), int(out[1])


def _starts(sizes: list[int]) -> list[int]:
    starts, pos = [], 0
    for i in range(len(sizes)):
        starts.append(pos)
        pos += len(_log([sizes[i]]))
    return starts


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=30), st.integers(1, 8))
def test_scan_in_chunks_finds_every_batch_and_copies_its_header(sizes, cap):
    buf = _log(sizes)
    found, pos = [], 0
    while True:
        rc, positions, headers, pos = _scan(buf, pos, cap)
        for k, p in enumerate(positions):
            assert headers[k * 61:(k + 1) * 61] == buf[p:p + 61]
        found += positions
        if rc != lib.PL_ENOSPACE_CAP:
            break
    assert rc == lib.PL_OK and pos == len(buf)
    assert found == _starts(sizes)


def test_scan_stops_at_the_first_bad_batch_and_says_where():
    sizes = [10, 20, 30, 40]
    buf = bytearray(_log(sizes))
    starts = _starts(sizes)
    buf[starts[2] + 40] ^= 0x01                         # inside the CRC-covered bytes
    rc, positions, _, pos = _scan(bytes(buf), 0, 16)
    assert rc == lib.PL_EBADCRC and positions == starts[:2] and pos == starts[2]
    rc, positions, _, pos = _scan(bytes(buf[:starts[1] + 30]), 0, 16)   # torn tail
    assert rc == lib.PL_ETRUNCATED and positions == starts[:1] and pos == starts[1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 5000), max_size=200), st.integers(0, 8192))
def test_index_rule_matches_the_interval_rule(gaps, interval):
    positions = np.cumsum([0] + gaps).astype(np.int64)
    selected = np.zeros(len(positions), dtype=np.int64)
    count = ffi.new("uint64_t *")
    assert lib.pl_index_rule(ffi.from_buffer("int64_t[]", positions), len(positions),
                             interval, ffi.from_buffer("int64_t[]", selected), count) == 0
    want, r = [], 0
    for i in range(1, len(positions)):
        if positions[i] - positions[r] > interval:
            want.append(i)
            r = i
    assert selected[:count[0]].tolist() == want
