"""Idempotent-producer state: producer ids, epochs and the last batches per partition.

Kafka's rules (AK ``ProducerStateManager``, ``ProducerAppendInfo``; research/
kafka-protocol.md §1.10), kept here for one broker:

- ``InitProducerId`` hands out a producer id that is never reused, with epoch 0.
  Ids are reserved in blocks of ``ID_BLOCK``; the end of the reserved block is
  written to ``<data>/producer-id-high-water`` (tmp → fsync → rename → fsync dir)
  *before* any id of the block is handed out, so a crash can skip ids but never
  repeat one.  One small fsync per 1,000 producers is done on the caller's
  thread; it is rare enough not to matter.
- Per (topic, partition) and producer id the broker keeps the epoch and the
  metadata of the last ``BATCHES_TO_RETAIN`` = 5 batches (Kafka's
  ``NUM_BATCHES_TO_RETAIN``; also the clients' max in-flight requests).
- A batch whose (epoch, first sequence, last sequence) matches a retained batch
  is a retry: it is not written again and is acknowledged with the original
  base offset.
- Otherwise its first sequence must follow the last one (``inSequence``:
  last + 1, or 0 after INT32_MAX), else OUT_OF_ORDER_SEQUENCE_NUMBER (45).  A
  lower epoch is INVALID_PRODUCER_EPOCH (47); a higher epoch must start at 0.
  A producer id with no state on the partition (new, or its batches were
  deleted by retention) is accepted at any sequence, as Kafka does.
- After a restart the state of a partition is rebuilt, on first use, from the
  batch headers in the log (``PartitionLog.iter_batch_headers``; about 1 s per
  100,000 batches, so the server runs it in a worker thread for large partitions).

Id allocation is thread-safe (embedded transactions allocate from their threads); the
per-partition states are not: the server uses them from the event-loop thread only, where the
check → append → update sequence of one Produce runs without interleaving (only
``PartitionProducerState.rebuild`` may run in a worker thread; its result is
installed on the loop thread).
"""
from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path
from typing import NamedTuple

from pylog.errors import InvalidProducerEpochError, OutOfOrderSequenceError

__all__ = ["BatchMetadata", "PartitionProducerState", "ProducerStateManager",
           "next_sequence", "BATCHES_TO_RETAIN", "ID_BLOCK", "HIGH_WATER_FILE"]

BATCHES_TO_RETAIN = 5
ID_BLOCK = 1000
HIGH_WATER_FILE = "producer-id-high-water"
INT32_MAX = 2**31 - 1
_CONTROL_BIT = 0x20


def next_sequence(seq: int, increment: int) -> int:
    """``seq + increment`` wrapping past INT32_MAX to 0 (Kafka's incrementSequence)."""
    if seq > INT32_MAX - increment:
        return increment - (INT32_MAX - seq) - 1
    return seq + increment


class BatchMetadata(NamedTuple):
    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int
    timestamp: int


class _ProducerEntry:
    __slots__ = ("epoch", "batches")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.batches: deque[BatchMetadata] = deque(maxlen=BATCHES_TO_RETAIN)


class PartitionProducerState:
    """Producer entries of one partition (event-loop thread only)."""

    __slots__ = ("producers",)

    def __init__(self) -> None:
        self.producers: dict[int, _ProducerEntry] = {}

    def check(self, producer_id: int, epoch: int, first_seq: int,
              last_seq: int) -> BatchMetadata | None:
        """Validate a batch before it is appended.

        Returns the retained batch it duplicates (answer with its offsets, write
        nothing) or None (append it, then call ``update``).  Raises
        InvalidProducerEpochError or OutOfOrderSequenceError.
        """
        entry = self.producers.get(producer_id)
        if entry is None:
            return None
        if epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"producer {producer_id} epoch {epoch} is older than {entry.epoch}")
        if epoch > entry.epoch:
            if first_seq != 0:
                raise OutOfOrderSequenceError(
                    f"producer {producer_id} new epoch {epoch} starts at sequence "
                    f"{first_seq}, expected 0")
            return None
        for batch in entry.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        last = entry.batches[-1].last_seq if entry.batches else None
        if last is not None and first_seq != next_sequence(last, 1):
            raise OutOfOrderSequenceError(
                f"producer {producer_id} epoch {epoch}: sequence {first_seq} does not "
                f"follow {last}")
        return None

    def update(self, producer_id: int, epoch: int, first_seq: int, last_seq: int,
               base_offset: int, last_offset: int, timestamp: int) -> None:
        """Record an appended batch (called after the append succeeded)."""
        entry = self.producers.get(producer_id)
        if entry is None or epoch > entry.epoch:
            entry = self.producers[producer_id] = _ProducerEntry(epoch)
        entry.batches.append(BatchMetadata(first_seq, last_seq, base_offset, last_offset,
                                           timestamp))

    @classmethod
    def rebuild(cls, partition_log) -> "PartitionProducerState":
        """State from the batch headers of a partition's log (after a restart)."""
        state = cls()
        for h in partition_log.iter_batch_headers():
            if h.producer_id < 0 or h.attributes & _CONTROL_BIT:
                continue
            state.update(h.producer_id, h.producer_epoch, h.base_sequence,
                         next_sequence(h.base_sequence, h.last_offset_delta),
                         h.base_offset, h.base_offset + h.last_offset_delta,
                         h.max_timestamp)
        return state


class ProducerStateManager:
    """Producer id allocation and the per-partition states (event-loop thread only)."""

    def __init__(self, data_dir: str | os.PathLike | None) -> None:
        self._path = Path(data_dir) / HIGH_WATER_FILE if data_dir is not None else None
        self._next_id = self._load_high_water()
        self._reserved_end = self._next_id
        self._id_lock = threading.Lock()
        self._partitions: dict[tuple[str, int], PartitionProducerState] = {}
        # Rebuilds running in a worker thread, by (topic, partition); the server keeps its
        # futures here so every request for the partition waits for the same one.
        self.rebuilding: dict[tuple[str, int], object] = {}

    def _load_high_water(self) -> int:
        if self._path is None or not self._path.exists():
            return 0
        text = self._path.read_text().strip()
        try:
            value = int(text)
        except ValueError:
            # A torn file cannot happen (rename is atomic); refuse to guess downwards.
            raise OSError(f"{self._path}: not an integer: {text[:40]!r}") from None
        return max(value, 0)

    def _persist(self, value: int) -> None:
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{value}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def allocate_id(self) -> int:
        """A producer id never handed out before by this data directory."""
        with self._id_lock:
            if self._next_id >= self._reserved_end:
                end = self._next_id + ID_BLOCK
                if self._path is not None:
                    self._persist(end)
                self._reserved_end = end
            pid = self._next_id
            self._next_id += 1
            return pid

    def has_state(self, partition_log) -> bool:
        return (partition_log.topic, partition_log.partition) in self._partitions

    def install(self, partition_log, state: PartitionProducerState) -> None:
        """Adopt a state rebuilt elsewhere (a worker thread), unless one exists already."""
        self._partitions.setdefault((partition_log.topic, partition_log.partition), state)

    def for_partition(self, partition_log) -> PartitionProducerState:
        key = (partition_log.topic, partition_log.partition)
        state = self._partitions.get(key)
        if state is None:
            state = self._partitions[key] = PartitionProducerState.rebuild(partition_log)
        return state

    def forget_topic(self, topic: str) -> None:
        """Drop the state of a deleted topic (a re-created topic starts empty)."""
        for key in [k for k in self._partitions if k[0] == topic]:
            del self._partitions[key]
