"""Share-partition state, durable in the internal topic ``__share_group_state``.

Every change a share-partition makes (share_state.Delta) is appended as one record to
partition 0 of ``__share_group_state`` (same engine, data directory and flush policy as
any topic, like ``__consumer_offsets``); ``load()`` replays the partition and rebuilds
every share-partition.  Kafka's ShareCoordinator keeps the same state as ShareSnapshot
and ShareUpdate records; pylog's records follow their shape in a compact struct
(FORMAT.md, "Share-group state"), all big-endian, strings i16-length UTF-8:

    key    type i16 (0 = snapshot, 1 = update) | group str | topic str | partition i32
    value  version i16 = 0 | start_offset i64 | n i32 |
           n × (first_offset i64 | last_offset i64 | state i8 | delivery_count i16)

A snapshot is the whole state of one share-partition (its start offset and every
in-flight run); an update sets the start offset and overwrites the runs it names.
state is Kafka's RecordState id: 0 available, 1 acquired, 2 acknowledged, 4 archived.
ACQUIRED is written so that a record's delivery count survives a crash; on load it
becomes AVAILABLE with that count (locks do not survive the process).

Keeping it small, as OffsetStore does: the store keeps the persisted image of every
share-partition; when the bytes appended since the last snapshot pass
``retention.bytes / 4`` it appends a snapshot of every share-partition from that image,
then applies retention (``retention.bytes`` 4 MiB, ``segment.bytes`` = 1/8 of it).
Replaying any suffix that holds a complete snapshot yields the current state, so load
reads at most ~retention.bytes + one segment.

Durability: ``write`` appends and returns ``durable_future(last offset)``; an
acknowledgement is answered after it resolves (with the default ``flush.ms`` that is at
once; with ``flush.messages=1`` after the flusher's barrier).

Thread-safe: one lock around the image and the appends.  Lock order: a
share-partition's lock, then this store's lock.
"""
from __future__ import annotations

import logging
import struct
import threading
from concurrent.futures import Future
from typing import NamedTuple

from pylog.broker.share_state import Delta
from pylog.broker.strings import get_str, put_str

__all__ = ["SHARE_STATE_TOPIC", "PersistedState", "ShareStore", "encode_key",
           "decode_key", "encode_value", "decode_value", "SNAPSHOT", "UPDATE"]

SHARE_STATE_TOPIC = "__share_group_state"
SNAPSHOT = 0
UPDATE = 1
VALUE_VERSION = 0
DEFAULT_RETENTION_BYTES = 4 << 20
_RECORD_OVERHEAD = 32
_BATCH_OVERHEAD = 64
_SNAPSHOT_BATCH_BYTES = 256 << 10

_H = struct.Struct(">h")
_I = struct.Struct(">i")
_HEAD = struct.Struct(">hqi")          # version, start offset, run count
_RUN = struct.Struct(">qqbh")          # first, last, state, delivery count

log = logging.getLogger("pylog.share")


class PersistedState(NamedTuple):
    start_offset: int
    runs: tuple                        # (first, last, state, delivery count)


# -- record codec -----------------------------------------------------------------------
def encode_key(kind: int, group: str, topic: str, partition: int) -> bytes:
    parts: list = [_H.pack(kind)]
    put_str(parts, group)
    put_str(parts, topic)
    parts.append(_I.pack(partition))
    return b"".join(parts)


def decode_key(buf: bytes) -> tuple[int, str, str, int]:
    (kind,) = _H.unpack_from(buf, 0)
    if kind not in (SNAPSHOT, UPDATE):
        raise ValueError(f"unknown share state key type {kind}")
    group, pos = get_str(buf, 2)
    topic, pos = get_str(buf, pos)
    (partition,) = _I.unpack_from(buf, pos)
    return kind, group, topic, partition


def encode_value(start_offset: int, runs) -> bytes:
    parts = [_HEAD.pack(VALUE_VERSION, start_offset, len(runs))]
    parts.extend(_RUN.pack(*r) for r in runs)
    return b"".join(parts)


def decode_value(buf: bytes) -> PersistedState:
    version, start, n = _HEAD.unpack_from(buf, 0)
    if version != VALUE_VERSION:
        raise ValueError(f"share state value version {version} is not supported")
    if n < 0 or _HEAD.size + n * _RUN.size != len(buf):
        raise ValueError(f"{n} runs do not fit a {len(buf)}-byte value")
    runs = tuple(_RUN.unpack_from(buf, _HEAD.size + i * _RUN.size) for i in range(n))
    for first, last, state, count in runs:
        if last < first or state not in (0, 1, 2, 4) or count < 0:
            raise ValueError(f"bad run {first}..{last} state {state} count {count}")
    return PersistedState(start, runs)


