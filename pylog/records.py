"""Records and the pure-Python reference codec for Kafka's RecordBatch v2.

The C core (csrc/batch.c) is the hot path; this module is the reference that tests,
fsck and the in-memory paths check it against.  FORMAT.md is the normative
description of the bytes; the names here follow it (and pylog.h):

    RecordBatch v2 header, 61 bytes, big-endian (PL_OFF_* in pylog.h)
      0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
     17 crc u32 (CRC-32C of bytes [21, end)) | 21 attributes i16 | 23 lastOffsetDelta i32
     27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64
     51 producerEpoch i16 | 53 baseSequence i32 | 57 recordsCount i32 | 61 records...

    Record: length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
            keyLen varint (-1 null), key, valueLen varint (-1 null), value,
            headerCount varint, then per header: keyLen varint, key (UTF-8),
            valueLen varint (-1 null), value.   All varints are zig-zag.

Decoders raise only ``pylog.errors.CorruptRecordError`` on bad bytes; its message
names the byte position, and the instance carries ``status`` (the pylog.h PL_E*
code the C core would return) and ``position``.
"""
from __future__ import annotations

import functools
import struct
import time
from collections import namedtuple
from typing import Iterator, Sequence

from pylog.compression import (CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_SNAPPY,
                               CODEC_ZSTD, compress, decompress)
from pylog.crc import crc32c
from pylog.errors import CorruptRecordError, RecordTooLargeError

__all__ = [
    "Record", "RecordMetadata", "BatchHeader", "ScanReport",
    "encode_batch", "decode_batch", "iter_batches", "iter_headers", "read_header",
    "validate_batch", "valid_headers", "verify_crc", "stamp_batch", "scan_valid_prefix",
    "compress", "decompress", "crc32c",
    "CODEC_NONE", "CODEC_GZIP", "CODEC_SNAPPY", "CODEC_LZ4", "CODEC_ZSTD",
]

# ---- layout constants (same numbers as pylog.h) -----------------------------------
OFF_BASE_OFFSET = 0
OFF_BATCH_LENGTH = 8
OFF_LEADER_EPOCH = 12
OFF_MAGIC = 16
OFF_CRC = 17
OFF_ATTRIBUTES = 21
OFF_LAST_OFFSET_DELTA = 23
OFF_BASE_TIMESTAMP = 27
OFF_MAX_TIMESTAMP = 35
OFF_PRODUCER_ID = 43
OFF_PRODUCER_EPOCH = 51
OFF_BASE_SEQUENCE = 53
OFF_RECORDS_COUNT = 57
BATCH_HEADER_SIZE = 61
LOG_OVERHEAD = 12                     # baseOffset + batchLength
MIN_BATCH_LENGTH = BATCH_HEADER_SIZE - LOG_OVERHEAD   # 49
MAGIC_V2 = 2
ATTR_COMPRESSION_MASK = 0x07
ATTR_TIMESTAMP_TYPE = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
MAX_RECORD_OVERHEAD = 21

# Status codes, the same values as pylog.h, carried on CorruptRecordError.status.
PL_OK = 0
PL_ETRUNCATED = -1
PL_EBADLEN = -2
PL_EBADMAGIC = -3
PL_EBADCRC = -4
PL_EBADOFFSET = -5
PL_EBADRECORD = -6
PL_ETOOLARGE = -7

_HEADER = struct.Struct(">qiibIhiqqqhii")          # the 61-byte header
_AFTER_CRC = struct.Struct(">hiqqqhii")            # attributes .. recordsCount (40 bytes)
_PREFIX = struct.Struct(">qiibI")                  # baseOffset .. crc (21 bytes)
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
assert _HEADER.size == BATCH_HEADER_SIZE and _AFTER_CRC.size == 40 and _PREFIX.size == 21


# ---- value types -------------------------------------------------------------------
Record = namedtuple("Record", "offset timestamp key value headers", defaults=((),))
Record.__doc__ = """One record: ``(offset, timestamp, key, value, headers)``.

A namedtuple because read() builds millions of them (in C, pylog._speedups) and
field access is a C-level getter.  Immutable throughout: ``headers`` is a tuple of
``(str, bytes | None)`` pairs, ``()`` when there are none, so a Record holds no
container the cyclic GC must watch.
``Record.make((offset, ts, key, value, headers))`` skips argument parsing.
"""
#: Build a Record from a 5-tuple without argument parsing (the fastest constructor).
Record.make = staticmethod(functools.partial(tuple.__new__, Record))

