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
