"""Text-protocol commands beyond the basic set: keyed produce, full records, admin.

What the ``pylog`` CLI needs to cover a Kafka user's day (issue 14); each is one
more entry in text.py's command table, so nothing existing changes meaning.
docs/text-protocol.md is the reference:

    PRODUCEX <topic> <partition>|-1|any <timestamp-ms>|now <key len> <value len>
             [<header name len> <header value len>]...   then exactly the bytes:
             key, value, then each header's name and value, concatenated
        -> OK <partition> <offset>          (-1/any: Kafka's default partitioner)
    CONSUMEX <topic> <partition> [<offset>|earliest|latest [<max>]]
        -> RECORD <offset> <ts> <key len> <value len> [<hname len> <hvalue len>]...
           then those bytes concatenated, then \\n ... END <next offset> <log end>
    TIMEOFFSET <topic> <partition> <timestamp-ms> -> OK <first offset with ts >= it>
    CONFIGS <topic>             -> CONFIG <name> default|set <value> ... END <count>
    ALTER <topic> <name>=<value>...              -> OK <count set>
    PARTITIONS <topic> <total>                   -> OK <total>
    MEMBERS <group>             -> MEMBER <member id> <client id> <host> ... END <count>
    DELETEGROUP <group>         -> OK <committed offsets deleted>

A length of -1 means null (key, value, header value).  PRODUCEX follows PRODUCEB's
rules for a payload it cannot use: an unreadable length line closes the
connection, a payload over the limit is read and discarded.
"""
from __future__ import annotations

from pylog.errors import (GroupIdNotFoundError, InvalidConfigError, InvalidGroupIdError,
                          InvalidPartitionsError, InvalidRequestError, NonEmptyGroupError,
                          PylogError, RecordTooLargeError, for_code)
from pylog.records import encode_batch

__all__ = ["EXTENDED", "HELP_EXTENDED", "parse_configs", "record_head"]

MAX_HEADERS = 1000
HELP_EXTENDED = [
    "PRODUCEX <topic> <partition>|-1 <timestamp>|now <keylen> <vallen> [<hnamelen> <hvallen>]...",
    "CONSUMEX <topic> <partition> [<offset>|earliest|latest [<max>]]",
    "TIMEOFFSET <topic> <partition> <timestamp-ms>", "CONFIGS <topic>",
    "ALTER <topic> <name>=<value>...", "PARTITIONS <topic> <total>",
    "MEMBERS <group>", "DELETEGROUP <group>",
]


def parse_configs(tokens: list[str]) -> dict[str, str]:
    """``name=value`` tokens → a dict; INVALID_CONFIG for anything else."""
    out = {}
    for token in tokens:
        name, eq, value = token.partition("=")
        if not eq or not name:
            raise InvalidConfigError(f"topic config must be name=value, got {token!r}")
        out[name] = value
    return out


def record_head(r) -> tuple[str, bytes]:
    """CONSUMEX's RECORD line fields and the bytes that follow it."""
    fields = [str(r.offset), str(r.timestamp)]
    parts = []
    for blob in (r.key, r.value):
        fields.append("-1" if blob is None else str(len(blob)))
        parts.append(b"" if blob is None else bytes(blob))
    for name, value in r.headers or ():
        raw = name.encode("utf-8") if isinstance(name, str) else bytes(name)
        fields += [str(len(raw)), "-1" if value is None else str(len(value))]
        parts += [raw, b"" if value is None else bytes(value)]
    return " ".join(fields), b"".join(parts)


def _lengths(tokens: list[str]) -> list[int]:
    out = []
    for t in tokens:
        try:
            n = int(t, 10)
        except ValueError:
            raise InvalidRequestError(f"length must be an integer, got {t!r}") from None
        if n < -1:
            raise InvalidRequestError(f"length must be -1 (null) or more, got {n}")
        out.append(n)
    return out


