"""The transaction coordinator: transactional ids, their epochs and their transactions.

Kafka's design (AK ``TransactionCoordinator``, ``TransactionMetadata``,
``TransactionStateManager``; KIP-98), for one node:

* **Ids and fencing.**  ``init_producer_id(transactional_id)`` hands out the id's
  producer id and bumps its epoch (a new id gets a fresh producer id, epoch 0).  Any
  request carrying an older epoch then gets PRODUCER_FENCED: a zombie producer with
  the same transactional id can no longer add partitions, produce or commit.  A
  transaction still open when the id is initialised again is aborted first.  When the
  epoch would pass 32,766 the id gets a fresh producer id at epoch 0.
* **States** (TransactionState ids, persisted): Empty → Ongoing (the first
  AddPartitionsToTxn / AddOffsetsToTxn) → PrepareCommit | PrepareAbort (EndTxn; the
  decision is durable from here on) → CompleteCommit | CompleteAbort (every marker
  written and durable) → Ongoing again with the next transaction.
* **Markers.**  Completing writes a COMMIT or ABORT control batch to every partition
  of the transaction (``PartitionLog.write_txn_marker``, storage/transactions.py),
  which moves each partition's last stable offset; the offsets the transaction
  committed with TxnOffsetCommit become visible in ``__consumer_offsets`` on commit
  and are dropped on abort.  The Complete state is written only once the markers are
  durable, so a crash in between finds the Prepare state and completes it on load.
* **Timeouts.**  An Ongoing transaction older than its ``transaction.timeout.ms`` is
  aborted by a timer thread (``pylog-txn``), with an epoch bump as Kafka does, so the
  producer that let it time out is fenced.  Timeouts above
  ``transaction.max.timeout.ms`` (900,000) are INVALID_TRANSACTION_TIMEOUT.
* **Produce.**  A transactional batch is accepted only for a partition added to an
  Ongoing transaction of that producer id and epoch (KIP-890's verification):
  ``check_append`` under ``lock``, held across the append, so a timeout abort cannot
  slip between the check and the write.

Persistence is txn_store.py; the API handlers are server/kafka/txn.py; the embedded
``log.transaction()`` is broker/txn_producer.py.  Thread-safe: one re-entrant lock
(``lock``) around every state change and the appends it makes.  Lock order: this lock,
then a partition's lock, then the offset store's.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future

from pylog.errors import (ConcurrentTransactionsError, CoordinatorLoadInProgressError,
                          InvalidProducerEpochError, InvalidRequestError, InvalidProducerIdMappingError,
                          InvalidTransactionTimeoutError, InvalidTxnStateError, PylogError,
                          ProducerFencedError, StorageError, TransactionalIdNotFoundError,
                          UnknownTopicError)

from .offsets import OFFSETS_TOPIC, Committed
from .txn_store import (PendingOffsets, TxnRecord, TxnStore, encode_offsets_key,
                        encode_offsets_value, encode_txn_key, encode_txn_value)

__all__ = ["TransactionCoordinator", "TxnMeta", "STATE_NAMES", "EMPTY", "ONGOING",
           "PREPARE_COMMIT", "PREPARE_ABORT", "COMPLETE_COMMIT", "COMPLETE_ABORT"]

EMPTY, ONGOING, PREPARE_COMMIT, PREPARE_ABORT, COMPLETE_COMMIT, COMPLETE_ABORT, DEAD, \
    PREPARE_EPOCH_FENCE = range(8)
STATE_NAMES = {EMPTY: "Empty", ONGOING: "Ongoing", PREPARE_COMMIT: "PrepareCommit",
               PREPARE_ABORT: "PrepareAbort", COMPLETE_COMMIT: "CompleteCommit",
               COMPLETE_ABORT: "CompleteAbort", DEAD: "Dead",
               PREPARE_EPOCH_FENCE: "PrepareEpochFence"}
MAX_EPOCH = 32766                 # Short.MaxValue - 1: the last epoch Kafka hands out
DEFAULT_MAX_TIMEOUT_MS = 900_000  # transaction.max.timeout.ms
OFFSETS_PARTITION = (OFFSETS_TOPIC, 0)

log = logging.getLogger("pylog.transactions")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class TxnMeta:
    """One transactional id's state (the coordinator's lock guards it)."""

    __slots__ = ("transactional_id", "producer_id", "producer_epoch", "last_epoch",
                 "timeout_ms", "state", "partitions", "last_update_ms", "start_ms",
                 "offsets", "completing")

    def __init__(self, transactional_id: str, producer_id: int, epoch: int,
                 timeout_ms: int, state: int = EMPTY) -> None:
        self.transactional_id = transactional_id
        self.producer_id = producer_id
        self.producer_epoch = epoch
        self.last_epoch = -1              # the epoch before a timeout bump (KIP-360)
        self.timeout_ms = timeout_ms
        self.state = state
        self.partitions: set[tuple[str, int]] = set()
        self.last_update_ms = _now_ms()
        self.start_ms = -1
        # TxnOffsetCommit entries of the open transaction: group -> (topic, p) -> Committed
        self.offsets: dict[str, dict[tuple[str, int], Committed]] = {}
        self.completing = False           # markers written, Complete not yet

    def record(self) -> TxnRecord:
        return TxnRecord(self.producer_id, self.producer_epoch, self.timeout_ms, self.state,
                         tuple(sorted(self.partitions)), self.last_update_ms, self.start_ms)

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.state, str(self.state))


class TransactionCoordinator:
    """Transactional ids of one Log (see the module doc)."""

    def __init__(self, log_, *, max_timeout_ms: int = DEFAULT_MAX_TIMEOUT_MS,
                 check_interval_ms: int = 1000) -> None:
        self._log = log_
        self.max_timeout_ms = max_timeout_ms
        self.check_interval_ms = check_interval_ms
        self.lock = threading.RLock()
        self._store = TxnStore(log_)
        self._txns: dict[str, TxnMeta] = {}
        self._by_pid: dict[int, TxnMeta] = {}
        self._closed = threading.Event()
        self._wake = threading.Event()
        self._due: deque = deque()        # (meta, epoch, gate) whose markers are durable
        self._load()
        self._timer = threading.Thread(target=self._run_timer, name="pylog-txn",
                                       daemon=True)
        self._timer.start()

    # -- load and recovery ------------------------------------------------------------------
    def _load(self) -> None:
        txns, pending = self._store.load()
        for txn_id, r in txns.items():
            meta = TxnMeta(txn_id, r.producer_id, r.producer_epoch, r.timeout_ms, r.state)
            meta.partitions = set(r.partitions)
            meta.last_update_ms, meta.start_ms = r.last_update_ms, r.start_ms
            self._txns[txn_id] = meta
            self._by_pid[r.producer_id] = meta
        for (txn_id, group), p in pending.items():
            meta = self._txns.get(txn_id)
            if meta is None or meta.producer_id != p.producer_id or \
                    meta.state not in (ONGOING, PREPARE_COMMIT, PREPARE_ABORT):
                continue                  # its transaction completed; tombstone was lost
            meta.offsets[group] = {(t, i): Committed(o, e, m)
                                   for t, i, o, e, m in p.offsets}
        with self.lock:
            for meta in list(self._txns.values()):
                if meta.state in (PREPARE_COMMIT, PREPARE_ABORT):
                    log.info("completing %s of transactional id %r found at load",
                             meta.state_name, meta.transactional_id)
                    try:
                        self._send_markers(meta)
                    except PylogError as exc:
                        log.error("transactional id %r not completed at load: %s "
                                  "(retried by the timer)", meta.transactional_id, exc)

    # -- helpers -----------------------------------------------------------------------------
    def _persist(self, meta: TxnMeta, extra: list | None = None) -> Future:
        meta.last_update_ms = _now_ms()
        records = [(encode_txn_key(meta.transactional_id), encode_txn_value(meta.record()))]
        return self._store.write(records + (extra or []))

    def _meta_for(self, transactional_id: str, producer_id: int, epoch: int) -> TxnMeta:
        """The id's state after the producer-id and epoch checks every request makes."""
        meta = self._txns.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            raise InvalidProducerIdMappingError(
                f"producer id {producer_id} is not the one transactional id "
                f"{transactional_id!r} holds")
        if epoch != meta.producer_epoch:
            raise ProducerFencedError(
                f"transactional id {transactional_id!r}: epoch {epoch} is fenced by "
                f"epoch {meta.producer_epoch}")
        return meta

    def _check_timeout(self, timeout_ms: int) -> None:
        if not 0 < timeout_ms <= self.max_timeout_ms:
            raise InvalidTransactionTimeoutError(
                f"transaction.timeout.ms {timeout_ms} is not in 1..{self.max_timeout_ms} "
                f"(transaction.max.timeout.ms)")

    def _bump(self, meta: TxnMeta) -> None:
        """The next epoch; past MAX_EPOCH a fresh producer id at epoch 0."""
        if meta.producer_epoch >= MAX_EPOCH:
            self._by_pid.pop(meta.producer_id, None)
            meta.producer_id = self._log.producer_ids.allocate_id()
            meta.producer_epoch = 0
            self._by_pid[meta.producer_id] = meta
        else:
            meta.producer_epoch += 1

    # -- InitProducerId ----------------------------------------------------------------------
    def init_producer_id(self, transactional_id: str, timeout_ms: int,
                         producer_id: int = -1, producer_epoch: int = -1
                         ) -> tuple[int, int, list[Future]]:
        """(producer id, epoch, futures to wait for) for a transactional producer."""
        if not transactional_id:
            raise InvalidRequestError("an empty transactional id")
        self._check_timeout(timeout_ms)
        with self.lock:
            meta = self._txns.get(transactional_id)
            if meta is None:
                pid = self._log.producer_ids.allocate_id()
                meta = TxnMeta(transactional_id, pid, 0, timeout_ms)
                fut = self._persist(meta)
                self._txns[transactional_id] = meta
                self._by_pid[pid] = meta
                return pid, 0, [fut]
            self._check_open_state(meta)
            if producer_id >= 0 and (producer_id != meta.producer_id or producer_epoch not in
                                     (meta.producer_epoch, meta.last_epoch)):
                raise ProducerFencedError(
                    f"transactional id {transactional_id!r}: producer {producer_id} epoch "
                    f"{producer_epoch} is not the current one")
            futures: list[Future] = []
            if meta.state == ONGOING:     # a new instance of the producer: abort its txn
                self._bump(meta)          # (fencing the old one first)
                futures += self._prepare(meta, commit=False)
                if meta.state != COMPLETE_ABORT:
                    raise ConcurrentTransactionsError(
                        f"transactional id {transactional_id!r}: its open transaction "
                        f"is being aborted; retry")
            self._bump(meta)
            meta.timeout_ms, meta.last_epoch, meta.state = timeout_ms, -1, EMPTY
            futures.append(self._persist(meta))
            return meta.producer_id, meta.producer_epoch, futures

    # -- AddPartitionsToTxn / AddOffsetsToTxn -----------------------------------------------
    def add_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                       partitions: list[tuple[str, int]], verify_only: bool = False
                       ) -> tuple[dict[tuple[str, int], int], list[Future]]:
        """Error code per partition (all 0 when added) and the futures to wait for."""
        with self.lock:
            meta = self._meta_for(transactional_id, producer_id, epoch)
            self._check_open_state(meta)
            codes, unknown = {}, False
            for tp in partitions:
                codes[tp] = 0
                if tp != OFFSETS_PARTITION and not self._partition_exists(*tp):
                    codes[tp], unknown = UnknownTopicError.errno, True
            if unknown:                   # Kafka: the others are OPERATION_NOT_ATTEMPTED
                return {tp: c or 55 for tp, c in codes.items()}, []
            if verify_only:
                return {tp: 0 if tp in meta.partitions and meta.state == ONGOING
                        else InvalidTxnStateError.errno for tp in partitions}, []
            new = set(partitions) - meta.partitions
            if not new and meta.state == ONGOING:
                return codes, []
            self._begin(meta)
            meta.partitions |= new
            return codes, [self._persist(meta)]

    def add_offsets(self, transactional_id: str, producer_id: int, epoch: int,
                    group_id: str) -> list[Future]:
        """AddOffsetsToTxn: the group's offsets partition joins the transaction."""
        _codes, futures = self.add_partitions(transactional_id, producer_id, epoch,
                                              [OFFSETS_PARTITION])
        return futures

    def _begin(self, meta: TxnMeta) -> None:
        if meta.state != ONGOING:
            meta.state, meta.start_ms = ONGOING, _now_ms()
            meta.partitions, meta.offsets = set(), {}

    def _check_open_state(self, meta: TxnMeta) -> None:
        if meta.state in (PREPARE_COMMIT, PREPARE_ABORT):
            raise ConcurrentTransactionsError(
                f"transactional id {meta.transactional_id!r} is completing its last "
                f"transaction ({meta.state_name})")
        if meta.state not in (EMPTY, ONGOING, COMPLETE_COMMIT, COMPLETE_ABORT):
            raise InvalidTxnStateError(f"transactional id {meta.transactional_id!r} is "
                                       f"{meta.state_name}")

    def _partition_exists(self, topic: str, partition: int) -> bool:
        try:
            self._log.partition(topic, partition)
        except PylogError:
            return False
        return True

    # -- TxnOffsetCommit ---------------------------------------------------------------------
    def commit_offsets(self, transactional_id: str, group_id: str, producer_id: int,
                       epoch: int, entries: list[tuple[str, int, int, int, str | None]]
                       ) -> list[Future]:
        """Stage (topic, partition, offset, leader_epoch, metadata) entries; they are
        committed to the group when the transaction commits."""
        with self.lock:
            meta = self._meta_for(transactional_id, producer_id, epoch)
            if meta.state != ONGOING or OFFSETS_PARTITION not in meta.partitions:
                raise InvalidTxnStateError(
                    f"transactional id {transactional_id!r}: TxnOffsetCommit before "
                    f"AddOffsetsToTxn (state {meta.state_name})")
            groups = self._log.groups
            if not groups.loaded:
                raise CoordinatorLoadInProgressError(f"{OFFSETS_TOPIC} is still loading")
            staged = dict(meta.offsets.get(group_id, {}))
            for topic, partition, offset, leader_epoch, metadata in entries:
                staged[(topic, partition)] = Committed(offset, leader_epoch, metadata or "")
            value = PendingOffsets(producer_id, epoch, tuple(
                (t, i, c.offset, c.leader_epoch, c.metadata) for (t, i), c in staged.items()))
            fut = self._store.write([(encode_offsets_key(transactional_id, group_id),
                                      encode_offsets_value(value))])
            meta.offsets[group_id] = staged
            return [fut]

    def pending_offsets(self, group_id: str) -> set[tuple[str, int]]:
        """Partitions of ``group_id`` with offsets staged by an open transaction (an
        OffsetFetch with require_stable gets UNSTABLE_OFFSET_COMMIT for them)."""
        with self.lock:
            out: set[tuple[str, int]] = set()
            for meta in self._txns.values():
                out.update(meta.offsets.get(group_id, ()))
            return out

    # -- EndTxn ------------------------------------------------------------------------------
    def end_txn(self, transactional_id: str, producer_id: int, epoch: int,
                commit: bool) -> list[Future]:
        """Commit or abort; the futures resolve once the markers are durable."""
        with self.lock:
            meta = self._meta_for(transactional_id, producer_id, epoch)
            done = COMPLETE_COMMIT if commit else COMPLETE_ABORT
            if meta.state == done or (meta.state == (PREPARE_COMMIT if commit else
                                                     PREPARE_ABORT) and meta.completing):
                return []                 # a retry of the EndTxn that completed it
            if meta.state in (PREPARE_COMMIT, PREPARE_ABORT):
                raise ConcurrentTransactionsError(
                    f"transactional id {transactional_id!r} is {meta.state_name}")
            if meta.state != ONGOING:
                raise InvalidTxnStateError(
                    f"transactional id {transactional_id!r}: cannot "
                    f"{'commit' if commit else 'abort'} in state {meta.state_name}")
            return self._prepare(meta, commit)

    def _prepare(self, meta: TxnMeta, commit: bool) -> list[Future]:
        """Write the Prepare state (the decision), then the markers."""
        old = meta.state
        meta.state = PREPARE_COMMIT if commit else PREPARE_ABORT
        try:
            fut = self._persist(meta)
        except PylogError:
            meta.state = old
            raise
        try:
            return [fut] + self._send_markers(meta)
        except PylogError as exc:         # the decision stands; the timer retries
            log.error("transactional id %r: markers not written yet: %s",
                      meta.transactional_id, exc)
            return [fut]

    def _send_markers(self, meta: TxnMeta) -> list[Future]:
        """Markers to every partition; Complete once they are all durable."""
        commit = meta.state == PREPARE_COMMIT
        futures = []
        for topic, partition in sorted(meta.partitions):
            if (topic, partition) == OFFSETS_PARTITION:
                continue
            try:
                p = self._log.partition(topic, partition)
            except PylogError:            # deleted meanwhile: nothing to mark
                continue
            result = p.write_txn_marker(meta.producer_id, meta.producer_epoch, commit,
                                        0, wait=False)
            futures.append(p.durable_future(result.last_offset))
        if commit and meta.offsets:
            groups = self._log.groups
            if not groups.wait_loaded(30):
                raise CoordinatorLoadInProgressError(f"{OFFSETS_TOPIC} is still loading")
            for group_id, staged in meta.offsets.items():
                groups.offsets.commit(group_id, [(t, i, c) for (t, i), c in staged.items()])
        meta.completing = True
        gate = _all_done(futures)
        epoch = meta.producer_epoch
        if gate.done():
            self._complete(meta, epoch, gate)
        else:   # resolved by the flusher under a partition lock: complete on the timer
            gate.add_done_callback(lambda f: self._completions_due(meta, epoch, f))
        return [gate]

    def _completions_due(self, meta: TxnMeta, epoch: int, gate: Future) -> None:
        self._due.append((meta, epoch, gate))
        self._wake.set()

    def _complete(self, meta: TxnMeta, epoch: int, gate: Future) -> None:
        if gate.exception() is not None:
            log.error("transactional id %r: a marker was not made durable: %s (retried by "
                      "the timer)", meta.transactional_id, gate.exception())
            with self.lock:
                meta.completing = False
            return
        with self.lock:
            if meta.producer_epoch != epoch or meta.state not in (PREPARE_COMMIT,
                                                                   PREPARE_ABORT):
                return
            meta.state = COMPLETE_COMMIT if meta.state == PREPARE_COMMIT else COMPLETE_ABORT
            tombstones = [(encode_offsets_key(meta.transactional_id, g), None)
                          for g in meta.offsets]
            partitions, offsets = meta.partitions, meta.offsets
            meta.partitions, meta.offsets, meta.start_ms = set(), {}, -1
            meta.completing = False
            try:
                self._persist(meta, tombstones)
            except PylogError as exc:
                meta.state = PREPARE_COMMIT if meta.state == COMPLETE_COMMIT else PREPARE_ABORT
                meta.partitions, meta.offsets = partitions, offsets
                log.error("transactional id %r: Complete not written: %s (retried)",
                          meta.transactional_id, exc)

    # -- timeouts ----------------------------------------------------------------------------
    def abort_expired(self, now_ms: int | None = None) -> int:
        """Abort (with an epoch bump) every Ongoing transaction past its timeout, and
        retry completions that failed; returns how many were aborted."""
        now = _now_ms() if now_ms is None else now_ms
        n = 0
        with self.lock:
            for meta in list(self._txns.values()):
                try:
                    if meta.state == ONGOING and meta.start_ms >= 0 and \
                            now > meta.start_ms + meta.timeout_ms:
                        log.info("transactional id %r: transaction timed out after %d ms; "
                                 "aborting", meta.transactional_id, meta.timeout_ms)
                        meta.last_epoch = meta.producer_epoch
                        self._bump(meta)
                        self._prepare(meta, commit=False)
                        n += 1
                    elif meta.state in (PREPARE_COMMIT, PREPARE_ABORT) and \
                            not meta.completing:
                        self._send_markers(meta)
                except PylogError as exc:
                    log.error("transactional id %r: %s", meta.transactional_id, exc)
        return n

    def configure(self, *, max_timeout_ms: int | None = None,
                  check_interval_ms: int | None = None) -> None:
        if max_timeout_ms is not None:
            self.max_timeout_ms = max_timeout_ms
        if check_interval_ms is not None:
            self.check_interval_ms = check_interval_ms
            self._wake.set()

    def _run_timer(self) -> None:
        next_check = time.monotonic() + self.check_interval_ms / 1000
        while not self._closed.is_set():
            self._wake.wait(max(0.0, next_check - time.monotonic()))
            self._wake.clear()
            try:
                while self._due:
                    meta, epoch, gate = self._due.popleft()
                    self._complete(meta, epoch, gate)
                next_check = min(next_check, time.monotonic() + self.check_interval_ms / 1000)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.check_interval_ms / 1000
                    self.abort_expired()
            except Exception:             # noqa: BLE001 -- the timer must keep running
                log.exception("transaction timer")

    # -- produce verification ----------------------------------------------------------------
    def check_append(self, producer_id: int, epoch: int, topic: str, partition: int) -> None:
        """Raise unless (producer id, epoch) has an Ongoing transaction holding the
        partition.  Call with ``lock`` held and keep it until the append is done."""
        meta = self._by_pid.get(producer_id)
        if meta is None:
            raise InvalidTxnStateError(f"producer id {producer_id} has no transaction")
        if epoch != meta.producer_epoch:
            raise InvalidProducerEpochError(
                f"producer {producer_id} epoch {epoch} is fenced by epoch "
                f"{meta.producer_epoch} of transactional id {meta.transactional_id!r}")
        if meta.state != ONGOING or (topic, partition) not in meta.partitions:
            raise InvalidTxnStateError(
                f"{topic}-{partition} was not added to the transaction of "
                f"{meta.transactional_id!r} (AddPartitionsToTxn first; state "
                f"{meta.state_name})")

    # -- describe ----------------------------------------------------------------------------
    def describe(self, transactional_id: str) -> TxnMeta:
        with self.lock:
            meta = self._txns.get(transactional_id)
            if meta is None:
                raise TransactionalIdNotFoundError(
                    f"no transactional id {transactional_id!r}")
            return meta

    def list(self) -> list[TxnMeta]:
        with self.lock:
            return list(self._txns.values())

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._timer.is_alive() and self._timer is not threading.current_thread():
            self._timer.join(5)


def _all_done(futures: list[Future]) -> Future:
    """A future resolved when every one of ``futures`` is (with the first exception)."""
    gate: Future = Future()
    if not futures:
        gate.set_result(None)
        return gate
    left = [len(futures)]
    lock = threading.Lock()

    def one(f: Future) -> None:
        exc = f.exception()
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if exc is not None and not gate.done():
            try:
                gate.set_exception(exc if isinstance(exc, PylogError) else StorageError(str(exc)))
            except Exception:             # noqa: BLE001 -- set by another callback
                pass
        elif last and not gate.done():
            try:
                gate.set_result(None)
            except Exception:             # noqa: BLE001
                pass
    for f in futures:
        f.add_done_callback(one)
    return gate

