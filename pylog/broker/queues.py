"""Share groups for the embedded API: ``q = log.queue("workers", "orders")``.

Two layers:

* ``ShareGroups`` (``log.share_groups``) — the coordinator every door will use: share
  groups, their members, one ``SharePartition`` per (group, topic, partition), each
  change persisted by the ``ShareStore`` before it is answered.  The Kafka share APIs
  (ShareGroupHeartbeat / ShareFetch / ShareAcknowledge) are meant to sit on
  ``join`` / ``leave`` / ``acquire`` / ``acknowledge`` / ``renew``.
* ``Queue`` — one member of a share group on one topic: ``receive`` long-polls every
  partition of the topic and returns ``Message`` objects with ``ack`` / ``release`` /
  ``reject`` / ``renew``.

Configs: the group's ``log.group_configs`` (every share key of group_configs.py:
``share.record.lock.duration.ms``, ``share.delivery.count.limit``,
``share.auto.offset.reset``, pylog's ``share.redelivery.backoff.*``,
``errors.deadletterqueue.*``, ``share.expired.action``, ``share.priority.window.records``),
then keyword arguments of ``log.queue`` (the same names, checked with the same bounds,
or the keyword names of ``ShareGroups.defaults``, only converted), then the broker
defaults.  A change applies to open share-partitions from their next call on
(``share.auto.offset.reset`` only matters before a partition's first use).

Delivery hints (share_delivery.py): before an acquire, the headers of the records that
may enter the share-partition's window are read once (``PartitionLog.read``: verified
batches only) and their Hints cached in the share-partition; a record without
``pylog-`` headers (and a topic without ``message.ttl.ms``) costs one read and nothing
more.  A header that does not parse is treated as absent and counted.

Dead letters, in this order: the share-partition archives the record in memory; the
record (key, value, ``dead_letters.dead_letter_headers``, timestamp) is appended
to the dead-letter topic (created on first use with the origin's partition count;
origin partition i goes to partition i mod its count) and waited on to be as durable
as that topic's flush policy promises; then the state change is written.  A crash in
between leaves the record unfinished in ``__share_group_state``: it is delivered or
dead-lettered again (at worst a duplicate dead letter, never a lost one).  A failed
dead-letter write undoes the change (the record stays as it was) and raises.

Thread-safe: ShareGroups has one lock for its maps; each share-partition has its own.
A Queue may be used from several threads; each Message is acknowledged once.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from typing import Callable

from pylog.broker import group_configs
from pylog.broker.dead_letters import DeadLetterOrigin, dead_letter_headers, dlq_topic_name
from pylog.broker.share_delivery import DEFAULT_PRIORITY, NO_HINTS, Backoff, parse_hints
from pylog.broker.share_state import (DEFAULT_AUTO_OFFSET_RESET,
                                      DEFAULT_DELIVERY_COUNT_LIMIT,
                                      DEFAULT_LOCK_DURATION_MS, DEFAULT_MAX_RECORD_LOCKS,
                                      AcknowledgeType, Acquired, SharePartition,
                                      epoch_ms, monotonic_ms)
from pylog.broker.share_store import ShareStore
from pylog.errors import (CorruptRecordError, InvalidRecordError, InvalidRequestError,
                          OffsetOutOfRangeError, TopicExistsError, UnknownMemberIdError)

__all__ = ["ShareGroups", "Queue", "Message"]

# group config name -> keyword of ShareGroups.defaults
_CONFIG_KEYS = {"share.record.lock.duration.ms": "lock_duration_ms",
                "share.delivery.count.limit": "delivery_count_limit",
                "share.auto.offset.reset": "auto_offset_reset",
                "share.redelivery.backoff.ms": "backoff_ms",
                "share.redelivery.backoff.max.ms": "backoff_max_ms",
                "share.redelivery.backoff.multiplier": "backoff_multiplier",
                "share.redelivery.backoff.jitter": "backoff_jitter",
                "errors.deadletterqueue.enable": "dead_letters",
                "errors.deadletterqueue.topic.name": "dlq_topic",
                "share.expired.action": "expired_action",
                "share.priority.window.records": "priority_window"}
_LOCAL_KEYS = {"group.share.partition.max.record.locks": "max_record_locks"}
_POLL_SLICE_S = 0.1        # a wait re-checks lock expiry at least this often
_SCAN_BYTES = 16 << 20     # one hint-scan read

log = logging.getLogger("pylog.share")


def _convert(value, like):
    """A keyword value as the type of its default (bools accept "true"/"false")."""
    if isinstance(like, bool):
        if isinstance(value, str):
            if value.strip().lower() not in ("true", "false"):
                raise InvalidRequestError(f"{value!r} is not true or false")
            return value.strip().lower() == "true"
        return bool(value)
    try:
        return type(like)(value)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{value!r} is not a {type(like).__name__}") from None


class ShareGroups:
    """Share groups of one Log: members, share-partitions, their durable state."""

    def __init__(self, log_, clock: Callable[[], int] = monotonic_ms,
                 defaults: dict | None = None,
                 wall_clock: Callable[[], int] = epoch_ms) -> None:
        self._log = log_
        self.clock = clock
        self.wall_clock = wall_clock
        g = group_configs.GROUP_CONFIG_KEYS
        self.defaults = {"lock_duration_ms": DEFAULT_LOCK_DURATION_MS,
                         "delivery_count_limit": DEFAULT_DELIVERY_COUNT_LIMIT,
                         "max_record_locks": DEFAULT_MAX_RECORD_LOCKS,
                         "auto_offset_reset": DEFAULT_AUTO_OFFSET_RESET}
        for name, kw in _CONFIG_KEYS.items():
            self.defaults.setdefault(kw, group_configs.typed(name, g[name].default))
        self.defaults.update(defaults or {})
        self._lock = threading.RLock()      # re-entrant: _seen runs under it too
        self._members: dict[str, set[str]] = {}             # group -> member ids
        self._partitions: dict[tuple[str, str, int], SharePartition] = {}
        self._overrides: dict[str, dict] = {}               # group -> log.queue kwargs
        self._overrides_version = 0
        self.store = ShareStore(log_)
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        threading.Thread(target=self._load, name="pylog-share-load", daemon=True).start()

    def _load(self) -> None:
        try:
            self.store.load()
        except BaseException as e:      # noqa: BLE001 -- reported to every caller
            self._load_error = e
        finally:
            self._loaded.set()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Wait for ``__share_group_state`` to be replayed (the Kafka APIs will answer
        COORDINATOR_LOAD_IN_PROGRESS until then); raises what the load raised."""
        ok = self._loaded.wait(timeout)
        if self._load_error is not None:
            raise self._load_error
        return ok

    # -- configs ------------------------------------------------------------------------
    def configure(self, group: str, **configs) -> None:
        """Per-group settings given to ``log.queue``: group config names (checked as
        IncrementalAlterConfigs checks them: InvalidConfigError) or keyword names."""
        opts = {}
        for k, v in configs.items():
            if k in _CONFIG_KEYS:
                opts[_CONFIG_KEYS[k]] = group_configs.typed(
                    k, group_configs.validate({k: str(v).lower() if isinstance(v, bool)
                                               else v})[k])
            elif k in _LOCAL_KEYS:
                opts[_LOCAL_KEYS[k]] = _convert(v, self.defaults[_LOCAL_KEYS[k]])
            elif k in self.defaults:
                opts[k] = _convert(v, self.defaults[k])
            else:
                raise InvalidRequestError(f"unknown queue config {k!r}")
        with self._lock:
            self._overrides.setdefault(group, {}).update(opts)
            self._overrides_version += 1

    def _settings(self, group: str) -> dict:
        out = dict(self.defaults)
        out.update(self._overrides.get(group, {}))
        for k, v in self._log.group_configs.get(group).items():
            if k in _CONFIG_KEYS:
                out[_CONFIG_KEYS[k]] = group_configs.typed(k, v)
        return out

    def _new_share_partition(self, group: str, topic: str, partition: int
                             ) -> SharePartition:
        seen = self._seen(group)
        o = self._settings(group)
        sp = SharePartition(
            group, topic, partition, clock=self.clock, wall_clock=self.wall_clock,
            lock_duration_ms=o["lock_duration_ms"],
            delivery_count_limit=o["delivery_count_limit"],
            max_record_locks=o["max_record_locks"],
            auto_offset_reset=o["auto_offset_reset"],
            priority_window=o["priority_window"], expired_action=o["expired_action"])
        sp.track_hints = True
        self._apply(sp, o, seen)
        return sp

    def _seen(self, group: str) -> tuple:
        return self._log.group_configs.version, self._overrides_version

    def _apply(self, sp: SharePartition, o: dict, seen: tuple) -> None:
        """(Re)apply the settings that may change while a share-partition is open
        (every one but auto_offset_reset and max_record_locks); caller holds sp.lock or
        owns sp."""
        sp.lock_duration_ms = o["lock_duration_ms"]
        sp.delivery_count_limit = max(1, o["delivery_count_limit"])
        sp.backoff = Backoff(o["backoff_ms"], max(o["backoff_ms"], o["backoff_max_ms"]),
                             o["backoff_multiplier"], o["backoff_jitter"])
        sp.priority_window = o["priority_window"]
        sp.expired_action = o["expired_action"]
        sp.dead_letters = o["dead_letters"]
        sp.dlq_topic = dlq_topic_name(sp.topic, o["dlq_topic"] or None)
        if sp.dlq_topic == sp.topic and sp.dead_letters:
            log.warning("share group %s: errors.deadletterqueue.topic.name is %s itself; "
                        "its dead records are only archived", sp.group, sp.topic)
            sp.dead_letters = False
        sp.settings_seen = seen

    def _refresh(self, sp: SharePartition) -> None:
        """Group configs altered (IncrementalAlterConfigs, log.queue kwargs) since the
        share-partition last looked apply from its next call on."""
        seen = self._seen(sp.group)
        if seen != sp.settings_seen:
            with sp.lock:
                self._apply(sp, self._settings(sp.group), seen)

    # -- members ------------------------------------------------------------------------
    def join(self, group: str, member_id: str | None = None) -> str:
        """Add a member (a new id unless one is given); returns its id."""
        if not group:
            raise InvalidRequestError("share group id must not be empty")
        member_id = member_id or uuid.uuid4().hex
        with self._lock:
            self._members.setdefault(group, set()).add(member_id)
        return member_id

    def leave(self, group: str, member_id: str) -> None:
        """Remove a member; every record it holds is released (count kept)."""
        with self._lock:
            members = self._members.get(group)
            if not members or member_id not in members:
                raise UnknownMemberIdError(f"member {member_id} is not in share group "
                                           f"{group}")
            members.discard(member_id)
            sps = [sp for (g, _, _), sp in self._partitions.items() if g == group]
        for sp in sps:
            with sp.lock:
                self._persist(sp, sp.release_member(member_id)).result()

    def _check_member(self, group: str, member_id: str) -> None:
        if member_id not in self._members.get(group, ()):
            raise UnknownMemberIdError(f"member {member_id} is not in share group {group}")

    # -- share-partitions ---------------------------------------------------------------
    def existing(self) -> list[SharePartition]:
        """The share-partitions in use now (read-only, for metrics): creates none."""
        with self._lock:
            return list(self._partitions.values())

    def share_partition(self, group: str, topic: str, partition: int) -> SharePartition:
        """The share-partition, rebuilt from the store or created on first use."""
        key = (group, topic, partition)
        sp = self._partitions.get(key)
        if sp is not None:
            self._refresh(sp)
            return sp
        self.wait_loaded()
        self._log.partition(topic, partition)          # UnknownTopicError if absent
        with self._lock:
            sp = self._partitions.get(key)
            if sp is None:
                sp = self._new_share_partition(group, topic, partition)
                stored = self.store.state(group, topic, partition)
                if stored is not None:
                    sp.restore(*stored)
                self._partitions[key] = sp
            return sp

    def _persist(self, sp: SharePartition, delta):
        """Produce the change's dead letters, then write ``delta`` (caller holds
        ``sp.lock``); if either fails the change is undone, so memory never runs
        ahead of the log."""
        try:
            dead = sp.take_dead_letters_locked()
            if dead:
                self._dead_letter_locked(sp, dead)
            return self.store.write(sp.group, sp.topic, sp.partition, delta)
        except BaseException:
            sp.rollback_locked()
            raise

    def _dead_letter_locked(self, sp: SharePartition, dead) -> None:
        """Append the records ``dead`` names to the dead-letter topic, durably."""
        p = self._log.partition(sp.topic, sp.partition)
        now = self.wall_clock()
        values, keys, headers, stamps = [], [], [], []
        for d in dead:
            try:
                recs = p.read(d.offset, max_records=1)
            except OffsetOutOfRangeError:
                recs = []
            if not recs or recs[0].offset != d.offset:
                log.warning("%s-%d offset %d: deleted before it could be dead-lettered "
                            "(%s)", sp.topic, sp.partition, d.offset, d.reason)
                continue
            r = recs[0]
            values.append(r.value)
            keys.append(r.key)
            # Its own id kept aside, an id naming the origin record (dead_letters.py):
            # a retried dead-letter write is stored once, two records sharing an id
            # are not taken for one.
            headers.append(dead_letter_headers(r.headers, DeadLetterOrigin(
                sp.group, sp.topic, sp.partition, d.offset, d.delivery_count, d.reason,
                now)))
            stamps.append(r.timestamp)
        if not values:
            return
        t = self._dlq_topic(sp.dlq_topic, len(self._log.topic(sp.topic).partitions))
        dp = t.partition(sp.partition % len(t.partitions))
        dp.append_batch(values, keys, headers, stamps)
        # Duplicates (a retried write) are not appended again: wait for all appended.
        dp.durable_future(dp.log_end_offset - 1).result()
        sp.dead_lettered_total += len(values)

    def _dlq_topic(self, name: str, partitions: int):
        if not self._log.has_topic(name):
            try:
                self._log.create_topic(name, partitions)
                log.info("dead-letter topic %s created (%d partitions)", name, partitions)
            except TopicExistsError:
                pass                                  # created meanwhile
        return self._log.topic(name)

    def _scan_hints_locked(self, sp: SharePartition, p, log_start: int,
                           log_end: int) -> None:
        """Read the hints of the records the next acquire may hand out (verified
        reads); a header that does not parse counts as absent (bad_hints_total)."""
        lo, hi = sp.hint_range_locked(log_start, log_end)
        if lo >= hi:
            return
        ttl = p.config.message_ttl_ms
        ttl = ttl if ttl is not None and ttl >= 0 else None
        found = {}
        at = lo
        while at < hi:
            try:
                recs = p.read(at, max_records=hi - at, max_bytes=_SCAN_BYTES)
            except OffsetOutOfRangeError:
                if p.log_start_offset <= at:
                    break
                at = p.log_start_offset         # retention moved the start meanwhile
                continue
            except CorruptRecordError:
                break                           # the delivery read will report it
            if not recs:
                break
            for r in recs:
                if r.offset >= hi:
                    break
                if r.headers or ttl is not None:
                    try:
                        h = parse_hints(r.headers, r.timestamp, ttl)
                    except InvalidRecordError as e:
                        sp.bad_hints_total += 1
                        log.warning("%s-%d offset %d: delivery hint ignored: %s",
                                    p.topic, p.partition, r.offset, e)
                        h = parse_hints((), r.timestamp, ttl)
                    if h is not NO_HINTS:
                        found[r.offset] = h
            at = recs[-1].offset + 1
        sp.set_hints_locked(hi, found)

    def acquire(self, group: str, member_id: str, topic: str, partition: int,
                max_records: int) -> list[Acquired]:
        """Acquire up to ``max_records`` deliverable records of one partition for a
        member (held-back and expired ones skipped, by priority when the look-ahead has
        hints; runs in offset order); the acquisition is written (delivery counts)
        before the runs are returned, after any dead letters it caused."""
        self._check_member(group, member_id)
        sp = self.share_partition(group, topic, partition)
        p = self._log.partition(topic, partition)
        with sp.lock:
            log_start, log_end = p.log_start_offset, p.log_end_offset
            if not sp.initialised:
                start = None
                if isinstance(sp.reset, int):          # by_duration:<ISO-8601>
                    start = p.offset_for_time(self.wall_clock() - sp.reset)
                    start = log_end if start is None else start
                self._persist(sp, sp.initialise(log_start, log_end, start))
            self._scan_hints_locked(sp, p, log_start, log_end)
            runs, delta = sp.acquire(member_id, max_records, log_start, log_end)
            self._persist(sp, delta)
        return runs

    def records_of(self, group: str, member_id: str, topic: str, partition: int,
                   run: Acquired) -> list:
        """The records of an acquired run (verified reads).  Offsets of the run that
        hold no record — transaction markers (control batches), compaction gaps — are
        settled at once as GAP (accepted), as Kafka's share consumers acknowledge them,
        so they are neither handed out again nor left to expire five times."""
        p = self._log.partition(topic, partition)
        out: list = []
        offset = max(run.first_offset, p.log_start_offset)
        while offset <= run.last_offset:
            try:
                recs = p.read(offset, max_records=run.last_offset - offset + 1)
            except OffsetOutOfRangeError:
                return out               # deleted by retention meanwhile: skipped next time
            recs = [r for r in recs if offset <= r.offset <= run.last_offset]
            if not recs:
                break
            out += recs
            offset = recs[-1].offset + 1
        gaps, at = [], run.first_offset
        for r in out + [None]:
            upto = run.last_offset + 1 if r is None else r.offset
            if at < upto:
                gaps.append((at, upto - 1, AcknowledgeType.ACCEPT))
            at = upto + 1 if r is not None else at
        if gaps:
            self.acknowledge(group, member_id, topic, partition, gaps, wait=False)
        return out

    def acknowledge(self, group: str, member_id: str, topic: str, partition: int,
                    batches, wait: bool = True, *, release_delay_ms: int | None = None):
        """Apply (first, last, AcknowledgeType) batches (all or nothing, see
        SharePartition.acknowledge); RELEASEd records wait ``release_delay_ms`` (None:
        the group's redelivery backoff); rejected ones are dead-lettered first.
        Returns once durable, or the future with ``wait=False``."""
        self._check_member(group, member_id)
        sp = self.share_partition(group, topic, partition)
        with sp.lock:
            fut = self._persist(sp, sp.acknowledge(member_id, batches, release_delay_ms))
        return fut.result() if wait else fut

    def renew(self, group: str, member_id: str, topic: str, partition: int,
              first: int, last: int) -> int:
        self._check_member(group, member_id)
        return self.share_partition(group, topic, partition).renew(member_id, first, last)

    def stats(self, group: str, topic: str) -> dict[int, dict]:
        """Per partition: SharePartition.stats plus ``oldest_available_age_ms`` (wall
        ms since the timestamp of the oldest record deliverable now; None if none)."""
        out = {}
        for i, p in enumerate(self._log.topic(topic).partitions):
            sp = self.share_partition(group, topic, i)
            with sp.lock:
                if sp.initialised:
                    self._persist(sp, sp.expire())
                s = sp.stats(p.log_end_offset if sp.initialised else None)
            s["oldest_available_age_ms"] = self._age(p, s["oldest_available_offset"])
            out[i] = s
        return out

    def _age(self, p, offset: int | None) -> int | None:
        if offset is None:
            return None
        try:
            recs = p.read(offset, max_records=1)
        except OffsetOutOfRangeError:
            return None
        return max(0, self.wall_clock() - recs[0].timestamp) if recs else None

    def close(self) -> None:
        self._loaded.wait(5)


