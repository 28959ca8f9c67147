"""Kafka wire framing: ``int32 size`` followed by ``size`` bytes of request.

This module does no I/O.  ``FrameDecoder.feed(data)`` takes whatever the socket
delivered and returns the complete frames it now holds.  The size prefix is
checked *before* any byte of the frame is kept, as Kafka's ``NetworkReceive``
does: a size < 1 or > ``socket.request.max.bytes`` (default 104,857,600) raises
``FrameError`` and the caller closes the connection.  A request can never be
smaller than its header (api_key i16, api_version i16, correlation_id i32,
client_id i16 length = 10 bytes), so a zero or tiny size is as fatal as a
negative one.

Memory bound: the decoder never holds more than one partial frame plus the
bytes of one ``feed`` call, so a client announcing 100 MiB and sending 10 bytes
costs 10 bytes, and a client sending 100 MiB costs at most the 100 MiB it sent.
"""
from __future__ import annotations

import struct

from pylog.errors import ProtocolError

__all__ = ["FrameDecoder", "FrameError", "DEFAULT_MAX_REQUEST_BYTES", "MIN_REQUEST_BYTES",
           "frame"]

DEFAULT_MAX_REQUEST_BYTES = 104_857_600     # Kafka's socket.request.max.bytes (100 MiB)
MIN_REQUEST_BYTES = 10                      # i16 key + i16 version + i32 corr id + i16 client id
_SIZE = struct.Struct(">i")


class FrameError(ProtocolError):
    """A size prefix that Kafka would refuse: the connection must be closed."""


class FrameDecoder:
    """Splits a byte stream into request frames (not thread-safe: one per connection)."""

    __slots__ = ("max_bytes", "_buf", "_need")

    def __init__(self, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()      # bytes received and not yet returned as a frame
        self._need = 4               # bytes needed in _buf before a frame can complete

    @property
    def buffered(self) -> int:
        """Bytes held for a partial frame (for idle / read-deadline bookkeeping)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete frames (payloads without size)."""
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return []            # still inside one large frame: no re-parsing, no copy
            data, self._buf = self._buf, bytearray()
        frames: list[bytes] = []
        view = memoryview(data)
        pos, end = 0, len(view)
        try:
            while end - pos >= 4:
                (size,) = _SIZE.unpack_from(view, pos)
                if size < MIN_REQUEST_BYTES or size > self.max_bytes:
                    raise FrameError(f"request size {size} outside [{MIN_REQUEST_BYTES}, "
                                     f"{self.max_bytes}] (socket.request.max.bytes)")
                if end - pos - 4 < size:
                    self._need = 4 + size
                    break
                frames.append(bytes(view[pos + 4:pos + 4 + size]))
                pos += 4 + size
            else:
                self._need = 4
            if pos < end:
                self._buf = bytearray(view[pos:])
        finally:
            view.release()
        return frames


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its int32 size (used by tests and clients of the codec)."""
    return _SIZE.pack(len(payload)) + payload
