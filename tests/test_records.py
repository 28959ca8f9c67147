"""RecordBatch v2 reference codec: interop with kafka-python and kio, round trips,
layout constants against csrc/pylog.h, and decoder fuzzing (only CorruptRecordError
may escape)."""
from __future__ import annotations

import pickle
import re
import struct
from pathlib import Path

import crc32c as crc32c_pkg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kio.records.readers import read_batch as kio_read_batch

import kafka_codecs
from pylog import records as R
from pylog.compression import compress
from pylog.errors import CorruptRecordError, RecordTooLargeError
from pylog.records import (BatchHeader, Record, RecordMetadata, decode_batch, encode_batch,
                           iter_batches, iter_headers, scan_valid_prefix, stamp_batch,
                           validate_batch, verify_crc)

PYLOG_H = Path(__file__).resolve().parents[1] / "csrc" / "pylog.h"
TS = 1_700_000_000_000
CODECS = [0, 1, 2, 3, 4]

headers_st = st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=8)),
                      max_size=3)
record_st = st.tuples(st.none() | st.binary(max_size=40),      # key
                      st.none() | st.binary(max_size=200),     # value
                      headers_st,
                      st.integers(-1, 1 << 44))                # timestamp
batch_st = st.lists(record_st, min_size=1, max_size=20)


def _encode(recs, **kw):
    keys, values, headers, tss = (list(x) for x in zip(*recs))
    return encode_batch(values, keys=keys, headers=headers, timestamps=tss, **kw)


def _fix_crc(buf: bytearray, pos: int = 0) -> bytearray:
    """Recompute a batch's CRC with the independent crc32c package."""
    size = 12 + struct.unpack_from(">i", buf, pos + 8)[0]
    struct.pack_into(">I", buf, pos + 17, crc32c_pkg.crc32c(bytes(buf[pos + 21:pos + size])))
    return buf


# ---- CRC and layout -------------------------------------------------------------
def test_crc32c_check_value_matches_castagnoli():
    assert R.crc32c(b"123456789") == 0xE3069283
    from pylog.crc import crc32c_py
    assert crc32c_py(b"123456789") == 0xE3069283


@given(st.binary(max_size=300), st.binary(max_size=50))
def test_crc32c_matches_independent_package_and_continues(a, b):
    from pylog.crc import crc32c_py
    assert crc32c_py(a) == crc32c_pkg.crc32c(a) == R.crc32c(a)
    assert crc32c_py(b, crc32c_py(a)) == crc32c_pkg.crc32c(a + b)


def test_layout_constants_match_pylog_h():
    defines = dict(re.findall(r"#define\s+(PL_\w+)\s+(-?\w+)", PYLOG_H.read_text()))
    for name in ("BASE_OFFSET", "BATCH_LENGTH", "LEADER_EPOCH", "MAGIC", "CRC",
                 "ATTRIBUTES", "LAST_OFFSET_DELTA", "BASE_TIMESTAMP", "MAX_TIMESTAMP",
                 "PRODUCER_ID", "PRODUCER_EPOCH", "BASE_SEQUENCE", "RECORDS_COUNT"):
        assert getattr(R, "OFF_" + name) == int(defines["PL_OFF_" + name]), name
    for name in ("BATCH_HEADER_SIZE", "LOG_OVERHEAD", "MAGIC_V2", "ATTR_TIMESTAMP_TYPE",
                 "ATTR_TRANSACTIONAL", "ATTR_CONTROL", "ATTR_COMPRESSION_MASK",
                 "MAX_RECORD_OVERHEAD", "MIN_BATCH_LENGTH", "OK", "ETRUNCATED", "EBADLEN",
                 "EBADMAGIC", "EBADCRC", "EBADOFFSET", "EBADRECORD", "ETOOLARGE"):
        ours = getattr(R, name if not name.startswith(("OK", "E")) else "PL_" + name)
        assert ours == int(defines["PL_" + name], 0), name


def test_batch_header_fields_follow_pl_batch_header():
    struct_body = re.search(r"typedef struct pl_batch_header \{(.*?)\}", PYLOG_H.read_text(),
                            re.S).group(1)
    names = re.findall(r"(\w+);", struct_body)
    assert list(BatchHeader._fields) == names


