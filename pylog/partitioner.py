"""Partition choice exactly as Kafka's default partitioner.

A keyed record goes to ``toPositive(murmur2(key)) % numPartitions`` (Kafka's
``BuiltInPartitioner.partitionForKey``), so a key lands in the same partition
whether a Kafka client or pylog routed it.  Null keys spread across partitions:
round-robin, or "sticky" (KIP-480/794: stay on one partition for a run of records,
then move on) which keeps batches large when records arrive one at a time.
"""
from __future__ import annotations

import itertools
import random
import struct
import threading

__all__ = ["murmur2", "partition_for_key", "RoundRobinPartitioner",
           "StickyPartitioner"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: MurmurHash2, seed 0x9747b28c, as a signed Java int.

    Java does this in 32-bit signed ints with wrap-around; we do it in unsigned
    arithmetic masked to 32 bits (the same bits) and convert to signed at the end.
    """
    data = bytes(data)
    length = len(data)
    h = (_SEED ^ length) & _MASK
    length4 = length & ~3
    for k in struct.unpack_from("<%dI" % (length4 >> 2), data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra:                   # Java's fall-through switch on length % 4
        if extra == 3:
            h ^= data[length4 + 2] << 16
        if extra >= 2:
            h ^= data[length4 + 1] << 8
        h ^= data[length4]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """Kafka's keyed partition: ``(murmur2(key) & 0x7fffffff) % num_partitions``."""
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, not {num_partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


class RoundRobinPartitioner:
    """Null-key records to partitions 0, 1, ..., n-1, 0, ... (thread-safe)."""

    def __init__(self, start: int | None = None):
        self._counter = itertools.count(random.randrange(1 << 16) if start is None
                                        else start)

    def partition(self, num_partitions: int) -> int:
        # next() on itertools.count is atomic under the GIL: no lock needed.
        return next(self._counter) % num_partitions


class StickyPartitioner:
    """Null-key records stay on one partition for ``records_per_switch`` records.

    Kafka's producer switches when a batch fills (batch.size, 16 KiB); a record count
    is the embedded equivalent.  The next partition is chosen at random among the
    others, as Kafka's does, so producers do not move in lock-step.
    """

    def __init__(self, records_per_switch: int = 100):
        if records_per_switch < 1:
            raise ValueError("records_per_switch must be >= 1")
        self.records_per_switch = records_per_switch
        self._lock = threading.Lock()
        self._current = -1
        self._left = 0

    def partition(self, num_partitions: int) -> int:
        with self._lock:
            if self._left <= 0 or self._current >= num_partitions:
                self._current = self._pick(num_partitions)
                self._left = self.records_per_switch
            self._left -= 1
            return self._current

    def _pick(self, n: int) -> int:
        if n == 1:
            return 0
        choice = random.randrange(n - 1)
        return choice + 1 if 0 <= self._current <= choice else choice
