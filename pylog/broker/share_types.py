"""The share-partition's vocabulary (KIP-932): record states, acknowledge types, the
window entry, what an acquisition and a change return, and the broker defaults.
``share_state.py`` re-exports all of it."""
from __future__ import annotations

import enum
import time
from typing import NamedTuple

__all__ = ["RecordState", "AcknowledgeType", "InFlight", "Acquired", "Delta",
           "DeadLetter", "monotonic_ms", "epoch_ms", "FINISHED",
           "DEFAULT_LOCK_DURATION_MS", "DEFAULT_DELIVERY_COUNT_LIMIT",
           "DEFAULT_MAX_RECORD_LOCKS", "DEFAULT_AUTO_OFFSET_RESET"]

# Broker defaults, Kafka's (ShareGroupConfig.java).
DEFAULT_LOCK_DURATION_MS = 30_000        # group.share.record.lock.duration.ms
DEFAULT_DELIVERY_COUNT_LIMIT = 5         # group.share.delivery.count.limit
DEFAULT_MAX_RECORD_LOCKS = 200           # group.share.partition.max.record.locks
DEFAULT_AUTO_OFFSET_RESET = "latest"     # share.auto.offset.reset


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def epoch_ms() -> int:
    return time.time_ns() // 1_000_000


class RecordState(enum.IntEnum):
    AVAILABLE = 0
    ACQUIRED = 1
    ACKNOWLEDGED = 2
    ARCHIVED = 4


class AcknowledgeType(enum.IntEnum):
    """KIP-932's AcknowledgeType, as in ShareFetch / ShareAcknowledge requests."""
    ACCEPT = 1
    RELEASE = 2
    REJECT = 3


FINISHED = (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)


class InFlight:
    """One record of the window."""
    __slots__ = ("state", "delivery_count", "member", "deadline", "not_before")

    def __init__(self, state: RecordState = RecordState.AVAILABLE, delivery_count: int = 0,
                 member: str | None = None, deadline: int = 0, not_before: int = 0) -> None:
        self.state = state
        self.delivery_count = delivery_count
        self.member = member
        self.deadline = deadline
        self.not_before = not_before          # AVAILABLE only: clock ms it is held to

    def __repr__(self) -> str:
        return f"InFlight({self.state.name}, n={self.delivery_count}, {self.member})"


class Acquired(NamedTuple):
    """A run of consecutive offsets acquired with the same delivery count (Kafka's
    AcquiredRecords: first offset, last offset, delivery count)."""
    first_offset: int
    last_offset: int
    delivery_count: int


class Delta(NamedTuple):
    """What a change did, for persistence: the start offset after it, and each changed
    run of offsets as (first, last, state, delivery count).  Empty runs and an
    unchanged start offset = nothing to write (``bool(delta)`` is False)."""
    start_offset: int
    ranges: tuple
    start_moved: bool = False

    def __bool__(self) -> bool:
        return bool(self.ranges) or self.start_moved


class DeadLetter(NamedTuple):
    """A record archived for a dead-letter reason (dead_letters.REASONS)."""
    offset: int
    delivery_count: int
    reason: str
