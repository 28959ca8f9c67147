"""Text-protocol commands for queues (share groups, issue 12) and their dead letters.

One state with the Kafka share APIs and the embedded ``log.queue``: these commands go
through the same ``log.share_groups`` (broker/queues.py).  docs/text-protocol.md is
the reference:

    RECEIVE <group> <topic> [<max> [<wait-ms>]]
        -> MESSAGE <partition> <offset> <delivery count> <ts> <key len> <value len>
                   [<hname len> <hvalue len>]...   then those bytes concatenated, \\n
           ... END <count>
    ACK|REJECT <group> <topic> <partition> <offset>[-<last>] -> OK <count>
    RELEASE <group> <topic> <partition> <offset>[-<last>] [<delay-ms>] -> OK <count>
    QUEUE <group> <topic>   -> PARTITION <p> <name>=<value>... ... END <count>
    DLQ <dlq-topic> [<partition>|-1 [<offset> [<max>]]]     (-1: every partition)
        -> DEAD <partition> <offset> <group> <topic> <partition> <offset>
                <delivery count> <reason> <time-ms> <key len> <value len>
           then key and value bytes, \\n ... END <count>
    REQUEUE <dlq-topic> <partition> <offset> -> OK <topic> <partition> <new offset>

The connection is the member: its first RECEIVE of a group joins it (one member per
group per connection, whatever the topic), and when the connection closes it leaves,
so every record it still holds becomes available again at once (delivery count
kept).  ACK / RELEASE / REJECT before any RECEIVE of that group: UNKNOWN_MEMBER_ID;
records not held by this connection, or past their lock: INVALID_RECORD_STATE; both
change nothing (a range is all or nothing).  RELEASE's delay (redelivered no sooner)
replaces the group's redelivery backoff for those records; it needs the queue
features' ``ShareGroups.acknowledge(release_delay_ms=)`` (INVALID_REQUEST without).

What runs where: acquiring and reading (which may wait for ``__share_group_state`` to
load after a restart), acknowledgements (answered once their state record is as
durable as the flush policy promises) and REQUEUE (an append that may wait for a
barrier) run in the default executor, never blocking the loop.
"""
from __future__ import annotations

import asyncio
import functools
import inspect

from pylog.broker.dead_letters import list_dead_letters, requeue
from pylog.broker.share_state import AcknowledgeType
from pylog.errors import (InvalidGroupIdError, InvalidRequestError, PylogError,
                          UnknownMemberIdError)

from .text_admin import record_head

__all__ = ["QUEUE_COMMANDS", "HELP_QUEUE", "leave_queues"]

DEFAULT_RECEIVE = 100
MAX_RECEIVE = 10_000
MAX_WAIT_MS = 300_000
POLL_SLICE_S = 0.1          # a waiting RECEIVE re-checks (lock expiry, backoff) this often
HELP_QUEUE = [
    "RECEIVE <group> <topic> [<max> [<wait-ms>]]",
    "ACK|REJECT <group> <topic> <partition> <offset>[-<last>]",
    "RELEASE <group> <topic> <partition> <offset>[-<last>] [<delay-ms>]",
    "QUEUE <group> <topic>", "DLQ <dlq-topic> [<partition>|-1 [<offset> [<max>]]]",
    "REQUEUE <dlq-topic> <partition> <offset>",
]


def _groups(conn) -> dict[str, str]:
    """group -> this connection's member id (made on the first RECEIVE)."""
    members = getattr(conn, "queue_members", None)
    if members is None:
        members = conn.queue_members = {}
    return members


def _group_id(group: str) -> str:
    from .text import MAX_GROUP_ID
    if not group or len(group) > MAX_GROUP_ID:
        raise InvalidGroupIdError(f"share group id must be 1-{MAX_GROUP_ID} characters")
    return group


async def leave_queues(conn) -> None:
    """The connection closed: leave every share group it joined."""
    members = getattr(conn, "queue_members", None) or {}
    coordinator = conn.broker.log.share_groups if members else None
    loop = asyncio.get_running_loop()
    for group, member in list(members.items()):
        try:
            await loop.run_in_executor(None, coordinator.leave, group, member)
        except PylogError:
            pass                      # already gone
    members.clear()


