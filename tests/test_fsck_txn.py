"""pylog-fsck over transactions (pylog/fsck/txn.py): control batches, .txnindex and
txn-state.snapshot are checked against the log; --repair rebuilds the indexes and
the snapshot from it and never deletes intact data."""
from __future__ import annotations

import pytest

import pylog
from pylog._ffi import lib
from pylog.fsck import run
from pylog.records import ATTR_CONTROL, ATTR_TRANSACTIONAL, encode_batch
from pylog.storage import txn_index


def _txn(pid, value):
    return encode_batch([value], producer_id=pid, producer_epoch=0, base_sequence=0,
                        attributes=ATTR_TRANSACTIONAL)


def _state(d):
    with pylog.open(d, log_cleaner_enable=False) as log:
        p = log.topic("t").partition(0)
        return (p.ongoing_transactions(), p.aborted_transactions(0, 1 << 40),
                [r.value for r in p.iter(committed=True)])


@pytest.fixture
def data(tmp_path):
    """A closed log whose partition t-0 holds two segments of transactions."""
    with pylog.open(tmp_path, log_cleaner_enable=False) as log:
        p = log.create_topic("t", partitions=1).partition(0)
        p.append(b"plain")
        p.append_raw(_txn(1, b"a1"))
        p.append_raw(_txn(2, b"c2"))
        p.write_txn_marker(1, 0, commit=False)
        p.roll()
        p.write_txn_marker(2, 0, commit=True)
        p.append_raw(_txn(3, b"a3"))
        p.write_txn_marker(3, 0, commit=False)
        p.append_raw(_txn(4, b"open"))
    return tmp_path


def _kinds(rep):
    return {f.kind for f in rep.findings if f.severity != "info"}


def test_a_transactional_partition_checks_clean(data):
    rep = run(str(data), deep=True)
    assert rep.exit_code() == 0, [f.message for f in rep.findings]


@pytest.mark.parametrize("damage", ["delete", "torn", "version", "no-marker"])
def test_damaged_txnindex_is_found_and_rebuilt(data, damage):
    before = _state(data)
    path = txn_index.index_path(data / "t-0", 0)
    good = path.read_bytes()
    if damage == "delete":
        path.unlink()
    elif damage == "torn":
        path.write_bytes(good + b"\x00\x00\x01")
    elif damage == "version":
        path.write_bytes(b"\x00\x07" + good[2:])
    else:                                   # lastOffset 0: the plain record, no marker
        path.write_bytes(good[:18] + (0).to_bytes(8, "big") + good[26:])
    rep = run(str(data))
    assert "txnindex" in _kinds(rep) and rep.exit_code() == 4
    fixed = run(str(data), repair=True)
    assert fixed.exit_code() == 1
    assert path.read_bytes() == good
    assert run(str(data)).exit_code() == 0
    assert _state(data) == before


def test_missing_snapshot_with_transactions_is_rewritten(data):
    before = _state(data)
    (data / "t-0" / txn_index.SNAPSHOT_FILE).unlink()
    rep = run(str(data))
    assert "txn-snapshot" in _kinds(rep)
    run(str(data), repair=True)
    assert run(str(data)).exit_code() == 0
    assert _state(data) == before


def test_garbage_snapshot_is_rewritten(data):
    before = _state(data)
    (data / "t-0" / txn_index.SNAPSHOT_FILE).write_bytes(b"\x00" * 9)
    assert "txn-snapshot" in _kinds(run(str(data)))
    run(str(data), repair=True)
    assert run(str(data)).exit_code() == 0
    assert _state(data) == before


def test_bad_control_batch_is_reported_never_deleted(tmp_path):
    with pylog.open(tmp_path, log_cleaner_enable=False) as log:
        p = log.create_topic("t", partitions=1).partition(0)
        p.append_raw(_txn(1, b"x"))
        bad = encode_batch([b"\x00\x00"], [b"\x00\x05\x00\x01"], producer_id=1,
                           producer_epoch=0, attributes=ATTR_TRANSACTIONAL | ATTR_CONTROL)
        p._append_raw(bad, flags=lib.PL_APPEND_CONTROL)
        end = p.log_end_offset
    rep = run(str(tmp_path))
    assert "bad-control" in _kinds(rep)
    run(str(tmp_path), repair=True)
    with pylog.open(tmp_path, log_cleaner_enable=False) as log:
        p = log.topic("t").partition(0)
        assert p.log_end_offset == end
        assert p.ongoing_transactions() == {1: 0}   # not a marker: the txn stays open