class _Image:
    """The persisted state of one share-partition: start offset and offset → (state,
    count) for offsets at or above it that are not plain AVAILABLE/0."""
    __slots__ = ("start", "entries")

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.entries: dict[int, tuple[int, int]] = {}

    def apply(self, start: int, runs, replace: bool) -> None:
        if replace:
            self.entries = {}
        if start != self.start:
            self.start = start
            for o in [o for o in self.entries if o < start]:
                del self.entries[o]
        for first, last, state, count in runs:
            for o in range(max(first, start), last + 1):
                if state == 0 and count == 0:
                    self.entries.pop(o, None)
                else:
                    self.entries[o] = (state, count)

    def runs(self) -> tuple:
        out: list = []
        for o in sorted(self.entries):
            item = self.entries[o]
            if out and out[-1][1] == o - 1 and (out[-1][2], out[-1][3]) == item:
                out[-1][1] = o
            else:
                out.append([o, o, *item])
        return tuple(tuple(r) for r in out)

    def triples(self) -> list[tuple[int, int, int]]:
        return [(o, s, c) for o, (s, c) in sorted(self.entries.items())]


# -- the store ----------------------------------------------------------------------------
class ShareStore:
    """Durable state of every share-partition, in ``__share_group_state``."""

    def __init__(self, log_, retention_bytes: int = DEFAULT_RETENTION_BYTES) -> None:
        self._log = log_
        self._lock = threading.Lock()
        self._images: dict[tuple[str, str, int], _Image] = {}
        self._retention_bytes = retention_bytes
        self._since_snapshot = 0
        self._partition = None
        self.loaded = False
        self.snapshots = 0
        self.skipped = 0                # undecodable records seen by load
        self._sync: _Syncer | None = None

    # -- startup ------------------------------------------------------------------------
    def load(self) -> int:
        """Create the topic if needed and replay it; returns the records replayed."""
        p = self._open_partition()
        images: dict[tuple[str, str, int], _Image] = {}
        n = replayed = 0
        offset = p.log_start_offset
        while True:
            recs = p.read(offset, max_records=10_000, max_bytes=4 << 20)
            if not recs:
                break
            for r in recs:
                n += 1
                replayed += _record_size(r.key, r.value)
                try:
                    kind, group, topic, partition = decode_key(r.key or b"")
                    if r.value is None:             # a deleted share-partition
                        images.pop((group, topic, partition), None)
                        continue
                    state = decode_value(r.value)
                except (ValueError, struct.error, UnicodeDecodeError) as exc:
                    self.skipped += 1
                    log.warning("%s offset %d: undecodable record skipped (%s)",
                                SHARE_STATE_TOPIC, r.offset, exc)
                    continue
                img = images.setdefault((group, topic, partition), _Image(state.start_offset))
                img.apply(state.start_offset, state.runs, kind == SNAPSHOT)
            offset = recs[-1].offset + 1
        with self._lock:
            self._images = images
            self._since_snapshot = replayed
            self.loaded = True
        log.info("loaded %d share-partitions from %d records of %s",
                 len(images), n, SHARE_STATE_TOPIC)
        return n

    def _open_partition(self):
        if not self._log.has_topic(SHARE_STATE_TOPIC):
            r = self._retention_bytes
            try:
                self._log.create_topic(SHARE_STATE_TOPIC, 1, {
                    "retention.bytes": r, "segment.bytes": max(4096, r // 8),
                    "retention.ms": -1, "cleanup.policy": "delete"})
            except Exception:           # noqa: BLE001 -- created meanwhile by someone else
                if not self._log.has_topic(SHARE_STATE_TOPIC):
                    raise
        topic = self._log.topic(SHARE_STATE_TOPIC)
        self._partition = topic.partition(0)
        self._retention_bytes = max(self._retention_bytes, topic.config.retention_bytes)
        return self._partition

    # -- reads --------------------------------------------------------------------------
    def state(self, group: str, topic: str, partition: int
              ) -> tuple[int, list[tuple[int, int, int]]] | None:
        """(start offset, [(offset, state, delivery count)]) as persisted, or None."""
        with self._lock:
            img = self._images.get((group, topic, partition))
            return None if img is None else (img.start, img.triples())

    def keys(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return list(self._images)

    # -- writes -------------------------------------------------------------------------
    def write(self, group: str, topic: str, partition: int, delta: Delta,
              sync: bool = False) -> Future:
        """Append ``delta`` as one update record; the future resolves once it is as
        durable as the state topic's flush policy promises — or, with ``sync`` (the
        share-partition's topic has ``flush.messages=1``), once it is behind an
        fdatasync of the state topic, shared by every write waiting meanwhile (group
        commit, ``_Syncer``).  Never blocks on I/O.  StorageError propagates."""
        if not delta:
            done: Future = Future()
            done.set_result(None)
            return done
        key = encode_key(UPDATE, group, topic, partition)
        value = encode_value(delta.start_offset, delta.ranges)
        with self._lock:
            p = self._partition
            last = p.append_batch([value], [key])
            img = self._images.get((group, topic, partition))
            if img is None:
                img = self._images[(group, topic, partition)] = _Image(delta.start_offset)
            img.apply(delta.start_offset, delta.ranges, False)
            self._since_snapshot += _record_size(key, value) + _BATCH_OVERHEAD
            if self._since_snapshot > self._retention_bytes // 4:
                last = self._snapshot_locked()
        if sync:
            return self._syncer(p).after(last)
        return p.durable_future(last)

    def _syncer(self, p) -> "_Syncer":
        s = self._sync
        if s is None or s.partition is not p:
            with self._lock:
                if self._sync is None or self._sync.partition is not p:
                    self._sync = _Syncer(p)
                s = self._sync
        return s

    def delete(self, group: str, topic: str, partition: int) -> Future:
        """Forget a share-partition's state (a tombstone: key, null value); the future
        resolves once it is durable.  Its next use starts afresh."""
        key = encode_key(UPDATE, group, topic, partition)
        with self._lock:
            p = self._partition
            last = p.append_batch([None], [key])
            self._images.pop((group, topic, partition), None)
        return p.durable_future(last)

    def _snapshot_locked(self) -> int:
        """Append a snapshot of every share-partition; returns the last offset written."""
        keys, values, size, last, total = [], [], 0, -1, 0
        p = self._partition
        for (g, t, i), img in self._images.items():
            k = encode_key(SNAPSHOT, g, t, i)
            v = encode_value(img.start, img.runs())
            keys.append(k)
            values.append(v)
            size += _record_size(k, v)
            if size >= _SNAPSHOT_BATCH_BYTES:
                last = p.append_batch(values, keys) + len(keys) - 1
                total += size
                keys, values, size = [], [], 0
        if keys:
            last = p.append_batch(values, keys) + len(keys) - 1
            total += size
        self._since_snapshot = total + _BATCH_OVERHEAD
        if total * 8 > self._retention_bytes:
            self._retention_bytes = total * 8
            self._log.alter_topic_config(SHARE_STATE_TOPIC,
                                         {"retention.bytes": self._retention_bytes})
        self.snapshots += 1
        deleted = p.enforce_retention()
        log.info("%s snapshot: %d share-partitions, %d bytes; %d old segments deleted",
                 SHARE_STATE_TOPIC, len(self._images), total, deleted)
        return last

    def snapshot(self) -> None:
        """Write a snapshot now (tests; a later size policy may call it)."""
        with self._lock:
            self._snapshot_locked()


class _Syncer:
    """Group commit for ``write(sync=True)``: one thread runs a barrier on the state
    partition for every write waiting since the last one (the first waiter does not
    wait for others: a lone ack costs one fdatasync)."""

    def __init__(self, partition) -> None:
        self.partition = partition
        self._cond = threading.Condition()
        self._waiting: list[Future] = []
        threading.Thread(target=self._run, name="pylog-share-sync", daemon=True).start()

    def after(self, _offset: int) -> Future:
        fut: Future = Future()
        with self._cond:
            self._waiting.append(fut)
            self._cond.notify()
        return fut

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                batch, self._waiting = self._waiting, []
            try:
                self.partition.flush()
            except Exception as exc:   # noqa: BLE001 -- every waiter learns it
                for f in batch:
                    f.set_exception(exc)
            else:
                for f in batch:
                    f.set_result(None)


def _record_size(key: bytes | None, value: bytes | None) -> int:
    return (len(key) if key else 0) + (len(value) if value else 0) + _RECORD_OVERHEAD