RecordMetadata = namedtuple("RecordMetadata", "topic partition offset timestamp")
RecordMetadata.__doc__ = "Where an appended record landed: topic, partition, offset, timestamp."


class BatchHeader(namedtuple("BatchHeader", (
        "base_offset batch_length partition_leader_epoch magic crc attributes "
        "last_offset_delta base_timestamp max_timestamp producer_id producer_epoch "
        "base_sequence records_count"))):
    """The 61-byte RecordBatch v2 header, field names as pylog.h's pl_batch_header."""

    __slots__ = ()

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def size(self) -> int:
        """Whole batch in bytes: LOG_OVERHEAD + batchLength."""
        return LOG_OVERHEAD + self.batch_length

    @property
    def compression(self) -> int:
        return self.attributes & ATTR_COMPRESSION_MASK

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & ATTR_TIMESTAMP_TYPE)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)


ScanReport = namedtuple("ScanReport", "valid_bytes truncated_bytes batches next_offset "
                        "stop_reason stop_position dropped_data_bytes")
ScanReport.__doc__ = """Result of scan_valid_prefix: the fields of pylog.h's pl_recover_report.

stop_reason is PL_OK when the scan reached the end, or only zero fill followed
(dropped_data_bytes == 0); otherwise the PL_E* status of the first invalid batch."""


def _corrupt(status: int, position: int, message: str) -> CorruptRecordError:
    err = CorruptRecordError(message)
    err.status = status
    err.position = position
    return err


# ---- zig-zag varints ---------------------------------------------------------------
def _put_varint(out: bytearray, v: int) -> None:
    """Append v zig-zag encoded (Kafka ByteUtils.writeVarlong; same bytes for ints)."""
    v = (v << 1) ^ (v >> 63)
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _get_varint(buf: bytes, pos: int, end: int, max_bytes: int, base: int) -> tuple[int, int]:
    """Zig-zag varint at buf[pos:end] -> (value, next pos).

    max_bytes is 5 for a varint and 10 for a varlong (Kafka refuses longer ones).
    base is added to positions in error messages.
    """
    if pos < end:
        b = buf[pos]
        if b < 0x80:
            return (b >> 1) ^ -(b & 1), pos + 1
    start = pos
    result = shift = 0
    limit = min(end, pos + max_bytes)
    while pos < limit:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
    if pos >= end:
        raise _corrupt(PL_EBADRECORD, base + start,
                       f"varint runs past the end of the records at byte {base + start}")
    raise _corrupt(PL_EBADRECORD, base + start,
                   f"varint longer than {max_bytes} bytes at byte {base + start}")


# ---- encoding ----------------------------------------------------------------------
_BYTES_LIKE = (bytes, bytearray, memoryview)


def _put_bytes(out: bytearray, b, what: str) -> None:
    if b is None:
        out.append(1)                     # zig-zag(-1)
    elif isinstance(b, _BYTES_LIKE):
        _put_varint(out, len(b))
        out += b
    else:
        raise TypeError(f"{what} must be bytes-like or None, not {type(b).__name__}")


def _encode_record(out: bytearray, ts_delta: int, offset_delta: int, key, value,
                   headers) -> None:
    rec = bytearray(b"\x00")              # attributes: unused, 0
    _put_varint(rec, ts_delta)
    _put_varint(rec, offset_delta)
    _put_bytes(rec, key, "key")
    _put_bytes(rec, value, "value")
    if headers:
        _put_varint(rec, len(headers))
        for hk, hv in headers:
            if isinstance(hk, str):
                hk = hk.encode("utf-8")
            elif not isinstance(hk, _BYTES_LIKE):
                raise TypeError(f"header key must be str, not {type(hk).__name__}")
            _put_varint(rec, len(hk))
            rec += hk
            _put_bytes(rec, hv, "header value")
    else:
        rec.append(0)
    _put_varint(out, len(rec))
    out += rec


