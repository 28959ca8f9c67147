"""DescribeCluster, DescribeLogDirs, DescribeProducers, ElectLeaders, DescribeTopicPartitions
and the telemetry APIs, through real admin clients and raw (hostile) requests."""
from __future__ import annotations

import uuid

import pytest
from confluent_kafka import ElectionType, Producer, TopicPartition as CKTopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.structs import TopicPartition

from kafka_raw import RawClient, req, module

DESCRIBE_CLUSTER, DESCRIBE_LOG_DIRS, DESCRIBE_PRODUCERS = 60, 35, 61
ELECT_LEADERS, DESCRIBE_TOPIC_PARTITIONS, GET_TELEMETRY = 43, 75, 71


def _create(bootstrap, name, partitions=1, records=0):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    from kafka.admin import NewTopic
    admin.create_topics([NewTopic(name, partitions, 1)])
    admin.close()
    if records:
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        for i in range(records):
            p.produce(name, b"v%d" % i, partition=0)
        p.flush(10)


def test_describe_cluster_through_both_admin_clients(server, bootstrap):
    ck = AdminClient({"bootstrap.servers": bootstrap})
    desc = ck.describe_cluster(request_timeout=10).result()
    assert [n.id for n in desc.nodes] == [0] and desc.controller.id == 0
    assert desc.nodes[0].port == int(bootstrap.rsplit(":", 1)[1])
    kp = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        d = kp.describe_cluster()
        assert d["controller_id"] == 0 and [b["broker_id"] for b in d["brokers"]] == [0]
        assert d["cluster_id"] == desc.cluster_id
    finally:
        kp.close()


def test_describe_cluster_controllers_endpoint_is_refused(bootstrap):
    with RawClient(bootstrap) as c:
        r = c.call(DESCRIBE_CLUSTER, 1, req(DESCRIBE_CLUSTER, 1,
                                             include_cluster_authorized_operations=True,
                                             endpoint_type=2))
        assert r.error_code == 119 and r.brokers == ()
        r = c.call(DESCRIBE_CLUSTER, 2, req(DESCRIBE_CLUSTER, 2,
                                             include_cluster_authorized_operations=True,
                                             include_fenced_brokers=True))
        assert r.error_code == 0 and r.cluster_authorized_operations > 0


def test_describe_log_dirs_lists_partition_sizes(server, bootstrap):
    _create(bootstrap, "ld-a", 2, records=5)
    kp = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        out = kp.describe_log_dirs()
    finally:
        kp.close()
    with RawClient(bootstrap) as c:
        r = c.call(DESCRIBE_LOG_DIRS, 4, req(DESCRIBE_LOG_DIRS, 4, topics=None))
    (res,) = r.results
    assert res.log_dir == str(server.data_dir.resolve()) or res.log_dir.endswith("data")
    sizes = {(t.name, p.partition_index): p.partition_size for t in res.topics
             for p in t.partitions}
    assert sizes[("ld-a", 0)] > 0 and sizes[("ld-a", 1)] == 0
    assert res.total_bytes >= res.usable_bytes > 0
    assert out is not None


def test_describe_log_dirs_of_named_partitions_leaves_unknown_topics_out(bootstrap):
    _create(bootstrap, "ld-b", 3)
    m = module(DESCRIBE_LOG_DIRS, 1)
    with RawClient(bootstrap) as c:
        r = c.call(DESCRIBE_LOG_DIRS, 1, req(DESCRIBE_LOG_DIRS, 1, topics=(
            m.DescribableLogDirTopic(topic="ld-b", partitions=(1,)),
            m.DescribableLogDirTopic(topic="nope", partitions=(0,)))))
    (res,) = r.results
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in res.topics] == \
        [("ld-b", [1])]


def test_describe_producers_shows_the_idempotent_producer(bootstrap):
    _create(bootstrap, "dp-a", 1, records=3)
    kp = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        out = kp.describe_producers([TopicPartition("dp-a", 0)])
    finally:
        kp.close()
    m = module(DESCRIBE_PRODUCERS, 0)
    with RawClient(bootstrap) as c:
        r = c.call(DESCRIBE_PRODUCERS, 0, req(DESCRIBE_PRODUCERS, 0, topics=(
            m.TopicRequest(name="dp-a", partition_indexes=(0, 5)),)))
    p0, p5 = r.topics[0].partitions
    assert p0.error_code == 0 and len(p0.active_producers) == 1
    st = p0.active_producers[0]
    assert (st.producer_epoch, st.last_sequence, st.coordinator_epoch) == (0, 2, -1)
    assert p5.error_code == 3 and p5.active_producers == ()
    assert out is not None


