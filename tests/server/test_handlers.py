"""Handlers as plain functions over the real storage engine (pylog.open(None)), in-process:
request entity in, response entity out; the rules that are awkward to reach with clients."""
from __future__ import annotations

import asyncio
import datetime

import pytest
from kafka_raw import module

import pylog
from pylog.records import encode_batch, iter_headers
from pylog.server.kafka.context import BrokerContext, BrokerSettings, RequestContext
from pylog.server.kafka.dispatch import API_TABLE, Applied
from pylog.server.kafka.messages import RequestHeader

MS = datetime.timedelta(milliseconds=1)


@pytest.fixture
def broker():
    log = pylog.open(None)
    yield BrokerContext(log, BrokerSettings(num_partitions=3))
    log.close()


def call(broker, key, version, body):
    ctx = RequestContext(broker, RequestHeader(key, version, 1, "t", 0), "127.0.0.1", 9999)
    result = API_TABLE[key].handler(ctx, body)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    if isinstance(result, Applied):
        result = asyncio.run(result.awaitable)
    return result


def fetch_body(parts, max_bytes, partition_max_bytes=1 << 20, wait_ms=0):
    mod = module(1, 11)
    topics = {}
    for topic, p, offset in parts:
        topics.setdefault(topic, []).append(mod.FetchPartition(
            partition=p, current_leader_epoch=-1, fetch_offset=offset, log_start_offset=-1,
            partition_max_bytes=partition_max_bytes))
    return mod.FetchRequest(replica_id=-1, max_wait=wait_ms * MS, min_bytes=1,
                            max_bytes=max_bytes, isolation_level=0, session_id=0,
                            session_epoch=-1, forgotten_topics_data=(), rack_id="",
                            topics=tuple(mod.FetchTopic(topic=t, partitions=tuple(ps))
                                         for t, ps in topics.items()))


def fill(broker, topic, partitions, batches, size):
    t = broker.create_topic(topic, partitions, {})
    for p in range(partitions):
        for _ in range(batches):
            t.partition(p).append_raw(encode_batch([b"v" * size]))
    return t


def test_fetch_budget_gives_the_first_partition_a_whole_batch_and_skips_what_does_not_fit(
        broker):
    fill(broker, "kip74", 3, 3, 3000)
    resp = call(broker, 1, 11, fetch_body([("kip74", p, 0) for p in range(3)], max_bytes=5000))
    parts = resp.responses[0].partitions
    sizes = [len(bytes(p.records)) for p in parts]
    assert sizes[0] > 3000            # one whole batch though it alone exceeds nothing yet
    assert sizes[1] == 0              # 3 KB batch does not fit the ~2 KB left: next fetch
    assert [p.high_watermark for p in parts] == [3, 3, 3]
    assert [p.partition_index for p in parts] == [0, 1, 2]


def test_fetch_partition_max_bytes_limits_each_partition_to_whole_batches(broker):
    fill(broker, "pmb", 1, 5, 1000)
    resp = call(broker, 1, 11, fetch_body([("pmb", 0, 1)], max_bytes=1 << 20,
                                          partition_max_bytes=2500))
    records = bytes(resp.responses[0].partitions[0].records)
    offsets = [h.base_offset for _, h in iter_headers(records)]
    assert offsets == [1, 2] and len(records) <= 2500


def test_fetch_below_log_start_is_out_of_range(broker):
    fill(broker, "low", 1, 1, 10)
    part = call(broker, 1, 11, fetch_body([("low", 0, -1)], 1 << 20)).responses[0].partitions[0]
    assert part.error_code == 1


def test_fetch_older_versions_have_their_own_layout(broker):
    fill(broker, "v4", 1, 2, 10)
    mod = module(1, 4)
    body = mod.FetchRequest(replica_id=-1, max_wait=0 * MS, min_bytes=1, max_bytes=1 << 20,
                            isolation_level=1, topics=(mod.FetchTopic(topic="v4", partitions=(
                                mod.FetchPartition(partition=0, fetch_offset=0,
                                                   partition_max_bytes=1 << 20),)),))
    part = call(broker, 1, 4, body).responses[0].partitions[0]
    assert (part.error_code, part.high_watermark, part.last_stable_offset) == (0, 2, 2)


def test_metadata_v0_lists_all_topics_and_auto_creates_with_num_partitions(broker):
    mod = module(3, 0)
    resp = call(broker, 3, 0, mod.MetadataRequest(topics=(mod.MetadataRequestTopic(name="auto"),)))
    assert len(resp.topics[0].partitions) == 3
    assert resp.brokers[0].port == 9999
    resp = call(broker, 3, 0, mod.MetadataRequest(topics=()))
    assert [t.name for t in resp.topics] == ["auto"]


def test_auto_creation_can_be_turned_off(broker):
    broker.settings.auto_create_topics = False
    mod = module(3, 1)
    resp = call(broker, 3, 1, mod.MetadataRequest(topics=(mod.MetadataRequestTopic(name="no"),)))
    assert resp.topics[0].error_code == 3 and not broker.log.has_topic("no")


