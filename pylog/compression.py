"""Compression codecs of RecordBatch v2 (attributes bits 0-2), through cramjam.

Kafka clients compress the records section of a batch as one blob:

    1 gzip    RFC 1952 stream (possibly several members)
    2 snappy  either raw snappy (librdkafka) or xerial-framed snappy (the Java
              client): b"\\x82SNAPPY\\x00", i32 version, i32 compat, then repeated
              [i32 BE block length][raw snappy block]
    3 lz4     LZ4 frame format (independent blocks, as KafkaLZ4BlockOutputStream)
    4 zstd    zstd frame(s), content size may be absent (streaming producers)

``decompress`` raises only CorruptRecordError, naming the codec and the byte
position within the compressed data where that is known.

Inflated size is bounded (``MAX_INFLATED_BYTES``, 256 MiB): a batch of a few KiB
of zstd or gzip can claim gigabytes (a decompression bomb), and the server inflates
every compressed batch a producer sends to validate it.  Each codec is checked
without first allocating what the data claims: snappy by its length header, gzip by
inflating at most the limit (zlib's max_length), lz4 and zstd by inflating into an
anonymous mapping of the limit's size (only the pages written become memory) when
their worst-case ratio (lz4 ~255:1, zstd unbounded) could pass it.
"""
from __future__ import annotations

import mmap
import struct
import zlib

import cramjam

from pylog.errors import CorruptRecordError

__all__ = [
    "CODEC_GZIP",
    "CODEC_LZ4",
    "CODEC_NAMES",
    "CODEC_NONE",
    "CODEC_SNAPPY",
    "CODEC_ZSTD",
    "MAX_INFLATED_BYTES",
    "XERIAL_MAGIC",
    "compress",
    "decompress",
]

CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = 16                 # magic (8) + version i32 + compat i32
_XERIAL_BLOCK = 32 * 1024           # the Java client's default block size
_I32 = struct.Struct(">i")

#: Largest records section a compressed batch may inflate to (a 1 MiB batch of
#: ordinary records inflates to a few MiB; Kafka's own limit is the JVM's heap).
MAX_INFLATED_BYTES = 256 << 20
_LZ4_MAX_RATIO = 256                # an LZ4 sequence extends at most 255 bytes per byte
_GZIP_MAX_RATIO = 1100              # deflate's is 1032:1


def _too_big(name: str, n: int, limit: int) -> CorruptRecordError:
    return CorruptRecordError(f"{name}: {n} compressed bytes inflate past {limit} bytes "
                              f"(the limit for one batch's records)")


def compress(codec: int, data) -> bytes:
    """Compress a records section with codec 1-4 (snappy: xerial-framed, like Java)."""
    data = bytes(data)
    if codec == CODEC_GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == CODEC_SNAPPY:
        return _xerial_encode(data)
    if codec == CODEC_LZ4:
        c = cramjam.lz4.Compressor(block_linked=False)   # Kafka's reader needs these
        c.compress(data)
        return bytes(c.finish())
    if codec == CODEC_ZSTD:
        return bytes(cramjam.zstd.compress(data))
    if codec == CODEC_NONE:
        return data
    raise ValueError(f"unknown compression codec {codec}")


def _xerial_encode(data: bytes) -> bytes:
    out = bytearray(XERIAL_MAGIC)
    out += struct.pack(">ii", 1, 1)
    for i in range(0, len(data), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(data[i:i + _XERIAL_BLOCK]))
        out += _I32.pack(len(block))
        out += block
    return bytes(out)


def _xerial_decode(data: bytes, limit: int) -> bytes:
    """Decode xerial framing; block lengths are bounds-checked before use."""
    out = bytearray()
    p, end = _XERIAL_HEADER, len(data)
    while p < end:
        if end - p < 4:
            raise CorruptRecordError(f"snappy (xerial): truncated block length at byte {p}")
        n = _I32.unpack_from(data, p)[0]
        if n < 0 or n > end - p - 4:
            raise CorruptRecordError(f"snappy (xerial): block length {n} at byte {p} "
                                     f"runs past the end ({end} bytes)")
        block = data[p + 4:p + 4 + n]
        if len(out) + _snappy_length(block) > limit:
            raise _too_big("snappy (xerial)", len(data), limit)
        try:
            out += cramjam.snappy.decompress_raw(block)
        except Exception as e:
            raise CorruptRecordError(f"snappy (xerial): bad block at byte {p}: {e}") from None
        p += 4 + n
    return bytes(out)


def _snappy_length(block: bytes) -> int:
    """The uncompressed length a raw snappy block declares (its leading uvarint);
    0 if unreadable (decompression then reports the damage)."""
    n = shift = 0
    for i in range(min(len(block), 5)):
        b = block[i]
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n
        shift += 7
    return 0


def _gunzip(data: bytes, limit: int) -> bytes:
    """gzip members one after another, never more than limit bytes out."""
    out, rest = [], data
    total = 0
    while rest:
        d = zlib.decompressobj(wbits=31)
        chunk = d.decompress(rest, limit - total + 1)
        total += len(chunk)
        if total > limit or d.unconsumed_tail:
            raise _too_big("gzip", len(data), limit)
        if not d.eof:
            raise CorruptRecordError(f"gzip: truncated stream ({len(data)} bytes)")
        out.append(chunk)
        rest = d.unused_data
    return b"".join(out)


def _into_mapping(module, data: bytes, limit: int) -> bytes:
    """cramjam's decompress_into an anonymous mapping of limit + 1 bytes: filling it
    means the data inflates past the limit; untouched pages cost nothing."""
    with mmap.mmap(-1, limit + 1) as m:
        n = module.decompress_into(data, m)      # raises when the mapping fills up
        if n > limit:
            raise OverflowError
        return m[:n]


def decompress(codec: int, data, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """Decompress a records section compressed with codec (0 returns the bytes);
    CorruptRecordError if it is damaged or inflates past ``limit`` bytes."""
    data = bytes(data)
    if codec == CODEC_NONE:
        return data
    name = CODEC_NAMES.get(codec)
    if name is None:
        raise CorruptRecordError(f"unknown compression codec {codec}")
    if codec == CODEC_SNAPPY and len(data) >= _XERIAL_HEADER and \
            data.startswith(XERIAL_MAGIC):
        return _xerial_decode(data, limit)
    bounded = False
    try:
        if codec == CODEC_GZIP:
            if len(data) * _GZIP_MAX_RATIO <= limit:
                return bytes(cramjam.gzip.decompress(data))
            return _gunzip(data, limit)
        if codec == CODEC_SNAPPY:
            if _snappy_length(data) > limit:
                raise _too_big(name, len(data), limit)
            return bytes(cramjam.snappy.decompress_raw(data))
        if codec == CODEC_LZ4 and len(data) * _LZ4_MAX_RATIO <= limit:
            return bytes(cramjam.lz4.decompress(data))
        bounded = True
        return _into_mapping(cramjam.lz4 if codec == CODEC_LZ4 else cramjam.zstd, data,
                             limit)
    except CorruptRecordError:
        raise
    except Exception as e:     # cramjam raises DecompressionError, ValueError, OSError
        if bounded:
            raise CorruptRecordError(f"{name}: cannot decompress {len(data)} bytes, or "
                                     f"they inflate past {limit} bytes: {e}") from None
        raise CorruptRecordError(f"{name}: cannot decompress {len(data)} bytes "
                                 f"starting at byte 0: {e}") from None
