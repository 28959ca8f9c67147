"""Share-group state in ``__share_group_state`` (pylog/broker/share_store.py)."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, strategies as st

import pylog
from pylog.broker.share_state import Delta
from pylog.broker.share_store import (SHARE_STATE_TOPIC, SNAPSHOT, UPDATE, ShareStore,
                                      decode_key, decode_value, encode_key, encode_value)


@pytest.fixture
def data(tmp_path):
    return tmp_path / "data"


def earliest(log, group="g"):
    return {"share.auto.offset.reset": "earliest"}


run = st.tuples(st.integers(0, 1 << 40), st.integers(0, 1000), st.sampled_from([0, 1, 2, 4]),
                st.integers(0, 5))


@given(st.sampled_from([SNAPSHOT, UPDATE]), st.text(max_size=20), st.text(max_size=20),
       st.integers(0, 1 << 20), st.integers(0, 1 << 50), st.lists(run, max_size=20))
def test_record_codec_round_trips(kind, group, topic, partition, start, runs):
    runs = [(f, f + n, s, c) for f, n, s, c in runs]
    assert decode_key(encode_key(kind, group, topic, partition)) == (kind, group, topic,
                                                                     partition)
    v = decode_value(encode_value(start, runs))
    assert v.start_offset == start and list(v.runs) == runs


@given(st.binary(max_size=60))
def test_decoders_raise_only_value_errors(buf):
    for fn in (decode_key, decode_value):
        try:
            fn(buf)
        except (ValueError, struct.error, UnicodeDecodeError):
            pass


def test_state_survives_reopen(data):
    with pylog.open(data) as log:
        t = log.create_topic("orders", 1)
        for i in range(10):
            t.partition(0).append(b"%d" % i)
        q = log.queue("w", "orders", **earliest(log))
        msgs = q.receive(max_records=6)
        for m in msgs[:3]:
            m.ack()
        msgs[3].reject()
        msgs[4].release()                 # 5 stays acquired (count 1)
    with pylog.open(data) as log:
        q = log.queue("w", "orders")
        got = {m.offset: m.delivery_count for m in q.receive(max_records=20)}
        assert got == {4: 2, 5: 2, 6: 1, 7: 1, 8: 1, 9: 1}
        st_ = q.stats()[0]
        assert st_["spso"] == 4


def test_crash_keeps_acks_and_delivery_counts(data):
    log = pylog.open(data)
    t = log.create_topic("orders", 2)
    for i in range(20):
        t.partition(i % 2).append(b"%d" % i)
    q = log.queue("w", "orders", **earliest(log))
    msgs = q.receive(max_records=20)
    acked = {(m.partition, m.offset) for m in msgs[::2]}
    for m in msgs[::2]:
        m.ack()
    log._simulate_crash()
    with pylog.open(data) as log:
        q = log.queue("w", "orders")
        again = q.receive(max_records=50)
        assert {(m.partition, m.offset) for m in again}.isdisjoint(acked)
        assert len(again) == 10 and all(m.delivery_count == 2 for m in again)


def test_snapshots_keep_the_topic_small_and_load_rebuilds_the_state(data):
    with pylog.open(data) as log:
        t = log.create_topic("orders", 1)
        t.partition(0).append_batch([b"x"] * 5000)
        log.share_groups.wait_loaded()
        store = log.share_groups.store
        store._retention_bytes = 64 << 10            # small, to force snapshots
        log.alter_topic_config(SHARE_STATE_TOPIC, {"retention.bytes": 64 << 10,
                                                   "segment.bytes": 8 << 10})
        q = log.queue("w", "orders", **earliest(log))
        for _ in range(50):
            msgs = q.receive(max_records=100)
            for m in msgs[:-2]:
                m.ack()
            msgs[-2].reject()
            msgs[-1].release()
        assert store.snapshots >= 1
        before = store.state("w", "orders", 0)
        sp = log.share_groups.share_partition("w", "orders", 0)
        spso = sp.spso
    with pylog.open(data) as log:
        log.share_groups.wait_loaded()
        store = log.share_groups.store
        start, entries = store.state("w", "orders", 0)
        assert (start, entries) == before and start == spso
        p = log.topic(SHARE_STATE_TOPIC).partition(0)
        assert p.log_start_offset > 0                 # retention dropped old segments


def test_undecodable_records_are_skipped_and_counted(data):
    with pylog.open(data) as log:
        t = log.create_topic("orders", 1)
        t.partition(0).append_batch([b"a", b"b"])
        q = log.queue("w", "orders", **earliest(log))
        q.receive(max_records=1)[0].ack()
        log.topic(SHARE_STATE_TOPIC).partition(0).append_batch(
            [b"\x00\x07junk", b"x"], [b"\x00\x01\x00\x01g", b"\x00\x09"])
    with pylog.open(data) as log:
        log.share_groups.wait_loaded()
        assert log.share_groups.store.skipped == 2
        q = log.queue("w", "orders")
        assert [m.offset for m in q.receive()] == [1]


def test_acks_wait_for_the_flush_policy(data):
    with pylog.open(data) as log:
        t = log.create_topic("orders", 1)
        t.partition(0).append(b"a")
        log.share_groups.wait_loaded()
        log.alter_topic_config(SHARE_STATE_TOPIC, {"flush.messages": 1})
        q = log.queue("w", "orders", **earliest(log))
        m = q.receive()[0]
        m.ack()
        p = log.topic(SHARE_STATE_TOPIC).partition(0)
        assert p.recovery_point >= p.log_end_offset - 1 > 0


def test_store_write_of_an_empty_delta_appends_nothing():
    log = pylog.open(None)
    try:
        s = ShareStore(log)
        s.load()
        s.write("g", "t", 0, Delta(0, ())).result()
        assert log.topic(SHARE_STATE_TOPIC).partition(0).log_end_offset == 0
    finally:
        log.close()
