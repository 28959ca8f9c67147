"""Each real client consumes a 4-partition topic in a group, commits, stops, and a new
instance resumes exactly after the last commit; committed offsets are visible to the
other clients through OffsetFetch."""
from __future__ import annotations

import pytest
from group_clients import CONSUMERS, consume_confluent, create_topic, produce


@pytest.mark.parametrize("client", sorted(CONSUMERS))
def test_client_resumes_exactly_after_its_last_commit(bootstrap, client):
    topic = group = f"resume-{client}"
    create_topic(bootstrap, topic)
    values = [f"{client}-{i}".encode() for i in range(40)]
    produce(bootstrap, topic, values)
    consume = CONSUMERS[client]
    first = consume(bootstrap, group, topic, 15)
    assert len(first) == 15
    more = [f"{client}-late-{i}".encode() for i in range(10)]
    produce(bootstrap, topic, more)
    second = consume(bootstrap, group, topic, 35) if client != "kcat" else \
        consume(bootstrap, group, topic)          # kcat: -e, to the end of each partition
    seen = [v for _, _, v in first + second]
    assert sorted(seen) == sorted(values + more)  # nothing missed, nothing twice
    # per partition, the second run starts exactly where the first one committed
    for p in range(4):
        firsts = [o for q, o, _ in first if q == p]
        seconds = [o for q, o, _ in second if q == p]
        if firsts and seconds:
            assert min(seconds) == max(firsts) + 1


def test_offsets_committed_by_one_client_are_resumed_by_another(bootstrap):
    topic = group = "resume-mixed"
    create_topic(bootstrap, topic)
    values = [b"m%d" % i for i in range(40)]
    produce(bootstrap, topic, values)
    got = CONSUMERS["kafka-python"](bootstrap, group, topic, 10)
    got += CONSUMERS["aiokafka"](bootstrap, group, topic, 10)
    got += consume_confluent(bootstrap, group, topic, 10)
    got += CONSUMERS["kcat"](bootstrap, group, topic)
    assert sorted(v for _, _, v in got) == sorted(values)


def test_admin_clients_list_and_describe_groups_and_their_offsets(bootstrap):
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaAdminClient, TopicPartition
    topic = "admin-view"
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, [b"a%d" % i for i in range(8)])
    consume_confluent(bootstrap, "admin-idle", topic, 4)
    live = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "admin-live",
                        "auto.offset.reset": "earliest"})
    live.subscribe([topic])
    try:
        while not live.assignment():
            live.poll(0.1)
        kp = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            listed = {g["group_id"]: g["protocol_type"] for g in kp.list_groups()}
            assert listed["admin-idle"] == listed["admin-live"] == "consumer"
            described = kp.describe_groups(["admin-live", "admin-idle"])
            assert described["admin-live"]["group_state"] == "Stable"
            (member,) = described["admin-live"]["members"]
            assert member["member_assignment"]["assigned_partitions"] == [
                {"topic": topic, "partitions": [0, 1, 2, 3]}]
            assert described["admin-idle"]["group_state"] == "Empty"
            offsets = kp.list_group_offsets("admin-idle")["admin-idle"]
            assert sum(o.offset for o in offsets.values()) == 4
            assert all(isinstance(tp, TopicPartition) for tp in offsets)
        finally:
            kp.close()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        ids = {g.group_id for g in admin.list_consumer_groups().result(10).valid}
        assert {"admin-idle", "admin-live"} <= ids
        g = admin.describe_consumer_groups(["admin-live"])["admin-live"].result(10)
        assert g.state == ck.ConsumerGroupState.STABLE and len(g.members) == 1
    finally:
        live.close()
