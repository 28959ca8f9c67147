"""What the newest versions add: topic ids, by-id lookups, ListOffsets specials,
batched FindCoordinator/OffsetFetch, CreateTopics v7 details; and what each real client
negotiates (recorded by the broker's per-version request counters)."""
from __future__ import annotations

import datetime
import subprocess
import uuid

import pytest
from kafka_raw import RawClient, module, req

from test_fetch_sessions import _create
from test_http import metrics_json
from test_protocol_raw import batch, metadata

MS = datetime.timedelta(milliseconds=1)
PRODUCE, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 0, 2, 3, 8, 9, 10


@pytest.fixture
def client(bootstrap):
    with RawClient(bootstrap) as c:
        yield c


def _produce_by_id(client, topic_id, records, partition=0):
    m = module(PRODUCE, 13)
    r = client.call(PRODUCE, 13, m.ProduceRequest(transactional_id=None, acks=-1,
                    timeout=5000 * MS, topic_data=(m.TopicProduceData(topic_id=topic_id,
                    partition_data=(m.PartitionProduceData(index=partition,
                                                           records=records),)),)))
    return r.responses[0]


def test_metadata_carries_topic_ids_and_looks_up_by_id(client):
    tid = _create(client, "fv-a", 2)
    assert isinstance(tid, uuid.UUID) and tid.int != 0
    m = module(METADATA, 13)
    r = client.call(METADATA, 13, m.MetadataRequest(
        topics=(m.MetadataRequestTopic(topic_id=tid, name=None),
                m.MetadataRequestTopic(topic_id=uuid.uuid4(), name=None)),
        allow_auto_topic_creation=False, include_topic_authorized_operations=False))
    found, ghost = r.topics
    assert (found.name, found.topic_id, len(found.partitions)) == ("fv-a", tid, 2)
    assert ghost.error_code == 100 and ghost.name is None
    assert r.error_code == 0


def test_produce_v13_by_topic_id(client):
    tid = _create(client, "fv-b", 1)
    resp = _produce_by_id(client, tid, batch(["a", "b"]))
    assert resp.topic_id == tid and resp.partition_responses[0].error_code == 0
    ghost = _produce_by_id(client, uuid.uuid4(), batch(["c"]))
    assert ghost.partition_responses[0].error_code == 100


def test_list_offsets_max_timestamp_and_tiered_specials(client):
    tid = _create(client, "fv-c", 1)
    from pylog.records import encode_batch
    for ts in (1000, 5000, 3000):
        _produce_by_id(client, tid, encode_batch([b"v"], timestamps=ts))
    m = module(LIST_OFFSETS, 11)

    def lookup(ts):
        r = client.call(LIST_OFFSETS, 11, m.ListOffsetsRequest(
            replica_id=-1, isolation_level=0, timeout=1000 * MS, topics=(m.ListOffsetsTopic(
                name="fv-c", partitions=(m.ListOffsetsPartition(
                    partition_index=0, current_leader_epoch=-1, timestamp=ts),)),)))
        p = r.topics[0].partitions[0]
        return p.error_code, p.offset, p.timestamp
    assert lookup(-3) == (0, 1, 5000)            # MAX_TIMESTAMP: the record, its time
    assert lookup(-4) == (0, 0, -1)              # EARLIEST_LOCAL = log start
    assert lookup(-5) == (0, -1, -1)             # LATEST_TIERED: nothing tiered
    assert lookup(-1)[:2] == (0, 3) and lookup(4000)[:3] == (0, 1, 5000)


def test_find_coordinator_v4_batches_keys(client):
    m = module(FIND_COORDINATOR, 6)
    r = client.call(FIND_COORDINATOR, 6, m.FindCoordinatorRequest(key_type=0,
                                                                  coordinator_keys=("a", "b")))
    assert [(c.key, c.node_id, c.error_code) for c in r.coordinators] == [("a", 0, 0),
                                                                          ("b", 0, 0)]
    r = client.call(FIND_COORDINATOR, 6, m.FindCoordinatorRequest(key_type=1,
                                                                  coordinator_keys=("tx",)))
    assert (r.coordinators[0].error_code, r.coordinators[0].node_id) == (0, 0)   # this node
    r = client.call(FIND_COORDINATOR, 6, m.FindCoordinatorRequest(key_type=7,
                                                                  coordinator_keys=("x",)))
    assert r.coordinators[0].error_code == 15                                    # unknown type


