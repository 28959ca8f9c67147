"""Embedded transactions (``log.transaction``) and the coordinator's durable state:
commit, abort, offsets sent with the transaction, fencing, restarts, a crash with an
open transaction (aborted by its timeout after the restart)."""
from __future__ import annotations

import time

import pytest

import pylog
from pylog.broker.txn_producer import Transaction, TransactionalProducer
from pylog.errors import InvalidTxnStateError, ProducerFencedError, UnknownTopicError


def _committed(p, offset: int = 0) -> list[bytes]:
    return [r.value for r in p.iter(offset, committed=True)]


def _everything(p) -> list[bytes]:
    return [r.value for r in p.iter(0)]


@pytest.fixture
def log(tmp_path):
    with pylog.open(tmp_path / "data") as lg:
        yield lg


def test_commit_abort_and_exception(log):
    t = log.create_topic("orders", partitions=1)
    p = t.partition(0)
    with log.transaction("app") as tx:
        tx.append("orders", b"c1")
        tx.append_batch("orders", [b"c2", b"c3"], partition=0)
        assert _committed(p) == []                 # open: nothing stable yet
    with log.transaction("app") as tx:
        tx.append("orders", b"a1")
        tx.abort()
    with pytest.raises(RuntimeError):
        with log.transaction("app") as tx:
            tx.append("orders", b"a2")
            raise RuntimeError("work failed")
    p.append(b"plain")
    assert _committed(p) == [b"c1", b"c2", b"c3", b"plain"]
    assert _everything(p) == [b"c1", b"c2", b"c3", b"a1", b"a2", b"plain"]
    assert p.last_stable_offset == p.high_watermark


def test_ended_transaction_refuses_more(log):
    log.create_topic("t1")
    with log.transaction("once") as tx:
        tx.append("t1", b"x")
    with pytest.raises(InvalidTxnStateError):
        tx.append("t1", b"y")
    with pytest.raises(UnknownTopicError):
        with log.transaction("once") as tx2:
            tx2.append("missing-topic", b"z")


def test_offsets_commit_only_with_the_transaction(log):
    log.create_topic("in")
    log.create_topic("out")
    groups = log.groups
    groups.wait_loaded()
    with log.transaction("ctp") as tx:
        tx.append("out", b"r")
        tx.commit_offsets("g", {("in", 0): 5})
        tx.abort()
    assert groups.offsets.fetch("g", "in", 0) is None
    with log.transaction("ctp") as tx:
        tx.append("out", b"r")
        tx.commit_offsets("g", {("in", 0): 6})
        assert groups.offsets.fetch("g", "in", 0) is None     # not before the commit
        assert ("in", 0) in log.transactions.pending_offsets("g")
    assert groups.offsets.fetch("g", "in", 0).offset == 6
    assert log.transactions.pending_offsets("g") == set()


def test_a_newer_producer_fences_the_older(log):
    log.create_topic("f")
    old = TransactionalProducer(log, "shared", 60_000)
    tx_old = Transaction(old)
    old.lock.acquire()                              # as transaction() does
    tx_old.append("f", b"zombie")
    new = TransactionalProducer(log, "shared", 60_000)   # aborts the old one's txn
    assert new.producer_epoch == old.producer_epoch + 2  # fenced, then initialised
    with pytest.raises(ProducerFencedError):
        tx_old.commit()
    new.lock.acquire()
    tx = Transaction(new)
    tx.append("f", b"live")
    tx.commit()
    assert _committed(log.topic("f").partition(0)) == [b"live"]


def test_state_survives_a_restart(tmp_path):
    with pylog.open(tmp_path / "d") as lg:
        lg.create_topic("r")
        with lg.transaction("restart-me") as tx:
            tx.append("r", b"one")
        meta = lg.transactions.describe("restart-me")
        pid, epoch = meta.producer_id, meta.producer_epoch
    with pylog.open(tmp_path / "d") as lg:
        meta = lg.transactions.describe("restart-me")
        assert (meta.producer_id, meta.producer_epoch, meta.state_name) == \
            (pid, epoch, "CompleteCommit")
        with lg.transaction("restart-me") as tx:      # a new process: epoch bumped
            tx.append("r", b"two")
        assert lg.transactions.describe("restart-me").producer_epoch == epoch + 1
        assert _committed(lg.topic("r").partition(0)) == [b"one", b"two"]


