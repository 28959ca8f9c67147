"""Make kafka-python's record builder/reader able to use every codec in tests.

kafka-python needs python-snappy, lz4 and zstandard for codecs 2-4; the venv has
only cramjam.  When a library is missing, install a stand-in built on cramjam's
*raw* primitives (raw snappy blocks, LZ4 frames, zstd frames).  kafka-python's own
code still does the Kafka-specific parts: xerial framing for snappy, batch layout,
attributes and CRC, so the batches stay an independent implementation of ours.
"""
from __future__ import annotations

import types

import cramjam
import kafka.codec as kcodec
import kafka.record.default_records as kdr


def _lz4_compress(payload, **_kwargs):
    c = cramjam.lz4.Compressor(block_linked=False)
    c.compress(bytes(payload))
    return bytes(c.finish())


def install(monkeypatch) -> None:
    """Patch kafka-python's codec hooks for the duration of one test."""
    if not kcodec.has_snappy():
        shim = types.SimpleNamespace(
            compress=lambda b: bytes(cramjam.snappy.compress_raw(bytes(b))),
            decompress=lambda b: bytes(cramjam.snappy.decompress_raw(bytes(b))))
        monkeypatch.setattr(kcodec, "snappy", shim)
    if not kcodec.has_lz4():
        monkeypatch.setattr(kcodec, "lz4", types.SimpleNamespace(compress=_lz4_compress))
        monkeypatch.setattr(kdr, "lz4_encode", _lz4_compress)
        monkeypatch.setattr(kdr, "lz4_decode",
                            lambda b: bytes(cramjam.lz4.decompress(bytes(b))))
    if not kcodec.has_zstd():
        monkeypatch.setattr(kcodec, "zstd", types.SimpleNamespace())
        monkeypatch.setattr(kdr, "zstd_encode",
                            lambda b: bytes(cramjam.zstd.compress(bytes(b))))
        monkeypatch.setattr(kdr, "zstd_decode",
                            lambda b: bytes(cramjam.zstd.decompress(bytes(b))))
