"""Codec helpers: every codec round-trips, snappy accepts both framings, LZ4 frames
use independent blocks (Kafka's reader needs them), bad input -> CorruptRecordError."""
from __future__ import annotations

import struct

import cramjam
import pytest
from hypothesis import given, settings, strategies as st

from pylog.compression import XERIAL_MAGIC, compress, decompress
from pylog.errors import CorruptRecordError


@settings(max_examples=50, deadline=None)
@given(codec=st.sampled_from([0, 1, 2, 3, 4]), data=st.binary(max_size=5000))
def test_every_codec_round_trips(codec, data):
    assert decompress(codec, compress(codec, data)) == data


def test_snappy_decodes_xerial_framing_and_raw_blocks():
    data = bytes(range(256)) * 500                      # 128 KB: four xerial blocks
    framed = compress(2, data)
    assert framed.startswith(XERIAL_MAGIC) and decompress(2, framed) == data
    assert decompress(2, bytes(cramjam.snappy.compress_raw(data))) == data


def test_xerial_block_length_past_end_is_corrupt():
    framed = bytearray(compress(2, b"abc" * 100))
    struct.pack_into(">i", framed, 16, 1 << 20)
    with pytest.raises(CorruptRecordError, match="byte 16"):
        decompress(2, bytes(framed))
    with pytest.raises(CorruptRecordError, match="truncated block length"):
        decompress(2, bytes(framed[:18]))


def test_lz4_frames_have_independent_blocks():
    frame = compress(3, b"x" * 200_000)
    assert frame[:4] == b"\x04\x22\x4d\x18" and frame[4] & 0x20   # FLG.BlockIndependence


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_garbage_input_is_corrupt_record(codec):
    with pytest.raises(CorruptRecordError):
        decompress(codec, b"\x01\x02garbage that is not compressed" * 3)


def test_unknown_codec_is_corrupt_record():
    with pytest.raises(CorruptRecordError, match="codec 5"):
        decompress(5, b"abc")


@settings(max_examples=200, deadline=None)
@given(codec=st.sampled_from([1, 2, 3, 4]), data=st.binary(max_size=100))
def test_fuzz_decompress_raises_only_corrupt_record(codec, data):
    for blob in (data, XERIAL_MAGIC + b"\x00" * 8 + data):
        try:
            decompress(codec, blob)
        except CorruptRecordError:
            pass


def test_streamed_zstd_without_content_size_and_several_frames_decode():
    c = cramjam.zstd.Compressor()
    c.compress(b"hello " * 100)
    frame = bytes(c.finish())
    assert decompress(4, frame) == b"hello " * 100
    two = compress(4, b"a" * 50) + compress(4, b"b" * 50)
    assert decompress(4, two) == b"a" * 50 + b"b" * 50


def test_multi_member_gzip_decodes():
    import gzip
    assert decompress(1, gzip.compress(b"x" * 10) + gzip.compress(b"y" * 10)) == \
        b"x" * 10 + b"y" * 10