# ---- value types ----------------------------------------------------------------
def test_record_is_a_cheap_named_tuple():
    r = Record(5, TS, b"k", b"v", [("h", None)])
    assert (r.offset, r.timestamp, r.key, r.value, r.headers) == (5, TS, b"k", b"v",
                                                                 [("h", None)])
    assert r == (5, TS, b"k", b"v", [("h", None)]) and isinstance(r, tuple)
    assert Record.make((5, TS, b"k", b"v", [("h", None)])) == r
    assert Record(1, 2, None, b"x").headers == ()
    assert pickle.loads(pickle.dumps(r)) == r and "offset=5" in repr(r)
    assert r._asdict()["value"] == b"v"
    with pytest.raises(AttributeError):
        r.offset = 3
    md = RecordMetadata("t", 0, 7, TS)
    assert md.offset == 7 and md.topic == "t"


# ---- interop: ours -> theirs ------------------------------------------------------
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=batch_st, codec=st.sampled_from(CODECS), base=st.integers(0, 1 << 40))
def test_our_batches_decode_with_kafka_python(monkeypatch, recs, codec, base):
    kafka_codecs.install(monkeypatch)
    buf = _encode(recs, base_offset=base, compression=codec)
    theirs = DefaultRecordBatch(buf)
    assert theirs.validate_crc()
    assert (theirs.base_offset, theirs.compression_type, theirs.last_offset_delta,
            theirs.records_count) == (base, codec, len(recs) - 1, len(recs))
    assert theirs.max_timestamp == max(r[3] for r in recs)
    got = [(m.offset, m.key, m.value, [tuple(h) for h in m.headers], m.timestamp)
           for m in theirs]
    want = [(base + i, k, v, h, ts) for i, (k, v, h, ts) in enumerate(recs)]
    assert got == want


@settings(max_examples=30, deadline=None)
@given(recs=batch_st)
def test_our_batches_decode_with_kio(recs):
    recs = [(k, v, h, TS + i) for i, (k, v, h, _) in enumerate(recs)]
    buf = _encode(recs, base_offset=42)
    batch, size = kio_read_batch(buf, 0)
    assert size == len(buf) and batch.base_offset == 42
    assert [(r.offset, r.key, r.value, [(h.key.decode(), h.value) for h in r.headers])
            for r in batch.records] == [(42 + i, k, v, h) for i, (k, v, h, _) in
                                        enumerate(recs)]


# ---- interop: theirs -> ours ------------------------------------------------------
def _kafka_python_batch(recs, codec, producer=(-1, -1, -1)):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                  producer_id=producer[0], producer_epoch=producer[1],
                                  base_sequence=producer[2], batch_size=1 << 30)
    for i, (k, v, h, ts) in enumerate(recs):
        assert b.append(i, timestamp=ts, key=k, value=v, headers=h) is not None
    return bytes(b.build())


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=batch_st, codec=st.sampled_from(CODECS))
def test_kafka_python_batches_decode_with_ours(monkeypatch, recs, codec):
    kafka_codecs.install(monkeypatch)
    buf = _kafka_python_batch(recs, codec, producer=(1000, 3, 17))
    h, got = decode_batch(buf)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (1000, 3, 17)
    assert h.records_count == len(recs) and h.magic == 2
    assert [tuple(r) for r in got] == [(i, ts, k, v, tuple(h_)) for i, (k, v, h_, ts) in
                                       enumerate(recs)]


@pytest.mark.parametrize("codec", CODECS)
def test_large_compressed_kafka_python_batch_spans_many_codec_blocks(monkeypatch, codec):
    # 300 KiB of records: several xerial blocks (32 KiB) and LZ4 blocks (64 KiB).
    kafka_codecs.install(monkeypatch)
    recs = [(b"key-%d" % i, (b"value %d " % i) * 30, [], TS + i) for i in range(1200)]
    h, got = decode_batch(_kafka_python_batch(recs, codec))
    assert h.compression == (codec if codec else 0)
    assert [(r.key, r.value) for r in got] == [(k, v) for k, v, _, _ in recs]


