"""Group administration through each client's admin API: DeleteGroups (kafka-python
``delete_groups``, confluent-kafka ``delete_consumer_groups``), OffsetDelete
(kafka-python ``delete_group_offsets``), LeaveGroup by instance id (kafka-python
``remove_group_members``), and the group limits as server flags."""
from __future__ import annotations

import time

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
from group_clients import create_topic
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import MemberToRemove

from pylog.testing import start_server


def _error_name(value) -> str:
    """kafka-python's per-item result: None / an error class / instance / its name."""
    if value is None:
        return "NoError"
    if isinstance(value, str):
        return value
    return value.__name__ if isinstance(value, type) else type(value).__name__


def _commit(bootstrap, group, topic, offsets, **conf):
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group, **conf})
    c.commit(offsets=[ck.TopicPartition(topic, p, o) for p, o in offsets], asynchronous=False)
    c.close()


def _committed(bootstrap, group, topic, partitions):
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    got = c.committed([ck.TopicPartition(topic, p) for p in partitions], timeout=10)
    c.close()
    return {tp.partition: tp.offset for tp in got}


def _active_member(bootstrap, group, topic):
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    deadline = time.monotonic() + 20
    while not c.assignment() and time.monotonic() < deadline:
        c.poll(0.1)
    assert c.assignment()
    return c


def test_delete_groups_with_both_admin_clients(bootstrap):
    create_topic(bootstrap, "adm-del", partitions=2)
    _commit(bootstrap, "del-kp", "adm-del", [(0, 3)])
    _commit(bootstrap, "del-ck", "adm-del", [(1, 4)])
    kp = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        result = dict(kp.delete_groups(["del-kp", "never-seen"]))
        assert _error_name(result["del-kp"]) in ("NoError", "OK"), result
        assert _error_name(result["never-seen"]) == "GroupIdNotFoundError", result
    finally:
        kp.close()
    assert _committed(bootstrap, "del-kp", "adm-del", [0]) == {0: ck.OFFSET_INVALID}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_consumer_groups(["del-ck"])["del-ck"].result(10)
    assert _committed(bootstrap, "del-ck", "adm-del", [1]) == {1: ck.OFFSET_INVALID}
    member = _active_member(bootstrap, "del-busy", "adm-del")
    try:
        with pytest.raises(ck.KafkaException) as info:
            admin.delete_consumer_groups(["del-busy"])["del-busy"].result(10)
        assert info.value.args[0].code() == ck.KafkaError.NON_EMPTY_GROUP
    finally:
        member.close()


def test_delete_group_offsets_with_kafka_python(bootstrap):
    create_topic(bootstrap, "adm-off", partitions=2)
    create_topic(bootstrap, "adm-off2", partitions=1)
    _commit(bootstrap, "offdel", "adm-off", [(0, 5), (1, 6)])
    kp = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        out = kp.delete_group_offsets("offdel", [TopicPartition("adm-off", 0)])
        assert {_error_name(e) for e in dict(out).values()} <= {"NoError", "OK"}, out
        assert _committed(bootstrap, "offdel", "adm-off", [0, 1]) == {0: ck.OFFSET_INVALID,
                                                                      1: 6}
        # An active member subscribed to the topic: refused per partition.
        _commit(bootstrap, "offbusy", "adm-off2", [(0, 1)])
        member = _active_member(bootstrap, "offbusy", "adm-off2")
        try:
            out = dict(kp.delete_group_offsets("offbusy", [TopicPartition("adm-off2", 0)]))
            assert _error_name(out[TopicPartition("adm-off2", 0)]) == \
                "GroupSubscribedToTopicError", out
        finally:
            member.close()
    finally:
        kp.close()


def test_remove_static_member_by_instance_id(bootstrap):
    create_topic(bootstrap, "adm-static", partitions=1)
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "adm-static",
                     "group.instance.id": "box-1", "session.timeout.ms": 30000})
    c.subscribe(["adm-static"])
    deadline = time.monotonic() + 20
    while not c.assignment() and time.monotonic() < deadline:
        c.poll(0.1)
    kp = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        before = kp.describe_groups(["adm-static"])["adm-static"]
        assert [m["group_instance_id"] for m in before["members"]] == ["box-1"], before
        kp.remove_group_members("adm-static", [MemberToRemove(group_instance_id="box-1")])
        after = kp.describe_groups(["adm-static"])["adm-static"]
        assert after["members"] == [] and after["group_state"] in ("Empty", "Dead"), after
    finally:
        kp.close()
        c.close()


def _broker_configs(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.BROKER, "0")
    return {n: e.value for n, e in admin.describe_configs([res])[res].result(10).items()}


def _join_error(bootstrap, group, session_ms, timeout=8.0):
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "session.timeout.ms": session_ms, "heartbeat.interval.ms": 500})
    c.subscribe(["limits"])
    deadline, error = time.monotonic() + timeout, None
    while time.monotonic() < deadline and not c.assignment() and error is None:
        m = c.poll(0.1)
        if m is not None and m.error():
            error = m.error().code()
    return c, error


def test_group_limits_are_server_settings(tmp_path):
    default = start_server(tmp_path / "a")
    try:
        create_topic(default.bootstrap, "limits")
        c, error = _join_error(default.bootstrap, "lim", 3000)
        c.close()
        assert error == ck.KafkaError.INVALID_SESSION_TIMEOUT
        cfg = _broker_configs(default.bootstrap)
        assert cfg["group.min.session.timeout.ms"] == "6000"
        assert cfg["group.max.size"] == "2147483647"
        assert cfg["offsets.retention.minutes"] == "10080"
    finally:
        default.stop()
    srv = start_server(tmp_path / "b", args=["--group-min-session-timeout-ms", "1000",
                                             "--group-max-size", "1"])
    try:
        create_topic(srv.bootstrap, "limits")
        first, error = _join_error(srv.bootstrap, "lim", 3000)
        assert error is None and first.assignment()             # 3 s is allowed now
        second, error = _join_error(srv.bootstrap, "lim", 3000)
        assert error == ck.KafkaError.GROUP_MAX_SIZE_REACHED
        second.close()
        first.close()
        assert _broker_configs(srv.bootstrap)["group.max.size"] == "1"
    finally:
        srv.stop()


def test_bad_group_settings_are_refused_at_startup():
    from pylog.server.settings import ConfigError, parse_config
    for argv, word in ((["--group-consumer-assignors", "sticky"], "assignors"),
                       (["--group-max-size", "0"], "group-max-size"),
                       (["--group-min-session-timeout-ms", "9000",
                         "--group-max-session-timeout-ms", "8000"], "exceed"),
                       (["--group-consumer-heartbeat-interval-ms", "50000"], "below")):
        with pytest.raises(ConfigError, match=word):
            parse_config(argv, environ={})
    cfg = parse_config([], environ={"PYLOG_GROUP_MAX_SIZE": "7",
                                    "PYLOG_OFFSETS_RETENTION_MINUTES": "2"})
    assert cfg.group_max_size == 7 and cfg.offsets_retention_minutes == 2