async def produce_extended(conn, rest: bytes) -> bytes:
    from .text import DISCARD_LIMIT, _Fatal, _int, _tokens
    usage = ("PRODUCEX <topic> <partition>|-1 <timestamp>|now <keylen> <vallen> "
             "[<hnamelen> <hvallen>]...")
    try:
        args = _tokens(rest)
        if len(args) < 5 or (len(args) - 5) % 2:
            raise InvalidRequestError(f"wrong number of arguments; usage: {usage}")
        if (len(args) - 5) // 2 > MAX_HEADERS:
            raise InvalidRequestError(f"at most {MAX_HEADERS} headers")
        lengths = _lengths(args[3:])
        if any(lengths[i] < 0 for i in range(2, len(lengths), 2)):
            raise InvalidRequestError("a header name cannot be null (-1)")
    except PylogError as exc:               # the payload's end is unknown: cannot go on
        raise _Fatal(InvalidRequestError(f"{exc}; closing the connection because the "
                                         f"payload length is unknown")) from None
    nbytes = sum(max(0, n) for n in lengths)
    if nbytes > conn.server.max_payload:
        too_large = (f"payload of {nbytes} bytes is over the {conn.server.max_payload}-byte "
                     f"limit; nothing written")
        if nbytes > DISCARD_LIMIT:
            raise _Fatal(RecordTooLargeError(f"{too_large}; closing the connection"))
        await conn._discard(nbytes)
        conn.request_started = None
        raise RecordTooLargeError(too_large)
    payload = await conn.reader.readexactly(nbytes)
    conn.request_started = None
    blobs, pos = [], 0
    for n in lengths:
        blobs.append(None if n < 0 else payload[pos:pos + n])
        pos += max(0, n)
    key, value = blobs[0], blobs[1]
    try:
        headers = [(blobs[i].decode("utf-8"), blobs[i + 1]) for i in range(2, len(blobs), 2)]
    except UnicodeDecodeError:
        raise InvalidRequestError("header names must be UTF-8") from None
    ts = None if args[2].lower() == "now" else _int(args[2], "timestamp", 0, 2**63 - 1)
    if args[1].lower() in ("-1", "any"):
        conn._partition(args[0], "0")      # name checked, UNKNOWN_TOPIC first
        topic = conn.broker.log.topic(args[0])
        index = topic.partition_for(None if key is None else bytes(key))
    else:
        index = _int(args[1], "partition", 0, 2**31 - 1)
    p = conn._partition(args[0], str(index))
    batch = encode_batch([value], keys=[key], headers=[headers], timestamps=ts)
    answer = await conn._append_batch(p, batch)
    return f"OK {index} {answer}\n".encode()


def time_offset(conn, rest: bytes) -> bytes:
    from .text import _arity, _int, _tokens
    args = _tokens(rest)
    _arity(args, 3, 3, "TIMEOFFSET <topic> <partition> <timestamp-ms>")
    p = conn._partition(args[0], args[1])
    ts = _int(args[2], "timestamp", None, 2**63 - 1)
    found = p.offset_for_time(ts)
    return f"OK {p.log_end_offset if found is None else found}\n".encode()


def configs(conn, rest: bytes) -> list[bytes]:
    from .text import _arity, _tokens
    args = _tokens(rest)
    _arity(args, 1, 1, "CONFIGS <topic>")
    rows = conn.broker.topic(args[0]).config.describe()
    out = [f"CONFIG {name} {'default' if is_default else 'set'} {'' if v is None else v}\n"
           .encode() for name, v, is_default in rows]
    return out + [f"END {len(rows)}\n".encode()]


def alter(conn, rest: bytes) -> bytes:
    from .text import _tokens
    args = _tokens(rest)
    if len(args) < 2:
        raise InvalidRequestError("wrong number of arguments; usage: "
                                  "ALTER <topic> <name>=<value>...")
    conn.broker.topic(args[0])              # name checked, UNKNOWN_TOPIC first
    updates = parse_configs(args[1:])
    conn.broker.log.alter_topic_config(args[0], updates)
    return f"OK {len(updates)}\n".encode()


def partitions(conn, rest: bytes) -> bytes:
    from .text import MAX_PARTITIONS, _arity, _int, _tokens
    args = _tokens(rest)
    _arity(args, 2, 2, "PARTITIONS <topic> <total>")
    conn.broker.topic(args[0])
    try:
        total = _int(args[1], "total", 1, MAX_PARTITIONS)
    except InvalidRequestError as exc:
        raise InvalidPartitionsError(str(exc)) from None
    conn.broker.log.create_partitions(args[0], total)
    return f"OK {conn.broker.log.topic(args[0]).num_partitions}\n".encode()


def _group_id(args: list[str], usage: str) -> str:
    from .text import MAX_GROUP_ID, _arity
    _arity(args, 1, 1, usage)
    if len(args[0]) > MAX_GROUP_ID:
        raise InvalidGroupIdError(f"group id must be 1-{MAX_GROUP_ID} characters")
    return args[0]


def members(conn, rest: bytes) -> list[bytes]:
    from .text import _tokens
    group = _group_id(_tokens(rest), "MEMBERS <group>")
    code, summary = conn.server.offsets._coordinator().describe_group(group)
    if code:
        raise for_code(code)(f"group {group!r}")
    out = [f"MEMBER {m.member_id} {m.client_id or '-'} {m.client_host or '-'}\n".encode()
           for m in summary.members]
    return out + [f"END {len(out)}\n".encode()]


def delete_group(conn, rest: bytes) -> bytes:
    from .text import _tokens
    group = _group_id(_tokens(rest), "DELETEGROUP <group>")
    code, deleted = conn.server.offsets._coordinator().delete_any_group(group)
    if code == NonEmptyGroupError.errno:
        raise NonEmptyGroupError(f"group {group!r} has active members; stop its "
                                 f"consumers first")
    if code == GroupIdNotFoundError.errno:
        raise GroupIdNotFoundError(f"group {group!r} does not exist")
    if code:
        raise for_code(code)(f"group {group!r}")
    return f"OK {deleted}\n".encode()


EXTENDED = {"PRODUCEX": produce_extended, "TIMEOFFSET": time_offset, "CONFIGS": configs,
            "ALTER": alter, "PARTITIONS": partitions, "MEMBERS": members,
            "DELETEGROUP": delete_group}
