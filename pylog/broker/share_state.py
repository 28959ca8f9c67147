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
  4. an ACQUIRED entry has a member and a deadline; no other entry has either; only an
     AVAILABLE entry has a ``not_before`` (its redelivery backoff);
  5. a delivery count never decreases and never exceeds ``delivery_count_limit``.

Lock expiry is lazy: every call first turns ACQUIRED entries past their deadline back
into AVAILABLE (or ARCHIVED at the limit).  ``clock`` is any callable returning
milliseconds (monotonic; deadlines and backoffs are never persisted); ``wall_clock``
gives epoch ms, for the record-header hints.

Beyond Kafka: redelivery backoff (``not_before``), delivery hints (deliver-at, TTL,
priority) handed in by the caller, and dead letters listed for the caller to produce;
share_delivery.py's module doc says what each does to this window.

Thread-safe: one lock per share-partition (``self.lock``, re-entrant, so a caller can
hold it across a change and the write of its delta); methods ending in ``_locked``
expect it held.
"""
from __future__ import annotations

import random
import threading
from typing import Callable, Iterable

from pylog.broker.share_delivery import NO_HINTS, Backoff, Hints, parse_auto_offset_reset
from pylog.errors import InvalidRecordStateError, InvalidRequestError

__all__ = ["RecordState", "AcknowledgeType", "InFlight", "Acquired", "Delta",
           "DeadLetter", "SharePartition", "monotonic_ms", "epoch_ms",
           "DEFAULT_LOCK_DURATION_MS", "DEFAULT_DELIVERY_COUNT_LIMIT",
           "DEFAULT_MAX_RECORD_LOCKS", "DEFAULT_AUTO_OFFSET_RESET"]

from pylog.broker.share_types import (DEFAULT_AUTO_OFFSET_RESET,  # noqa: F401 re-exported
                                      DEFAULT_DELIVERY_COUNT_LIMIT, DEFAULT_LOCK_DURATION_MS,
                                      DEFAULT_MAX_RECORD_LOCKS, Acquired, AcknowledgeType,
                                      DeadLetter, Delta, InFlight, RecordState, epoch_ms,
                                      monotonic_ms)
from pylog.broker.share_types import FINISHED as _FINISHED


class SharePartition:
    """State of one share-partition; see the module doc for states and invariants."""

    def __init__(self, group: str, topic: str, partition: int, *,
                 lock_duration_ms: int = DEFAULT_LOCK_DURATION_MS,
                 delivery_count_limit: int = DEFAULT_DELIVERY_COUNT_LIMIT,
                 max_record_locks: int = DEFAULT_MAX_RECORD_LOCKS,
                 auto_offset_reset: str = DEFAULT_AUTO_OFFSET_RESET,
                 clock: Callable[[], int] = monotonic_ms,
                 backoff: Backoff = Backoff(),
                 priority_window: int = DEFAULT_MAX_RECORD_LOCKS,
                 expired_action: str = "archive",
                 dead_letters: bool = False,
                 wall_clock: Callable[[], int] = epoch_ms,
                 rng: random.Random | None = None) -> None:
        self.reset = parse_auto_offset_reset(auto_offset_reset)   # InvalidConfigError
        if delivery_count_limit < 1 or max_record_locks < 1 or lock_duration_ms < 1 \
                or priority_window < 1:
            raise ValueError("delivery count limit, record locks, lock duration and "
                             "priority window must be positive")
        if expired_action not in ("archive", "dlq"):
            raise ValueError(f"share.expired.action must be archive or dlq, not "
                             f"{expired_action!r}")
        self.group, self.topic, self.partition = group, topic, partition
        self.lock_duration_ms = lock_duration_ms
        self.delivery_count_limit = delivery_count_limit
        self.max_record_locks = max_record_locks
        self.auto_offset_reset = auto_offset_reset
        self.clock = clock
        self.wall_clock = wall_clock
        self.backoff = backoff
        self.priority_window = priority_window
        self.expired_action = expired_action
        self.dead_letters = dead_letters
        self._rng = rng or random.Random()
        # Hints (share_delivery.Hints) of the records that have any, for offsets below
        # hinted_to; dropped as spso passes them (and in set_hints_locked).
        self.track_hints = False
        self.hinted_to = 0
        self._hints: dict[int, Hints] = {}
        self._dead: list[DeadLetter] = []
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
        self._undo_counters: tuple = ()
        self._pending_undo: tuple = (None, {}, ())  # the undo of the last delta returned
        # Counters since open (for stats and, later, metrics).
        self.acknowledged_total = 0
        self.archived_total = 0
        self.released_total = 0
        self.expired_total = 0          # lock expiries
        self.ttl_expired_total = 0      # records whose TTL passed before delivery
        self.dead_lettered_total = 0    # counted by the caller once produced
        self.bad_hints_total = 0        # records whose hint headers did not parse

    # -- hints (share_delivery.py) ------------------------------------------------------
    def hint_range_locked(self, log_start: int, log_end: int) -> tuple[int, int]:
        """[lo, hi): the offsets whose hints the next acquire may need and lacks."""
        return (max(self.hinted_to, self.spso, log_start),
                min(log_end, self.spso + self.max_record_locks))

    def set_hints_locked(self, upto: int, hints: dict[int, Hints]) -> None:
        """Hints are known below ``upto``; ``hints`` holds those that are not NO_HINTS."""
        if len(self._hints) > 2 * self.max_record_locks:
            self._hints = {o: h for o, h in self._hints.items() if o >= self.spso}
        self._hints.update(hints)
        self.hinted_to = max(self.hinted_to, upto)

    def hints(self, offset: int) -> Hints:
        return self._hints.get(offset, NO_HINTS)

    def has_hints(self) -> bool:
        return bool(self._hints)

    def _held_back(self, o: int, e: InFlight | None, now: int, wall: int) -> bool:
        if e is not None and e.not_before > now:
            return True
        h = self._hints.get(o)
        return h is not None and h.deliver_at > wall

    def take_dead_letters_locked(self) -> list[DeadLetter]:
        """The records archived for a dead-letter reason since the last call."""
        out, self._dead = self._dead, []
        return out

    # -- initialisation -----------------------------------------------------------------
    def initialise(self, log_start: int, log_end: int, start: int | None = None) -> Delta:
        """First use with no stored state: start at the log end (latest) or start
        (earliest), as ``share.auto.offset.reset`` says; ``start`` is the caller's
        answer for ``by_duration:`` (without it: the log end)."""
        with self.lock:
            if self.initialised:
                return Delta(self.spso, ())
            if start is not None:
                at = min(max(start, log_start), log_end)
            else:
                at = log_start if self.reset == "earliest" else log_end
            self.spso = self.speo = self.hinted_to = at
            self.initialised = True
            return Delta(self.spso, (), True)

    def restore(self, start_offset: int, entries: Iterable[tuple[int, int, int]]) -> None:
        """Rebuild from persisted state: (offset, state, delivery count) for offsets at or
        above ``start_offset``.  ACQUIRED records become AVAILABLE, their count kept."""
        with self.lock:
            self.spso = start_offset
            self._records = {}
            top = start_offset - 1
            now = self.clock()
            for offset, state, count in entries:
                if offset < start_offset:
                    continue
                st = RecordState(state)
                if st is RecordState.ACQUIRED:
                    st = RecordState.AVAILABLE
                e = InFlight(st, min(count, self.delivery_count_limit))
                if st is RecordState.AVAILABLE and e.delivery_count:
                    d = self.backoff.delay_ms(e.delivery_count, self._rng.random())
                    e.not_before = now + d if d else 0
                self._records[offset] = e
                top = max(top, offset)
            for o in range(start_offset, top + 1):
                self._records.setdefault(o, InFlight())
            self.speo = top + 1
            self.hinted_to, self._hints = start_offset, {}
            self._changed = {}
            self.initialised = True
            self._advance_locked()
            self._start_moved = False
            self._undo_window, self._undo = None, {}

    # -- acquire ------------------------------------------------------------------------
    def acquire(self, member: str, max_records: int, log_start: int, log_end: int
                ) -> tuple[list[Acquired], Delta]:
        """Acquire up to ``max_records`` deliverable records for ``member``: oldest
        first (released ones in the window, then new ones from the log up to
        ``log_end``), or by priority when any record of the look-ahead has hints."""
        if max_records < 1:
            raise InvalidRequestError(f"max_records must be positive, not {max_records}")
        with self.lock:
            if not self.initialised:
                self.initialise(log_start, log_end)
                self._start_moved = True
            now = self.clock()
            self._expire_locked(now)
            self._skip_deleted_locked(log_start)
            top = min(log_end, self.spso + self.max_record_locks)
            if self.track_hints:
                top = min(top, max(self.hinted_to, self.speo))
            if self._hints:
                wall = self.wall_clock()
                self._expire_ttl_locked(wall, top)
                got = self._pick_locked(max_records, now, wall, top)
            else:
                got = self._fifo_locked(max_records, now, top)
            deadline = now + self.lock_duration_ms
            if got and got[-1] >= self.speo:
                self._extend_locked(got[-1] + 1)
            for offset in got:
                self._take_locked(offset, self._records[offset], member, deadline)
            return self._runs(got), self._delta_locked()

    def _fifo_locked(self, max_records: int, now: int, top: int) -> list[int]:
        """No record of the look-ahead has hints: oldest first (sorted offsets)."""
        got: list[int] = []
        records = self._records
        for offset in range(self.spso, self.speo):
            if len(got) >= max_records:
                return got
            e = records[offset]
            if e.state is RecordState.AVAILABLE and e.not_before <= now:
                got.append(offset)
        got.extend(range(self.speo, min(top, self.speo + max_records - len(got))))
        return got

    def _pick_locked(self, max_records: int, now: int, wall: int, top: int) -> list[int]:
        """Deliverable records of [spso, top): by (-priority, offset) inside the
        priority window, then by offset; returned sorted by offset."""
        cands = []
        prio_end = self.spso + min(self.priority_window, self.max_record_locks)
        records, hints = self._records, self._hints
        for o in range(self.spso, top):
            e = records.get(o)
            if e is not None and (e.state is not RecordState.AVAILABLE or e.not_before > now):
                continue
            h = hints.get(o, NO_HINTS)
            if h.deliver_at > wall:
                continue
            cands.append((0, -h.priority, o) if o < prio_end else (1, 0, o))
        cands.sort()
        return sorted(c[2] for c in cands[:max_records])

    def _expire_ttl_locked(self, wall: int, top: int) -> None:
        """Archive the AVAILABLE records of [spso, top) whose TTL passed."""
        gone = sorted(o for o, h in self._hints.items()
                      if h.expires_at is not None and h.expires_at <= wall
                      and self.spso <= o < top)
        for o in gone:
            e = self._records.get(o)
            if e is None:
                self._extend_locked(o + 1)
                e = self._records[o]
            if e.state is RecordState.AVAILABLE:
                self._finish_locked(o, e, RecordState.ARCHIVED, "expired")
                self.ttl_expired_total += 1
        if gone:
            self._advance_locked()

    def _extend_locked(self, end: int) -> None:
        """Grow the window to ``end`` (exclusive) with AVAILABLE entries."""
        if end <= self.speo:
            return
        self._save_window_locked()
        for o in range(self.speo, end):
            self._records[o] = InFlight()
        self.speo = end

    _COUNTERS = ("acknowledged_total", "archived_total", "released_total",
                 "expired_total", "ttl_expired_total")

    def _save_window_locked(self) -> None:
        if self._undo_window is None:
            self._undo_window = (self.spso, self.speo)
            self._undo_counters = tuple(getattr(self, c) for c in self._COUNTERS)

    def _save_locked(self, o: int, e: InFlight | None) -> None:
        if self._undo_window is None:
            self._save_window_locked()
        if o not in self._undo:
            self._undo[o] = None if e is None else (e.state, e.delivery_count, e.member,
                                                    e.deadline, e.not_before)

    def rollback_locked(self) -> None:
        """Undo the change behind the last delta returned (its write failed) and any
        made since; call it before releasing ``self.lock``."""
        for window, undo, counters in ((self._undo_window, self._undo,
                                        self._undo_counters), self._pending_undo):
            if window is None:
                continue
            for c, v in zip(self._COUNTERS, counters):
                setattr(self, c, v)
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
        self.hinted_to = min(self.hinted_to, self.spso)   # hints dropped meanwhile: reread
        self._undo_window, self._undo = None, {}
        self._pending_undo = (None, {}, ())
        self._changed = {}
        self._start_moved = False
        self._dead = []

    def _take_locked(self, offset: int, e: InFlight, member: str, deadline: int) -> None:
        self._save_locked(offset, e)
        e.not_before = 0
        e.state = RecordState.ACQUIRED
        e.delivery_count += 1
        e.member = member
        e.deadline = deadline
        self._changed[offset] = e

    def _runs(self, offsets: list[int]) -> list[Acquired]:
        runs: list[list[int]] = []
        records = self._records
        for o in offsets:
            n = records[o].delivery_count
            if runs and runs[-1][1] == o - 1 and runs[-1][2] == n:
                runs[-1][1] = o
            else:
                runs.append([o, o, n])
        return [Acquired(*r) for r in runs]

    # -- acknowledge / renew / release --------------------------------------------------
    def acknowledge(self, member: str, batches: Iterable[tuple[int, int, int]],
                    release_delay_ms: int | None = None) -> Delta:
        """Apply (first offset, last offset, AcknowledgeType) batches for ``member``;
        a RELEASE waits ``release_delay_ms`` (None: the backoff) before redelivery.

        All or nothing: InvalidRequestError for batches that run backwards, overlap or
        are out of order, or an unknown type; InvalidRecordStateError if any record of
        a batch is not ACQUIRED by ``member`` within its lock.  Nothing changes then.
        """
        batches = self._check_batches(batches)
        if release_delay_ms is not None and not 0 <= release_delay_ms < (1 << 63):
            raise InvalidRequestError(f"release delay {release_delay_ms} ms is negative")
        with self.lock:
            now = self.clock()
            self._expire_locked(now)
            for first, last, _ in batches:
                self._check_held_locked(member, first, last)
            for first, last, kind in batches:
                for o in range(first, last + 1):
                    e = self._records[o]
                    if kind == AcknowledgeType.ACCEPT:
                        self._finish_locked(o, e, RecordState.ACKNOWLEDGED)
                    elif kind == AcknowledgeType.REJECT:
                        self._finish_locked(o, e, RecordState.ARCHIVED, "rejected")
                    else:
                        self._make_available_locked(o, e, now, release_delay_ms)
                        self.released_total += 1
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
            now = self.clock()
            self._expire_locked(now)
            for o in range(self.spso, self.speo):
                e = self._records[o]
                if e.state is RecordState.ACQUIRED and e.member == member:
                    self._make_available_locked(o, e, now)
                    self.released_total += 1
            self._advance_locked()
            return self._delta_locked()

    def expire(self) -> Delta:
        """Apply lock expiry and TTL in the window now (every other call does too)."""
        with self.lock:
            self._expire_locked(self.clock())
            if self._hints:
                self._expire_ttl_locked(self.wall_clock(), self.speo)
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
    def _finish_locked(self, o: int, e: InFlight, state: RecordState,
                       reason: str | None = None) -> None:
        self._save_locked(o, e)
        e.state, e.member, e.deadline, e.not_before = state, None, 0, 0
        if state is RecordState.ACKNOWLEDGED:
            self.acknowledged_total += 1
        else:
            self.archived_total += 1
            if self.dead_letters and reason is not None and (
                    reason != "expired" or self.expired_action == "dlq"):
                self._dead.append(DeadLetter(o, e.delivery_count, reason))
        self._changed[o] = e

    def _make_available_locked(self, o: int, e: InFlight, at: int,
                               delay_ms: int | None = None) -> None:
        """Back to AVAILABLE at clock time ``at`` (after the backoff or ``delay_ms``),
        or ARCHIVED once the delivery count has reached the limit."""
        if e.delivery_count >= self.delivery_count_limit:
            self._finish_locked(o, e, RecordState.ARCHIVED, "delivery-limit")
            return
        self._save_locked(o, e)
        e.state, e.member, e.deadline = RecordState.AVAILABLE, None, 0
        if delay_ms is None:
            delay_ms = self.backoff.delay_ms(e.delivery_count, self._rng.random())
        e.not_before = at + delay_ms if delay_ms else 0
        self._changed[o] = e

    def _expire_locked(self, now: int) -> None:
        for o in range(self.spso, self.speo):
            e = self._records[o]
            if e.state is RecordState.ACQUIRED and e.deadline <= now:
                self._make_available_locked(o, e, e.deadline)
                self.expired_total += 1
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
        hints = self._hints
        while self.spso < self.speo and self._records[self.spso].state in _FINISHED:
            self._save_locked(self.spso, self._records.pop(self.spso))
            if hints:
                hints.pop(self.spso, None)
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
        self._pending_undo = (self._undo_window, self._undo, self._undo_counters)
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
        is given; ``delayed`` = available but held back now, by backoff or deliver-at,
        in the window and the hinted look-ahead), the offsets, the oldest deliverable
        available offset (None if none), and totals since open."""
        with self.lock:
            now, wall = self.clock(), self.wall_clock()
            self._expire_locked(now)
            counts = {s: 0 for s in RecordState}
            delayed, oldest = 0, None
            for o in range(self.spso, self.speo):
                e = self._records[o]
                counts[e.state] += 1
                if e.state is RecordState.AVAILABLE:
                    if self._held_back(o, e, now, wall):
                        delayed += 1
                    elif oldest is None:
                        oldest = o
            end = self.speo if log_end is None else max(log_end, self.speo)
            for o in range(self.speo, min(end, max(self.hinted_to, self.speo))):
                if self._held_back(o, None, now, wall):
                    delayed += 1
                elif oldest is None:
                    oldest = o
            if oldest is None and end > max(self.hinted_to, self.speo):
                oldest = max(self.hinted_to, self.speo)
            beyond = max(0, log_end - self.speo) if log_end is not None else 0
            return {"spso": self.spso, "speo": self.speo,
                    "available": counts[RecordState.AVAILABLE] + beyond,
                    "acquired": counts[RecordState.ACQUIRED],
                    "acknowledged": counts[RecordState.ACKNOWLEDGED],
                    "archived": counts[RecordState.ARCHIVED],
                    "acknowledged_total": self.acknowledged_total,
                    "archived_total": self.archived_total,
                    "released_total": self.released_total,
                    "expired_total": self.expired_total,
                    "delayed": delayed,
                    "oldest_available_offset": oldest,
                    "ttl_expired_total": self.ttl_expired_total,
                    "dead_lettered_total": self.dead_lettered_total,
                    "bad_hints_total": self.bad_hints_total}
