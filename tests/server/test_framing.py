"""FrameDecoder: sizes checked before anything is kept, frames split at any chunking."""
import struct

import pytest
from hypothesis import given, settings, strategies as st

from pylog.errors import ProtocolError
from pylog.server.kafka.framing import FrameDecoder, FrameError, frame


@pytest.mark.parametrize("size", [-1, -2**31, 0, 1, 9, 104_857_601, 2**31 - 1])
def test_framing_rejects_sizes_kafka_refuses(size):
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">i", size) + b"x" * 20)


def test_framing_error_is_a_protocol_error():
    assert issubclass(FrameError, ProtocolError)


def test_framing_keeps_nothing_for_an_announced_huge_frame():
    d = FrameDecoder()
    assert d.feed(struct.pack(">i", 100_000_000) + b"abc") == []
    assert d.buffered == 7          # what was sent, not what was announced


def test_framing_honours_a_smaller_limit():
    d = FrameDecoder(max_bytes=1000)
    assert d.feed(frame(b"a" * 1000)) == [b"a" * 1000]
    with pytest.raises(FrameError):
        d.feed(frame(b"a" * 1001))


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(st.binary(min_size=10, max_size=300), min_size=1, max_size=8),
       cuts=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=50))
def test_framing_splits_frames_at_any_chunking(payloads, cuts):
    stream = b"".join(frame(p) for p in payloads)
    d, out, pos, i = FrameDecoder(), [], 0, 0
    while pos < len(stream):
        n = cuts[i % len(cuts)]
        out += d.feed(stream[pos:pos + n])
        pos, i = pos + n, i + 1
    assert out == payloads
    assert d.buffered == 0


def test_framing_large_frame_in_small_chunks_is_linear():
    payload = b"z" * (4 << 20)
    data = frame(payload)
    d, out = FrameDecoder(), []
    for pos in range(0, len(data), 65536):
        out += d.feed(data[pos:pos + 65536])
    assert out == [payload]
