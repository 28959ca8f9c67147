"""AlterConfigs (33), IncrementalAlterConfigs (44) and DescribeConfigs (32) for TOPIC,
BROKER and GROUP resources through each client's admin API: changes apply live (retention
deletes segments without a restart), persist, and every refusal has Kafka's code."""
from __future__ import annotations

import asyncio
import json
import time

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, ConfigSource, NewTopic)

from kafka_raw import RawClient, module

from pylog.testing import PylogServer

T, B, G = ConfigResource.Type.TOPIC, ConfigResource.Type.BROKER, ConfigResource.Type.GROUP


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = PylogServer(tmp_path_factory.mktemp("admin-cfg") / "data",
                      args=["--retention-check-interval-ms", "100"]).start()
    yield srv
    assert srv.stop() == 0, srv.log_text()[-3000:]


@pytest.fixture(scope="module")
def admin(server):
    return AdminClient({"bootstrap.servers": server.bootstrap})


def _create(admin, name, partitions=1, config=None):
    admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(10)


def _describe(admin, restype, name) -> dict[str, ConfigEntry]:
    res = ConfigResource(restype, name)
    return admin.describe_configs([res])[res].result(timeout=10)


def _incremental(admin, restype, name, *ops, validate_only=False):
    res = ConfigResource(restype, name, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=op) for k, v, op in ops])
    return admin.incremental_alter_configs([res], validate_only=validate_only)[res].result(10)


def _code(fut) -> int:
    with pytest.raises(ck.KafkaException) as e:
        fut.result(timeout=10)
    return e.value.args[0].code()


SET, DELETE, APPEND, SUBTRACT = (AlterConfigOpType.SET, AlterConfigOpType.DELETE,
                                 AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT)


# ---- TOPIC ---------------------------------------------------------------------------
def test_confluent_incremental_set_and_delete_on_a_topic(admin):
    _create(admin, "cfg-inc")
    _incremental(admin, T, "cfg-inc", ("retention.ms", "3600000", SET),
                 ("flush.messages", "1", SET))
    got = _describe(admin, T, "cfg-inc")
    assert got["retention.ms"].value == "3600000"
    assert got["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert got["flush.messages"].value == "1"
    _incremental(admin, T, "cfg-inc", ("retention.ms", None, DELETE))
    got = _describe(admin, T, "cfg-inc")
    assert got["retention.ms"].value == "604800000" and got["retention.ms"].is_default
    assert got["flush.messages"].value == "1"                    # untouched


def test_confluent_legacy_alter_configs_replaces_the_whole_set(admin):
    _create(admin, "cfg-legacy", config={"retention.ms": "1000000", "segment.bytes": "65536"})
    res = ConfigResource(T, "cfg-legacy", set_config={"retention.bytes": "123456789"})
    admin.alter_configs([res])[res].result(timeout=10)
    got = _describe(admin, T, "cfg-legacy")
    assert got["retention.bytes"].value == "123456789"
    assert got["retention.ms"].is_default and got["segment.bytes"].is_default


def test_validate_only_changes_nothing(admin):
    _create(admin, "cfg-dry")
    _incremental(admin, T, "cfg-dry", ("retention.ms", "5", SET), validate_only=True)
    assert _describe(admin, T, "cfg-dry")["retention.ms"].is_default
    res = ConfigResource(T, "cfg-dry", set_config={"retention.ms": "nope"})
    assert _code(admin.alter_configs([res], validate_only=True)[res]) == 40


def test_append_and_subtract_only_on_list_keys(admin):
    _create(admin, "cfg-list")
    _incremental(admin, T, "cfg-list", ("cleanup.policy", "delete", APPEND))
    assert _describe(admin, T, "cfg-list")["cleanup.policy"].value == "delete"
    res = ConfigResource(T, "cfg-list", incremental_configs=[
        ConfigEntry("retention.ms", "5", incremental_operation=APPEND)])
    assert _code(admin.incremental_alter_configs([res])[res]) == 40
    res = ConfigResource(T, "cfg-list", incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=SUBTRACT)])
    assert _code(admin.incremental_alter_configs([res])[res]) == 40  # empty policy: invalid


def test_topic_refusals(admin):
    _create(admin, "cfg-bad")
    for key, value in (("no.such.key", "1"), ("retention.ms", "soon"),
                       ("retention.ms", "-2"), ("segment.bytes", str(1 << 40)),
                       ("segment.bytes", "1"), ("max.message.bytes", "-1")):
        res = ConfigResource(T, "cfg-bad", incremental_configs=[
            ConfigEntry(key, value, incremental_operation=SET)])
        assert _code(admin.incremental_alter_configs([res])[res]) == 40, (key, value)
    res = ConfigResource(T, "cfg-nosuch", set_config={"retention.ms": "1"})
    assert _code(admin.alter_configs([res])[res]) == 3
    assert all(e.is_default for e in _describe(admin, T, "cfg-bad").values())


def _segments(server, topic):
    return sorted(p.name for p in (server.data_dir / f"{topic}-0").glob("*.log"))