# ---- RECEIVE ------------------------------------------------------------------------
async def receive(conn, rest: bytes) -> list[bytes]:
    from .text import _arity, _int, _tokens
    args = _tokens(rest)
    _arity(args, 2, 4, "RECEIVE <group> <topic> [<max> [<wait-ms>]]")
    group, topic = _group_id(args[0]), args[1]
    limit = _int(args[2], "max", 1, MAX_RECEIVE) if len(args) > 2 else DEFAULT_RECEIVE
    wait_ms = _int(args[3], "wait-ms", 0, MAX_WAIT_MS) if len(args) > 3 else 0
    conn._partition(topic, "0")                  # topic name checked, UNKNOWN_TOPIC
    log_ = conn.broker.log
    coordinator = log_.share_groups
    members = _groups(conn)
    if group not in members:
        members[group] = coordinator.join(group)
    member = members[group]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_ms / 1000.0
    parts = log_.topic(topic).partitions
    wake = asyncio.Event()

    def woken() -> None:              # called by the appending thread
        loop.call_soon_threadsafe(wake.set)

    listening = False
    try:
        while True:
            wake.clear()
            start = getattr(conn, "queue_next", 0)
            conn.queue_next = start + 1          # the first partition tried rotates
            got = await loop.run_in_executor(None, _receive_once, coordinator, group,
                                             member, topic, parts, limit, start)
            left = deadline - loop.time()
            if got or left <= 0 or conn.server.stopping:    # shutdown: answer now
                break
            if not listening:
                for p in parts:
                    p.add_listener(woken)
                listening = True
                continue                  # re-check: a record may have just arrived
            try:
                await asyncio.wait_for(wake.wait(), min(left, POLL_SLICE_S))
            except asyncio.TimeoutError:
                pass
    finally:
        if listening:
            for p in parts:
                p.remove_listener(woken)
    out = []
    for i, count, r in got:
        head, data = record_head(r)
        offset, _, tail = head.partition(" ")
        out.append(f"MESSAGE {i} {offset} {count} {tail}\n".encode())
        out.append(data + b"\n")
    conn.metrics.records_out(len(got))
    out.append(f"END {len(got)}\n".encode())
    return out


def _receive_once(coordinator, group, member, topic, parts, limit, start) -> list[tuple]:
    """(partition, delivery count, Record) of up to ``limit`` records acquired now,
    trying the partitions from ``start`` round."""
    out: list[tuple] = []
    for j in range(len(parts)):
        if len(out) >= limit:
            break
        i = (start + j) % len(parts)
        for run in coordinator.acquire(group, member, topic, i, limit - len(out)):
            out += [(i, run.delivery_count, r)
                    for r in coordinator.records_of(group, member, topic, i, run)]
    return out


# ---- ACK / RELEASE / REJECT -----------------------------------------------------------
def _range(token: str) -> tuple[int, int]:
    from .text import INT64_MAX, _int
    first, dash, last = token.partition("-")
    lo = _int(first, "offset", 0, INT64_MAX)
    hi = _int(last, "last offset", 0, INT64_MAX) if dash else lo
    if hi < lo:
        raise InvalidRequestError(f"offset range {token} runs backwards")
    if hi - lo >= MAX_RECEIVE:
        raise InvalidRequestError(f"offset range {token} is longer than {MAX_RECEIVE}")
    return lo, hi


def _settle(kind: AcknowledgeType, name: str):
    async def settle(conn, rest: bytes) -> bytes:
        from .text import INT32_MAX, INT64_MAX, _arity, _int, _tokens
        args = _tokens(rest)
        delay = kind == AcknowledgeType.RELEASE
        _arity(args, 4, 5 if delay else 4,
               f"{name} <group> <topic> <partition> <offset>[-<last>]"
               f"{' [<delay-ms>]' if delay else ''}")
        group = _group_id(args[0])
        partition = _int(args[2], "partition", 0, INT32_MAX)
        first, last = _range(args[3])
        options = {}
        if len(args) > 4:
            options["release_delay_ms"] = _int(args[4], "delay-ms", 0, INT64_MAX)
        conn._partition(args[1], args[2])        # UNKNOWN_TOPIC, partition range
        member = _groups(conn).get(group)
        if member is None:
            raise UnknownMemberIdError(f"this connection is not a member of share group "
                                       f"{group}: RECEIVE from it first")
        # in the executor: the state write may wait for a barrier (flush.messages=1)
        loop = asyncio.get_running_loop()
        coordinator = conn.broker.log.share_groups
        if options and "release_delay_ms" not in _parameters(coordinator.acknowledge):
            raise InvalidRequestError("RELEASE with a delay needs the queue features "
                                      "(redelivery backoff); this server has none")
        await loop.run_in_executor(None, functools.partial(
            coordinator.acknowledge, group, member, args[1], partition,
            [(first, last, kind)], **options))
        return f"OK {last - first + 1}\n".encode()
    return settle


