"""A share-group state write that fails on a real full disk (a 4 MiB tmpfs) changes
nothing: the acknowledgement raises StorageError, the record stays acquired by its
member, and the same acknowledgement succeeds once space returns."""
from __future__ import annotations

import gc

import pytest

import pylog
from pylog.errors import StorageError

CFG = {"segment.bytes": 1 << 20, "segment.index.bytes": 64 * 1024}


def _fill_disk(log) -> None:
    filler = log.create_topic("filler", config=CFG).partition(0)
    for _ in range(10_000):
        try:
            filler.append(b"f" * 10_000)
        except StorageError:
            return
    raise AssertionError("the disk never filled")


@pytest.mark.parametrize("small_fs", [8 << 20], indirect=True)
def test_a_state_write_failing_on_a_full_disk_changes_nothing(small_fs):
    log = pylog.open(small_fs / "data")
    try:
        orders = log.create_topic("orders", config=CFG).partition(0)
        orders.append_batch([b"job-%d" % i for i in range(20_000)])
        q = log.queue("workers", "orders", **{"share.auto.offset.reset": "earliest"})
        _fill_disk(log)
        failed = None
        for _ in range(40):                       # ack until the state topic needs space
            for m in q.receive(max_records=200):
                try:
                    m.ack()
                except StorageError:
                    failed = m
                    break
            if failed is not None:
                break
        assert failed is not None, "the state topic never ran out of space"
        before = q.stats()[0]
        assert before["acquired"] >= 1
        with pytest.raises(StorageError):
            failed.ack()                         # still full: still refused
        assert q.stats()[0]["acquired"] == before["acquired"]
        log.delete_topic("filler")
        gc.collect()
        failed.ack()                             # the same record, now accepted
        assert q.stats()[0]["acquired"] == before["acquired"] - 1
        q.close()
    finally:
        log.close()
