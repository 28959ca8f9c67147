"""Embedded consumers: ``log.consumer(group, topics)`` with poll / commit / seek / position.

    with log.consumer("billing", ["orders"]) as c:
        for rec in c.poll(timeout=1.0):      # ConsumerRecord(topic, partition, offset, ...)
            handle(rec)
        c.commit()                            # positions → committed offsets

``isolation_level`` is Kafka's: "read_uncommitted" (the default, as the Java client)
reads to the log end; "read_committed" stops at the last stable offset and skips
the records of aborted transactions (PartitionLog.read_stable).

Committed offsets are the coordinator's (``log.groups``): an embedded consumer and a
Kafka client with the same group id read and write the same offsets, so either can
resume where the other committed.  Embedded commits are "trusted": they are not
checked against the Kafka group's generation (like a Kafka client that commits with
generation -1 from ``assign()``), so do not run both kinds *at the same time* on the
same partitions unless you want each to see every record.

Splitting partitions in-process (no rebalancing protocol: the members share memory).
The embedded members of a group, in joining order, split the sorted (topic,
partition) list round-robin, each partition going to the next member subscribed to
its topic (Kafka's RoundRobinAssignor).  A join or a close bumps the group's
generation; every member picks up its new assignment at its next ``poll()``.  A
newly assigned partition starts at the committed offset (else ``auto_offset_reset``),
so handing a partition over is at-least-once: records its old owner read after its
last commit are read again by the new owner.  With ``auto_commit=True`` a member
commits its positions when it notices a revocation, on ``close()`` and every
``auto_commit_interval_ms`` in ``poll()``.

A ``Consumer`` is not thread-safe (one thread per consumer, as in Kafka); the group
registry it joins is.
"""
from __future__ import annotations

import threading
import time
from typing import Iterable, NamedTuple

from pylog.errors import (InvalidGroupIdError, OffsetOutOfRangeError, PylogError,
                          UnknownTopicError, for_code)

__all__ = ["Consumer", "ConsumerRecord"]

_RESETS = ("earliest", "latest", "none")
_ISOLATION = ("read_uncommitted", "read_committed")


class ConsumerRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple          # of (str, bytes | None), as Record.headers


