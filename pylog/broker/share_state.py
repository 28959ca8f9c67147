"""The share-partition state machine (KIP-932): one per (share group, topic, partition).

A share-partition hands the records of one topic-partition to the members of a share
group, one member at a time per record, and remembers what became of each.  It does no
I/O: the caller reads the log, and persists the ``Delta`` each change returns
(share_store.py).  Kafka's counterpart is ``core/.../server/share/SharePartition.java``.

Record states (the numbers are Kafka's ``RecordState`` ids, also on disk) and the only
transitions allowed::

    AVAILABLE(0)    --acquire-->                 ACQUIRED(1)  (member, lock deadline, count+1)
    ACQUIRED(1)     --ACCEPT-->                  ACKNOWLEDGED(2)
    ACQUIRED(1)     --RELEASE / lock expiry -->  AVAILABLE(0), or ARCHIVED(4) once the
                                                 delivery count has reached the limit
    ACQUIRED(1)     --REJECT-->                  ARCHIVED(4)
    ACKNOWLEDGED, ARCHIVED: final.

The in-flight window is ``[spso, speo)``: the share-partition start offset (every record
below it is finished: acknowledged or archived) and end offset (no record at or above it
was ever acquired; all are AVAILABLE with delivery count 0).  Invariants:

  1. every offset in the window has one ``InFlight`` entry; none outside it;
  2. the entry at ``spso`` (if any) is AVAILABLE or ACQUIRED: the start offset advances
     past the contiguous finished prefix at once;
  3. ``speo - spso <= max_record_locks`` (``group.share.partition.max.record.locks``,
     Kafka's default 200): a member cannot race ahead of an unfinished record forever;
  4. an ACQUIRED entry has a member and a deadline; no other entry has either;
  5. a delivery count never decreases and never exceeds ``delivery_count_limit``.

Lock expiry is lazy: every call first turns ACQUIRED entries past their deadline back
into AVAILABLE (or ARCHIVED at the limit).  ``clock`` is any callable returning
milliseconds (monotonic; deadlines are never persisted).

Thread-safe: one lock per share-partition (``self.lock``, re-entrant, so a caller can
hold it across a change and the write of its delta); methods ending in ``_locked``
expect it held.
"""
from __future__ import annotations

import enum
import threading
import time
from typing import Callable, Iterable, NamedTuple

from pylog.errors import InvalidRecordStateError, InvalidRequestError

__all__ = ["RecordState", "AcknowledgeType", "InFlight", "Acquired", "Delta",
           "SharePartition", "monotonic_ms",
           "DEFAULT_LOCK_DURATION_MS", "DEFAULT_DELIVERY_COUNT_LIMIT",
           "DEFAULT_MAX_RECORD_LOCKS", "DEFAULT_AUTO_OFFSET_RESET"]

# Broker defaults, Kafka's (ShareGroupConfig.java).
DEFAULT_LOCK_DURATION_MS = 30_000        # group.share.record.lock.duration.ms
DEFAULT_DELIVERY_COUNT_LIMIT = 5         # group.share.delivery.count.limit
DEFAULT_MAX_RECORD_LOCKS = 200           # group.share.partition.max.record.locks
DEFAULT_AUTO_OFFSET_RESET = "latest"     # share.auto.offset.reset


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


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


_FINISHED = (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED)


class InFlight:
    """One record of the window."""
    __slots__ = ("state", "delivery_count", "member", "deadline")

    def __init__(self, state: RecordState = RecordState.AVAILABLE, delivery_count: int = 0,
                 member: str | None = None, deadline: int = 0) -> None:
        self.state = state
        self.delivery_count = delivery_count
        self.member = member
        self.deadline = deadline

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


