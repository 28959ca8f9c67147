"""C segment API: appends, roll signals, index rules, lookups against brute force,
seal/reopen/load_clean.  Real files in tmp_path; no storage layer involved."""
from __future__ import annotations

import bisect
import os
import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from core_segment_util import CoreSegment
from pylog import errors
from pylog._ffi import Columns, check, ffi, lib

HYP = settings(max_examples=40, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


def client_batch(n: int, ts: int = 1000, size: int = 10, control: bool = False) -> bytes:
    b = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 30)
    for i in range(n):
        b.append(i, ts + i, b"k", b"v" * size, [])
    data = bytearray(b.build())
    if control:   # set the control bit and fix the CRC, as a hostile client would
        data[22] |= 0x20
        data[17:21] = lib.pl_crc32c(0, bytes(data[21:]), len(data) - 21).to_bytes(4, "big")
    return bytes(data)


def test_append_client_batches_assigns_offsets_and_stamps(tmp_path):
    s = CoreSegment(tmp_path, base=100)
    assert s.append_raw(client_batch(3) + client_batch(2)) == (100, 104)
    assert s.append_raw(client_batch(1)) == (105, 105)
    assert [(b, l) for _, b, l, _ in s.batches()] == [(100, 102), (103, 104), (105, 105)]
    raw = s.log_bytes()
    assert int.from_bytes(raw[12:16], "big") == 0          # leader epoch stamped 0
    cols = s.decode(min_offset=101)
    assert list(cols.offsets[: cols.count]) == list(range(101, 106))
    assert s.values(cols)[0] == b"v" * 10


def test_append_is_all_or_nothing(tmp_path):
    s = CoreSegment(tmp_path)
    good, bad = client_batch(2), bytearray(client_batch(2))
    bad[-1] ^= 1
    with pytest.raises(errors.CorruptRecordError):
        s.append_raw(good + bytes(bad))
    with pytest.raises(errors.CorruptRecordError):
        s.append_raw(good + good[:30])
    assert s.size == 0 and s.next_offset == 0
    with pytest.raises(errors.InvalidRecordError):
        s.append_raw(client_batch(1, control=True))
    assert s.append_raw(good) == (0, 1)


def test_append_rejects_offset_delta_not_matching_count(tmp_path):
    s = CoreSegment(tmp_path)
    data = bytearray(client_batch(3))
    data[23:27] = (5).to_bytes(4, "big")
    data[17:21] = lib.pl_crc32c(0, bytes(data[21:]), len(data) - 21).to_bytes(4, "big")
    with pytest.raises(errors.InvalidRecordError):
        s.append_raw(bytes(data))


def test_append_rejects_malformed_record_behind_a_valid_crc(tmp_path):
    s = CoreSegment(tmp_path)
    data = bytearray(client_batch(2))
    data[61] = 0x7f                  # first record's length varint now runs past the batch
    data[17:21] = lib.pl_crc32c(0, bytes(data[21:]), len(data) - 21).to_bytes(4, "big")
    assert s.append_rc(bytes(data)) == lib.PL_EBADRECORD
    with pytest.raises(errors.InvalidRecordError):
        s.append_raw(bytes(data))
    assert s.size == 0


def test_log_append_time_rewrites_max_timestamp_and_crc(tmp_path):
    s = CoreSegment(tmp_path)
    data = client_batch(3, ts=1000)
    out = ffi.new("int64_t[2]")
    check(lib.pl_segment_append_at(s.seg, data, len(data), 777777, out, out + 1))
    s.append_values([b"a", b"b"], timestamp=888888)
    raw = s.log_bytes()
    first = DefaultRecordBatch(raw[:len(data)])
    assert first.validate_crc() and first.timestamp_type == 1
    assert [r.timestamp for r in first] == [777777] * 3
    assert s.seg.max_timestamp == 888888
    cols = s.decode()
    assert list(cols.timestamps[: cols.count]) == [777777] * 3 + [888888] * 2
    assert data == client_batch(3, ts=1000)                 # caller's bytes untouched
    buf = ffi.from_buffer("uint8_t[]", bytearray(data))
    assert lib.pl_batch_set_log_append_time(buf, len(data) - 1, 5) == lib.PL_EINVAL


def test_batch_over_max_message_bytes_is_too_large(tmp_path):
    s = CoreSegment(tmp_path, max_batch_bytes=200)
    with pytest.raises(errors.RecordTooLargeError):
        s.append_raw(client_batch(1, size=300))
    with pytest.raises(errors.RecordTooLargeError):
        s.append_values([b"x" * 300])


def test_full_segment_signals_roll_and_empty_segment_takes_one_big_batch(tmp_path):
    s = CoreSegment(tmp_path, segment_bytes=4000, max_batch_bytes=0)
    big = client_batch(1, size=3950)
    assert 4000 < len(big) <= 4096
    assert s.append_rc(big) == 0                 # empty: one batch up to the reservation
    assert s.append_rc(client_batch(1)) == lib.PL_EFULL
    t = CoreSegment(tmp_path, base=7, segment_bytes=4096, max_batch_bytes=0)
    assert t.append_rc(client_batch(1, size=9000)) == lib.PL_ETOOLARGE
    u = CoreSegment(tmp_path, base=50, segment_bytes=1000)
    while (rc := u.append_rc(client_batch(1))) == 0:
        pass
    assert rc == lib.PL_EFULL and u.size <= 1000


