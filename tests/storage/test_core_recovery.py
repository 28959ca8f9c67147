"""C recovery scan: torn tails at every byte, zero fill, bit flips, stale tails.
Each scenario writes real segment files, damages them as a crash or a bad disk
would, reopens, recovers and checks the report and the bytes left on disk."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core_segment_util import CoreSegment
from pylog._ffi import Columns, ffi, lib


def write_segment(directory, batches=4, close=True) -> CoreSegment:
    s = CoreSegment(directory, base=500, index_interval_bytes=60)
    for i in range(batches):
        s.append_values([b"record-%d-%d" % (i, j) for j in range(2)], timestamp=100 + i)
    if close:
        s.close()
    return s


def reopen(directory) -> CoreSegment:
    return CoreSegment(directory, base=500, create=False, index_interval_bytes=60)


def test_recovery_truncates_torn_batch_at_every_byte(tmp_path):
    s = write_segment(tmp_path)
    good = s.batches()
    last_start, size = good[-1][0], s.size
    index = s.index_entries()
    full = s.paths[0].read_bytes()
    for cut in range(last_start, size):
        s.paths[0].write_bytes(full[:cut])
        r = reopen(tmp_path)
        rep = r.recover()
        assert rep["valid_bytes"] == last_start and rep["batches"] == len(good) - 1
        assert rep["next_offset"] == good[-1][1]
        assert rep["truncated_bytes"] == cut - last_start
        assert rep["stop_position"] == last_start
        if any(full[last_start:cut]):             # a torn batch, not just zero bytes
            assert rep["stop_reason"] in (lib.PL_ETRUNCATED, lib.PL_EBADLEN)
            assert rep["dropped_data_bytes"] > 0
        else:
            assert rep["stop_reason"] == 0 and rep["dropped_data_bytes"] == 0
        assert r.next_offset == good[-1][1] and r.size == last_start
        assert r.index_entries() == [e for e in index if e[1] < last_start]
        tindex = r.timeindex_entries()
        assert tindex[-1] == (100 + len(good) - 2, good[-2][2] - 500)   # final entry forced
        r.close(seal=False)
        assert r.paths[0].read_bytes()[last_start:] == b"\0" * (cut - last_start)


def test_recovery_of_preallocated_zero_tail_loses_nothing(tmp_path):
    s = write_segment(tmp_path, close=False)
    s.close(seal=False)                           # crash: file still at the chunk size
    assert os.path.getsize(s.paths[0]) > s.size
    r = reopen(tmp_path)
    assert r.load_clean() != 0                    # the zero tail is not a clean log
    rep = r.recover()
    assert rep["stop_reason"] == 0 and rep["dropped_data_bytes"] == 0
    assert rep["valid_bytes"] == s.size and rep["next_offset"] == 508
    assert r.index_entries() == s.index_entries()
    assert r.append_values([b"more"]) == 508


def test_recovery_stops_at_crc_bit_flip_and_zeroes_the_rest(tmp_path):
    s = write_segment(tmp_path)
    batches = s.batches()
    data = bytearray(s.paths[0].read_bytes())
    data[batches[2][0] + 40] ^= 0x01
    s.paths[0].write_bytes(bytes(data))
    r = reopen(tmp_path)
    rep = r.recover()
    assert rep["stop_reason"] == lib.PL_EBADCRC and rep["valid_bytes"] == batches[2][0]
    assert rep["dropped_data_bytes"] == len(bytes(data).rstrip(b"\0")) - batches[2][0]
    assert rep["next_offset"] == batches[2][1]
    r.close(seal=False)
    assert s.paths[0].read_bytes()[batches[2][0]:] == b"\0" * (len(data) - batches[2][0])


@pytest.mark.parametrize("field_offset", [0, 7])
def test_recovery_catches_wrong_base_offset_outside_crc(tmp_path, field_offset):
    s = write_segment(tmp_path)
    batches = s.batches()
    data = bytearray(s.paths[0].read_bytes())
    data[batches[1][0] + field_offset] ^= 0x04
    s.paths[0].write_bytes(bytes(data))
    r = reopen(tmp_path)
    rep = r.recover()
    assert rep["stop_reason"] == lib.PL_EBADOFFSET and rep["valid_bytes"] == batches[1][0]
    assert rep["next_offset"] == batches[1][1]


def test_recovery_catches_bad_magic_and_length(tmp_path):
    for pos_in_batch, want in ((16, lib.PL_EBADMAGIC), (8, None)):
        s = write_segment(tmp_path)
        batches = s.batches()
        data = bytearray(s.paths[0].read_bytes())
        data[batches[3][0] + pos_in_batch] ^= 0x40
        s.paths[0].write_bytes(bytes(data))
        r = reopen(tmp_path)
        rep = r.recover()
        assert rep["valid_bytes"] == batches[3][0]
        if want is not None:
            assert rep["stop_reason"] == want
        r.close()
        for p in s.paths:
            p.unlink()


def test_stale_batches_never_come_back_after_truncation(tmp_path):
    """Recovery zeroes the dropped tail, so a later crash cannot resurrect it even if
    new appends are shorter than what was dropped (reliability.md section 4)."""
    s = write_segment(tmp_path, batches=6, close=False)
    batches = s.batches()
    s.close(seal=False)
    data = bytearray(s.paths[0].read_bytes())
    data[batches[3][0] + 30] ^= 0x80                   # batch 3 corrupt, 4 and 5 intact
    s.paths[0].write_bytes(bytes(data))
    r = reopen(tmp_path)
    assert r.recover()["next_offset"] == batches[3][1]
    r.append_values([b"x"], timestamp=1)                # one short batch at batch 3's place
    r.close(seal=False)                                 # crash again
    again = reopen(tmp_path)
    rep = again.recover()
    assert rep["next_offset"] == batches[3][1] + 1 and rep["dropped_data_bytes"] == 0


def test_recovery_of_empty_and_garbage_files(tmp_path):
    s = CoreSegment(tmp_path, base=0)
    s.close()
    r = CoreSegment(tmp_path, base=0, create=False)
    rep = r.recover()
    assert rep == dict(rep, valid_bytes=0, batches=0, next_offset=0, stop_reason=0)
    r.close()
    s.paths[0].write_bytes(os.urandom(3000))
    r = CoreSegment(tmp_path, base=0, create=False)
    rep = r.recover()
    assert rep["valid_bytes"] == 0 and rep["stop_reason"] != 0
    assert rep["dropped_data_bytes"] > 0
    assert r.append_values([b"fresh"]) == 0
    r.close()


def test_recover_requires_a_writable_segment(tmp_path):
    write_segment(tmp_path)
    r = CoreSegment(tmp_path, base=500, create=False, mode=lib.PL_OPEN_SEALED)
    rep_ptr = ffi.new("pl_recover_report *")
    assert lib.pl_segment_recover(r.seg, rep_ptr) == lib.PL_ECLOSED


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 200), st.integers(-1, 3000)),
                min_size=1, max_size=40),
       st.sampled_from([0, 100, 1000]))
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_recovery_rebuilds_the_indexes_appends_wrote(tmp_path_factory, batches, interval):
    d = tmp_path_factory.mktemp("seg")
    s = CoreSegment(d, base=500, index_interval_bytes=interval)
    for n, size, ts in batches:
        s.append_values([b"v" * size] * n, timestamp=ts)
    index, tindex = s.index_entries(), s.timeindex_entries()
    state = (s.next_offset, s.seg.max_timestamp, s.seg.offset_of_max_timestamp,
             s.seg.bytes_since_index, s.seg.first_batch_timestamp)
    s.close(seal=False)                                     # crash
    r = CoreSegment(d, base=500, create=False, index_interval_bytes=interval)
    rep = r.recover()
    assert rep["dropped_data_bytes"] == 0 and rep["batches"] == len(batches)
    assert (r.next_offset, r.seg.max_timestamp, r.seg.offset_of_max_timestamp,
            r.seg.bytes_since_index, r.seg.first_batch_timestamp) == state
    assert r.index_entries() == index
    final = [(state[1], state[2] - 500)] if state[1] >= 0 and (
        not tindex or tindex[-1][0] < state[1]) else []
    assert r.timeindex_entries() == tindex + final
    r.close()                                               # clean: seal, then reload
    c = CoreSegment(d, base=500, create=False, index_interval_bytes=interval)
    assert c.load_clean() == 0
    assert (c.next_offset, c.seg.max_timestamp, c.seg.offset_of_max_timestamp,
            c.seg.bytes_since_index, c.seg.first_batch_timestamp) == state
    c.close()


@given(st.lists(st.tuples(st.sampled_from(["log", "index", "timeindex"]),
                          st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=9)),
                max_size=6),
       st.one_of(st.none(), st.floats(0, 1)))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_damaged_files_never_crash_and_recover_to_a_valid_prefix(tmp_path_factory, damage, cut):
    d = tmp_path_factory.mktemp("seg")
    s = write_segment(d, batches=12)
    files = dict(zip(("log", "index", "timeindex"), s.paths))
    for name, where, junk in damage:
        data = bytearray(files[name].read_bytes())
        if data:
            at = int(where * len(data))
            data[at:at + len(junk)] = junk
            files[name].write_bytes(bytes(data[:max(len(data), 0)]))
    if cut is not None:
        data = files["log"].read_bytes()
        files["log"].write_bytes(data[:int(cut * len(data))])
    log_damaged = cut is not None or any(name == "log" for name, _, _ in damage)
    r = reopen(d)
    if log_damaged:
        # A clean load trusts the log below the last index entry (as Kafka does), so
        # damage there shows up later as status codes, never as a crash ...
        if r.load_clean() == 0:
            for off in range(500, r.next_offset):
                lib.pl_segment_find(r.seg, off, ffi.new("uint64_t *"),
                                    ffi.new("pl_batch_header *"))
            lib.pl_segment_decode(r.seg, 0, r.size, 0, Columns(100).ptr,
                                  ffi.new("uint64_t *"))
        r.close(seal=False)
        r = reopen(d)
        rep = r.recover()                       # ... and the unclean path finds it.
        assert rep["valid_bytes"] == r.size and rep["next_offset"] == r.next_offset
    elif r.load_clean() != 0:                   # damaged indexes: load or recover,
        r.recover()                             # reads stay right either way
    batches = r.batches()                       # whole, chained batches from the base
    expect = 500
    for _, base, last, _ in batches:
        assert base == expect
        expect = last + 1
    assert expect == r.next_offset
    cols = r.decode()
    assert list(cols.offsets[: cols.count]) == list(range(500, r.next_offset))
    for off in range(500, r.next_offset):
        assert r.find(off)[0] in [b[0] for b in batches]
    for ts in range(98, 114):
        want = next((p for p, _, _, mt in batches if mt >= ts), None)
        assert r.find_time_rc(ts) == ((0, want) if want is not None else (lib.PL_ENOTFOUND, None))
    r.close()
