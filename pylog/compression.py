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
"""
from __future__ import annotations

import struct

import cramjam

from pylog.errors import CorruptRecordError

__all__ = ["CODEC_NONE", "CODEC_GZIP", "CODEC_SNAPPY", "CODEC_LZ4", "CODEC_ZSTD",
           "CODEC_NAMES", "compress", "decompress", "XERIAL_MAGIC"]

CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = 16                 # magic (8) + version i32 + compat i32
_XERIAL_BLOCK = 32 * 1024           # the Java client's default block size
_I32 = struct.Struct(">i")


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


def _xerial_decode(data: bytes) -> bytes:
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
        try:
            out += cramjam.snappy.decompress_raw(data[p + 4:p + 4 + n])
        except Exception as e:
            raise CorruptRecordError(f"snappy (xerial): bad block at byte {p}: {e}") from None
        p += 4 + n
    return bytes(out)


def decompress(codec: int, data) -> bytes:
    """Decompress a records section compressed with codec (0 returns the bytes)."""
    data = bytes(data)
    if codec == CODEC_NONE:
        return data
    name = CODEC_NAMES.get(codec)
    if name is None:
        raise CorruptRecordError(f"unknown compression codec {codec}")
    if codec == CODEC_SNAPPY and len(data) >= _XERIAL_HEADER and \
            data.startswith(XERIAL_MAGIC):
        return _xerial_decode(data)
    try:
        if codec == CODEC_GZIP:
            return bytes(cramjam.gzip.decompress(data))
        if codec == CODEC_SNAPPY:
            return bytes(cramjam.snappy.decompress_raw(data))
        if codec == CODEC_LZ4:
            return bytes(cramjam.lz4.decompress(data))
        return bytes(cramjam.zstd.decompress(data))
    except Exception as e:     # cramjam raises DecompressionError, ValueError, OSError
        raise CorruptRecordError(f"{name}: cannot decompress {len(data)} bytes "
                                 f"starting at byte 0: {e}") from None