def test_elect_leaders_answers_election_not_needed(bootstrap):
    _create(bootstrap, "el-a", 2)
    ck = AdminClient({"bootstrap.servers": bootstrap})
    fut = ck.elect_leaders(ElectionType.PREFERRED, [CKTopicPartition("el-a", 0)])
    results = fut.result(timeout=10)
    # confluent-kafka maps ELECTION_NOT_NEEDED to "no error" (nothing to do) or an error
    # per partition, depending on the version: either is Kafka's own answer
    assert set(results) == {CKTopicPartition("el-a", 0)}
    with RawClient(bootstrap) as c:
        m = module(ELECT_LEADERS, 2)
        r = c.call(ELECT_LEADERS, 2, req(ELECT_LEADERS, 2, election_type=0, topic_partitions=(
            m.TopicPartitions(topic="el-a", partitions=(0, 9)),)))
    codes = [p.error_code for p in r.replica_election_results[0].partition_result]
    assert codes == [84, 3]


def test_describe_topic_partitions_pages_with_the_cursor(bootstrap):
    _create(bootstrap, "dtp-a", 3)
    _create(bootstrap, "dtp-b", 2)
    m = module(DESCRIBE_TOPIC_PARTITIONS, 0)
    seen, cursor = [], None
    with RawClient(bootstrap) as c:
        for _ in range(10):
            r = c.call(DESCRIBE_TOPIC_PARTITIONS, 0, req(
                DESCRIBE_TOPIC_PARTITIONS, 0, response_partition_limit=2, cursor=cursor,
                topics=(m.TopicRequest(name="dtp-a"), m.TopicRequest(name="dtp-b"),
                        m.TopicRequest(name="dtp-none"))))
            for t in r.topics:
                assert t.error_code in (0, 3)
                if t.error_code == 0:
                    assert isinstance(t.topic_id, uuid.UUID)
                seen += [(t.name, p.partition_index) for p in t.partitions]
            if r.next_cursor is None:
                break
            cursor = m.Cursor(topic_name=r.next_cursor.topic_name,
                              partition_index=r.next_cursor.partition_index)
    assert seen == [("dtp-a", 0), ("dtp-a", 1), ("dtp-a", 2), ("dtp-b", 0), ("dtp-b", 1)]
    kp = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        assert kp.describe_topic_partitions(["dtp-b"]) is not None
    finally:
        kp.close()


def test_telemetry_subscription_is_empty_and_pushes_are_dropped(bootstrap):
    with RawClient(bootstrap) as c:
        r = c.call(GET_TELEMETRY, 0, req(GET_TELEMETRY, 0, client_instance_id=None))
        assert r.error_code == 0 and r.requested_metrics == () and r.client_instance_id
        r2 = c.call(72, 0, req(72, 0, client_instance_id=r.client_instance_id,
                                subscription_id=7, terminating=False, compression_type=0,
                                metrics=b""))
        assert r2.error_code == 117


@pytest.mark.parametrize("key,version,body", [
    (DESCRIBE_CLUSTER, 2, b"\x01\x01"),                    # truncated
    (DESCRIBE_TOPIC_PARTITIONS, 0, b"\xff\xff\xff\xff\x0f"),   # compact array, huge length
    (DESCRIBE_LOG_DIRS, 4, b"\x00"),                        # null compact array, no tags
    (DESCRIBE_PRODUCERS, 0, b"\x02\x00"),                   # topic name of length -1
    (ELECT_LEADERS, 2, b"\x00\x02\x02\x05xy"),
])
def test_hostile_bodies_close_the_connection_or_get_an_error(bootstrap, key, version, body):
    with RawClient(bootstrap) as c:
        c.send_frame(c.header(key, version) + b"\x00" + body)
        try:
            frame = c.recv_frame()
        except ConnectionError:
            return                                        # closed: Kafka does the same
        assert len(frame) >= 4
    with RawClient(bootstrap) as c:                       # the server still serves
        assert c.call(DESCRIBE_CLUSTER, 0, req(
            DESCRIBE_CLUSTER, 0, include_cluster_authorized_operations=False)).error_code == 0