def test_describe_configs_broker_resource(broker):
    mod = module(32, 3)
    res = mod.DescribeConfigsResource(resource_type=4, resource_name="0",
                                      configuration_keys=("num.partitions",))
    resp = call(broker, 32, 3, mod.DescribeConfigsRequest(resources=(res,)))
    assert [(c.name, c.value) for c in resp.results[0].configs] == [("num.partitions", "3")]


def test_create_topics_validate_only_creates_nothing(broker):
    mod = module(19, 4)
    ct = mod.CreatableTopic(name="dry", num_partitions=2, replication_factor=1, assignments=(),
                            configs=(mod.CreatableTopicConfig(name="flush.messages", value="1"),))
    resp = call(broker, 19, 4, mod.CreateTopicsRequest(topics=(ct,), timeout=MS,
                                                       validate_only=True))
    assert resp.topics[0].error_code == 0 and not broker.log.has_topic("dry")


def test_produce_waits_for_the_barrier_when_the_topic_asks_for_durable_acks(tmp_path):
    log = pylog.open(tmp_path / "data")
    try:
        broker = BrokerContext(log)
        broker.create_topic("durable", 1, {"flush.messages": 1})
        mod = module(0, 8)
        pd = mod.PartitionProduceData(index=0, records=encode_batch([b"a", b"b"]))
        body = mod.ProduceRequest(transactional_id=None, acks=-1, timeout=1000 * MS,
                                  topic_data=(mod.TopicProduceData(name="durable",
                                                                   partition_data=(pd,)),))
        ctx = RequestContext(broker, RequestHeader(0, 8, 1, "t", 0))
        result = API_TABLE[0].handler(ctx, body)
        assert isinstance(result, Applied)          # appended; answered after the barrier
        resp = asyncio.run(result.awaitable)
        part = resp.responses[0].partition_responses[0]
        assert (part.error_code, part.base_offset) == (0, 0)
        assert log.topic("durable").partition(0).recovery_point >= 2
    finally:
        log.close()


_KAFKA_LEGAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def kafka_accepts(name: str) -> bool:
    """Kafka's Topic.validate, written independently of the server's check."""
    return 0 < len(name) <= 249 and name not in (".", "..") and set(name) <= _KAFKA_LEGAL


def test_auto_created_topic_names_match_kafkas_rule_and_stay_inside_the_data_dir(tmp_path):
    import os

    from hypothesis import HealthCheck, given, settings, strategies as st
    names = st.one_of(
        st.text(max_size=12),
        st.text(alphabet="ab./\\_-\x00é", max_size=8),
        st.sampled_from(["../x", "a/b", "..", ".", "t" * 249, "t" * 250, "/etc/x", "a\\b",
                         "__consumer_offsets-x", "ok.name_1-2"]),
        st.integers(247, 251).map(lambda n: "n" * n))
    root = tmp_path / "root"
    log = pylog.open(root / "data")
    broker = BrokerContext(log)
    mod = module(3, 4)
    try:
        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(name=names)
        def check(name):
            resp = call(broker, 3, 4, mod.MetadataRequest(
                topics=(mod.MetadataRequestTopic(name=name),), allow_auto_topic_creation=True))
            accepted = resp.topics[0].error_code == 0
            # Kafka also refuses a name that collides with an existing one ('.' vs '_').
            collides = any(n != name and n.replace(".", "_") == name.replace(".", "_")
                           for n in created)
            assert accepted == (kafka_accepts(name) and not collides), name
            if accepted:
                created.add(name)
            else:
                assert resp.topics[0].error_code == 17
        created: set[str] = set()
        check()
    finally:
        log.close()
    outside = [p for p in root.rglob("*") if not str(p).startswith(str(root / "data"))]
    assert outside == []
    for entry in os.listdir(root / "data"):
        assert (root / "data" / entry).resolve().parent == (root / "data").resolve()


def test_producer_state_of_a_large_partition_is_rebuilt_off_the_loop_after_restart(tmp_path):
    log = pylog.open(tmp_path / "data")
    try:
        p = BrokerContext(log).create_topic("big-idem", 1, {}).partition(0)
        for seq in range(0, 12_000, 40):                     # ~1.3 MiB of idempotent batches
            p.append_raw(encode_batch([b"x" * 100] * 40, producer_id=7, producer_epoch=0,
                                      base_sequence=seq))
        assert p.size_bytes >= 1 << 20
        broker = BrokerContext(log)                          # a restarted server: no state
        mod = module(0, 8)
        retry = encode_batch([b"x" * 100] * 40, producer_id=7, producer_epoch=0,
                             base_sequence=11_960)
        body = mod.ProduceRequest(transactional_id=None, acks=-1, timeout=1000 * MS,
                                  topic_data=(mod.TopicProduceData(name="big-idem", partition_data=(
                                      mod.PartitionProduceData(index=0, records=retry),)),))
        ctx = RequestContext(broker, RequestHeader(0, 8, 1, "t", 0))

        async def run():
            result = API_TABLE[0].handler(ctx, body)
            assert asyncio.iscoroutine(result)               # waits for the worker thread
            return await result
        part = asyncio.run(run()).responses[0].partition_responses[0]
        assert (part.error_code, part.base_offset) == (0, 11_960)
        assert p.log_end_offset == 12_000                    # the retry was not written
        assert broker.producers.has_state(p)
    finally:
        log.close()