def test_retention_is_applied_without_a_restart(server, admin):
    _create(admin, "cfg-ret", config={"segment.bytes": "16384"})
    p = ck.Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 0,
                     "batch.num.messages": 1})
    for _ in range(200):
        p.produce("cfg-ret", b"x" * 500)
        p.poll(0)
    assert p.flush(10) == 0
    assert len(_segments(server, "cfg-ret")) > 3
    time.sleep(0.05)                    # the records' timestamps are now > 1 ms old
    _incremental(admin, T, "cfg-ret", ("retention.ms", "1", SET))
    for _ in range(200):
        if len(_segments(server, "cfg-ret")) == 1:
            break
        time.sleep(0.05)
    assert len(_segments(server, "cfg-ret")) == 1
    low, high = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": "w"}) \
        .get_watermark_offsets(ck.TopicPartition("cfg-ret", 0), timeout=10)
    assert low == high == 200


# ---- BROKER --------------------------------------------------------------------------
def test_describe_broker_lists_every_config_with_its_source(admin):
    got = _describe(admin, B, "0")
    for key in ("node.id", "num.partitions", "auto.create.topics.enable",
                "socket.request.max.bytes", "log.retention.ms", "log.segment.bytes",
                "log.flush.interval.messages", "message.max.bytes"):
        assert key in got, key
    assert got["node.id"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert got["node.id"].is_read_only
    assert got["log.retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert got["log.retention.ms"].value == "604800000" and not got["log.retention.ms"]\
        .is_read_only


def test_dynamic_broker_defaults_apply_to_topics_without_their_own(server, admin):
    _create(admin, "cfg-bdef")
    _create(admin, "cfg-bown", config={"retention.ms": "777"})
    _incremental(admin, B, "0", ("log.retention.ms", "86400000", SET),
                 ("num.partitions", "4", SET))
    got = _describe(admin, B, "0")
    assert got["log.retention.ms"].value == "86400000"
    assert got["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert got["num.partitions"].value == "4"
    topic = _describe(admin, T, "cfg-bdef")["retention.ms"]
    assert topic.value == "86400000"
    assert topic.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert _describe(admin, T, "cfg-bown")["retention.ms"].value == "777"
    # num.partitions applies to the next auto-created topic
    md = admin.list_topics(timeout=10)
    p = ck.Producer({"bootstrap.servers": server.bootstrap})
    p.produce("cfg-auto4", b"v")
    assert p.flush(10) == 0
    md = admin.list_topics("cfg-auto4", timeout=10)
    assert len(md.topics["cfg-auto4"].partitions) == 4
    doc = json.loads((server.data_dir / "broker-configs.json").read_text())
    assert doc["node"] == {"log.retention.ms": "86400000", "num.partitions": "4"}
    _incremental(admin, B, "0", ("log.retention.ms", None, DELETE),
                 ("num.partitions", None, DELETE))
    assert _describe(admin, T, "cfg-bdef")["retention.ms"].value == "604800000"
    assert _describe(admin, B, "0")["num.partitions"].value == "1"


def _raw_incremental(client, restype, name, *ops, validate_only=False):
    mod = module(44, 1)
    req = mod.IncrementalAlterConfigsRequest(resources=(mod.AlterConfigsResource(
        resource_type=restype, resource_name=name, configs=tuple(
            mod.AlterableConfig(name=k, config_operation=op, value=v) for k, v, op in ops)),),
        validate_only=validate_only)
    r = client.call(44, 1, req).responses[0]
    return int(r.error_code), r.error_message


def _raw_describe(client, restype, name, keys=None, synonyms=False, docs=False):
    mod = module(32, 4)
    req = mod.DescribeConfigsRequest(resources=(mod.DescribeConfigsResource(
        resource_type=restype, resource_name=name, configuration_keys=keys),),
        include_synonyms=synonyms, include_documentation=docs)
    return client.call(32, 4, req).results[0]


def test_cluster_default_resource_and_node_precedence(server, admin):
    _create(admin, "cfg-layers")
    with RawClient(server.bootstrap) as c:     # confluent-kafka refuses the name ""
        assert _raw_incremental(c, 4, "", ("log.retention.bytes", "5000000", 0)) == (0, None)
        _incremental(admin, B, "0", ("log.retention.bytes", "6000000", SET))
        assert _describe(admin, T, "cfg-layers")["retention.bytes"].value == "6000000"
        cluster = _raw_describe(c, 4, "")
        assert [(e.name, e.value, e.config_source) for e in cluster.configs] == [
            ("log.retention.bytes", "5000000", 3)]
        _incremental(admin, B, "0", ("log.retention.bytes", None, DELETE))
        got = _describe(admin, T, "cfg-layers")["retention.bytes"]
        assert (got.value, got.source) == ("5000000",
                                           ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
        assert _raw_incremental(c, 4, "", ("log.retention.bytes", None, 1)) == (0, None)
    assert _describe(admin, T, "cfg-layers")["retention.bytes"].is_default


def test_broker_refusals(admin):
    for key, value, code in (("node.id", "3", 42), ("socket.request.max.bytes", "10", 42),
                             ("no.such.broker.key", "1", 40),
                             ("log.retention.ms", "abc", 40), ("num.partitions", "0", 40),
                             ("num.partitions", "1000000", 40),
                             ("auto.create.topics.enable", "maybe", 40)):
        res = ConfigResource(B, "0", incremental_configs=[
            ConfigEntry(key, value, incremental_operation=SET)])
        assert _code(admin.incremental_alter_configs([res])[res]) == code, key
    got = _describe(admin, B, "0")
    assert got["num.partitions"].value == "1"
    assert got["log.retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value


def test_kafka_python_alter_and_describe_configs(server):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KpResource
    from kafka.admin import ConfigResourceType
    ck_admin = AdminClient({"bootstrap.servers": server.bootstrap})
    _create(ck_admin, "cfg-kp")
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        out = admin.alter_configs([KpResource(ConfigResourceType.TOPIC, "cfg-kp",
                                              configs={"retention.ms": "424242"})])
        assert out == {"topic": {"cfg-kp": "OK"}}
        got = admin.describe_configs([KpResource(ConfigResourceType.TOPIC, "cfg-kp")])
        assert got["topic"]["cfg-kp"]["retention.ms"]["value"] == "424242"
        out = admin.alter_configs([KpResource(ConfigResourceType.TOPIC, "cfg-kp",
                                              configs={"retention.ms": "4242"})],
                                  incremental=False)
        assert out == {"topic": {"cfg-kp": "OK"}}
        got = admin.describe_configs([KpResource(ConfigResourceType.BROKER, "0")],
                                     config_filter="all", include_synonyms=True)
        entry = got["broker"]["0"]["log.retention.ms"]
        assert entry["value"] == "604800000" and entry["synonyms"]
    finally:
        admin.close()
    assert _describe(ck_admin, T, "cfg-kp")["retention.ms"].value == "4242"


def test_aiokafka_alter_configs(server):
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource as AioResource
    from aiokafka.admin.config_resource import ConfigResourceType
    ck_admin = AdminClient({"bootstrap.servers": server.bootstrap})
    _create(ck_admin, "cfg-aio")

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=server.bootstrap)
        await admin.start()
        try:
            resp = await admin.alter_configs([AioResource(ConfigResourceType.TOPIC, "cfg-aio",
                                                          {"segment.ms": "3600000"})])
            codes = [r[0] for resp1 in resp for r in resp1.resources]
            described = await admin.describe_configs(
                [AioResource(ConfigResourceType.TOPIC, "cfg-aio")])
            return codes, described
        finally:
            await admin.close()

    codes, described = asyncio.run(run())
    assert codes == [0]
    entries = {c[0]: c[1] for r in described for res in r.resources for c in res[4]}
    assert entries["segment.ms"] == "3600000"


# ---- GROUP ---------------------------------------------------------------------------
def test_group_configs_set_describe_and_persist(server, admin):
    _incremental(admin, G, "g-cfg", ("consumer.session.timeout.ms", "50000", SET),
                 ("consumer.heartbeat.interval.ms", "6000", SET))
    got = _describe(admin, G, "g-cfg")
    assert got["consumer.session.timeout.ms"].value == "50000"
    assert got["consumer.session.timeout.ms"].source == ConfigSource.GROUP_CONFIG.value
    assert got["share.session.timeout.ms"].is_default
    doc = json.loads((server.data_dir / "group-configs.json").read_text())
    assert doc["groups"]["g-cfg"] == {"consumer.session.timeout.ms": "50000",
                                      "consumer.heartbeat.interval.ms": "6000"}
    for key, value in (("consumer.session.timeout.ms", "3000"),        # below the limit
                       ("consumer.session.timeout.ms", "99999999999"),
                       ("consumer.heartbeat.interval.ms", "-1"),
                       ("no.such.group.key", "1"), ("consumer.session.timeout.ms", "x")):
        res = ConfigResource(G, "g-cfg", incremental_configs=[
            ConfigEntry(key, value, incremental_operation=SET)])
        assert _code(admin.incremental_alter_configs([res])[res]) == 40, (key, value)
    assert _describe(admin, G, "g-cfg")["consumer.session.timeout.ms"].value == "50000"


def test_broker_and_group_configs_survive_a_restart(tmp_path):
    srv = PylogServer(tmp_path / "data").start()
    try:
        admin = AdminClient({"bootstrap.servers": srv.bootstrap})
        _create(admin, "cfg-restart")
        _incremental(admin, B, "0", ("log.segment.bytes", "1048576", SET))
        with RawClient(srv.bootstrap) as c:
            assert _raw_incremental(c, 4, "", ("log.retention.ms", "3600000", 0))[0] == 0
        _incremental(admin, G, "g1", ("consumer.heartbeat.interval.ms", "7000", SET))
        srv.restart()
        admin = AdminClient({"bootstrap.servers": srv.bootstrap})
        topic = _describe(admin, T, "cfg-restart")
        assert topic["segment.bytes"].value == "1048576"
        assert topic["retention.ms"].value == "3600000"
        assert topic["retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
        assert _describe(admin, G, "g1")["consumer.heartbeat.interval.ms"].value == "7000"
    finally:
        assert srv.stop() == 0, srv.log_text()[-3000:]