def test_raw_snappy_batch_as_librdkafka_sends_decodes():
    plain = encode_batch([b"a" * 50, b"b" * 50], timestamps=TS)
    raw = bytes(__import__("cramjam").snappy.compress_raw(plain[61:]))
    buf = bytearray(plain[:61] + raw)
    struct.pack_into(">i", buf, 8, len(buf) - 12)
    struct.pack_into(">h", buf, 21, 2)
    _, got = decode_batch(_fix_crc(buf))
    assert [r.value for r in got] == [b"a" * 50, b"b" * 50]


@settings(max_examples=40, deadline=None)
@given(recs=batch_st, codec=st.sampled_from([0, 1]))
def test_aiokafka_c_builder_and_reader_interoperate(recs, codec):
    # aiokafka's builder/reader are Cython: a third, independent implementation.  Its
    # builder treats a first timestamp of -1 (NO_TIMESTAMP) as unset, so avoid -1.
    recs = [(k, v, h, max(ts, 0)) for k, v, h, ts in recs]
    from aiokafka.record.default_records import (DefaultRecordBatch as AioBatch,
                                                 DefaultRecordBatchBuilder as AioBuilder)
    b = AioBuilder(magic=2, compression_type=codec, is_transactional=0, producer_id=-1,
                   producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for i, (k, v, h, ts) in enumerate(recs):
        assert b.append(i, timestamp=ts, key=k, value=v, headers=h) is not None
    _, got = decode_batch(bytes(b.build()))
    want = [(i, ts, k, v, tuple(h)) for i, (k, v, h, ts) in enumerate(recs)]
    assert [tuple(r) for r in got] == want
    theirs = AioBatch(_encode(recs, compression=codec))
    assert theirs.validate_crc()
    assert [(r.offset, r.timestamp, r.key, r.value, tuple(tuple(x) for x in r.headers))
            for r in theirs] == want


# ---- our own round trips ----------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(recs=batch_st, codec=st.sampled_from(CODECS), base=st.integers(0, 1 << 50),
       pid=st.integers(-1, 1 << 40))
def test_encode_decode_round_trip(recs, codec, base, pid):
    buf = _encode(recs, base_offset=base, compression=codec, producer_id=pid,
                  producer_epoch=0, base_sequence=5)
    h = validate_batch(buf, deep=True)
    assert verify_crc(buf)
    h2, got = decode_batch(buf)
    assert h == h2 and h.size == len(buf) and h.producer_id == pid
    assert h.base_timestamp == recs[0][3] and h.last_offset == base + len(recs) - 1
    assert got == [Record(base + i, ts, k, v, tuple(hd)) for i, (k, v, hd, ts) in
                   enumerate(recs)]


def test_log_append_time_batch_gives_every_record_max_timestamp():
    buf = encode_batch([b"a", b"b"], timestamps=[5, 9], attributes=R.ATTR_TIMESTAMP_TYPE)
    h, got = decode_batch(buf)
    assert h.is_log_append_time and [r.timestamp for r in got] == [9, 9]


def test_stamp_batch_sets_offset_and_epoch_without_breaking_crc():
    buf = bytearray(encode_batch([b"x"], timestamps=TS))
    stamp_batch(buf, 0, 1234, leader_epoch=7)
    h, got = decode_batch(buf)
    assert (h.base_offset, h.partition_leader_epoch, got[0].offset) == (1234, 7, 1234)


def test_iter_batches_walks_concatenated_batches():
    bufs = [encode_batch([b"%d" % i] * (i + 1), base_offset=10 * i, compression=i % 5,
                         timestamps=TS) for i in range(5)]
    out = list(iter_batches(b"".join(bufs)))
    assert [h.base_offset for h, _ in out] == [0, 10, 20, 30, 40]
    assert [len(recs) for _, recs in out] == [1, 2, 3, 4, 5]
    positions = [p for p, _ in iter_headers(memoryview(b"".join(bufs)))]
    assert positions == [sum(map(len, bufs[:i])) for i in range(5)]
    with pytest.raises(CorruptRecordError, match="position"):
        list(iter_batches(b"".join(bufs)[:-1]))


