"""Bounds check of a flexible request body before kio decodes it.

kio's native reader reserves memory for a *compact* array (uvarint length + 1,
KIP-482) before it reads the elements: a 5-byte length claiming 2**32 - 2
elements makes it ask for 32 GiB, and a failed allocation in its Rust code
aborts the whole process.  (Non-flexible arrays are safe: the reader stops at
the first element that runs past the frame, tests/server/test_dispatch.py.)
So before a flexible body reaches kio, ``check_flexible(cls, frame, offset)``
walks it by the schema kio's classes carry and refuses, with ProtocolError, any
compact array or string length larger than the bytes left, any varint over 5
bytes, and tagged fields running past their size or the frame — including
arrays inside known tagged fields.  It allocates nothing and decodes no
values; its cost is a few hundred nanoseconds per field, once per request.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache

from kio.serial._introspect import (EntityField, EntityTupleField, PrimitiveField,
                                    PrimitiveTupleField, classify_field, get_field_tag,
                                    get_schema_field_type, is_optional)

from pylog.errors import ProtocolError

__all__ = ["check_flexible", "read_uvarint", "walk_tagged_fields"]

_FIXED = {"int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1, "uint16": 2,
          "uint32": 4, "uint64": 8, "float64": 8, "bool": 1, "uuid": 16, "error_code": 2,
          "timedelta_i32": 4, "timedelta_i64": 8, "datetime_i64": 8}
_VARINT = {"uvarint", "varint", "uvarlong", "varlong"}
_BLOB = {"string", "bytes", "records"}
# op kinds
_SKIP, _VAR, _BLOB_OP, _ENTITY, _ARRAY_FIXED, _ARRAY_VAR, _ARRAY_BLOB, _ARRAY_ENTITY = range(8)


def read_uvarint(frame, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it) of an unsigned varint of at most 5 bytes (32 bits)."""
    value = shift = 0
    for i in range(5):
        if pos + i >= end:
            raise ProtocolError("varint runs past the end of the request")
        b = frame[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ProtocolError("varint longer than 5 bytes")


def _skip_varint(frame, pos: int, end: int, longs: bool) -> int:
    for i in range(10 if longs else 5):
        if pos + i >= end:
            raise ProtocolError("varint runs past the end of the request")
        if not frame[pos + i] & 0x80:
            return pos + i + 1
    raise ProtocolError("varint too long")


def _op_for(field) -> tuple:
    cls = classify_field(field)
    if isinstance(cls, (EntityField, EntityTupleField)):
        kind = _ENTITY if isinstance(cls, EntityField) else _ARRAY_ENTITY
        return (kind, cls.type_, is_optional(field))
    kt = get_schema_field_type(field)
    array = isinstance(cls, PrimitiveTupleField)
    if kt in _FIXED:
        return (_ARRAY_FIXED, _FIXED[kt], False) if array else (_SKIP, _FIXED[kt], False)
    if kt in _VARINT:
        return (_ARRAY_VAR, kt.endswith("long"), False) if array else \
            (_VAR, kt.endswith("long"), False)
    if kt in _BLOB:
        return (_ARRAY_BLOB, None, False) if array else (_BLOB_OP, None, False)
    raise ProtocolError(f"no bounds rule for kafka type {kt!r}")    # pragma: no cover


@lru_cache(maxsize=None)
def _plan(cls: type) -> tuple[tuple, dict]:
    """(ops for the fields in wire order, {tag: op}) of a flexible entity class."""
    ops, tags = [], {}
    for f in dataclasses.fields(cls):
        tag = get_field_tag(f)
        if tag is not None:
            tags[tag] = _op_for(f)
            continue
        op = _op_for(f)
        if op[0] == _SKIP and ops and ops[-1][0] == _SKIP:     # merge fixed-size runs
            ops[-1] = (_SKIP, ops[-1][1] + op[1], False)
        else:
            ops.append(op)
    return tuple(ops), tags


def _count(frame, pos: int, end: int, what: str) -> tuple[int, int]:
    """A compact length: (n or -1 for null, position after it); n <= bytes left."""
    n, pos = read_uvarint(frame, pos, end)
    n -= 1
    if n > end - pos:
        raise ProtocolError(f"compact {what} length {n} is larger than the {end - pos} "
                            "bytes left")
    return n, pos


def _walk_op(op: tuple, frame, pos: int, end: int) -> int:
    kind, arg, optional = op
    if kind == _SKIP:
        pos += arg
    elif kind == _VAR:
        pos = _skip_varint(frame, pos, end, arg)
    elif kind == _BLOB_OP:
        n, pos = _count(frame, pos, end, "string/bytes")
        pos += max(n, 0)
    elif kind == _ENTITY:
        if optional:
            if pos >= end:
                raise ProtocolError("nullable struct marker past the end of the request")
            marker = frame[pos]
            pos += 1
            if marker == 0xFF:          # -1: null
                return pos
        pos = _walk(arg, frame, pos, end)
    else:
        n, pos = _count(frame, pos, end, "array")
        if kind == _ARRAY_FIXED:
            pos += arg * max(n, 0)
            n = 0
        for _ in range(max(n, 0)):
            if kind == _ARRAY_VAR:
                pos = _skip_varint(frame, pos, end, arg)
            elif kind == _ARRAY_BLOB:
                m, pos = _count(frame, pos, end, "string/bytes")
                pos += max(m, 0)
            else:
                pos = _walk(arg, frame, pos, end)
    if pos > end:
        raise ProtocolError("field runs past the end of the request")
    return pos


def _walk(cls: type, frame, pos: int, end: int) -> int:
    ops, tags = _plan(cls)
    for op in ops:
        if op[0] == _SKIP:
            pos += op[1]
        else:
            pos = _walk_op(op, frame, pos, end)
    if pos < end and frame[pos] == 0:                   # no tagged fields: the usual case
        return pos + 1
    return walk_tagged_fields(frame, pos, end, tags)


def walk_tagged_fields(frame, pos: int, end: int, tags: dict | None = None) -> int:
    """Past a tagged-field section (uvarint count; per field uvarint tag, uvarint size,
    the bytes), checking every size against ``end`` and that tags ascend; fields with
    a known tag (``tags``: tag -> op) are walked too."""
    count, pos = read_uvarint(frame, pos, end)
    last = -1
    for _ in range(count):
        tag, pos = read_uvarint(frame, pos, end)
        if tag <= last:
            raise ProtocolError(f"tagged field {tag} out of order (after {last})")
        last = tag
        size, pos = read_uvarint(frame, pos, end)
        if size > end - pos:
            raise ProtocolError(f"tagged field {tag} of {size} bytes runs past the end")
        op = tags.get(tag) if tags else None
        if op is not None:
            _walk_op(op, frame, pos, pos + size)
        pos += size
    return pos


def check_flexible(cls: type, frame: bytes, offset: int) -> None:
    """ProtocolError if a length in this flexible body could make kio over-allocate."""
    _walk(cls, frame, offset, len(frame))