class SharePartition:
    """State of one share-partition; see the module doc for states and invariants."""

    def __init__(self, group: str, topic: str, partition: int, *,
                 lock_duration_ms: int = DEFAULT_LOCK_DURATION_MS,
                 delivery_count_limit: int = DEFAULT_DELIVERY_COUNT_LIMIT,
                 max_record_locks: int = DEFAULT_MAX_RECORD_LOCKS,
                 auto_offset_reset: str = DEFAULT_AUTO_OFFSET_RESET,
                 clock: Callable[[], int] = monotonic_ms) -> None:
        if auto_offset_reset not in ("latest", "earliest"):
            raise ValueError(f"share.auto.offset.reset must be latest or earliest, "
                             f"not {auto_offset_reset!r}")
        if delivery_count_limit < 1 or max_record_locks < 1 or lock_duration_ms < 1:
            raise ValueError("delivery count limit, record locks and lock duration "
                             "must be positive")
        self.group, self.topic, self.partition = group, topic, partition
        self.lock_duration_ms = lock_duration_ms
        self.delivery_count_limit = delivery_count_limit
        self.max_record_locks = max_record_locks
        self.auto_offset_reset = auto_offset_reset
        self.clock = clock
        self.lock = threading.RLock()
        self.initialised = False
        self.spso = 0
        self.speo = 0
        self._records: dict[int, InFlight] = {}
        self._changed: dict[int, InFlight] = {}     # since the last delta
        self._start_moved = False
        # Old values of what changed since the last delta, so a change whose delta could
        # not be written is undone (rollback_locked): (spso, speo), offset -> entry state.
        self._undo_window: tuple[int, int] | None = None
        self._undo: dict[int, tuple | None] = {}
        self._pending_undo: tuple = (None, {})      # the undo of the last delta returned
        # Counters since open (for stats and, later, metrics).
        self.acknowledged_total = 0
        self.archived_total = 0
        self.released_total = 0
        self.expired_total = 0

    # -- the hook for delay / backoff / TTL (issue 12 part 3) -----------------------------
    def deliverable_at(self, offset: int, entry: InFlight) -> int:
        """Earliest clock time (ms) at which an AVAILABLE record may be handed out;
        0 = now.  The one place that will decide backoff, delay and TTL."""
        return 0

    # -- initialisation -----------------------------------------------------------------
    def initialise(self, log_start: int, log_end: int) -> Delta:
        """First use with no stored state: start at the log end (latest) or start
        (earliest), as ``share.auto.offset.reset`` says."""
        with self.lock:
            if self.initialised:
                return Delta(self.spso, ())
            self.spso = self.speo = log_end if self.auto_offset_reset == "latest" \
                else log_start
            self.initialised = True
            return Delta(self.spso, (), True)

    def restore(self, start_offset: int, entries: Iterable[tuple[int, int, int]]) -> None:
        """Rebuild from persisted state: (offset, state, delivery count) for offsets at or
        above ``start_offset``.  ACQUIRED records become AVAILABLE, their count kept."""
        with self.lock:
            self.spso = start_offset
            self._records = {}
            top = start_offset - 1
            for offset, state, count in entries:
                if offset < start_offset:
                    continue
                st = RecordState(state)
                if st is RecordState.ACQUIRED:
                    st = RecordState.AVAILABLE
                self._records[offset] = InFlight(st, min(count, self.delivery_count_limit))
                top = max(top, offset)
            for o in range(start_offset, top + 1):
                self._records.setdefault(o, InFlight())
            self.speo = top + 1
            self._changed = {}
            self.initialised = True
            self._advance_locked()
            self._start_moved = False
            self._undo_window, self._undo = None, {}

    # -- acquire ------------------------------------------------------------------------
    def acquire(self, member: str, max_records: int, log_start: int, log_end: int
                ) -> tuple[list[Acquired], Delta]:
        """Acquire up to ``max_records`` AVAILABLE records for ``member`` (oldest first:
        released ones in the window, then new ones from the log up to ``log_end``)."""
        if max_records < 1:
            raise InvalidRequestError(f"max_records must be positive, not {max_records}")
        with self.lock:
            if not self.initialised:
                self.initialise(log_start, log_end)
                self._start_moved = True
            now = self.clock()
            self._expire_locked(now)
            self._skip_deleted_locked(log_start)
            got: list[int] = []
            deadline = now + self.lock_duration_ms
            for offset in range(self.spso, self.speo):
                if len(got) >= max_records:
                    break
                e = self._records[offset]
                if e.state is RecordState.AVAILABLE and self.deliverable_at(offset, e) <= now:
                    self._take_locked(offset, e, member, deadline)
                    got.append(offset)
            while (len(got) < max_records and self.speo < log_end
                   and self.speo - self.spso < self.max_record_locks):
                e = InFlight()
                self._records[self.speo] = e
                if self.deliverable_at(self.speo, e) > now:
                    self.speo += 1
                    continue
                self._take_locked(self.speo, e, member, deadline)
                got.append(self.speo)
                self.speo += 1
            return self._runs(got), self._delta_locked()

    def _save_locked(self, o: int, e: InFlight | None) -> None:
        if self._undo_window is None:
            self._undo_window = (self.spso, self.speo)
        if o not in self._undo:
            self._undo[o] = None if e is None else (e.state, e.delivery_count, e.member,
                                                    e.deadline)

    def rollback_locked(self) -> None:
        """Undo the change behind the last delta returned (its write failed) and any
        made since; call it before releasing ``self.lock``."""
        for window, undo in ((self._undo_window, self._undo), self._pending_undo):
            if window is None:
                continue
            for o, old in undo.items():
                if old is None:
                    self._records.pop(o, None)
                else:
                    self._records[o] = InFlight(*old)
            self.spso, self.speo = window
        for o in [o for o in self._records if not self.spso <= o < self.speo]:
            del self._records[o]
        for o in range(self.spso, self.speo):
            self._records.setdefault(o, InFlight())
        self._undo_window, self._undo = None, {}
        self._pending_undo = (None, {})
        self._changed = {}
        self._start_moved = False

    def _take_locked(self, offset: int, e: InFlight, member: str, deadline: int) -> None:
        self._save_locked(offset, e)
        e.state = RecordState.ACQUIRED
        e.delivery_count += 1
        e.member = member
        e.deadline = deadline
        self._changed[offset] = e

    def _runs(self, offsets: list[int]) -> list[Acquired]:
        out: list[Acquired] = []
        for o in offsets:
            n = self._records[o].delivery_count
            if out and out[-1].last_offset == o - 1 and out[-1].delivery_count == n:
                out[-1] = out[-1]._replace(last_offset=o)
            else:
                out.append(Acquired(o, o, n))
        return out

    # -- acknowledge / renew / release --------------------------------------------------
    def acknowledge(self, member: str, batches: Iterable[tuple[int, int, int]]) -> Delta:
        """Apply (first offset, last offset, AcknowledgeType) batches for ``member``.

        All or nothing: InvalidRequestError for batches that run backwards, overlap or
        are out of order, or an unknown type; InvalidRecordStateError if any record of
        a batch is not ACQUIRED by ``member`` within its lock.  Nothing changes then.
        """
        batches = self._check_batches(batches)
        with self.lock:
            self._expire_locked(self.clock())
            for first, last, _ in batches:
                self._check_held_locked(member, first, last)
            for first, last, kind in batches:
                for o in range(first, last + 1):
                    e = self._records[o]
                    if kind == AcknowledgeType.ACCEPT:
                        self._finish_locked(o, e, RecordState.ACKNOWLEDGED)
                    elif kind == AcknowledgeType.REJECT:
                        self._finish_locked(o, e, RecordState.ARCHIVED)
                    else:
                        self.released_total += 1
                        self._make_available_locked(o, e)
            self._advance_locked()
            return self._delta_locked()

    def renew(self, member: str, first: int, last: int) -> int:
        """Extend the lock of records ``member`` holds; returns the new deadline.
        Errors as ``acknowledge``; nothing to persist (deadlines are not stored)."""
        self._check_batches([(first, last, AcknowledgeType.ACCEPT)])
        with self.lock:
            now = self.clock()
            self._expire_locked(now)
            self._check_held_locked(member, first, last)
            deadline = now + self.lock_duration_ms
            for o in range(first, last + 1):
                self._records[o].deadline = deadline
            return deadline

    def release_member(self, member: str) -> Delta:
        """The member left (or its session ended): everything it holds is released."""
        with self.lock:
            self._expire_locked(self.clock())
            for o in range(self.spso, self.speo):
                e = self._records[o]
                if e.state is RecordState.ACQUIRED and e.member == member:
                    self.released_total += 1
                    self._make_available_locked(o, e)
            self._advance_locked()
            return self._delta_locked()

    def expire(self) -> Delta:
        """Apply lock expiry now (every other call does it too)."""
        with self.lock:
            self._expire_locked(self.clock())
            self._advance_locked()
            return self._delta_locked()

    @staticmethod
    def _check_batches(batches) -> list[tuple[int, int, int]]:
        out = []
        prev_last = None
        for b in batches:
            try:
                first, last, kind = (int(x) for x in b)
            except (TypeError, ValueError):
                raise InvalidRequestError(f"acknowledgement batch {b!r} is not "
                                          "(first, last, type)") from None
            if first < 0 or last < first:
                raise InvalidRequestError(f"acknowledgement batch {first}..{last} runs "
                                          "backwards")
            if prev_last is not None and first <= prev_last:
                raise InvalidRequestError(f"acknowledgement batch {first}..{last} overlaps "
                                          f"or precedes the one ending at {prev_last}")
            if kind not in (1, 2, 3):
                raise InvalidRequestError(f"unknown acknowledge type {kind}")
            prev_last = last
            out.append((first, last, kind))
        return out

    def _check_held_locked(self, member: str, first: int, last: int) -> None:
        for o in range(first, last + 1):
            e = self._records.get(o)
            if e is None or e.state is not RecordState.ACQUIRED:
                state = "finished" if e is None and o < self.spso else (
                    "not acquired" if e is None else e.state.name.lower())
                raise InvalidRecordStateError(
                    f"{self.topic}-{self.partition} offset {o} is {state}"
                    f" (batch {first}..{last})")
            if e.member != member:
                raise InvalidRecordStateError(
                    f"{self.topic}-{self.partition} offset {o} is acquired by another "
                    f"member (batch {first}..{last})")

    # -- transitions --------------------------------------------------------------------
    def _finish_locked(self, o: int, e: InFlight, state: RecordState) -> None:
        self._save_locked(o, e)
        e.state, e.member, e.deadline = state, None, 0
        if state is RecordState.ACKNOWLEDGED:
            self.acknowledged_total += 1
        else:
            self.archived_total += 1
        self._changed[o] = e

    def _make_available_locked(self, o: int, e: InFlight) -> None:
        if e.delivery_count >= self.delivery_count_limit:
            self._finish_locked(o, e, RecordState.ARCHIVED)
            return
        self._save_locked(o, e)
        e.state, e.member, e.deadline = RecordState.AVAILABLE, None, 0
        self._changed[o] = e

    def _expire_locked(self, now: int) -> None:
        for o in range(self.spso, self.speo):
            e = self._records[o]
            if e.state is RecordState.ACQUIRED and e.deadline <= now:
                self.expired_total += 1
                self._make_available_locked(o, e)
        self._advance_locked()

    def _skip_deleted_locked(self, log_start: int) -> None:
        """Retention deleted records below ``log_start``: they can never be delivered."""
        if log_start <= self.spso:
            return
        for o in range(self.spso, min(self.speo, log_start)):
            self._save_locked(o, self._records.pop(o, None))
            self._changed.pop(o, None)
        self.spso = log_start
        self.speo = max(self.speo, log_start)
        self._start_moved = True
        self._advance_locked()

    def _advance_locked(self) -> None:
        while self.spso < self.speo and self._records[self.spso].state in _FINISHED:
            self._save_locked(self.spso, self._records.pop(self.spso))
            self.spso += 1
            self._start_moved = True

    def _delta_locked(self) -> Delta:
        runs: list = []
        for o in sorted(self._changed):
            if o < self.spso:
                continue             # finished and below the start: the start says it
            e = self._changed[o]
            item = (int(e.state), e.delivery_count)
            if runs and runs[-1][1] == o - 1 and tuple(runs[-1][2:]) == item:
                runs[-1][1] = o
            else:
                runs.append([o, o, *item])
        delta = Delta(self.spso, tuple(tuple(r) for r in runs), self._start_moved)
        self._changed = {}
        self._start_moved = False
        self._pending_undo = (self._undo_window, self._undo)
        self._undo_window, self._undo = None, {}
        return delta

    # -- reads --------------------------------------------------------------------------
    def entry(self, offset: int) -> InFlight | None:
        return self._records.get(offset)

    def window(self) -> dict[int, InFlight]:
        with self.lock:
            return dict(self._records)

    def stats(self, log_end: int | None = None) -> dict:
        """Counts in the window (available includes the log beyond it when ``log_end``
        is given), the offsets, and totals since open."""
        with self.lock:
            self._expire_locked(self.clock())
            counts = {s: 0 for s in RecordState}
            for e in self._records.values():
                counts[e.state] += 1
            beyond = max(0, log_end - self.speo) if log_end is not None else 0
            return {"spso": self.spso, "speo": self.speo,
                    "available": counts[RecordState.AVAILABLE] + beyond,
                    "acquired": counts[RecordState.ACQUIRED],
                    "acknowledged": counts[RecordState.ACKNOWLEDGED],
                    "archived": counts[RecordState.ARCHIVED],
                    "acknowledged_total": self.acknowledged_total,
                    "archived_total": self.archived_total,
                    "released_total": self.released_total,
                    "expired_total": self.expired_total}
