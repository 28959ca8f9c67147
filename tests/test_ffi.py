"""The C core through pylog._ffi: CRC-32C, RecordBatch v2 build/validate/decode
against kafka-python's independent codec, status-code mapping, mapping lifetime."""
from __future__ import annotations

import gc
import os
import random

import crc32c as crc32c_pkg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from pylog import errors
from pylog._ffi import (Columns, CoreArgumentError, RecordsIn, SegmentMaps, build_batch,
                        check, decode_records, ffi, lib, map_owner, segment_config)

# ---- layout pins (same numbers as the _Static_asserts in pylog.h) -----------------


def test_layout_constants_match_format():
    assert (lib.PL_OFF_BASE_OFFSET, lib.PL_OFF_BATCH_LENGTH, lib.PL_OFF_LEADER_EPOCH,
            lib.PL_OFF_MAGIC, lib.PL_OFF_CRC, lib.PL_OFF_ATTRIBUTES,
            lib.PL_OFF_LAST_OFFSET_DELTA, lib.PL_OFF_BASE_TIMESTAMP,
            lib.PL_OFF_MAX_TIMESTAMP, lib.PL_OFF_PRODUCER_ID, lib.PL_OFF_PRODUCER_EPOCH,
            lib.PL_OFF_BASE_SEQUENCE, lib.PL_OFF_RECORDS_COUNT,
            lib.PL_BATCH_HEADER_SIZE) == (0, 8, 12, 16, 17, 21, 23, 27, 35, 43, 51, 53, 57, 61)
    assert lib.PL_LOG_OVERHEAD == 12 and lib.PL_MIN_BATCH_LENGTH == 49
    assert lib.PL_INDEX_ENTRY_SIZE == 8 and lib.PL_TIMEINDEX_ENTRY_SIZE == 12


# ---- CRC-32C --------------------------------------------------------------------


def test_crc32c_check_value_on_both_paths():
    assert lib.pl_crc32c(0, b"123456789", 9) == 0xE3069283
    assert lib.pl_crc32c_sw(0, b"123456789", 9) == 0xE3069283
    assert lib.pl_crc32c_hw_available() in (0, 1)


@given(st.binary(max_size=4096), st.integers(0, 16))
@settings(max_examples=300)
def test_crc32c_matches_crc32c_package_on_random_data(data, split):
    want = crc32c_pkg.crc32c(data)
    assert lib.pl_crc32c(0, data, len(data)) == want
    assert lib.pl_crc32c_sw(0, data, len(data)) == want
    split = min(split, len(data))          # chaining, and unaligned starts
    head = lib.pl_crc32c_sw(0, data[:split], split)
    assert lib.pl_crc32c(head, data[split:], len(data) - split) == want


@pytest.mark.parametrize("n", [3 * 256 - 1, 3 * 256, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 777,
                               1 << 20])
def test_crc32c_interleaved_hw_path_on_long_unaligned_buffers(n):
    data = os.urandom(n + 8)
    for start in (0, 1, 5):
        chunk = data[start:start + n]
        want = crc32c_pkg.crc32c(chunk)
        assert lib.pl_crc32c(0, chunk, n) == want == lib.pl_crc32c_sw(0, chunk, n)


# ---- status codes -> exceptions ----------------------------------------------------


@pytest.mark.parametrize("code, exc", [
    (lib.PL_EBADCRC, errors.CorruptRecordError),
    (lib.PL_ETRUNCATED, errors.CorruptRecordError),
    (lib.PL_EBADLEN, errors.CorruptRecordError),
    (lib.PL_EBADMAGIC, errors.CorruptRecordError),
    (lib.PL_EBADOFFSET, errors.CorruptRecordError),
    (lib.PL_ETOOLARGE, errors.RecordTooLargeError),
    (lib.PL_ERANGE, errors.OffsetOutOfRangeError),
    (lib.PL_ECONTROL, errors.InvalidRecordError),
    (lib.PL_EINVAL, CoreArgumentError),
])
def test_check_maps_status_to_exception(code, exc):
    with pytest.raises(exc, match="thing.log"):
        check(code, "thing.log")


def test_check_client_structural_errors_are_invalid_record():
    with pytest.raises(errors.InvalidRecordError):
        check(lib.PL_EBADOFFSET, "batch 0", client=True)
    with pytest.raises(errors.CorruptRecordError):
        check(lib.PL_EBADCRC, "batch 0", client=True)
    assert issubclass(CoreArgumentError, ValueError)


def test_check_errno_is_storage_error_naming_path():
    with pytest.raises(errors.StorageError, match="/data/x.log: No space left") as ei:
        check(28, "/data/x.log")
    assert ei.value.os_errno == 28 and ei.value.errno == 56
    assert check(0) == 0


# ---- batches: ours <-> kafka-python ------------------------------------------------

header_st = st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=16))
record_st = st.fixed_dictionaries({
    "key": st.none() | st.binary(max_size=32),
    "value": st.none() | st.binary(max_size=64),
    "headers": st.lists(header_st, max_size=3),
    "ts": st.integers(-1, 2**41),
})