def test_full_offset_index_signals_roll(tmp_path):
    s = CoreSegment(tmp_path, index_bytes=24, index_interval_bytes=0)
    rcs = [s.append_rc(client_batch(1)) for _ in range(5)]
    assert rcs[:4] == [0, 0, 0, 0] and rcs[4] == lib.PL_EFULL     # 3 entries + 1st batch
    assert len(s.index_entries()) == 3


def test_index_rule_matches_kafka(tmp_path):
    """Entry after MORE than index.interval.bytes; first batch none; (last offset, start)."""
    s = CoreSegment(tmp_path, index_interval_bytes=200)
    expect, since, pos, offset = [], 0, 0, 0
    rnd = random.Random(3)
    for _ in range(60):
        n = rnd.randrange(1, 4)
        data = client_batch(n, size=rnd.randrange(1, 80))
        if since > 200:
            expect.append((offset + n - 1, pos))
            since = 0
        since += len(data)
        s.append_raw(data)
        pos, offset = pos + len(data), offset + n
    assert s.index_entries() == expect


def brute_find(batches, offset):
    return next(p for p, b, last, _ in batches if last >= offset)


@given(sizes=st.lists(st.tuples(st.integers(1, 5), st.integers(0, 300), st.integers(0, 5000)),
                      min_size=1, max_size=60),
       interval=st.sampled_from([0, 64, 512, 4096]))
@HYP
def test_find_and_find_time_match_brute_force(tmp_path_factory, sizes, interval):
    s = CoreSegment(tmp_path_factory.mktemp("seg"), base=1000, index_interval_bytes=interval)
    for n, size, ts in sizes:
        s.append_raw(client_batch(n, ts=ts, size=size))
    batches = s.batches()
    for offset in range(1000, s.next_offset):
        assert s.find(offset) == (brute_find(batches, offset),
                                  next(b for p, b, last, _ in batches if last >= offset))
    for off in (999, s.next_offset):
        with pytest.raises(errors.OffsetOutOfRangeError):
            s.find(off)
    for ts in sorted({t for *_, t in batches} | {-5, 0, 2500, 10**6}):
        want = next((p for p, _, _, mt in batches if mt >= ts), None)
        rc, got = s.find_time_rc(ts)
        assert (rc, got) == ((0, want) if want is not None else (lib.PL_ENOTFOUND, None))


@given(st.lists(st.integers(1, 40), min_size=0, max_size=200), st.lists(st.integers(-5, 9000)))
@HYP
def test_index_lookup_matches_bisect_oracle(tmp_path_factory, gaps, targets):
    path = tmp_path_factory.mktemp("idx") / "x.index"
    mf = ffi.new("pl_mfile *")
    check(lib.pl_mfile_open(mf, os.fsencode(path), lib.PL_MF_CREATE, 1, 1 << 16, 4096))
    base, offsets, positions, o, p = 100, [], [], 100, 0
    for g in gaps:
        o, p = o + g, p + g * 7
        check(lib.pl_index_append(mf, base, o, p))
        offsets.append(o)
        positions.append(p)
    if gaps:                                                             # not increasing
        assert lib.pl_index_append(mf, base, o, p + 1) == lib.PL_EINVAL
    out_o, out_p = ffi.new("int64_t *"), ffi.new("uint64_t *")
    for t in targets + offsets:
        t += base
        lib.pl_index_lookup(mf, base, t, out_o, out_p)
        i = bisect.bisect_right(offsets, t)
        assert (out_o[0], out_p[0]) == ((offsets[i - 1], positions[i - 1]) if i else (base, 0))
    bad = ffi.new("int64_t *")
    assert lib.pl_index_check(mf, base, o + 1, ffi.NULL, bad) == 0
    lib.pl_mfile_close(mf)
    lib.pl_io_unmap(mf.map, mf.reserved)


def test_timeindex_lookup_and_rules(tmp_path):
    mf = ffi.new("pl_mfile *")
    check(lib.pl_mfile_open(mf, os.fsencode(tmp_path / "t"), lib.PL_MF_CREATE, 1, 4096, 4096))
    entries = [(10, 0), (20, 5), (35, 5), (50, 9)]
    for ts, off in entries:
        check(lib.pl_timeindex_append(mf, 0, ts, off))
    assert lib.pl_timeindex_append(mf, 0, 50, 10) == lib.PL_EINVAL       # ts not growing
    assert lib.pl_timeindex_append(mf, 0, 60, 8) == lib.PL_EINVAL        # offset shrinking
    ts_out, off_out = ffi.new("int64_t *"), ffi.new("int64_t *")
    for target in range(0, 60):
        lib.pl_timeindex_lookup(mf, 0, target, ts_out, off_out)
        i = bisect.bisect_right([t for t, _ in entries], target)
        assert (ts_out[0], off_out[0]) == (entries[i - 1] if i else (-1, 0))
    bad = ffi.new("int64_t *")
    assert lib.pl_timeindex_check(mf, 0, 10, bad) == 0
    assert lib.pl_timeindex_check(mf, 0, 9, bad) == lib.PL_EBADOFFSET and bad[0] == 3
    lib.pl_mfile_close(mf)
    lib.pl_io_unmap(mf.map, mf.reserved)