def encode_batch(values: Sequence, keys: Sequence | None = None,
                 headers: Sequence | None = None, timestamps=None, base_offset: int = 0,
                 producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1,
                 compression: int = CODEC_NONE, attributes: int = 0,
                 partition_leader_epoch: int = 0) -> bytes:
    """Encode one RecordBatch v2 holding ``values`` (at least one).

    keys / headers: None or one entry per value (headers: list of (str, bytes|None)).
    timestamps: None (now, for every record), an int (for every record), or one per
    value.  baseTimestamp is the first record's timestamp, as Kafka's builder does.
    compression: codec 0-4; the records section is compressed as one blob.
    attributes: extra attribute bits (timestamp type, transactional, control).
    partition_leader_epoch defaults to 0, what the broker stamps (pl_batch_build).
    """
    n = len(values)
    if n == 0:
        raise ValueError("a batch needs at least one record")
    if keys is not None and len(keys) != n:
        raise ValueError(f"{len(keys)} keys for {n} values")
    if headers is not None and len(headers) != n:
        raise ValueError(f"{len(headers)} header lists for {n} values")
    if attributes & ATTR_COMPRESSION_MASK:
        raise ValueError("pass the codec as compression=, not in attributes")
    if timestamps is None:
        timestamps = int(time.time() * 1000)
    if isinstance(timestamps, int):
        timestamps = [timestamps] * n
    elif len(timestamps) != n:
        raise ValueError(f"{len(timestamps)} timestamps for {n} values")
    base_ts = timestamps[0]
    body = bytearray()
    for i in range(n):
        _encode_record(body, timestamps[i] - base_ts, i,
                       None if keys is None else keys[i], values[i],
                       None if headers is None else headers[i])
    if compression != CODEC_NONE:
        body = compress(compression, body)
    after_crc = _AFTER_CRC.pack(attributes | compression, n - 1, base_ts, max(timestamps),
                                producer_id, producer_epoch, base_sequence, n) + body
    crc = crc32c(after_crc)
    batch_length = len(after_crc) + (BATCH_HEADER_SIZE - LOG_OVERHEAD - _AFTER_CRC.size)
    return _PREFIX.pack(base_offset, batch_length, partition_leader_epoch, MAGIC_V2,
                        crc) + after_crc


def stamp_batch(buf: bytearray, pos: int, base_offset: int, leader_epoch: int = 0) -> None:
    """Set baseOffset and partitionLeaderEpoch in place; both lie outside the CRC."""
    _I64.pack_into(buf, pos + OFF_BASE_OFFSET, base_offset)
    _I32.pack_into(buf, pos + OFF_LEADER_EPOCH, leader_epoch)


# ---- header and batch validation -------------------------------------------------
def _as_bytes_view(buf) -> memoryview:
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    return mv if mv.format == "B" and mv.ndim == 1 else mv.cast("B")


def read_header(buf, pos: int = 0) -> BatchHeader:
    """Unpack the 61-byte header at buf[pos:], checking only that it is there."""
    mv = _as_bytes_view(buf)
    if pos < 0 or len(mv) - pos < BATCH_HEADER_SIZE:
        raise _corrupt(PL_ETRUNCATED, pos,
                       f"batch header at position {pos} is truncated "
                       f"({max(0, len(mv) - pos)} of {BATCH_HEADER_SIZE} bytes)")
    return BatchHeader._make(_HEADER.unpack_from(mv, pos))


def validate_batch(buf, pos: int = 0, max_batch_bytes: int = 0,
                   deep: bool = False) -> BatchHeader:
    """Check the batch at buf[pos:] the way pl_batch_validate does; return its header.

    Conditions (FORMAT.md, "Validity rules"): 12 bytes readable; batchLength >= 49;
    the whole batch present; magic 2; CRC-32C; recordsCount >= 1; 0 <=
    lastOffsetDelta and recordsCount - 1 <= lastOffsetDelta.  deep=True also walks the
    records (decompressing if needed).  Raises CorruptRecordError, or
    RecordTooLargeError when 12 + batchLength > max_batch_bytes (0 = no limit).
    """
    mv = _as_bytes_view(buf)
    avail = len(mv) - pos
    if avail < LOG_OVERHEAD:
        raise _corrupt(PL_ETRUNCATED, pos, f"batch at position {pos} is truncated "
                       f"({max(0, avail)} bytes, need {LOG_OVERHEAD} to read its length)")
    batch_length = _I32.unpack_from(mv, pos + OFF_BATCH_LENGTH)[0]
    if batch_length < MIN_BATCH_LENGTH:
        raise _corrupt(PL_EBADLEN, pos, f"batch at position {pos} has batchLength "
                       f"{batch_length} < {MIN_BATCH_LENGTH}")
    size = LOG_OVERHEAD + batch_length
    if max_batch_bytes and size > max_batch_bytes:
        raise RecordTooLargeError(f"batch at position {pos} is {size} bytes, more than "
                                  f"max.message.bytes {max_batch_bytes}")
    if size > avail:
        raise _corrupt(PL_ETRUNCATED, pos, f"batch at position {pos} is truncated "
                       f"({avail} of {size} bytes present)")
    h = BatchHeader._make(_HEADER.unpack_from(mv, pos))
    if h.magic != MAGIC_V2:
        raise _corrupt(PL_EBADMAGIC, pos, f"batch at position {pos} has magic {h.magic}, "
                       f"expected {MAGIC_V2}")
    actual = crc32c(mv[pos + OFF_ATTRIBUTES:pos + size])
    if actual != h.crc:
        raise _corrupt(PL_EBADCRC, pos, f"batch at position {pos} fails its CRC-32C "
                       f"(stored 0x{h.crc:08x}, computed 0x{actual:08x})")
    if h.records_count < 1 or h.last_offset_delta < h.records_count - 1:
        raise _corrupt(PL_EBADOFFSET, pos, f"batch at position {pos} has recordsCount "
                       f"{h.records_count} and lastOffsetDelta {h.last_offset_delta}")
    if deep:
        _records_of(mv, pos, h)
    return h


