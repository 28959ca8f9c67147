"""The one string encoding of pylog's internal-topic records (``__consumer_offsets``,
``__share_group_state``, ``__transaction_state``): an i16 big-endian byte length, then
UTF-8, as Kafka's non-flexible schemas write strings."""
from __future__ import annotations

import struct

__all__ = ["put_str", "get_str"]

_H = struct.Struct(">h")


def put_str(parts: list, s: str) -> None:
    """Append the encoding of ``s`` to ``parts`` (a list of bytes to join)."""
    b = s.encode("utf-8")
    parts.append(_H.pack(len(b)))
    parts.append(b)


def get_str(buf: bytes, pos: int) -> tuple[str, int]:
    """(the string at ``pos``, the position after it); ValueError when its length runs
    past ``buf`` or is negative."""
    (n,) = _H.unpack_from(buf, pos)
    pos += 2
    if n < 0 or pos + n > len(buf):
        raise ValueError(f"string length {n} at {pos - 2} runs past the record")
    return buf[pos:pos + n].decode("utf-8"), pos + n