def test_offset_commit_and_fetch_v10_by_topic_id_and_batched_groups(client):
    tid = _create(client, "fv-d", 2)
    c = module(OFFSET_COMMIT, 10)
    r = client.call(OFFSET_COMMIT, 10, c.OffsetCommitRequest(
        group_id="fv-g", generation_id_or_member_epoch=-1, member_id="", group_instance_id=None,
        topics=(c.OffsetCommitRequestTopic(topic_id=tid, partitions=(
            c.OffsetCommitRequestPartition(partition_index=1, committed_offset=7,
                                           committed_leader_epoch=-1, committed_metadata="m"),)),
            c.OffsetCommitRequestTopic(topic_id=uuid.uuid4(), partitions=(
                c.OffsetCommitRequestPartition(partition_index=0, committed_offset=1,
                                               committed_leader_epoch=-1,
                                               committed_metadata=None),)))))
    assert [p.error_code for t in r.topics for p in t.partitions] == [0, 100]
    f = module(OFFSET_FETCH, 10)
    r = client.call(OFFSET_FETCH, 10, f.OffsetFetchRequest(require_stable=False, groups=(
        f.OffsetFetchRequestGroup(group_id="fv-g", member_id=None, member_epoch=-1,
                                  topics=(f.OffsetFetchRequestTopics(topic_id=tid,
                                                                     partition_indexes=(0, 1)),)),
        f.OffsetFetchRequestGroup(group_id="fv-none", member_id=None, member_epoch=-1,
                                  topics=None))))
    g, empty = r.groups
    (t,) = g.topics
    assert t.topic_id == tid
    assert [(p.partition_index, p.committed_offset) for p in t.partitions] == [(0, -1), (1, 7)]
    assert empty.error_code == 0 and empty.topics == ()


def test_create_topics_v7_describes_what_it_made(client):
    m = module(19, 7)
    def create(n):
        return client.call(19, 7, m.CreateTopicsRequest(
            timeout=5000 * MS, validate_only=False, topics=(m.CreatableTopic(
                name="fv-e", num_partitions=n, replication_factor=1, assignments=(),
                configs=(m.CreatableTopicConfig(name="retention.ms", value="60000"),)),)))
    (ok,), (dup,) = create(3).topics, create(1).topics
    assert (ok.error_code, ok.num_partitions, ok.replication_factor) == (0, 3, 1)
    assert ok.topic_id == metadata(client, ["fv-e"], version=13).topics[0].topic_id
    assert {c.name: c.value for c in ok.configs}["retention.ms"] == "60000"
    assert dup.error_code == 36 and (dup.topic_id is None or dup.topic_id.int == 0)
    assert (dup.num_partitions, dup.configs) == (-1, None)


# -- what each client at its newest release negotiates ---------------------------------------
def test_clients_negotiate_their_newest_versions_without_a_fallback_round_trip(server,
                                                                               bootstrap):
    """librdkafka 2.16 and kafka-python 3.0 open with ApiVersions v3/v4 and get an answer
    (no error-35 retry at v0/v2); their Produce/Fetch/Metadata are the newest they have."""
    from confluent_kafka import Consumer, Producer
    from kafka import KafkaConsumer, KafkaProducer
    before = metrics_json(server)["kafka_api_versions"]
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    p.produce("fv-clients", b"x")
    assert p.flush(15) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fv-cg",
                  "auto.offset.reset": "earliest"})
    c.subscribe(["fv-clients"])
    msg = None
    for _ in range(60):
        msg = c.poll(0.5)
        if msg is not None and not msg.error():
            break
    c.close()
    assert msg is not None and msg.value() == b"x"
    after = metrics_json(server)["kafka_api_versions"]
    delta = {api: {v: n - before.get(api, {}).get(v, 0) for v, n in vs.items()
                   if n > before.get(api, {}).get(v, 0)} for api, vs in after.items()}
    assert set(delta["ApiVersions"]) == {"3"}                 # no v0 retry
    assert "10" in delta["Produce"] and "16" in delta["Fetch"] and "13" in delta["Metadata"]
    assert "GetTelemetrySubscriptions" in delta                # answered, no error logged

    kp = KafkaProducer(bootstrap_servers=bootstrap)
    kp.send("fv-clients", b"y").get(10)
    kp.close()
    kc = KafkaConsumer("fv-clients", bootstrap_servers=bootstrap, group_id="fv-kg",
                       auto_offset_reset="earliest", consumer_timeout_ms=10000)
    assert [m.value for m in kc][:2] == [b"x", b"y"]
    kc.close()
    final = metrics_json(server)["kafka_api_versions"]
    assert final["ApiVersions"].get("4", 0) > 0 and "2" not in final["ApiVersions"]
    assert "9" in final["Produce"] and "12" in final["Fetch"]


def test_kcat_2_0_2_still_works_on_older_versions(server, bootstrap):
    subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", "fv-kcat", "-z", "gzip"],
                   input=b"one\ntwo\n", check=True, timeout=30)
    out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", "fv-kcat", "-e", "-o",
                          "beginning", "-q"], capture_output=True, check=True, timeout=30)
    assert out.stdout.split() == [b"one", b"two"]
    versions = metrics_json(server)["kafka_api_versions"]
    assert "7" in versions["Produce"] and "11" in versions["Fetch"]