class Message:
    """One acquired record.  ``ack`` / ``release`` / ``reject`` answer after the state
    change is durable; a second one raises InvalidRecordStateError (the record is no
    longer held); ``renew`` extends the lock."""
    __slots__ = ("_queue", "topic", "partition", "offset", "timestamp", "key", "value",
                 "headers", "delivery_count")

    def __init__(self, queue, partition: int, record, delivery_count: int) -> None:
        self._queue = queue
        self.topic = queue.topic
        self.partition = partition
        self.offset = record.offset
        self.timestamp = record.timestamp
        self.key = record.key
        self.value = record.value
        self.headers = record.headers
        self.delivery_count = delivery_count

    def _settle(self, kind: AcknowledgeType, delay_ms: int | None = None) -> None:
        self._queue._coordinator.acknowledge(self._queue.group, self._queue.member_id,
                                             self.topic, self.partition,
                                             [(self.offset, self.offset, kind)],
                                             release_delay_ms=delay_ms)

    def ack(self) -> None:
        self._settle(AcknowledgeType.ACCEPT)

    def release(self, delay_ms: int | None = None) -> None:
        """Give it back: deliverable again after ``delay_ms`` (None: the group's
        redelivery backoff, ``share.redelivery.backoff.*``)."""
        self._settle(AcknowledgeType.RELEASE, delay_ms)

    def reject(self) -> None:
        self._settle(AcknowledgeType.REJECT)

    def renew(self) -> int:
        """Extend the lock by the lock duration; returns the new deadline (clock ms)."""
        return self._queue._coordinator.renew(self._queue.group, self._queue.member_id,
                                              self.topic, self.partition, self.offset,
                                              self.offset)

    def __repr__(self) -> str:
        return (f"Message({self.topic}-{self.partition}@{self.offset}, "
                f"delivery_count={self.delivery_count})")