def verify_crc(buf, pos: int = 0) -> bool:
    """True if the batch at buf[pos:] has a matching CRC-32C (attributes..end).

    Raises CorruptRecordError only if the batch is not all there.
    """
    mv = _as_bytes_view(buf)
    h = read_header(mv, pos)
    size = LOG_OVERHEAD + h.batch_length
    if h.batch_length < MIN_BATCH_LENGTH or size > len(mv) - pos:
        raise _corrupt(PL_ETRUNCATED, pos, f"batch at position {pos} is truncated or has "
                       f"a bad batchLength {h.batch_length}")
    return crc32c(mv[pos + OFF_ATTRIBUTES:pos + size]) == h.crc


# ---- decoding ----------------------------------------------------------------------
def _records_of(mv: memoryview, pos: int, h: BatchHeader) -> list[Record]:
    """Decode the records of the (already validated) batch at mv[pos:]."""
    end = pos + LOG_OVERHEAD + h.batch_length
    codec = h.attributes & ATTR_COMPRESSION_MASK
    if codec == CODEC_NONE:
        data = bytes(mv[pos:end])
        return _decode_records(data, BATCH_HEADER_SIZE, len(data), h, pos,
                               f"batch at position {pos}")
    try:
        data = decompress(codec, mv[pos + BATCH_HEADER_SIZE:end])
    except CorruptRecordError as e:
        raise _corrupt(PL_EBADRECORD, pos, f"batch at position {pos}: {e}") from None
    return _decode_records(data, 0, len(data), h, 0,
                           f"decompressed records of the batch at position {pos}")


def _decode_records(data: bytes, p: int, end: int, h: BatchHeader, base: int,
                    where: str) -> list[Record]:
    """Parse h.records_count records from data[p:end]; they must fill it exactly.

    A parser loop, longer than the usual function: every length is bounds-checked
    before it is used, so bad bytes give CorruptRecordError naming the position.
    """
    rv = _get_varint
    base_offset, base_ts = h.base_offset, h.base_timestamp
    log_append = h.attributes & ATTR_TIMESTAMP_TYPE
    out = []
    last_delta = -1
    for _ in range(h.records_count):
        start = p
        length, p = rv(data, p, end, 5, base)
        rec_end = p + length
        if length < 1 or rec_end > end:
            raise _corrupt(PL_EBADRECORD, base + start, f"{where}: record at byte "
                           f"{base + start} has length {length} beyond the records")
        p += 1                                            # attributes (unused)
        ts_delta, p = rv(data, p, rec_end, 10, base)
        off_delta, p = rv(data, p, rec_end, 5, base)
        if off_delta <= last_delta or off_delta > h.last_offset_delta:
            raise _corrupt(PL_EBADRECORD, base + start, f"{where}: record at byte "
                           f"{base + start} has offsetDelta {off_delta} out of order")
        last_delta = off_delta
        n, p = rv(data, p, rec_end, 5, base)
        if n < -1 or p + n > rec_end:
            raise _corrupt(PL_EBADRECORD, base + p, f"{where}: key length {n} at byte "
                           f"{base + p} is out of bounds")
        key = None if n < 0 else data[p:p + n]
        p += max(n, 0)
        n, p = rv(data, p, rec_end, 5, base)
        if n < -1 or p + n > rec_end:
            raise _corrupt(PL_EBADRECORD, base + p, f"{where}: value length {n} at byte "
                           f"{base + p} is out of bounds")
        value = None if n < 0 else data[p:p + n]
        p += max(n, 0)
        count, p = rv(data, p, rec_end, 5, base)
        if count < 0 or count > rec_end - p:
            raise _corrupt(PL_EBADRECORD, base + p, f"{where}: header count {count} at "
                           f"byte {base + p} is out of bounds")
        headers = []
        for _ in range(count):
            n, p = rv(data, p, rec_end, 5, base)
            if n < 0 or p + n > rec_end:
                raise _corrupt(PL_EBADRECORD, base + p, f"{where}: header key length {n}"
                               f" at byte {base + p} is out of bounds")
            # Malformed UTF-8 is replaced, not refused: Java's new String(bytes, UTF_8)
            # does the same, and the C core does not look inside header keys.
            hkey = data[p:p + n].decode("utf-8", "replace")
            p += n
            n, p = rv(data, p, rec_end, 5, base)
            if n < -1 or p + n > rec_end:
                raise _corrupt(PL_EBADRECORD, base + p, f"{where}: header value length "
                               f"{n} at byte {base + p} is out of bounds")
            headers.append((hkey, None if n < 0 else data[p:p + n]))
            p += max(n, 0)
        if p != rec_end:
            raise _corrupt(PL_EBADRECORD, base + start, f"{where}: record at byte "
                           f"{base + start} has {rec_end - p} bytes beyond its fields")
        ts = h.max_timestamp if log_append else base_ts + ts_delta
        out.append(tuple.__new__(Record, (base_offset + off_delta, ts, key, value,
                                          tuple(headers))))
    if p != end:
        raise _corrupt(PL_EBADRECORD, base + p, f"{where}: {end - p} bytes after the last "
                       f"of {h.records_count} records, at byte {base + p}")
    return out