def test_validate_batch_refuses_batch_above_max_message_bytes():
    buf = encode_batch([b"x" * 100], timestamps=TS)
    assert validate_batch(buf, max_batch_bytes=len(buf)).records_count == 1
    with pytest.raises(RecordTooLargeError):
        validate_batch(buf, max_batch_bytes=len(buf) - 1)


@pytest.mark.parametrize("mutate, status", [
    (lambda b: b[:40], R.PL_ETRUNCATED),
    (lambda b: b[:8], R.PL_ETRUNCATED),
    (lambda b: b[:8] + struct.pack(">i", 48) + b[12:], R.PL_EBADLEN),
    (lambda b: b[:16] + b"\x01" + b[17:], R.PL_EBADMAGIC),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), R.PL_EBADCRC),
])
def test_decode_names_the_failure(mutate, status):
    buf = encode_batch([b"hello", b"world"], timestamps=TS)
    with pytest.raises(CorruptRecordError, match="position 0") as ei:
        decode_batch(mutate(buf))
    assert ei.value.status == status


def test_record_past_its_length_is_corrupt_even_with_good_crc():
    buf = bytearray(encode_batch([b"hello"], timestamps=TS))
    buf[61] += 2                                   # record length varint: 1 too long
    with pytest.raises(CorruptRecordError, match="byte 61") as ei:
        decode_batch(_fix_crc(buf))
    assert ei.value.status == R.PL_EBADRECORD


def test_records_count_mismatch_is_corrupt():
    buf = bytearray(encode_batch([b"a", b"b"], timestamps=TS))
    struct.pack_into(">i", buf, R.OFF_RECORDS_COUNT, 1)
    with pytest.raises(CorruptRecordError, match="after the last"):
        decode_batch(_fix_crc(buf))
    struct.pack_into(">i", buf, R.OFF_RECORDS_COUNT, 0)
    with pytest.raises(CorruptRecordError, match="recordsCount 0"):
        decode_batch(_fix_crc(buf))


# ---- scan_valid_prefix (the recovery reference) ----------------------------------
def _segment(n=3):
    bufs = [encode_batch([b"r%d" % i] * 3, base_offset=100 + 3 * i, timestamps=TS)
            for i in range(n)]
    return b"".join(bufs), [len(b) for b in bufs]


def test_scan_stops_at_torn_tail_at_every_byte():
    seg, sizes = _segment()
    ends = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    for cut in range(len(seg) + 1):
        rep = scan_valid_prefix(seg[:cut], base_offset=100)
        kept = max(e for e in ends if e <= cut)
        assert rep.valid_bytes == kept and rep.batches == ends.index(kept)
        assert rep.next_offset == 100 + 3 * rep.batches
        # A torn batch whose surviving bytes are all zero looks like preallocated space.
        clean = not any(seg[kept:cut])
        assert rep.stop_reason == (R.PL_OK if clean else R.PL_ETRUNCATED)


def test_scan_treats_zero_tail_as_clean_end_and_garbage_as_corrupt():
    seg, sizes = _segment()
    assert scan_valid_prefix(seg + bytes(4096), 100) == (len(seg), 4096, 3, 109, R.PL_OK,
                                                          len(seg), 0)
    rep = scan_valid_prefix(seg + b"\x00" * 20 + b"\x01" + bytes(100), 100)
    assert rep.valid_bytes == len(seg) and rep.stop_reason == R.PL_EBADLEN
    assert (rep.truncated_bytes, rep.dropped_data_bytes) == (121, 21)


def test_scan_stops_at_bit_flip_and_at_offset_gap():
    seg, sizes = _segment()
    flipped = bytearray(seg)
    flipped[sizes[0] + 70] ^= 0x10
    rep = scan_valid_prefix(bytes(flipped), 100)
    assert (rep.valid_bytes, rep.batches, rep.stop_reason) == (sizes[0], 1, R.PL_EBADCRC)
    rep = scan_valid_prefix(seg, 99)
    assert (rep.valid_bytes, rep.stop_reason) == (0, R.PL_EBADOFFSET)


