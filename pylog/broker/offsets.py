"""Committed offsets: (group, topic, partition) → offset, logged to ``__consumer_offsets``.

The store is a dict in memory and a log on disk.  Every commit appends one batch to
partition 0 of the internal topic ``__consumer_offsets`` (same engine, same data
directory, same flush policy as any topic: the default ``flush.ms=1000`` survives
kill -9 of the process; see DESIGN §3 for power loss), then updates the dict.
``load()`` rebuilds the dict by replaying the partition from its log start.

Record format, Kafka's own (GroupMetadataManager: OffsetCommitKey v1, OffsetCommitValue
v3), so Kafka's tooling habits carry over; all big-endian, strings i16-length UTF-8:

    key    version i16 = 1 | group str | topic str | partition i32
    value  version i16 = 3 | offset i64 | leader_epoch i32 | metadata str | commit_ts i64
    value  null            = tombstone: the offset was deleted

Records with another key version (Kafka's group-metadata key v2) are skipped on load.

Keeping the topic small: compaction (``cleanup.policy=compact``, storage/cleaner.py),
as Kafka keeps its own ``__consumer_offsets``.  Every record is a full "key = value"
assignment and a deletion is a tombstone, so replaying what the cleaner leaves (the
latest record per key; tombstones until ``delete.retention.ms``) yields exactly the
current map.  The topic is created with ``segment.bytes`` = R / 8 (R = 4 MiB by
default) so sealed segments, the only ones the cleaner touches, come often.

Older data directories hold the topic as ``cleanup.policy=delete`` with snapshots
(every live entry appended again once R / 4 bytes were written since the last one)
and ``retention.bytes`` = R.  Their records replay the same way, so the topic is
switched to ``compact`` when it is opened, and snapshots are written only while
it is not compacted.

Thread-safe: one lock around the dict and the appends (commits come from the event
loop and from embedded consumers' threads).
"""
from __future__ import annotations

import logging
import struct
import threading
import time
from typing import Iterable, NamedTuple

from pylog.broker.strings import get_str, put_str
from pylog.errors import PylogError

__all__ = ["OFFSETS_TOPIC", "Committed", "OffsetStore", "encode_key", "encode_value",
           "decode_key", "decode_value"]

OFFSETS_TOPIC = "__consumer_offsets"
KEY_VERSION = 1
VALUE_VERSION = 3
DEFAULT_RETENTION_BYTES = 4 << 20      # replay ≤ ~4.5 MiB (~50k records, < 1 s)
# Per-record on-disk overhead beyond key + value bytes (varint lengths, deltas,
# attributes: ≤ 20) and per-batch overhead (61-byte header), counted generously so
# the byte estimate behind the snapshot trigger never undercounts.
_RECORD_OVERHEAD = 32
_BATCH_OVERHEAD = 64
_SNAPSHOT_BATCH_BYTES = 256 << 10      # well under max.message.bytes (1 MiB)

_H = struct.Struct(">h")
_I = struct.Struct(">i")
_VALUE_HEAD = struct.Struct(">hqi")    # version, offset, leader epoch
_Q = struct.Struct(">q")

log = logging.getLogger("pylog.groups")


class Committed(NamedTuple):
    """One committed offset as OffsetFetch returns it."""
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = -1


# -- record codec -----------------------------------------------------------------------
def encode_key(group: str, topic: str, partition: int) -> bytes:
    parts: list = [_H.pack(KEY_VERSION)]
    put_str(parts, group)
    put_str(parts, topic)
    parts.append(_I.pack(partition))
    return b"".join(parts)


def decode_key(buf: bytes) -> tuple[str, str, int] | None:
    """(group, topic, partition), or None for a key version we do not keep."""
    (version,) = _H.unpack_from(buf, 0)
    if version not in (0, 1):
        return None
    group, pos = get_str(buf, 2)
    topic, pos = get_str(buf, pos)
    (partition,) = _I.unpack_from(buf, pos)
    return group, topic, partition


def encode_value(c: Committed) -> bytes:
    parts: list = [_VALUE_HEAD.pack(VALUE_VERSION, c.offset, c.leader_epoch)]
    put_str(parts, c.metadata or "")
    parts.append(_Q.pack(c.commit_timestamp))
    return b"".join(parts)


def decode_value(buf: bytes) -> Committed:
    (version,) = _H.unpack_from(buf, 0)
    if version == 3:
        _, offset, epoch = _VALUE_HEAD.unpack_from(buf, 0)
        metadata, pos = get_str(buf, _VALUE_HEAD.size)
    elif version in (0, 1):            # Kafka's older values: no leader epoch
        (offset,) = _Q.unpack_from(buf, 2)
        epoch = -1
        metadata, pos = get_str(buf, 10)
    else:
        raise ValueError(f"offset value version {version} is not supported")
    (ts,) = _Q.unpack_from(buf, pos)
    return Committed(offset, epoch, metadata, ts)


