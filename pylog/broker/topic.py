"""``Topic``: a named set of partitions sharing one TopicConfig, and its topic id.

The id (KIP-516) lives in each partition directory's ``partition.metadata``
(storage/partition_metadata.py); a topic from before ids gets one on open.  Appends
route by key with Kafka's murmur2 (``partition_for_key``); a null key goes round-robin.
"""
from __future__ import annotations

import logging
import time
import uuid

from pylog.config import TopicConfig
from pylog.errors import StorageError, UnknownTopicError
from pylog.partitioner import RoundRobinPartitioner, partition_for_key
from pylog.records import RecordMetadata
from pylog.storage import partition_metadata
from pylog.storage.log import PartitionLog

__all__ = ["Topic"]

_log = logging.getLogger("pylog.manager")
_tuple_new = tuple.__new__       # RecordMetadata without its Python-level __new__


def _topic_id_in(directory) -> uuid.UUID | None:
    """The id a partition directory carries; None (logged) for a damaged file, which
    is then rewritten with the topic's id: it holds nothing else."""
    try:
        return partition_metadata.read_topic_id(directory)
    except StorageError as e:
        _log.warning("%s; rewriting it with the topic's id", e)
        return None


def _describe_ids(found: dict) -> str:
    return ", ".join(f"{partition_metadata.format_topic_id(t)} (partitions "
                     f"{sorted(ps)})" for t, ps in found.items())


class Topic:
    """A named set of partitions sharing one TopicConfig."""

    def __init__(self, name: str, config: TopicConfig, partitions: list[PartitionLog],
                 topic_id: uuid.UUID | None = None):
        self.name = name
        self.config = config
        self._partitions = partitions
        self._null_key = RoundRobinPartitioner()
        self.topic_id = topic_id or self._load_topic_id()

    def _load_topic_id(self) -> uuid.UUID:
        """The id the partition directories carry (``partition.metadata``); a new one,
        written to each directory, when none has one (a topic created by pylog < 0.2)."""
        found = {}
        for p in self._partitions:
            tid = _topic_id_in(p.directory)
            if tid is not None:
                found.setdefault(tid, []).append(p.partition)
        if len(found) > 1:
            raise StorageError(f"topic {self.name!r}: partition directories carry different "
                               f"topic ids {_describe_ids(found)} (directories of a deleted "
                               "topic of the same name?); pylog-fsck reports them")
        topic_id = next(iter(found)) if found else partition_metadata.new_topic_id()
        self._write_topic_id(topic_id)
        return topic_id

    def _write_topic_id(self, topic_id: uuid.UUID) -> None:
        for p in self._partitions:
            if _topic_id_in(p.directory) is None:
                partition_metadata.write_topic_id(p.directory, topic_id)

    @property
    def num_partitions(self) -> int:
        return len(self._partitions)

    @property
    def partitions(self) -> list[PartitionLog]:
        return list(self._partitions)

    def partition(self, i: int) -> PartitionLog:
        """Partition ``i``; UnknownTopicError if there is no such partition."""
        if not isinstance(i, int) or not 0 <= i < len(self._partitions):
            raise UnknownTopicError(f"topic {self.name!r} has no partition {i!r} "
                                    f"({len(self._partitions)} partitions)")
        return self._partitions[i]

    def partition_for(self, key: bytes | None) -> int:
        """Kafka's default partitioner: murmur2 of the key; null keys round-robin."""
        n = len(self._partitions)
        if key is None:
            return self._null_key.partition(n)
        return partition_for_key(key, n)

    def append(self, value, key=None, headers=None, timestamp=None,
               partition: int | None = None) -> RecordMetadata:
        """Append one record, routed by key unless ``partition`` is given."""
        if partition is None:
            parts = self._partitions
            i = (self._null_key.partition(len(parts)) if key is None
                 else partition_for_key(key, len(parts)))
            p = parts[i]
        else:
            i, p = partition, self.partition(partition)
        ts = time.time_ns() // 1_000_000 if timestamp is None else timestamp
        offset = p.append(value, key, headers, ts)
        if p._log_append_time:
            ts = p.read(offset, 1)[0].timestamp        # the broker's clock, as stored
        return _tuple_new(RecordMetadata, (self.name, i, offset, ts))

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, partitions={len(self._partitions)})"