def decode_batch(buf, pos: int = 0) -> tuple[BatchHeader, list[Record]]:
    """Validate and decode the batch at buf[pos:] (compressed or not).

    Bytes after the batch are ignored; use iter_batches for concatenated batches.
    """
    mv = _as_bytes_view(buf)
    h = validate_batch(mv, pos)
    return h, _records_of(mv, pos, h)


def iter_headers(buf, verify: bool = True) -> Iterator[tuple[int, BatchHeader]]:
    """Yield (position, header) of each batch in concatenated batches.

    verify=True checks each batch as validate_batch does (CRC included); the buffer
    must end exactly at a batch boundary.
    """
    mv = _as_bytes_view(buf)
    pos, end = 0, len(mv)
    while pos < end:
        if verify:
            h = validate_batch(mv, pos)
        else:
            h = read_header(mv, pos)
            if h.batch_length < MIN_BATCH_LENGTH or h.size > end - pos:
                raise _corrupt(PL_ETRUNCATED, pos, f"batch at position {pos} is truncated "
                               f"or has a bad batchLength {h.batch_length}")
        yield pos, h
        pos += h.size


def valid_headers(buf) -> list[tuple[int, BatchHeader]]:
    """(position, header) of each valid batch from the start, stopping without an error
    at the first invalid or torn one: the prefix recovery keeps."""
    out: list[tuple[int, BatchHeader]] = []
    try:
        for item in iter_headers(buf):
            out.append(item)
    except CorruptRecordError:
        pass
    return out


def iter_batches(buf) -> Iterator[tuple[BatchHeader, list[Record]]]:
    """Yield (header, records) for each batch in concatenated whole batches."""
    mv = _as_bytes_view(buf)
    for pos, h in iter_headers(mv):
        yield h, _records_of(mv, pos, h)


def scan_valid_prefix(buf, base_offset: int | None = None, max_batch_bytes: int = 0,
                      deep: bool = False) -> ScanReport:
    """Find the valid prefix of a segment's bytes, as recovery does (pl_segment_recover).

    Walks batches from position 0; each must pass validate_batch and, when
    base_offset is given, start at the expected next offset (the first at
    base_offset) with its last offset within 2**31 - 1 of base_offset.  Stops at the
    first failure.  Never raises on bad bytes: the report says where and why.
    """
    mv = _as_bytes_view(buf)
    pos, end, batches, stop = 0, len(mv), 0, PL_OK
    expected = base_offset
    while pos < end:
        try:
            h = validate_batch(mv, pos, max_batch_bytes, deep)
        except CorruptRecordError as e:
            stop = e.status
            break
        except RecordTooLargeError:
            stop = PL_ETOOLARGE
            break
        if expected is not None and (h.base_offset != expected or
                                     h.last_offset - base_offset > 0x7FFFFFFF):
            stop = PL_EBADOFFSET
            break
        expected = h.next_offset
        batches += 1
        pos += h.size
    tail = bytes(mv[pos:end]).rstrip(b"\x00")          # zero fill is not lost data
    return ScanReport(pos, end - pos, batches, expected, stop if tail else PL_OK, pos,
                      len(tail))
