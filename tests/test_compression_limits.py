"""Decompression bombs: a compressed batch may not inflate past MAX_INFLATED_BYTES.

The server inflates every compressed batch a producer sends (to validate it, as Kafka's
LogValidator does), so a few KiB claiming gigabytes must be refused with
CorruptRecordError before that memory is taken, and nothing stored.
"""
from __future__ import annotations

import zlib

import cramjam
import pytest

import pylog
from pylog import compression as C
from pylog.crc import crc32c
from pylog.errors import CorruptRecordError
from pylog.records import encode_batch

MIB = 1 << 20


def _zeros_stream(codec: int, mib: int) -> bytes:
    """codec-compressed zeros, built a MiB at a time (no big buffer in the test)."""
    chunk = bytes(MIB)
    if codec == C.CODEC_GZIP:
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        return b"".join([z.compress(chunk) for _ in range(mib)] + [z.flush()])
    c = (cramjam.zstd.Compressor() if codec == C.CODEC_ZSTD
         else cramjam.lz4.Compressor(block_linked=False))
    for _ in range(mib):
        c.compress(chunk)
    return bytes(c.finish())


@pytest.mark.parametrize("codec", [C.CODEC_GZIP, C.CODEC_LZ4, C.CODEC_ZSTD])
def test_bombs_are_refused_and_honest_data_passes(codec):
    bomb = _zeros_stream(codec, 8)                  # 8 MiB of zeros
    assert len(bomb) * 40 < 8 * MIB                 # it is a bomb
    with pytest.raises(CorruptRecordError, match="inflate past"):
        C.decompress(codec, bomb, limit=4 * MIB)
    assert C.decompress(codec, bomb, limit=8 * MIB) == bytes(8 * MIB)
    honest = b"".join(b"record %d;" % i for i in range(50_000))
    assert C.decompress(codec, C.compress(codec, honest), limit=len(honest)) == honest


def test_snappy_length_headers_are_checked_before_inflating():
    raw = bytes(cramjam.snappy.compress_raw(bytes(2 * MIB)))
    with pytest.raises(CorruptRecordError, match="inflate past"):
        C.decompress(C.CODEC_SNAPPY, raw, limit=MIB)
    xerial = C.compress(C.CODEC_SNAPPY, bytes(2 * MIB))       # Java's framing: 64 blocks
    with pytest.raises(CorruptRecordError, match="inflate past"):
        C.decompress(C.CODEC_SNAPPY, xerial, limit=MIB)
    assert C.decompress(C.CODEC_SNAPPY, xerial, limit=2 * MIB) == bytes(2 * MIB)


def test_gzip_members_and_garbage():
    two = C.compress(C.CODEC_GZIP, b"a" * 100) + C.compress(C.CODEC_GZIP, b"b" * 100)
    big = _zeros_stream(C.CODEC_GZIP, 1)
    assert C.decompress(C.CODEC_GZIP, two, limit=200) == b"a" * 100 + b"b" * 100
    with pytest.raises(CorruptRecordError):
        C.decompress(C.CODEC_GZIP, two, limit=150)
    with pytest.raises(CorruptRecordError):
        C.decompress(C.CODEC_GZIP, big[:-20], limit=MIB // 8)    # truncated, bounded path
    with pytest.raises(CorruptRecordError):
        C.decompress(C.CODEC_GZIP, big + b"junk", limit=MIB // 8 + MIB)


def test_a_produced_bomb_is_refused_and_nothing_is_stored(tmp_path):
    # A zstd batch of ~300 MiB of zeros in ~10 KiB, as a hostile producer would send.
    honest = encode_batch([b"x" * 10] * 3, compression=C.CODEC_ZSTD)
    big = _zeros_stream(C.CODEC_ZSTD, 300)
    bomb = bytearray(honest[:61]) + big
    bomb[8:12] = (len(bomb) - 12).to_bytes(4, "big")
    bomb[57:61] = (1).to_bytes(4, "big")                              # records count
    bomb[17:21] = crc32c(bytes(bomb[21:])).to_bytes(4, "big")
    with pylog.open(tmp_path / "d") as log:
        p = log.create_topic("t").partition(0)
        with pytest.raises(CorruptRecordError, match="inflate past"):
            p.append_raw(bytes(bomb))
        assert p.log_end_offset == 0
        p.append_raw(honest)
        assert [r.value for r in p.read(0)] == [b"x" * 10] * 3