class Queue:
    """A member of share group ``group`` consuming ``topic``; see the module doc."""

    def __init__(self, log_, group: str, topic: str, **configs) -> None:
        self._log = log_
        self._coordinator: ShareGroups = log_.share_groups
        self.group = group
        self.topic = topic
        log_.topic(topic)                             # UnknownTopicError if absent
        if configs:
            self._coordinator.configure(group, **configs)
        self.member_id = self._coordinator.join(group)
        self._next = itertools.count()
        self._wake = threading.Event()
        self._closed = False

    def receive(self, max_records: int = 500, wait_ms: int = 0) -> list[Message]:
        """Up to ``max_records`` messages from the topic's partitions, waiting up to
        ``wait_ms`` for at least one; higher ``pylog-priority`` first, then in
        partition and offset order."""
        if max_records < 1:
            raise InvalidRequestError(f"max_records must be positive, not {max_records}")
        deadline = time.monotonic() + max(0, wait_ms) / 1000.0
        parts = self._log.topic(self.topic).partitions
        listening = False
        try:
            while True:
                self._wake.clear()
                out = self._receive_once(parts, max_records)
                left = deadline - time.monotonic()
                if out or left <= 0:
                    return out
                if not listening:
                    for p in parts:
                        p.add_listener(self._wake.set)
                    listening = True
                    continue                 # re-check: a record may have just arrived
                self._wake.wait(min(left, _POLL_SLICE_S))
        finally:
            if listening:
                for p in parts:
                    p.remove_listener(self._wake.set)

    def _receive_once(self, parts, max_records: int) -> list[Message]:
        out: list[Message] = []
        prio: dict = {}                      # partition -> its hints, if any has some
        n = len(parts)
        start = next(self._next) % n
        for j in range(n):
            if len(out) >= max_records:
                break
            i = (start + j) % n
            runs = self._coordinator.acquire(self.group, self.member_id, self.topic, i,
                                             max_records - len(out))
            for run in runs:
                out.extend(self._read(parts[i], i, run))
            if runs:
                sp = self._coordinator.share_partition(self.group, self.topic, i)
                if sp.has_hints():
                    prio[i] = sp.hints
        if prio:
            out.sort(key=lambda m: -prio[m.partition](m.offset).priority
                     if m.partition in prio else -DEFAULT_PRIORITY)
        return out

    def _read(self, p, i: int, run: Acquired) -> list[Message]:
        return [Message(self, i, r, run.delivery_count) for r in self._coordinator.records_of(
            self.group, self.member_id, self.topic, i, run)]

    def ack_all(self, messages, kind: AcknowledgeType = AcknowledgeType.ACCEPT) -> None:
        """Settle many received messages with one durable state write per partition
        (instead of one per ``ack()``): all of a partition's or none of them, as one
        ShareAcknowledge does.  ``kind``: ACCEPT (default), RELEASE or REJECT."""
        by_partition: dict[int, list[int]] = {}
        for m in messages:
            if m._queue is not self:
                raise InvalidRequestError(f"{m!r} was not received by this queue")
            by_partition.setdefault(m.partition, []).append(m.offset)
        futures = []
        for partition, offsets in sorted(by_partition.items()):
            offsets.sort()
            runs: list = []
            for o in offsets:
                if runs and o == runs[-1][1] + 1:
                    runs[-1][1] = o
                elif runs and o <= runs[-1][1]:
                    raise InvalidRequestError(f"offset {o} of partition {partition} given "
                                              f"twice")
                else:
                    runs.append([o, o])
            futures.append(self._coordinator.acknowledge(
                self.group, self.member_id, self.topic, partition,
                [(a, b, kind) for a, b in runs], wait=False))
        for f in futures:
            f.result()

    def stats(self) -> dict[int, dict]:
        """Per partition: available, acquired, acknowledged, archived (in the window;
        available includes the log past it), spso, speo, totals since open."""
        return self._coordinator.stats(self.group, self.topic)

    def close(self) -> None:
        """Leave the group: records still held become available again at once."""
        if not self._closed:
            self._closed = True
            self._coordinator.leave(self.group, self.member_id)

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
