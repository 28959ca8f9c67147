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

Configs: the group's ``log.group_configs`` (``share.record.lock.duration.ms``,
``share.delivery.count.limit``, ``share.auto.offset.reset``), then keyword arguments of
``log.queue``, then the broker defaults (share_state.DEFAULT_*).  A share-partition reads
its configs when it is first used after open.

Thread-safe: ShareGroups has one lock for its maps; each share-partition has its own.
A Queue may be used from several threads; each Message is acknowledged once.
"""
from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Callable

from pylog.broker.share_state import (DEFAULT_AUTO_OFFSET_RESET,
                                      DEFAULT_DELIVERY_COUNT_LIMIT,
                                      DEFAULT_LOCK_DURATION_MS, DEFAULT_MAX_RECORD_LOCKS,
                                      AcknowledgeType, Acquired, SharePartition,
                                      monotonic_ms)
from pylog.broker.share_store import ShareStore
from pylog.errors import (InvalidRequestError, OffsetOutOfRangeError,
                          UnknownMemberIdError)

__all__ = ["ShareGroups", "Queue", "Message"]

_CONFIG_KEYS = {"share.record.lock.duration.ms": ("lock_duration_ms", int),
                "share.delivery.count.limit": ("delivery_count_limit", int),
                "share.auto.offset.reset": ("auto_offset_reset", str),
                "group.share.partition.max.record.locks": ("max_record_locks", int)}
_POLL_SLICE_S = 0.1        # a wait re-checks lock expiry at least this often


class ShareGroups:
    """Share groups of one Log: members, share-partitions, their durable state."""

    def __init__(self, log_, clock: Callable[[], int] = monotonic_ms,
                 defaults: dict | None = None) -> None:
        self._log = log_
        self.clock = clock
        self.defaults = {"lock_duration_ms": DEFAULT_LOCK_DURATION_MS,
                         "delivery_count_limit": DEFAULT_DELIVERY_COUNT_LIMIT,
                         "max_record_locks": DEFAULT_MAX_RECORD_LOCKS,
                         "auto_offset_reset": DEFAULT_AUTO_OFFSET_RESET}
        self.defaults.update(defaults or {})
        self._lock = threading.Lock()
        self._members: dict[str, set[str]] = {}             # group -> member ids
        self._partitions: dict[tuple[str, str, int], SharePartition] = {}
        self._overrides: dict[str, dict] = {}               # group -> log.queue kwargs
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
        """Per-group settings given to ``log.queue`` (share.* names or keyword names)."""
        opts = {}
        for k, v in configs.items():
            if k in _CONFIG_KEYS:
                name, conv = _CONFIG_KEYS[k]
            elif k in self.defaults:
                name, conv = k, type(self.defaults[k])
            else:
                raise InvalidRequestError(f"unknown queue config {k!r}")
            opts[name] = conv(v)
        with self._lock:
            self._overrides.setdefault(group, {}).update(opts)

    def _settings(self, group: str) -> dict:
        out = dict(self.defaults)
        out.update(self._overrides.get(group, {}))
        for k, v in self._log.group_configs.get(group).items():
            if k in _CONFIG_KEYS:
                name, conv = _CONFIG_KEYS[k]
                out[name] = conv(v)
        return out

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
            return sp
        self.wait_loaded()
        self._log.partition(topic, partition)          # UnknownTopicError if absent
        with self._lock:
            sp = self._partitions.get(key)
            if sp is None:
                sp = SharePartition(group, topic, partition, clock=self.clock,
                                    **self._settings(group))
                stored = self.store.state(group, topic, partition)
                if stored is not None:
                    sp.restore(*stored)
                self._partitions[key] = sp
            return sp

    def _persist(self, sp: SharePartition, delta):
        """Write ``delta`` (caller holds ``sp.lock``); if the write fails the change is
        undone, so memory never runs ahead of the log."""
        try:
            return self.store.write(sp.group, sp.topic, sp.partition, delta)
        except BaseException:
            sp.rollback_locked()
            raise

    def acquire(self, group: str, member_id: str, topic: str, partition: int,
                max_records: int) -> list[Acquired]:
        """Acquire up to ``max_records`` records of one partition for a member; the
        acquisition is written (delivery counts) before the runs are returned."""
        self._check_member(group, member_id)
        sp = self.share_partition(group, topic, partition)
        p = self._log.partition(topic, partition)
        with sp.lock:
            runs, delta = sp.acquire(member_id, max_records, p.log_start_offset,
                                     p.log_end_offset)
            self._persist(sp, delta)
        return runs

    def acknowledge(self, group: str, member_id: str, topic: str, partition: int,
                    batches, wait: bool = True):
        """Apply (first, last, AcknowledgeType) batches (all or nothing, see
        SharePartition.acknowledge); returns once durable, or the future with
        ``wait=False``."""
        self._check_member(group, member_id)
        sp = self.share_partition(group, topic, partition)
        with sp.lock:
            fut = self._persist(sp, sp.acknowledge(member_id, batches))
        return fut.result() if wait else fut

    def renew(self, group: str, member_id: str, topic: str, partition: int,
              first: int, last: int) -> int:
        self._check_member(group, member_id)
        return self.share_partition(group, topic, partition).renew(member_id, first, last)

    def stats(self, group: str, topic: str) -> dict[int, dict]:
        out = {}
        for i, p in enumerate(self._log.topic(topic).partitions):
            sp = self.share_partition(group, topic, i)
            with sp.lock:
                s = sp.stats(p.log_end_offset if sp.initialised else None)
                if sp.initialised:
                    self._persist(sp, sp.expire())
            out[i] = s
        return out

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

    def _settle(self, kind: AcknowledgeType) -> None:
        self._queue._coordinator.acknowledge(self._queue.group, self._queue.member_id,
                                             self.topic, self.partition,
                                             [(self.offset, self.offset, kind)])

    def ack(self) -> None:
        self._settle(AcknowledgeType.ACCEPT)

    def release(self) -> None:
        self._settle(AcknowledgeType.RELEASE)

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
        ``wait_ms`` for at least one."""
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
        return out

    def _read(self, p, i: int, run: Acquired) -> list[Message]:
        msgs = []
        offset = max(run.first_offset, p.log_start_offset)
        while offset <= run.last_offset:
            try:
                recs = p.read(offset, max_records=run.last_offset - offset + 1)
            except OffsetOutOfRangeError:
                break                # deleted by retention meanwhile; skipped next time
            if not recs:
                break
            for r in recs:
                if r.offset > run.last_offset:
                    break
                msgs.append(Message(self, i, r, run.delivery_count))
            offset = recs[-1].offset + 1
        return msgs

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