def test_crash_with_an_open_transaction_is_aborted_by_its_timeout(tmp_path):
    lg = pylog.open(tmp_path / "c")
    lg.create_topic("c")
    tx = lg.transaction("crashy", timeout_ms=500)
    tx.append("c", b"never")
    lg.topic("c").partition(0).append(b"after")
    lg._simulate_crash()                            # as kill -9 leaves it
    with pylog.open(tmp_path / "c") as lg2:
        p = lg2.topic("c").partition(0)
        assert _committed(p) == []                  # still held by the open txn
        lg2.start_transactions(check_interval_ms=50)
        deadline = time.monotonic() + 10
        while p.last_stable_offset < p.high_watermark and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _committed(p) == [b"after"]
        assert lg2.transactions.describe("crashy").state_name == "CompleteAbort"


def test_in_memory_log():
    with pylog.open(None) as lg:
        lg.create_topic("m")
        with lg.transaction("mem") as tx:
            tx.append("m", b"v")
        assert _committed(lg.topic("m").partition(0)) == [b"v"]


def test_queue_settles_marker_offsets_as_gaps(log):
    """A share group on a transactional topic: the markers' offsets are settled at once
    (GAP), so the start offset moves past them and nothing expires or comes back."""
    log.create_topic("jobs")
    q = log.queue("workers", "jobs", **{"share.auto.offset.reset": "earliest"})
    with log.transaction("jobs-writer") as tx:
        tx.append_batch("jobs", [b"j1", b"j2"], partition=0)       # offsets 0-1, marker 2
    with log.transaction("jobs-writer") as tx:
        tx.append("jobs", b"j3", partition=0)                        # offset 3, marker 4
    got = q.receive(max_records=10, wait_ms=1000)
    assert [m.value for m in got] == [b"j1", b"j2", b"j3"]
    q.ack_all(got)
    stats = q.stats()[0]
    assert (stats["spso"], stats["acquired"], stats["available"]) == (5, 0, 0)


@pytest.mark.parametrize("commit", [True, False])
def test_crash_between_the_decision_and_the_markers(tmp_path, commit):
    """kill -9 after PrepareCommit / PrepareAbort is durable but before any marker was
    written: the restart completes the transaction as decided (markers, offsets)."""
    from pylog.broker.transactions import PREPARE_ABORT, PREPARE_COMMIT
    from pylog.broker.txn_store import encode_txn_key, encode_txn_value
    lg = pylog.open(tmp_path / "p")
    lg.create_topic("in")
    lg.create_topic("out")
    lg.groups.wait_loaded()
    tx = lg.transaction("decided")
    tx.append("out", b"result")
    tx.commit_offsets("g", {("in", 0): 3})
    coord = lg.transactions
    meta = coord.describe("decided")
    decided = meta.record()._replace(state=PREPARE_COMMIT if commit else PREPARE_ABORT)
    coord._store.write([(encode_txn_key("decided"), encode_txn_value(decided))]).result()
    lg._simulate_crash()
    with pylog.open(tmp_path / "p") as lg2:
        p = lg2.topic("out").partition(0)
        assert p.last_stable_offset == p.high_watermark == 2      # record + marker
        assert _committed(p) == ([b"result"] if commit else [])
        state = lg2.transactions.describe("decided").state_name
        assert state == ("CompleteCommit" if commit else "CompleteAbort")
        lg2.groups.wait_loaded()
        got = lg2.groups.offsets.fetch("g", "in", 0)
        assert (got.offset if got else None) == (3 if commit else None)
    with pylog.open(tmp_path / "p") as lg3:                       # and it stays so
        assert lg3.transactions.describe("decided").state_name == state
        assert lg3.topic("out").partition(0).high_watermark == 2