@given(st.lists(record_st, min_size=1, max_size=20), st.integers(0, 2**40))
@settings(max_examples=150)
def test_built_batch_decodes_with_kafka_python(recs, base):
    rb = RecordsIn([r["value"] for r in recs], keys=[r["key"] for r in recs],
                   headers=[r["headers"] for r in recs], timestamps=[r["ts"] for r in recs])
    data = build_batch(rb, base_offset=base)
    assert lib.pl_batch_validate(data, len(data), 0, 1, ffi.NULL) == 0
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc()
    assert batch.base_offset == base and batch.max_timestamp == max(r["ts"] for r in recs)
    got = [(r.offset, r.timestamp, r.key, r.value, [(k, v) for k, v in r.headers])
           for r in batch]
    assert got == [(base + i, r["ts"], r["key"], r["value"], r["headers"])
                   for i, r in enumerate(recs)]


def kafka_python_batch(recs, base=0) -> bytes:
    b = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 30)
    for i, r in enumerate(recs):
        b.append(i, r["ts"], r["key"], r["value"], r["headers"])
    data = bytearray(b.build())
    data[0:8] = base.to_bytes(8, "big")
    return bytes(data)


def decode_all(data: bytes, min_offset: int = 0):
    h = ffi.new("pl_batch_header *")
    check(lib.pl_batch_validate(data, len(data), 0, 1, h))
    cols = Columns(max(h.records_count, 1))
    rc = decode_records(memoryview(data)[61:], h, min_offset, cols, origin=ffi.from_buffer(
        "uint8_t[]", data))
    check(rc)
    out = []
    for i in range(cols.count):
        kp, kl, vp, vl = cols.key_pos[i], cols.key_lens[i], cols.value_pos[i], cols.value_lens[i]
        out.append((int(cols.offsets[i]), int(cols.timestamps[i]),
                    None if kl < 0 else data[kp:kp + kl], None if vl < 0 else data[vp:vp + vl],
                    int(cols.header_counts[i])))
    return out


@given(st.lists(record_st, min_size=1, max_size=20), st.integers(0, 2**40))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_kafka_python_batch_validates_and_decodes_in_c(recs, base):
    recs = [dict(r, ts=max(r["ts"], 0)) for r in recs]
    data = kafka_python_batch(recs, base)
    assert decode_all(data) == [(base + i, r["ts"], r["key"], r["value"], len(r["headers"]))
                                for i, r in enumerate(recs)]
    skip = len(recs) // 2
    tail = [o for o, *_ in decode_all(data, base + skip)]
    assert tail == [base + i for i in range(skip, len(recs))]


def sample_batch() -> bytes:
    recs = [{"key": b"k%d" % i, "value": b"value-%d" % i, "headers": [("h", b"x")],
             "ts": 1000 + i} for i in range(4)]
    return kafka_python_batch(recs, 0)


def validate(data: bytes, max_bytes: int = 0, deep: int = 1) -> int:
    return lib.pl_batch_validate(data, len(data), max_bytes, deep, ffi.NULL)


def test_validation_catches_a_flipped_bit_in_every_crc_covered_byte():
    data = sample_batch()
    assert validate(data) == 0
    for i in range(lib.PL_OFF_ATTRIBUTES, len(data)):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            assert validate(bytes(bad)) == lib.PL_EBADCRC, (i, bit)


def test_validation_catches_bad_length_magic_and_crc_field():
    data = sample_batch()
    for i in range(lib.PL_OFF_BATCH_LENGTH, lib.PL_OFF_BATCH_LENGTH + 4):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            assert validate(bytes(bad)) != 0, (i, bit)
    for i in range(lib.PL_OFF_CRC, lib.PL_OFF_CRC + 4):
        bad = bytearray(data)
        bad[i] ^= 0x10
        assert validate(bytes(bad)) == lib.PL_EBADCRC
    bad = bytearray(data)
    bad[lib.PL_OFF_MAGIC] = 1
    assert validate(bytes(bad)) == lib.PL_EBADMAGIC


def test_validation_of_limits_and_torn_batches():
    data = sample_batch()
    assert validate(data, max_bytes=len(data)) == 0
    assert validate(data, max_bytes=len(data) - 1) == lib.PL_ETOOLARGE
    for cut in range(len(data)):
        assert validate(data[:cut]) in (lib.PL_ETRUNCATED, lib.PL_EBADLEN), cut
    # baseOffset and the leader epoch are outside the CRC: stamping keeps it valid
    stamped = bytearray(data)
    lib.pl_batch_stamp(ffi.from_buffer("uint8_t[]", stamped), 12345, 7)
    h = ffi.new("pl_batch_header *")
    assert lib.pl_batch_validate(bytes(stamped), len(stamped), 0, 1, h) == 0
    assert (h.base_offset, h.partition_leader_epoch) == (12345, 7)