class _EmbeddedGroup:
    """The embedded members of one group id in one Log (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members: list["Consumer"] = []
        self.generation = 0

    def join(self, consumer: "Consumer") -> None:
        with self.lock:
            self.members.append(consumer)
            self.generation += 1

    def leave(self, consumer: "Consumer") -> None:
        with self.lock:
            if consumer in self.members:
                self.members.remove(consumer)
                self.generation += 1

    def assignment(self, log_, consumer: "Consumer") -> tuple[int, list[tuple[str, int]]]:
        """(generation, this member's partitions), round-robin over the sorted list."""
        with self.lock:
            generation, members = self.generation, list(self.members)
        topics = sorted({t for m in members for t in m.topics if log_.has_topic(t)})
        mine, turn = [], 0
        for topic in topics:
            subscribers = [m for m in members if topic in m.topics]
            for i in range(log_.topic(topic).num_partitions):
                owner = subscribers[turn % len(subscribers)]
                turn += 1
                if owner is consumer:
                    mine.append((topic, i))
        return generation, mine


def _registry(coordinator) -> dict[str, _EmbeddedGroup]:
    with coordinator._lock:
        reg = getattr(coordinator, "embedded_groups", None)
        if reg is None:
            reg = coordinator.embedded_groups = {}
        return reg


class Consumer:
    """An embedded consumer; see the module doc.  Use ``log.consumer(...)``."""

    def __init__(self, log_, group: str, topics: str | Iterable[str], *,
                 auto_offset_reset: str = "earliest", max_poll_records: int = 500,
                 auto_commit: bool = False, auto_commit_interval_ms: int = 5000,
                 isolation_level: str = "read_uncommitted") -> None:
        if not isinstance(group, str) or not group:
            raise InvalidGroupIdError(f"group id must be a non-empty string, not {group!r}")
        if auto_offset_reset not in _RESETS:
            raise ValueError(f"auto_offset_reset must be one of {_RESETS}, "
                             f"not {auto_offset_reset!r}")
        if isolation_level not in _ISOLATION:
            raise ValueError(f"isolation_level must be one of {_ISOLATION}, "
                             f"not {isolation_level!r}")
        self._committed = isolation_level == "read_committed"
        self.isolation_level = isolation_level
        self.log = log_
        self.group = group
        self.topics = frozenset([topics] if isinstance(topics, str) else topics)
        self.auto_offset_reset = auto_offset_reset
        self.max_poll_records = max_poll_records
        self.auto_commit = auto_commit
        self._commit_every_s = auto_commit_interval_ms / 1000
        self._next_auto_commit = time.monotonic() + self._commit_every_s
        self._coordinator = log_.groups
        self._coordinator.wait_loaded()
        self._positions: dict[tuple[str, int], int] = {}
        self._partitions: dict[tuple[str, int], object] = {}
        self._generation = -1
        self._shape: tuple = ()
        self._rotate = 0
        self._wakeup = threading.Event()
        self._wake_fn = self._wakeup.set
        self._closed = False
        reg = _registry(self._coordinator)
        with self._coordinator._lock:
            self._group = reg.setdefault(group, _EmbeddedGroup())
        self._group.join(self)

    # -- assignment ---------------------------------------------------------------------
    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition) pairs this consumer owns now."""
        self._refresh()
        return sorted(self._positions)

    def _refresh(self) -> None:
        shape = tuple((t, self.log.topic(t).num_partitions) for t in sorted(self.topics)
                      if self.log.has_topic(t))
        if self._group.generation == self._generation and shape == self._shape:
            return
        generation, mine = self._group.assignment(self.log, self)
        revoked = [tp for tp in self._positions if tp not in mine]
        if revoked and self.auto_commit:
            self.commit({tp: self._positions[tp] for tp in revoked})
        for tp in revoked:
            del self._positions[tp]
            self._partitions.pop(tp).remove_listener(self._wake_fn)
        for tp in mine:
            if tp not in self._positions:
                p = self.log.topic(tp[0]).partition(tp[1])
                self._partitions[tp] = p
                p.add_listener(self._wake_fn)
                c = self._coordinator.offsets.fetch(self.group, *tp)
                self._positions[tp] = c.offset if c is not None else self._reset(tp)
        self._generation, self._shape = generation, shape

    def _reset(self, tp: tuple[str, int]) -> int:
        p = self._partitions[tp]
        if self.auto_offset_reset == "earliest":
            return p.log_start_offset
        if self.auto_offset_reset == "latest":
            return p.log_end_offset
        raise OffsetOutOfRangeError(f"group {self.group!r} has no valid offset for "
                                    f"{tp[0]}-{tp[1]} and auto_offset_reset is 'none'")

    # -- reading ------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0, max_records: int | None = None
             ) -> list[ConsumerRecord]:
        """Records from the assigned partitions, waiting up to ``timeout`` s for some."""
        self._check_open()
        limit = max_records or self.max_poll_records
        deadline = time.monotonic() + timeout
        while True:
            self._wakeup.clear()
            self._refresh()
            out = self._read(limit)
            if self.auto_commit and time.monotonic() >= self._next_auto_commit:
                self.commit()
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            self._wakeup.wait(min(remaining, 0.5))    # 0.5 s: notice new members/topics

    def _read(self, limit: int) -> list[ConsumerRecord]:
        out: list[ConsumerRecord] = []
        tps = sorted(self._positions)
        if not tps:
            return out
        self._rotate = (self._rotate + 1) % len(tps)      # fairness across partitions
        for tp in tps[self._rotate:] + tps[:self._rotate]:
            if len(out) >= limit:
                break
            p, pos = self._partitions[tp], self._positions[tp]
            if pos >= p.log_end_offset:
                continue
            try:
                if self._committed:         # to the LSO, aborted records skipped
                    recs, nxt = p.read_stable(pos, max_records=limit - len(out))
                else:
                    recs = p.read(pos, max_records=limit - len(out))
                    nxt = recs[-1].offset + 1 if recs else pos
            except OffsetOutOfRangeError:
                self._positions[tp] = self._reset(tp)
                continue
            topic, i = tp
            out.extend(ConsumerRecord(topic, i, *r) for r in recs if r.offset >= pos)
            self._positions[tp] = nxt
        return out

    # -- positions and commits ----------------------------------------------------------
    def position(self, topic: str, partition: int) -> int:
        """The offset of the next record ``poll`` returns for this partition."""
        self._refresh()
        return self._positions[self._owned(topic, partition)]

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Make the next ``poll`` read ``(topic, partition)`` from ``offset``."""
        self._refresh()
        tp = self._owned(topic, partition)
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative int, not {offset!r}")
        self._positions[tp] = offset

    def _owned(self, topic: str, partition: int) -> tuple[str, int]:
        tp = (topic, partition)
        if tp not in self._positions:
            raise UnknownTopicError(f"{topic}-{partition} is not assigned to this consumer "
                                    f"of group {self.group!r} (assignment: "
                                    f"{sorted(self._positions)})")
        return tp

    def commit(self, offsets: dict[tuple[str, int], int] | None = None) -> None:
        """Commit ``offsets`` ({(topic, partition): next offset to read}), by default
        the current positions; raises the Kafka error (e.g. UnknownTopicError)."""
        self._check_open()
        if offsets is None:
            offsets = dict(self._positions)
            self._next_auto_commit = time.monotonic() + self._commit_every_s
        entries = [(t, i, off, -1, "") for (t, i), off in offsets.items()]
        codes = self._coordinator.commit_offsets(self.group, -1, "", entries, trusted=True)
        for (t, i, off, _, _), code in zip(entries, codes):
            if code:
                raise for_code(code)(f"commit of {t}-{i} offset {off} for group "
                                     f"{self.group!r} failed")

    def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset for the partition, or None."""
        c = self._coordinator.offsets.fetch(self.group, topic, partition)
        return None if c is None else c.offset

    # -- lifecycle ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise PylogError(f"consumer of group {self.group!r} is closed")

    def close(self) -> None:
        """Leave the group (its partitions go to the others); commits if auto_commit."""
        if self._closed:
            return
        try:
            if self.auto_commit and self._positions and not self.log.closed:
                self.commit()
        finally:
            self._closed = True
            self._group.leave(self)
            for p in self._partitions.values():
                p.remove_listener(self._wake_fn)
            self._partitions.clear()
            self._positions.clear()

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Consumer(group={self.group!r}, topics={sorted(self.topics)}, "
                f"assigned={len(self._positions)})")