def _parameters(fn) -> frozenset:
    return frozenset(inspect.signature(fn).parameters)


# ---- QUEUE ------------------------------------------------------------------------------
async def queue_stats(conn, rest: bytes) -> list[bytes]:
    from .text import _arity, _tokens
    args = _tokens(rest)
    _arity(args, 2, 2, "QUEUE <group> <topic>")
    group = _group_id(args[0])
    conn._partition(args[1], "0")
    loop = asyncio.get_running_loop()
    stats = await loop.run_in_executor(None, conn.broker.log.share_groups.stats, group,
                                       args[1])
    out = [(f"PARTITION {i} " + " ".join(f"{k}={v}" for k, v in s.items()) + "\n").encode()
           for i, s in sorted(stats.items())]
    return out + [f"END {len(out)}\n".encode()]


# ---- DLQ / REQUEUE ----------------------------------------------------------------------
def dead_letters(conn, rest: bytes) -> list[bytes]:
    from .text import INT64_MAX, _arity, _int, _tokens
    args = _tokens(rest)
    _arity(args, 1, 4, "DLQ <dlq-topic> [<partition> [<offset> [<max>]]]")
    partition = offset = None
    if len(args) > 1 and args[1] != "-1":              # -1: every partition
        partition = conn._partition(args[0], args[1]).partition
    else:
        conn._partition(args[0], "0")
    if len(args) > 2:
        offset = _int(args[2], "offset", 0, INT64_MAX)
    limit = _int(args[3], "max", 1, MAX_RECEIVE) if len(args) > 3 else DEFAULT_RECEIVE
    out = []
    for d in list_dead_letters(conn.broker.log, args[0], partition, offset, limit):
        o, r = d.origin, d.record
        key = b"" if r.key is None else bytes(r.key)
        value = b"" if r.value is None else bytes(r.value)
        out.append(f"DEAD {d.partition} {r.offset} {o.group} {o.topic} {o.partition} "
                   f"{o.offset} {o.delivery_count} {o.reason} {o.time_ms} "
                   f"{-1 if r.key is None else len(key)} "
                   f"{-1 if r.value is None else len(value)}\n".encode())
        out.append(key + value + b"\n")
    return out + [f"END {len(out) // 2}\n".encode()]


async def requeue_one(conn, rest: bytes) -> bytes:
    from .text import INT32_MAX, INT64_MAX, _arity, _int, _tokens
    args = _tokens(rest)
    _arity(args, 3, 3, "REQUEUE <dlq-topic> <partition> <offset>")
    partition = _int(args[1], "partition", 0, INT32_MAX)
    offset = _int(args[2], "offset", 0, INT64_MAX)
    conn._partition(args[0], args[1])
    loop = asyncio.get_running_loop()
    topic, p, new = await loop.run_in_executor(None, requeue, conn.broker.log, args[0],
                                               partition, offset)
    conn.metrics.records_in(1)
    return f"OK {topic} {p} {new}\n".encode()


QUEUE_COMMANDS = {"RECEIVE": receive, "ACK": _settle(AcknowledgeType.ACCEPT, "ACK"),
                  "RELEASE": _settle(AcknowledgeType.RELEASE, "RELEASE"),
                  "REJECT": _settle(AcknowledgeType.REJECT, "REJECT"),
                  "QUEUE": queue_stats, "DLQ": dead_letters, "REQUEUE": requeue_one}
