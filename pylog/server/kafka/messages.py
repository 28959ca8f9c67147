"""Bytes ↔ ``kio`` entities for request headers, request bodies and responses.

No I/O here.  Headers (KIP-482): a request of a non-flexible version has header v1
(api_key i16, api_version i16, correlation_id i32, client_id nullable i16-string);
a flexible version has header v2, the same fields (client_id keeps its i16 length)
and then a tagged-field section, which is skipped (``skip_tagged_fields``: no
header tag is defined that a broker must read).  A response has header v0
(correlation_id) or, for flexible versions, v1 (correlation_id, empty tagged
fields); ApiVersions' response keeps header v0 at every version so that any client
can read it.  kio's classes say which (``__flexible__``, ``__header_schema__``).
Bodies go through ``kio``'s generated entities, one class per API version; ``build`` fills a version's class from keyword arguments
and drops the fields that version does not have, so a handler can describe one
response for all the versions it serves.

Every decoding failure, whatever ``kio`` raised for it, leaves this module as
``pylog.errors.ProtocolError`` (the fuzz test in tests/server holds us to it).
Record batches are never decoded here: Produce records stay ``bytes`` and Fetch
records are written as the mmap views the storage engine returns (``Chunks``).
"""
from __future__ import annotations

import dataclasses
import datetime
import struct
from functools import lru_cache
from typing import Any, NamedTuple

from kio.index import load_payload_module
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType

from pylog.errors import ProtocolError

from .bounds import walk_tagged_fields

__all__ = ["RequestHeader", "decode_header", "decode_body", "encode_response", "Chunks",
           "skip_tagged_fields",
           "build", "request_class", "response_module", "error_code", "ms", "ZERO_MS"]

_HEADER = struct.Struct(">hhih")
_I32 = struct.Struct(">i")
ZERO_MS = datetime.timedelta(0)
# A small response is joined into one bytes object; a records view at least this
# large is passed to the transport as its own buffer instead of being copied.
_ZERO_COPY_MIN = 16 * 1024


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int           # where the body starts in the frame


def decode_header(frame: bytes) -> RequestHeader:
    """Parse request header v1 (also the prefix of v2; flexible tags are not read)."""
    if len(frame) < _HEADER.size:
        raise ProtocolError(f"request of {len(frame)} bytes is shorter than a header")
    api_key, api_version, correlation_id, n = _HEADER.unpack_from(frame, 0)
    pos = _HEADER.size
    client_id = None
    if n >= 0:
        if pos + n > len(frame):
            raise ProtocolError(f"client_id length {n} runs past the request end")
        try:
            client_id = frame[pos:pos + n].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("client_id is not UTF-8") from exc
        pos += n
    elif n != -1:
        raise ProtocolError(f"client_id length {n} is negative")
    return RequestHeader(api_key, api_version, correlation_id, client_id, pos)


def skip_tagged_fields(frame: bytes, pos: int) -> int:
    """Skip a tagged-field section (request header v2), every size checked."""
    return walk_tagged_fields(frame, pos, len(frame))


def decode_body(cls: type, frame: bytes, offset: int) -> Any:
    """Decode a request body with kio; any failure becomes ``ProtocolError``.

    kio's native reader checks every length against the bytes left before it
    reads (an array claiming 2**31 elements in a 10-byte body fails at the first
    element, it is not pre-allocated), so the frame bounds all memory used.
    """
    try:
        entity, _size = _reader(cls)(frame, offset)
    except ProtocolError:
        raise
    except Exception as exc:   # noqa: BLE001 -- kio raises many types; one error leaves
        raise ProtocolError(f"cannot decode {cls.__name__} "
                            f"v{cls.__version__}: {type(exc).__name__}: {exc}") from exc
    return entity


@lru_cache(maxsize=None)
def _reader(cls: type):
    return entity_reader(cls)


@lru_cache(maxsize=None)
def request_class(api_key: int, version: int) -> type:
    """The kio request entity class for (api_key, version)."""
    mod = load_payload_module(api_key, version, EntityType.request)
    return _payload_class(mod, EntityType.request)


@lru_cache(maxsize=None)
def response_module(api_key: int, version: int):
    """The kio module holding the response classes (top-level and nested) of a version."""
    return load_payload_module(api_key, version, EntityType.response)


def _payload_class(mod, kind) -> type:
    for value in vars(mod).values():
        if isinstance(value, type) and getattr(value, "__type__", None) == kind \
                and value.__module__ == mod.__name__:
            return value
    raise LookupError(f"no {kind} entity in {mod.__name__}")


@lru_cache(maxsize=None)
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def build(cls: type, **values: Any) -> Any:
    """Instantiate a kio entity, dropping values for fields this version lacks."""
    names = _field_names(cls)
    return cls(**{k: v for k, v in values.items() if k in names})


def has_field(cls: type, name: str) -> bool:
    return name in _field_names(cls)


_ERROR_CODES = {int(e): e for e in ErrorCode}


def error_code(code: int) -> ErrorCode:
    """kio's ErrorCode member for a Kafka error code (unknown codes map to -1)."""
    return _ERROR_CODES.get(code, ErrorCode.unknown_server_error)


def ms(n: int | float) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=n)


class Chunks:
    """A kio ``Writable`` that keeps large buffers (record views) uncopied.

    Small writes are gathered into a bytearray; a write of ``_ZERO_COPY_MIN``
    bytes or more (Fetch records: a memoryview over the segment mmap) becomes its
    own element, so ``transport.writelines`` hands the mmap to the kernel.
    """

    __slots__ = ("parts", "_small", "size")

    def __init__(self) -> None:
        self.parts: list[bytes | memoryview] = []
        self._small = bytearray()
        self.size = 0

    def write(self, data) -> int:
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        if n >= _ZERO_COPY_MIN:
            if self._small:
                self.parts.append(bytes(self._small))
                self._small = bytearray()
            self.parts.append(data)
        else:
            self._small += data
        self.size += n
        return n

    def finish(self) -> list[bytes | memoryview]:
        if self._small:
            self.parts.append(bytes(self._small))
            self._small = bytearray()
        return self.parts


@lru_cache(maxsize=None)
def _writer(cls: type):
    return entity_writer(cls)


@lru_cache(maxsize=None)
def _header_bytes(cls: type) -> bytes:
    """What follows the correlation id in this response's header: nothing (v0) or
    an empty tagged-field section (v1)."""
    return b"\0" if cls.__header_schema__.__version__ >= 1 else b""


def encode_response(correlation_id: int, response: Any) -> list[bytes | memoryview]:
    """Frame a response: size, header v0/v1, body; as buffers to write."""
    out = Chunks()
    out.write(b"\0\0\0\0")                 # size placeholder, patched below
    out.write(_I32.pack(correlation_id) + _header_bytes(type(response)))
    _writer(type(response))(out, response)
    parts = out.finish()
    first = bytearray(parts[0])
    first[0:4] = _I32.pack(out.size - 4)
    parts[0] = bytes(first)
    return parts