# -- the store ----------------------------------------------------------------------------
class OffsetStore:
    """Committed offsets of every group, durable in ``__consumer_offsets``."""

    def __init__(self, log_, retention_bytes: int = DEFAULT_RETENTION_BYTES) -> None:
        self._log = log_
        self._lock = threading.Lock()
        self._groups: dict[str, dict[tuple[str, int], Committed]] = {}
        self._retention_bytes = retention_bytes
        self._live_bytes = 0            # estimated on-disk size of one snapshot
        self._since_snapshot = 0        # estimated bytes appended since the last one
        self._partition = None
        self.loaded = False
        self.snapshots = 0              # snapshots written since open (for tests/metrics)

    # -- startup ------------------------------------------------------------------------
    def load(self) -> int:
        """Create the topic if needed and replay it; returns the records replayed."""
        p = self._open_partition()
        groups: dict[str, dict[tuple[str, int], Committed]] = {}
        n = skipped = replayed_bytes = 0
        offset = p.log_start_offset
        while True:
            recs = p.read(offset, max_records=10_000, max_bytes=4 << 20)
            if not recs:
                break
            for r in recs:
                n += 1
                try:
                    skipped += self._apply(groups, r.key, r.value)
                except (ValueError, struct.error, UnicodeDecodeError) as exc:
                    skipped += 1
                    log.warning("%s offset %d: undecodable record skipped (%s)",
                                OFFSETS_TOPIC, r.offset, exc)
                replayed_bytes += _record_size(r.key, r.value)
            offset = recs[-1].offset + 1
        with self._lock:
            self._groups = groups
            self._live_bytes = sum(_record_size(encode_key(g, t, i), encode_value(c))
                                   for g, offs in groups.items() for (t, i), c in offs.items())
            self._since_snapshot = replayed_bytes
            self.loaded = True
        log.info("loaded %d committed offsets of %d groups from %d records of %s",
                 sum(len(v) for v in groups.values()), len(groups), n, OFFSETS_TOPIC)
        return n

    def _open_partition(self):
        if not self._log.has_topic(OFFSETS_TOPIC):
            try:
                self._log.create_topic(OFFSETS_TOPIC, 1, self._topic_config())
            except Exception:           # noqa: BLE001 -- created meanwhile by someone else
                if not self._log.has_topic(OFFSETS_TOPIC):
                    raise
        topic = self._log.topic(OFFSETS_TOPIC)
        if "compact" not in topic.config.cleanup_policy:
            # written by an older pylog (snapshots + retention): compact from now on
            self._log.alter_topic_config(OFFSETS_TOPIC, {"cleanup.policy": "compact"})
            log.info("%s: cleanup.policy switched from delete to compact", OFFSETS_TOPIC)
        self._partition = topic.partition(0)
        self._retention_bytes = max(self._retention_bytes,
                                    self._log.topic(OFFSETS_TOPIC).config.retention_bytes)
        return self._partition

    @property
    def _compacted(self) -> bool:
        return "compact" in self._partition.config.cleanup_policy

    def _topic_config(self) -> dict:
        r = self._retention_bytes
        return {"retention.bytes": r, "segment.bytes": max(4096, r // 8),
                "retention.ms": -1, "cleanup.policy": "compact"}

    @staticmethod
    def _apply(groups: dict, key: bytes | None, value: bytes | None) -> int:
        """Apply one record to ``groups``; 1 if it was skipped."""
        if key is None:
            return 1
        k = decode_key(key)
        if k is None:
            return 1
        group, topic, partition = k
        if value is None:
            offs = groups.get(group)
            if offs is not None:
                offs.pop((topic, partition), None)
                if not offs:
                    del groups[group]
            return 0
        groups.setdefault(group, {})[(topic, partition)] = decode_value(value)
        return 0

    # -- reads --------------------------------------------------------------------------
    def fetch(self, group: str, topic: str, partition: int) -> Committed | None:
        offs = self._groups.get(group)
        return None if offs is None else offs.get((topic, partition))

    def group_offsets(self, group: str) -> dict[tuple[str, int], Committed]:
        with self._lock:
            return dict(self._groups.get(group, {}))

    def has_group(self, group: str) -> bool:
        return group in self._groups

    def group_ids(self) -> list[str]:
        with self._lock:
            return list(self._groups)

    def lag(self, group: str | None = None) -> list[tuple[str, str, int, int, int, int]]:
        """(group, topic, partition, committed, log end, lag) rows, sorted."""
        out = []
        groups = [group] if group is not None else sorted(self.group_ids())
        for g in groups:
            for (topic, i), c in sorted(self.group_offsets(g).items()):
                if not self.partition_exists(topic, i):
                    continue                 # topic deleted since the commit
                leo = self._log.topic(topic).partition(i).log_end_offset
                out.append((g, topic, i, c.offset, leo, max(0, leo - c.offset)))
        return out

    def partition_exists(self, topic: str, partition: int) -> bool:
        try:
            self._log.topic(topic).partition(partition)
        except PylogError:                   # unknown topic or partition
            return False
        return True

    # -- writes -------------------------------------------------------------------------
    def commit(self, group: str, entries: Iterable[tuple[str, int, Committed]]) -> None:
        """Append the entries as one batch, then make them visible.

        StorageError from the engine propagates (nothing is updated then).
        """
        entries = list(entries)
        if not entries:
            return
        now = int(time.time() * 1000)
        keys, values = [], []
        for topic, partition, c in entries:
            if c.commit_timestamp < 0:
                c = c._replace(commit_timestamp=now)
            keys.append(encode_key(group, topic, partition))
            values.append(encode_value(c))
        with self._lock:
            self._partition.append_batch(values, keys)
            offs = self._groups.setdefault(group, {})
            for (topic, partition, _), k, v in zip(entries, keys, values):
                size = _record_size(k, v)
                old = offs.get((topic, partition))
                if old is None:
                    self._live_bytes += size
                offs[(topic, partition)] = decode_value(v)
                self._since_snapshot += size
            self._since_snapshot += _BATCH_OVERHEAD
            if self._since_snapshot > self._retention_bytes // 4 and not self._compacted:
                self._snapshot_locked()

    def delete_group(self, group: str) -> int:
        """Tombstone every committed offset of ``group`` (Kafka's DeleteGroups);
        returns how many were deleted.  StorageError propagates (nothing changes)."""
        with self._lock:
            offs = self._groups.get(group)
            if not offs:
                return 0
            keys = [encode_key(group, t, i) for t, i in offs]
            self._partition.append_batch([None] * len(keys), keys)
            del self._groups[group]
            self._live_bytes -= sum(_record_size(k, encode_value(c))
                                    for k, c in zip(keys, offs.values()))
            self._since_snapshot += sum(_record_size(k, None) for k in keys) + _BATCH_OVERHEAD
            return len(keys)

    def _snapshot_locked(self) -> None:
        """Append every live entry again (see the module doc), then apply retention."""
        items = [(encode_key(g, t, i), encode_value(c))
                 for g, offs in self._groups.items() for (t, i), c in offs.items()]
        live = sum(_record_size(k, v) for k, v in items) + _BATCH_OVERHEAD
        if live * 8 > self._retention_bytes:
            self._grow_retention_locked(live * 8)
        keys, values, size = [], [], 0
        for k, v in items:
            keys.append(k)
            values.append(v)
            size += len(k) + len(v) + _RECORD_OVERHEAD
            if size >= _SNAPSHOT_BATCH_BYTES:
                self._partition.append_batch(values, keys)
                keys, values, size = [], [], 0
        if keys:
            self._partition.append_batch(values, keys)
        self._live_bytes = live
        self._since_snapshot = live + _BATCH_OVERHEAD * (1 + live // _SNAPSHOT_BATCH_BYTES)
        self.snapshots += 1
        deleted = self._partition.enforce_retention()
        log.info("%s snapshot: %d entries, %d bytes; %d old segments deleted",
                 OFFSETS_TOPIC, len(items), live, deleted)

    def _grow_retention_locked(self, r: int) -> None:
        self._retention_bytes = r
        self._log.alter_topic_config(OFFSETS_TOPIC, {"retention.bytes": r})
        log.warning("%s: live offsets need retention.bytes=%d (raised)", OFFSETS_TOPIC, r)

    def delete_offsets(self, group: str, partitions: Iterable[tuple[str, int]]) -> int:
        """Tombstone the committed offsets of ``group`` for ``partitions`` (OffsetDelete,
        expiry); returns how many existed.  StorageError propagates (nothing changes)."""
        with self._lock:
            offs = self._groups.get(group) or {}
            found = [tp for tp in dict.fromkeys(partitions) if tp in offs]
            if not found:
                return 0
            keys = [encode_key(group, t, i) for t, i in found]
            self._partition.append_batch([None] * len(keys), keys)
            for tp, k in zip(found, keys):
                self._live_bytes -= _record_size(k, encode_value(offs.pop(tp)))
            if not offs:
                del self._groups[group]
            self._since_snapshot += sum(_record_size(k, None) for k in keys) + _BATCH_OVERHEAD
            return len(found)


def _record_size(key: bytes | None, value: bytes | None) -> int:
    return (len(key) if key else 0) + (len(value) if value else 0) + _RECORD_OVERHEAD