# ---- fuzz: only CorruptRecordError escapes ---------------------------------------
def _only_corrupt(buf):
    for fn in (decode_batch, lambda b: list(iter_batches(b)), verify_crc,
               lambda b: validate_batch(b, deep=True)):
        try:
            fn(buf)
        except CorruptRecordError as e:
            assert isinstance(e.status, int) and "position" in str(e) or "byte" in str(e)
    scan_valid_prefix(buf, 0, deep=True)           # never raises


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_raise_only_corrupt_record(buf):
    _only_corrupt(buf)
    _only_corrupt(b"\x00" * 8 + buf)


@settings(max_examples=400, deadline=None)
@given(recs=batch_st, codec=st.sampled_from(CODECS), data=st.data())
def test_fuzz_mutated_batches_with_fixed_crc_raise_only_corrupt_record(recs, codec, data):
    buf = bytearray(_encode(recs, compression=codec))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(21, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del buf[data.draw(st.integers(61, len(buf))):]
        struct.pack_into(">i", buf, 8, len(buf) - 12)
    _only_corrupt(bytes(_fix_crc(buf)))


def test_compress_helper_is_reexported():
    assert R.decompress(1, compress(1, b"abc")) == b"abc"


# ---- differential: the C core builds the same bytes ------------------------------
def _c_build(recs, base):
    try:
        from pylog._ffi import ffi, lib
    except Exception:
        pytest.skip("pylog._ffi is not built")
    n = len(recs)
    keep = []                                    # keep cdata alive until the call returns

    def blob_and_lens(items):
        data = ffi.from_buffer(b"".join(i or b"" for i in items))
        lens = ffi.new("int32_t[]", [-1 if i is None else len(i) for i in items] or [0])
        keep.extend([data, lens])
        return data, lens

    def new(ctype, init):
        keep.append(ffi.new(ctype, init))
        return keep[-1]

    r = ffi.new("pl_records_in *")
    r.count, r.timestamp = n, 0
    r.timestamps = new("int64_t[]", [ts for *_, ts in recs])
    r.keys, r.key_lens = blob_and_lens([k for k, *_ in recs])
    r.values, r.value_lens = blob_and_lens([v for _, v, *_ in recs])
    flat = [(k.encode(), v) for _, _, hs, _ in recs for k, v in hs]
    r.header_counts = new("int32_t[]", [len(hs) for _, _, hs, _ in recs])
    r.header_keys, r.header_key_lens = blob_and_lens([k for k, _ in flat])
    r.header_values, r.header_value_lens = blob_and_lens([v for _, v in flat])
    r.producer_id, r.producer_epoch, r.base_sequence, r.attributes = -1, -1, -1, 0
    cap = lib.pl_batch_size_bound(r)
    out, out_len = ffi.new("uint8_t[]", cap), ffi.new("size_t *")
    assert lib.pl_batch_build(out, cap, base, r, out_len) == 0
    return bytes(ffi.buffer(out, out_len[0]))


@settings(max_examples=50, deadline=None)
@given(recs=batch_st, base=st.integers(0, 1 << 40))
def test_c_core_builds_byte_identical_batches(recs, base):
    assert _c_build(recs, base) == _encode(recs, base_offset=base)


def _c_lib():
    try:
        from pylog._ffi import ffi, lib
    except Exception:
        pytest.skip("pylog._ffi is not built")
    return ffi, lib


def _py_status(buf, deep):
    try:
        validate_batch(buf, deep=deep)
        return R.PL_OK
    except CorruptRecordError as e:
        return e.status


@settings(max_examples=300, deadline=None)
@given(recs=batch_st, codec=st.sampled_from([0, 0, 1]), data=st.data())
def test_c_core_and_reference_agree_on_validity(recs, codec, data):
    ffi, lib = _c_lib()
    buf = bytearray(_encode(recs, compression=codec))
    for _ in range(data.draw(st.integers(0, 3))):
        buf[data.draw(st.integers(8, len(buf) - 1))] = data.draw(st.integers(0, 255))
    if len(buf) >= 61:
        _fix_crc(buf) if 12 + struct.unpack_from(">i", buf, 8)[0] <= len(buf) else None
    buf = bytes(buf)
    # The C core leaves compressed records to Python: compare deep checks only when the
    # (possibly mutated) attributes say uncompressed.
    deep = len(buf) < 23 or buf[22] & 7 == 0
    c = lib.pl_batch_validate(ffi.from_buffer(buf), len(buf), 0, int(deep), ffi.NULL)
    assert c == _py_status(buf, deep)


@settings(max_examples=100, deadline=None)
@given(recs=batch_st, base=st.integers(0, 1 << 40), skip=st.integers(0, 25))
def test_c_core_decodes_records_like_reference(recs, base, skip):
    ffi, lib = _c_lib()
    buf = _encode(recs, base_offset=base)
    h, want = decode_batch(buf)
    want = [r for r in want if r.offset >= base + skip]
    cap = len(recs)
    arrays = {name: ffi.new(f"{t}[]", cap) for name, t in [
        ("offsets", "int64_t"), ("timestamps", "int64_t"), ("key_pos", "int64_t"),
        ("key_lens", "int32_t"), ("value_pos", "int64_t"), ("value_lens", "int32_t"),
        ("headers_pos", "int64_t"), ("header_counts", "int32_t")]}
    cols = ffi.new("pl_record_cols *")
    cols.capacity, cols.count = cap, 0
    for name, arr in arrays.items():
        setattr(cols, name, arr)
    ch = ffi.new("pl_batch_header *")
    src = ffi.from_buffer(buf)
    assert lib.pl_batch_read_header(src, len(buf), ch) == 0
    assert lib.pl_records_decode(src + 61, len(buf) - 61, ch, base + skip, src, cols) == 0

    def span(pos, n):
        return None if n < 0 else buf[pos:pos + n]

    got = [(arrays["offsets"][i], arrays["timestamps"][i],
            span(arrays["key_pos"][i], arrays["key_lens"][i]),
            span(arrays["value_pos"][i], arrays["value_lens"][i]),
            arrays["header_counts"][i]) for i in range(cols.count)]
    assert got == [(r.offset, r.timestamp, r.key, r.value, len(r.headers)) for r in want]


def _c_recover(path, data, base):
    """Run the C core's recovery on a .log holding `data`; return its report."""
    from pylog._ffi import SegmentMaps, ffi, lib, segment_config
    path.write_bytes(data)
    names = [ffi.new("char[]", str(path.with_suffix(s)).encode())
             for s in (".log", ".index", ".timeindex")]
    cfg = segment_config(segment_bytes=1 << 20, index_bytes=1 << 16, grow_chunk=1 << 16)
    seg = ffi.new("pl_segment *")
    assert lib.pl_segment_open(seg, *names, base, cfg, lib.PL_OPEN_ACTIVE) == 0
    maps = SegmentMaps(seg)
    rep = ffi.new("pl_recover_report *")
    try:
        assert lib.pl_segment_recover(seg, rep) == 0
    finally:
        lib.pl_segment_close(seg)
        del maps
    return (rep.valid_bytes, rep.batches, rep.next_offset, rep.stop_reason,
            rep.stop_position, rep.dropped_data_bytes)


def test_c_core_recovery_agrees_with_scan_reference(tmp_path):
    _c_lib()
    seg, sizes = _segment()
    garbage = bytearray(seg)
    garbage[sizes[0] + 30] ^= 0xFF
    cases = [seg, seg + bytes(5000), seg[:-7], seg[:sizes[0] + 15], bytes(garbage),
             seg + b"\x00" * 9 + b"\x07" + bytes(50), seg[:sizes[0]] + seg[:sizes[0]],
             # stray bytes far into a zero tail (the backwards scan steps 64 bytes at a time)
             seg + bytes(1000) + b"\x01" + bytes(3000),
             seg + bytes(63) + b"\x02" + bytes(64 * 40 + 3), seg + bytes(4096) + b"\x03"]
    for i, data in enumerate(cases):
        ref = scan_valid_prefix(data, 100)
        want = (ref.valid_bytes, ref.batches, ref.next_offset, ref.stop_reason,
                ref.stop_position, ref.dropped_data_bytes)
        assert _c_recover(tmp_path / f"{i:020d}.log", data, 100) == want, f"case {i}"
