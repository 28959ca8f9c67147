"""The embedded hot paths give the same bytes and Records as the general ones.

append() without a timestamp is one C call that reads the clock and builds the batch
in place (pl_segment_append_now); read() builds Records from decoded columns;
read_columns() fills numpy arrays.  Each is checked here against the reference:
pl_batch_build for the bytes, the pure-Python codec for the records.
"""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pylog
from pylog._ffi import RecordsIn, build_batch, ffi, lib
from pylog.records import decode_batch

blob = st.none() | st.binary(max_size=300)


@pytest.fixture(scope="module")
def log():
    lg = pylog.open(None)
    yield lg
    lg.close()


_topics = iter(range(1 << 30))


def _partition(log, config=None):
    return log.create_topic(f"t{next(_topics)}", config=config).partition(0)


@given(value=blob, key=blob, append_time=st.booleans())
@settings(max_examples=60, deadline=None)
def test_append_now_writes_the_bytes_pl_batch_build_writes(log, value, key, append_time):
    cfg = {"message.timestamp.type": "LogAppendTime"} if append_time else None
    p = _partition(log, cfg)
    p.append(b"first")
    before = time.time_ns() // 1_000_000
    off = p.append(value, key=key)
    after = time.time_ns() // 1_000_000
    rec = p.read(off)[0]
    assert before <= rec.timestamp <= after
    attrs = lib.PL_ATTR_TIMESTAMP_TYPE if append_time else 0
    want = build_batch(RecordsIn([value], None if key is None else [key],
                                 timestamp=rec.timestamp, attributes=attrs), off)
    assert bytes(p.read_raw(off)) == want


@given(value=blob, key=blob, ts=st.integers(-1, 2**45))
@settings(max_examples=60, deadline=None)
def test_append_one_with_a_timestamp_writes_the_same_bytes(log, value, key, ts):
    p = _partition(log)
    off = p.append(value, key=key, timestamp=ts)
    want = build_batch(RecordsIn([value], None if key is None else [key], timestamp=ts), off)
    assert bytes(p.read_raw(off)) == want


def test_append_one_rejects_what_pl_batch_build_rejects(log):
    p = _partition(log)
    out = ffi.new("int64_t[2]")
    seg = p._cseg
    assert lib.pl_segment_append_one(seg, ffi.NULL, -1, ffi.NULL, 5, 0, 0, out) == lib.PL_EINVAL
    assert lib.pl_segment_append_one(seg, b"k", -2, b"v", 1, 0, 0, out) == lib.PL_EINVAL
    assert lib.pl_segment_append_one(seg, b"k", 1, b"v", -2, 0, 0, out) == lib.PL_EINVAL
    assert lib.pl_segment_append_one(seg, b"k", 1, b"v", 1, 0, 1, out) == lib.PL_EINVAL
    assert p.log_end_offset == 0


def test_append_now_past_the_roll_deadline_appends_nothing(log):
    p = _partition(log)
    io = ffi.new("pl_append_now *")
    io.roll_deadline_ms = 0
    assert lib.pl_segment_append_now(p._cseg, ffi.NULL, -1, b"v", 1, io) == lib.PL_EROLL
    assert io.timestamp >= time.time_ns() // 1_000_000 - 1000
    assert p.log_end_offset == 0


def test_append_with_buffers_and_null_fields_reads_back(log):
    p = _partition(log)
    p.append(bytearray(b"v1"), key=memoryview(b"k1"))
    p.append(None)
    p.append(b"", key=b"")
    got = [(r.key, r.value, r.headers) for r in p.read(0)]
    assert got == [(b"k1", b"v1", ()), (None, None, ()), (b"", b"", ())]
    with pytest.raises(TypeError):
        p.append("text")
    assert p.log_end_offset == 3


def test_a_str_value_appends_nothing(log):
    p = _partition(log)
    with pytest.raises(TypeError):
        p.append("text", key=b"k")
    assert p.log_end_offset == 0


record_st = st.tuples(blob, blob, st.lists(st.tuples(st.text(max_size=5), blob), max_size=2))


@given(batches=st.lists(st.lists(record_st, min_size=1, max_size=30), min_size=1, max_size=6),
       start=st.integers(0, 200), max_records=st.integers(1, 400))
@settings(max_examples=40, deadline=None)
def test_read_and_read_columns_match_the_reference_decoder(log, batches, start, max_records):
    p = _partition(log)
    for b in batches:
        p.append_batch([v for _, v, _ in b], keys=[k for k, _, _ in b],
                       headers=[h for _, _, h in b])
    ref = []
    pos = 0
    raw = bytes(p.read_raw(0, 1 << 30))
    while pos < len(raw):
        n = 12 + int.from_bytes(raw[pos + 8:pos + 12], "big")
        ref.extend(decode_batch(raw[pos:pos + n])[1])
        pos += n
    start = min(start, p.log_end_offset)
    want = [r for r in ref if r.offset >= start][:max_records]
    got = p.read(start, max_records=max_records, max_bytes=1 << 30)
    assert got == want
    assert all(type(r) is pylog.Record for r in got)
    cols = p.read_columns(start, max_records=max_records)
    assert cols.offsets.tolist() == [r.offset for r in want]
    assert cols.timestamps.tolist() == [r.timestamp for r in want]
    assert [cols.value(i) for i in range(len(cols))] == [r.value for r in want]
    assert [cols.key(i) for i in range(len(cols))] == [r.key for r in want]
    assert cols.header_counts.tolist() == [len(r.headers) for r in want]