def test_seal_trims_files_and_clean_load_restores_state(tmp_path):
    s = CoreSegment(tmp_path, index_interval_bytes=100, grow_chunk=1 << 16)
    for i in range(40):
        s.append_values([b"value-%d" % i] * 3, timestamp=1000 + (i * 37) % 500)
    state = (s.next_offset, s.seg.max_timestamp, s.seg.offset_of_max_timestamp,
             s.seg.first_batch_timestamp, s.seg.bytes_since_index)
    index, tindex = s.index_entries(), s.timeindex_entries()
    s.close()
    assert os.path.getsize(s.paths[0]) == s.size
    assert os.path.getsize(s.paths[1]) == 8 * len(index)
    tindex_sealed = s.timeindex_entries()
    assert tindex_sealed[-1] == (s.seg.max_timestamp, s.seg.offset_of_max_timestamp)
    for mode in (lib.PL_OPEN_SEALED, lib.PL_OPEN_ACTIVE):
        r = CoreSegment(tmp_path, create=False, mode=mode, index_interval_bytes=100)
        assert r.load_clean() == 0
        assert (r.next_offset, r.seg.max_timestamp, r.seg.offset_of_max_timestamp,
                r.seg.first_batch_timestamp, r.seg.bytes_since_index) == state
        assert r.index_entries() == index and r.timeindex_entries() == tindex_sealed
        if mode == lib.PL_OPEN_SEALED:
            assert r.append_rc(client_batch(1)) == lib.PL_ECLOSED
            r.close()
    assert r.append_raw(client_batch(2)) == (120, 121)       # active again
    r.close()


def test_load_clean_rejects_garbage_index(tmp_path):
    s = CoreSegment(tmp_path, index_interval_bytes=50)
    for i in range(20):
        s.append_values([b"v" * 40], timestamp=i)
    s.close()
    with open(s.paths[1], "r+b") as f:
        f.seek(8)
        f.write(b"\xff" * 8)
    r = CoreSegment(tmp_path, create=False, index_interval_bytes=50)
    assert r.load_clean() == lib.PL_EBADOFFSET
    rep = r.recover()
    assert rep["next_offset"] == 20 and rep["dropped_data_bytes"] == 0
    assert r.index_entries() == s.index_entries()
    r.close()


def test_span_returns_whole_batches_and_at_least_one(tmp_path):
    s = CoreSegment(tmp_path)
    for _ in range(5):
        s.append_raw(client_batch(2, size=100))
    sizes = [b[0] for b in s.batches()] + [s.size]
    end = ffi.new("uint64_t *")
    check(lib.pl_segment_span(s.seg, 0, 1, end))
    assert end[0] == sizes[1]
    check(lib.pl_segment_span(s.seg, sizes[1], sizes[3] - sizes[1], end))
    assert end[0] == sizes[3]
    check(lib.pl_segment_span(s.seg, 0, 1 << 30, end))
    assert end[0] == s.size
    assert lib.pl_segment_span(s.seg, s.size, 10, end) == lib.PL_ERANGE


def test_reader_thread_sees_whole_batches_while_writer_appends(tmp_path):
    """cffi drops the GIL around C calls, so this really runs find/decode beside
    appends: whatever next_offset a reader sees, its bytes are already there."""
    s = CoreSegment(tmp_path, index_interval_bytes=64, segment_bytes=8 << 20,
                    index_bytes=1 << 20)
    done, errors_seen = threading.Event(), []

    def reader():
        pos, h = ffi.new("uint64_t *"), ffi.new("pl_batch_header *")
        cols = Columns(64)
        while not done.is_set():
            nxt = s.seg.next_offset
            if nxt == 0:
                continue
            rc = lib.pl_segment_find(s.seg, nxt - 1, pos, h)
            if rc != 0 or not h.base_offset <= nxt - 1 <= h.base_offset + h.last_offset_delta:
                errors_seen.append(("find", nxt, rc))
            cols.reset()
            end = ffi.new("uint64_t *")
            lib.pl_segment_span(s.seg, pos[0], 1, end)           # one batch
            rc = lib.pl_segment_decode(s.seg, pos[0], end[0], 0, cols.ptr, end)
            if rc != 0 or cols.count == 0 or cols.offsets[cols.count - 1] < nxt - 1:
                errors_seen.append(("decode", nxt, rc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(1500):
            s.append_values([b"x" * (i % 50)] * (1 + i % 3), timestamp=i)
    finally:
        done.set()
        t.join()
    assert errors_seen == []
