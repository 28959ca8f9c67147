"""Incremental fetch sessions (KIP-227) over a raw socket, and the session cache rules."""
from __future__ import annotations

import datetime
import time
import uuid

import pytest
from kafka_raw import RawClient, module

from pylog.server.kafka.fetch_session import CachedPartition, FetchSessionCache
from test_protocol_raw import batch, metadata, produce

FETCH, CREATE_TOPICS = 1, 19
MS = datetime.timedelta(milliseconds=1)
V = 18


def _create(client, name, partitions):
    m = module(CREATE_TOPICS, 7)
    client.call(CREATE_TOPICS, 7, m.CreateTopicsRequest(timeout=5000 * MS, validate_only=False,
                topics=(m.CreatableTopic(name=name, num_partitions=partitions,
                                         replication_factor=1, assignments=(), configs=()),)))
    return metadata(client, [name], version=13).topics[0].topic_id


def _fetch(client, session_id, epoch, parts=(), forgotten=(), topic_id=None, wait_ms=0):
    """parts: (topic_id, partition, fetch_offset); forgotten: (topic_id, [partitions])."""
    m = module(FETCH, V)
    by_topic: dict = {}
    for tid, p, off in parts:
        by_topic.setdefault(tid, []).append(m.FetchPartition(
            partition=p, fetch_offset=off, partition_max_bytes=1 << 20))
    req = m.FetchRequest(max_wait=wait_ms * MS, min_bytes=1, max_bytes=1 << 20,
                         isolation_level=0, session_id=session_id, session_epoch=epoch,
                         rack_id="", topics=tuple(m.FetchTopic(topic_id=t, partitions=tuple(ps))
                                                 for t, ps in by_topic.items()),
                         forgotten_topics_data=tuple(m.ForgottenTopic(topic_id=t,
                                                                      partitions=tuple(ps))
                                                     for t, ps in forgotten))
    return client.call(FETCH, V, req)


def _answered(resp):
    return sorted((t.topic_id, p.partition_index) for t in resp.responses
                  for p in t.partitions)


@pytest.fixture
def client(bootstrap):
    with RawClient(bootstrap) as c:
        yield c


def test_incremental_fetches_carry_only_partitions_with_news(client):
    tid = _create(client, "fs-a", 50)
    full = _fetch(client, 0, 0, [(tid, p, 0) for p in range(50)])
    assert full.error_code == 0 and full.session_id != 0
    assert len(_answered(full)) == 50                       # a full fetch answers all
    sid = full.session_id
    idle = _fetch(client, sid, 1)
    assert idle.error_code == 0 and idle.session_id == sid and _answered(idle) == []
    produce(client, "fs-a", batch(["x", "y"]), partition=7)
    news = _fetch(client, sid, 2)
    (p7,) = [p for t in news.responses for p in t.partitions]
    assert (p7.partition_index, p7.high_watermark, len(p7.records) > 0) == (7, 2, True)
    again = _fetch(client, sid, 3)                          # offset not moved: records again
    assert _answered(again) == [(tid, 7)]
    moved = _fetch(client, sid, 4, [(tid, 7, 2)])           # the client sends its new offset
    assert _answered(moved) == []


def test_session_epoch_and_id_errors(client):
    tid = _create(client, "fs-b", 3)
    sid = _fetch(client, 0, 0, [(tid, p, 0) for p in range(3)]).session_id
    assert _fetch(client, sid, 5).error_code == 71            # INVALID_FETCH_SESSION_EPOCH
    assert _fetch(client, sid, 1).error_code == 0             # the expected epoch still works
    assert _fetch(client, 12345678, 1).error_code == 70       # FETCH_SESSION_ID_NOT_FOUND
    closed = _fetch(client, sid, -1, [(tid, 0, 0)])           # close: a sessionless fetch
    assert closed.session_id == 0 and _answered(closed) == [(tid, 0)]
    assert _fetch(client, sid, 2).error_code == 70


def test_forgotten_partitions_leave_the_session(client):
    tid = _create(client, "fs-c", 4)
    sid = _fetch(client, 0, 0, [(tid, p, 0) for p in range(4)]).session_id
    assert _fetch(client, sid, 1, forgotten=[(tid, [1, 2])]).error_code == 0
    for p in range(4):
        produce(client, "fs-c", batch(["v"]), partition=p)
    assert _answered(_fetch(client, sid, 2)) == [(tid, 0), (tid, 3)]


def test_unknown_topic_id_is_answered_per_partition(client):
    ghost = uuid.uuid4()
    resp = _fetch(client, 0, -1, [(ghost, 0, 0)])
    (t,) = resp.responses
    assert t.topic_id == ghost and t.partitions[0].error_code == 100


def test_kafka_python_consumer_of_many_partitions_uses_a_session(server, bootstrap):
    from kafka import KafkaConsumer, TopicPartition
    from test_http import metrics_json
    with RawClient(bootstrap) as c:
        _create(c, "fs-many", 200)
        produce(c, "fs-many", batch(["only"]), partition=9)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=50,
                             enable_incremental_fetch_sessions=True)
    try:
        consumer.assign([TopicPartition("fs-many", p) for p in range(200)])
        consumer.seek_to_beginning()
        got = []
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got += [r.value for r in records]
        assert got == [b"only"]
        stats = metrics_json(server)["fetch_sessions"]
        assert stats["sessions"] >= 1 and stats["partitions"] >= 200
        versions = metrics_json(server)["kafka_api_versions"]["Fetch"]
        assert "12" in versions                        # kafka-python's newest Fetch
    finally:
        consumer.close()


# -- the cache -------------------------------------------------------------------------
def _parts(n):
    return {("t", i): CachedPartition("t", None, i, 0, 100) for i in range(n)}


def test_a_full_cache_evicts_an_idle_session_first_then_a_smaller_one():
    cache = FetchSessionCache(max_slots=2, eviction_ms=60_000)
    a, b = cache.create(_parts(5)), cache.create(_parts(1))
    assert cache.create(_parts(1)) is None          # full; no session idle, none smaller
    c = cache.create(_parts(3))                     # evicts b (fewer partitions)
    assert cache.get(b.id) is None and cache.get(a.id) is a and c is not None
    a.last_used -= 120                              # a has been idle 2 minutes
    d = cache.create(_parts(1))
    assert cache.get(a.id) is None and d is not None and cache.evictions == 2


def test_no_slots_means_sessionless():
    assert FetchSessionCache(max_slots=0).create(_parts(3)) is None
