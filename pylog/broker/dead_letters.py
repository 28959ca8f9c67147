"""Dead letters of share groups: where a rejected, exhausted or expired record goes.

A record a share group gives up on (REJECT, delivery count past
``share.delivery.count.limit``, TTL passed with ``share.expired.action=dlq``) is produced
to the group's dead-letter topic (``<topic>.dlq`` unless the group sets
``errors.deadletterqueue.topic.name``, KIP-1191's name) with its key, value, headers and
timestamp, plus the headers below naming where it came from.  Header values are ASCII
decimal or text, so ``kcat -f '%h'`` shows them.

This module holds the header names (the contract between the share-partition that
writes dead letters and the doors that list and requeue them) and their encode/parse.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple

from pylog.errors import InvalidRequestError

__all__ = ["DLQ_SUFFIX", "H_GROUP", "H_TOPIC", "H_PARTITION", "H_OFFSET",
           "H_DELIVERY_COUNT", "H_REASON", "H_TIME", "DLQ_HEADERS", "REASONS",
           "DeadLetterOrigin", "dlq_topic_name", "dlq_headers", "parse_dlq_headers"]

DLQ_SUFFIX = ".dlq"

H_GROUP = "pylog-dlq-group"
H_TOPIC = "pylog-dlq-topic"
H_PARTITION = "pylog-dlq-partition"
H_OFFSET = "pylog-dlq-offset"
H_DELIVERY_COUNT = "pylog-dlq-delivery-count"
H_REASON = "pylog-dlq-reason"
H_TIME = "pylog-dlq-time"          # epoch ms when it was dead-lettered
DLQ_HEADERS = (H_GROUP, H_TOPIC, H_PARTITION, H_OFFSET, H_DELIVERY_COUNT, H_REASON,
               H_TIME)

REASONS = ("rejected", "delivery-limit", "expired")


class DeadLetterOrigin(NamedTuple):
    group: str
    topic: str
    partition: int
    offset: int
    delivery_count: int
    reason: str
    time_ms: int


def dlq_topic_name(topic: str, configured: str | None = None) -> str:
    """The dead-letter topic of ``topic``: the configured name, else ``<topic>.dlq``."""
    return configured or topic + DLQ_SUFFIX


def dlq_headers(origin: DeadLetterOrigin) -> list[tuple[str, bytes]]:
    """The headers added to a dead letter (after the record's own headers)."""
    if origin.reason not in REASONS:
        raise ValueError(f"unknown dead-letter reason {origin.reason!r}")
    return [(H_GROUP, origin.group.encode()), (H_TOPIC, origin.topic.encode()),
            (H_PARTITION, b"%d" % origin.partition), (H_OFFSET, b"%d" % origin.offset),
            (H_DELIVERY_COUNT, b"%d" % origin.delivery_count),
            (H_REASON, origin.reason.encode()), (H_TIME, b"%d" % origin.time_ms)]


def parse_dlq_headers(headers: Iterable[tuple[str, bytes | None]]) -> DeadLetterOrigin:
    """Read the origin back from a dead letter's headers (the last value of each name
    wins); InvalidRequestError naming the header if one is missing or does not parse."""
    seen: dict[str, bytes | None] = {}
    for k, v in headers:
        if k in DLQ_HEADERS:
            seen[k] = v
    out = {}
    for name in DLQ_HEADERS:
        raw = seen.get(name)
        if raw is None:
            raise InvalidRequestError(f"not a dead letter: header {name} is missing")
        try:
            text = bytes(raw).decode("ascii")
        except UnicodeDecodeError:
            raise InvalidRequestError(f"dead-letter header {name} is not ASCII") from None
        if name in (H_PARTITION, H_OFFSET, H_DELIVERY_COUNT, H_TIME):
            if not text.isdigit():
                raise InvalidRequestError(f"dead-letter header {name}={text!r} is not "
                                          f"a non-negative integer")
            out[name] = int(text)
        else:
            out[name] = text
    if out[H_REASON] not in REASONS:
        raise InvalidRequestError(f"dead-letter header {H_REASON}={out[H_REASON]!r} is "
                                  f"not one of {', '.join(REASONS)}")
    return DeadLetterOrigin(out[H_GROUP], out[H_TOPIC], out[H_PARTITION], out[H_OFFSET],
                            out[H_DELIVERY_COUNT], out[H_REASON], out[H_TIME])


# ---- listing and requeue (the doors: text DLQ / REQUEUE, `pylog queue dlq`) ----------
REQUEUE_ID_PREFIX = "requeue/"


class DeadLetter(NamedTuple):
    partition: int
    record: object                 # pylog.records.Record
    origin: DeadLetterOrigin


def list_dead_letters(log, dlq_topic: str, partition: int | None = None,
                      offset: int | None = None, max_records: int = 100
                      ) -> list[DeadLetter]:
    """Up to ``max_records`` dead letters of ``dlq_topic`` (one partition from
    ``offset``, default its log start; or every partition from its start), each with its
    parsed origin.  Records that are not dead letters (headers missing or unparsable:
    someone else produced to the topic) are skipped."""
    if max_records < 1:
        raise InvalidRequestError(f"max must be positive, not {max_records}")
    topic = log.topic(dlq_topic)                           # UnknownTopicError
    parts = range(topic.num_partitions) if partition is None else [partition]
    out: list[DeadLetter] = []
    for i in parts:
        p = log.partition(dlq_topic, i)
        at = p.log_start_offset if offset is None or partition is None else offset
        for r in p.iter(at):
            if len(out) >= max_records:
                return out
            if r.offset < at:
                continue
            try:
                origin = parse_dlq_headers(r.headers)
            except InvalidRequestError:
                continue
            out.append(DeadLetter(i, r, origin))
    return out


DEAD_LETTER_ID_PREFIX = "dlq/"
H_MSG_ID = "pylog-dlq-msg-id"     # optional: the record's own pylog-msg-id, kept aside


def dead_letter_headers(headers, origin: DeadLetterOrigin) -> list[tuple[str, bytes]]:
    """The headers a dead letter is written with: the record's own minus its
    ``pylog-msg-id`` (kept as ``pylog-dlq-msg-id``), ``dlq_headers(origin)``, and a
    ``pylog-msg-id`` naming the origin record, ``dlq/<group>/<topic>/<partition>/<offset>``.

    Why: a dead-letter topic has the dedup window too (storage/dedup.py).  With the
    record's own id two records of one id (different partitions, or windows apart)
    would be taken for one dead letter and the second dropped; with the origin's
    coordinates as the id, a dead-letter write that is retried (its state write
    failed) is stored once."""
    out, own = [], None
    for k, v in headers or ():
        if k == _MSG_ID:
            own = v
        else:
            out.append((k, v))
    out += dlq_headers(origin)
    if own is not None:
        out.append((H_MSG_ID, own))
    ident = (f"{DEAD_LETTER_ID_PREFIX}{origin.group}/{origin.topic}/{origin.partition}/"
             f"{origin.offset}")
    return out + [(_MSG_ID, ident.encode())]


def requeue_headers(headers, dlq_topic: str, partition: int, offset: int) -> list:
    """The headers a requeued record carries: its own minus every ``pylog-dlq-*`` one,
    with a ``pylog-msg-id`` naming the dead letter (see ``requeue``)."""
    out = [(k, v) for k, v in headers if not k.startswith("pylog-dlq-") and k != _MSG_ID]
    return out + [(_MSG_ID, f"{REQUEUE_ID_PREFIX}{dlq_topic}/{partition}/{offset}".encode())]


class Requeued(NamedTuple):
    topic: str
    partition: int
    offset: int


def requeue(log, dlq_topic: str, partition: int, offset: int) -> Requeued:
    """Produce the dead letter at (dlq_topic, partition, offset) back to its origin
    topic-partition (key, value, its original headers; a new timestamp) and return
    where it went: (topic, partition, new offset).

    Idempotent within the origin topic's ``dedup.window.ms``: the requeued record's
    ``pylog-msg-id`` is ``requeue/<dlq-topic>/<partition>/<offset>`` (not the record's
    own id, which would make the requeue a duplicate of the record it was, within the
    window), so a second requeue of the same dead letter answers the first one's offset
    and stores nothing.  With dedup off on the origin topic each requeue stores a copy.
    """
    p = log.partition(dlq_topic, partition)              # UnknownTopicError
    if not p.log_start_offset <= offset < p.log_end_offset:
        from pylog.errors import OffsetOutOfRangeError
        raise OffsetOutOfRangeError(f"offset {offset} is outside {dlq_topic}-{partition} "
                                    f"[{p.log_start_offset}, {p.log_end_offset})")
    rec = next((r for r in p.read(offset, max_records=1 << 12) if r.offset == offset), None)
    if rec is None:
        raise InvalidRequestError(f"{dlq_topic}-{partition} has no record at {offset}")
    origin = parse_dlq_headers(rec.headers)
    target = log.partition(origin.topic, origin.partition)
    new = target.append(rec.value, key=rec.key,
                        headers=requeue_headers(rec.headers, dlq_topic, partition, offset))
    return Requeued(origin.topic, origin.partition, new)


_MSG_ID = "pylog-msg-id"       # storage/dedup.py's MSG_ID_HEADER
__all__ += ["DeadLetter", "Requeued", "list_dead_letters", "requeue", "requeue_headers",
            "dead_letter_headers", "REQUEUE_ID_PREFIX", "DEAD_LETTER_ID_PREFIX", "H_MSG_ID"]