def test_validation_rejects_offset_delta_and_count_mismatch():
    data = bytearray(sample_batch())
    data[lib.PL_OFF_LAST_OFFSET_DELTA:lib.PL_OFF_LAST_OFFSET_DELTA + 4] = (1).to_bytes(4, "big")
    crc = lib.pl_crc32c(0, bytes(data[21:]), len(data) - 21)
    data[17:21] = crc.to_bytes(4, "big")
    assert validate(bytes(data), deep=0) == lib.PL_EBADOFFSET


@given(st.binary(max_size=300), st.integers(0, 2**31))
@settings(max_examples=300)
def test_validate_and_decode_never_crash_on_garbage(garbage, seed):
    base = bytearray(sample_batch())
    rnd = random.Random(seed)
    for _ in range(rnd.randrange(1, 6)):
        base[rnd.randrange(len(base))] = rnd.randrange(256)
    for buf in (garbage, bytes(base), bytes(base[: rnd.randrange(len(base))])):
        lib.pl_batch_validate(buf, len(buf), 0, 1, ffi.NULL)
        if len(buf) >= 61:
            h = ffi.new("pl_batch_header *")
            lib.pl_batch_read_header(buf, len(buf), h)
            h.records_count = min(h.records_count, 50)
            cols = Columns(64)
            rc = decode_records(memoryview(buf)[61:], h, 0, cols)
            assert rc in (0, lib.PL_EBADRECORD, lib.PL_ENOSPACE_CAP)


def test_decode_reports_full_columns_without_partial_output():
    data = sample_batch()
    h = ffi.new("pl_batch_header *")
    check(lib.pl_batch_validate(data, len(data), 0, 1, h))
    cols = Columns(3)
    assert decode_records(memoryview(data)[61:], h, 0, cols) == lib.PL_ENOSPACE_CAP
    assert cols.count == 0
    assert decode_records(memoryview(data)[61:], h, 1, cols) == 0 and cols.count == 3


def test_build_rejects_invalid_input():
    assert lib.pl_batch_size_bound(RecordsIn([b"x"], attributes=1).ptr) == 0
    with pytest.raises(CoreArgumentError):
        build_batch(RecordsIn([], timestamp=0))
    rb = RecordsIn([b"abc"])
    small = bytearray(10)
    n = ffi.new("size_t *")
    assert lib.pl_batch_build(ffi.from_buffer("uint8_t[]", small), 10, 0, rb.ptr, n) \
        == lib.PL_ETRUNCATED


# ---- mapping lifetime -----------------------------------------------------------------


def _mapped(path) -> bool:
    with open("/proc/self/maps") as f:
        return any(str(path) in line for line in f)


def test_numpy_view_keeps_mapping_alive_after_segment_is_gone(tmp_path):
    paths = [os.fsencode(tmp_path / f"00000000000000000000.{s}")
             for s in ("log", "index", "timeindex")]
    seg = ffi.new("pl_segment *")
    check(lib.pl_segment_create(seg, *paths, 0, segment_config(segment_bytes=1 << 20)))
    maps = SegmentMaps(seg)
    out = ffi.new("int64_t *")
    rb = RecordsIn([b"hello-mapping"] * 3, timestamp=5)
    check(lib.pl_segment_append_records(seg, rb.ptr, out))
    size = seg.log.size
    view = np.frombuffer(maps.log, dtype=np.uint8)[:size]
    sliced = maps.log[:size]
    expect = bytes(view)
    check(lib.pl_segment_seal(seg))
    check(lib.pl_segment_close(seg))
    del seg, maps, rb
    gc.collect()
    assert bytes(view) == expect and bytes(sliced) == expect
    assert b"hello-mapping" in bytes(view)
    assert _mapped(tmp_path)
    del view, sliced
    gc.collect()
    assert not _mapped(tmp_path)


def test_map_owner_of_empty_readonly_file(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    mf = ffi.new("pl_mfile *")
    check(lib.pl_mfile_open(mf, os.fsencode(p), lib.PL_MF_EXISTING, 0, 0, 0))
    owner, view = map_owner(mf)
    assert owner is None and len(view) == 0
    check(lib.pl_mfile_close(mf))


def test_c_sources_compile_warning_free():
    """-O2 -Wall -Wextra clean (the build flags), enforced with -Werror."""
    import pathlib
    import shutil
    import subprocess
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler")
    import sysconfig
    csrc = pathlib.Path(__file__).resolve().parents[1] / "csrc"
    for src in sorted(csrc.glob("*.c")):       # pyext.c (the CPython extension) too
        res = subprocess.run([gcc, "-fsyntax-only", "-O2", "-Wall", "-Wextra", "-Werror",
                              "-std=gnu11", "-I", str(csrc),
                              "-I", sysconfig.get_paths()["include"], str(src)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def test_built_log_append_time_batch_reads_as_such():
    data = build_batch(RecordsIn([b"a", b"b"], timestamp=4242,
                                 attributes=lib.PL_ATTR_TIMESTAMP_TYPE))
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc() and batch.timestamp_type == 1
    assert [r.timestamp for r in batch] == [4242, 4242]
    assert [t for _, t, *_ in decode_all(data)] == [4242, 4242]
