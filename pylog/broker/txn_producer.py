"""Embedded transactions: ``with log.transaction("my-app") as tx:``.

The same coordinator the Kafka APIs use (broker/transactions.py), so an embedded
transaction and a Kafka client's obey one set of rules and one ``__transaction_state``::

    with log.transaction("orders-enricher") as tx:
        tx.append("enriched", b"value", key=b"k")          # not visible to read_committed
        tx.commit_offsets("enricher", {("orders", 0): 42})  # ... nor is this commit
    # left without an exception: committed atomically; with one: aborted, re-raised

* The first ``log.transaction(id)`` of a process initialises the id (InitProducerId:
  its epoch is bumped, fencing every other producer of the id, and a transaction it
  left open is aborted); later ones reuse that producer, as a Kafka producer runs many
  transactions after one ``init_transactions()``.  A producer fenced by a newer one
  raises ProducerFencedError and is forgotten, so the next ``log.transaction(id)``
  initialises again.
* ``tx.append`` writes a transactional batch of one record (``tx.append_batch`` one of
  many) at once; ``read_committed`` readers see it when the transaction commits and
  never when it aborts.  The appends' durability (the topics' flush policy) is waited
  for before EndTxn, so a committed transaction's records are as durable as any.
* ``tx.commit_offsets(group, {(topic, partition): offset})`` commits the group's
  offsets with the transaction (consume-transform-produce); they count only if it
  commits.  ``tx.abort()`` / ``tx.commit()`` end it early.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, wait

from pylog.errors import (ConcurrentTransactionsError, InvalidTxnStateError, ProducerFencedError,
                          for_code)
from pylog.records import ATTR_TRANSACTIONAL, encode_batch

from .producers import next_sequence

__all__ = ["Transaction", "TransactionalProducer", "transaction"]

_RETRY_S = 0.05
_RETRY_FOR_S = 30.0


def _wait(futures: list[Future]) -> None:
    if futures:
        wait(futures)
        for f in futures:
            if f.exception() is not None:
                raise f.exception()


def _retrying(call):
    """``call()`` again while the coordinator answers CONCURRENT_TRANSACTIONS."""
    deadline = time.monotonic() + _RETRY_FOR_S
    while True:
        try:
            return call()
        except ConcurrentTransactionsError:
            if time.monotonic() > deadline:
                raise
            time.sleep(_RETRY_S)


class TransactionalProducer:
    """One initialised transactional id (see the module doc)."""

    def __init__(self, log_, transactional_id: str, timeout_ms: int) -> None:
        self._log = log_
        self._coord = log_.transactions
        self.transactional_id = transactional_id
        self.timeout_ms = timeout_ms
        pid, epoch, futures = _retrying(
            lambda: self._coord.init_producer_id(transactional_id, timeout_ms))
        _wait(futures)
        self.producer_id, self.producer_epoch = pid, epoch
        self._sequences: dict[tuple[str, int], int] = {}
        self.lock = threading.Lock()         # one transaction at a time
        self.fenced = False

    def next_sequence(self, tp: tuple[str, int], n: int) -> int:
        seq = self._sequences.get(tp, 0)
        self._sequences[tp] = next_sequence(seq, n)
        return seq


class Transaction:
    """One transaction of a TransactionalProducer; use it as a context manager."""

    def __init__(self, producer: TransactionalProducer) -> None:
        self._producer = producer
        self._coord = producer._coord
        self._log = producer._log
        self._added: set[tuple[str, int]] = set()
        self._durable: list[Future] = []
        self._ended = False

    # -- writes -----------------------------------------------------------------------------
    def append(self, topic: str, value, key=None, headers=None, timestamp=None,
               partition: int | None = None) -> tuple[int, int]:
        """Append one record; returns (partition, offset)."""
        p, offsets = self.append_batch(topic, [value], None if key is None else [key],
                                       None if headers is None else [headers],
                                       timestamp, partition)
        return p, offsets[0]

    def append_batch(self, topic: str, values, keys=None, headers=None, timestamps=None,
                     partition: int | None = None) -> tuple[int, list[int]]:
        """Append records as one transactional batch to one partition (``partition``,
        or the one the first key hashes to); returns (partition, their offsets)."""
        self._check_open()
        t = self._log.topic(topic)
        if partition is None:
            partition = t.partition_for(None if keys is None else keys[0])
        tp = (topic, partition)
        prod = self._producer
        if tp not in self._added:
            self._call(lambda: self._add(tp))
            self._added.add(tp)
        plog = t.partition(partition)
        values = list(values)
        with self._coord.lock:           # check and append together (transactions.py)
            self._coord.check_append(prod.producer_id, prod.producer_epoch, topic, partition)
            seq = prod.next_sequence(tp, len(values))
            batch = encode_batch(values, keys, headers, timestamps,
                                 producer_id=prod.producer_id,
                                 producer_epoch=prod.producer_epoch, base_sequence=seq,
                                 attributes=ATTR_TRANSACTIONAL)
            result = plog.append_raw(batch, wait=False)
        self._durable.append(plog.durable_future(result.last_offset))
        return partition, list(range(result.base_offset, result.last_offset + 1))

    def commit_offsets(self, group: str, offsets: dict[tuple[str, int], int],
                       metadata: str = "") -> None:
        """Commit ``group``'s offsets (the next offset to read, as Kafka) with this
        transaction."""
        self._check_open()
        prod = self._producer
        key = ("__consumer_offsets", 0)
        if key not in self._added:
            self._call(lambda: self._coord.add_offsets(
                prod.transactional_id, prod.producer_id, prod.producer_epoch, group))
            self._added.add(key)
        entries = [(t, i, o, -1, metadata) for (t, i), o in offsets.items()]
        self._log.groups.wait_loaded()
        self._call(lambda: self._coord.commit_offsets(
            prod.transactional_id, group, prod.producer_id, prod.producer_epoch, entries))

    # -- ending -----------------------------------------------------------------------------
    def commit(self) -> None:
        self._end(True)

    def abort(self) -> None:
        self._end(False)

    def _end(self, commit: bool) -> None:
        self._check_open()
        self._ended = True
        prod = self._producer
        try:
            if commit:
                _wait(self._durable)
            if self._added:              # nothing added: nothing to end (as clients do)
                _wait(_retrying(lambda: self._coord.end_txn(
                    prod.transactional_id, prod.producer_id, prod.producer_epoch, commit)))
        except ProducerFencedError:
            self._fence()
            raise
        finally:
            prod.lock.release()

    def _add(self, tp: tuple[str, int]) -> list[Future]:
        prod = self._producer
        codes, futures = self._coord.add_partitions(
            prod.transactional_id, prod.producer_id, prod.producer_epoch, [tp])
        if codes.get(tp):
            raise for_code(codes[tp])(f"cannot add {tp[0]}-{tp[1]} to the transaction")
        return futures

    def _call(self, call) -> None:
        """A coordinator call returning futures; waits for them."""
        try:
            futures = _retrying(call)
        except ProducerFencedError:
            self._fence()
            raise
        _wait(futures)

    def _fence(self) -> None:
        self._producer.fenced = True
        cache = self._log._txn_producers
        if cache.get(self._producer.transactional_id) is self._producer:
            del cache[self._producer.transactional_id]

    def _check_open(self) -> None:
        if self._ended:
            raise InvalidTxnStateError("this transaction has ended")
        if self._producer.fenced:
            raise ProducerFencedError(
                f"transactional id {self._producer.transactional_id!r} is used by a newer "
                f"producer")

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._ended:
            return
        if exc_type is None:
            self.commit()
        else:
            try:
                self.abort()
            except Exception:            # noqa: BLE001 -- the original error matters more
                pass


def transaction(log_, transactional_id: str, timeout_ms: int) -> Transaction:
    """A new transaction of ``transactional_id``'s producer in ``log_`` (created and
    initialised on first use); blocks while another thread's transaction of the same
    id is open."""
    cache = log_._txn_producers
    with log_._lock:
        prod = cache.get(transactional_id)
    if prod is None or prod.fenced or prod.timeout_ms != timeout_ms:
        prod = TransactionalProducer(log_, transactional_id, timeout_ms)
        with log_._lock:
            cache[transactional_id] = prod
    prod.lock.acquire()
    return Transaction(prod)
