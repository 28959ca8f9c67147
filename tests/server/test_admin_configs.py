"""AlterConfigs (33), IncrementalAlterConfigs (44) and DescribeConfigs (32) for TOPIC,
BROKER and GROUP resources through each client's admin API: changes apply live (retention
deletes segments without a restart), persist, and every refusal has Kafka's code."""
from __future__ import annotations

import asyncio
import json
import time

import confluent_kafka as ck
import pytest
from hypothesis import given, settings, strategies as st
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, ConfigSource, NewTopic)

from kafka_raw import RawClient, module

import pylog
from pylog.errors import RecordTooLargeError, StorageError, UnknownTopicError
from pylog.server.kafka.context import BrokerContext, RequestContext
from pylog.server.kafka.dispatch import API_TABLE
from pylog.server.kafka.messages import RequestHeader
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


# ---- raw requests: hostile input and the DescribeConfigs v4 flags ---------------------
def _raw_alter(client, version, resources, validate_only=False, incremental=False):
    key = 44 if incremental else 33
    mod = module(key, version)
    cls = mod.IncrementalAlterConfigsRequest if incremental else mod.AlterConfigsRequest
    req = cls(resources=tuple(mod.AlterConfigsResource(
        resource_type=t, resource_name=n, configs=tuple(
            (mod.AlterableConfig(name=k, config_operation=op, value=v) if incremental
             else mod.AlterableConfig(name=k, value=v)) for k, v, op in cfgs))
        for t, n, cfgs in resources), validate_only=validate_only)
    return [(r.resource_type, r.resource_name, int(r.error_code), r.error_message)
            for r in client.call(key, version, req).responses]


@pytest.mark.parametrize("version", [0, 1])
def test_incremental_alter_configs_hostile_requests(server, admin, version):
    topic = f"cfg-hostile-{version}"
    _create(admin, topic)
    with RawClient(server.bootstrap) as c:
        def one(restype, name, *cfgs):
            return _raw_alter(c, version, [(restype, name, list(cfgs))], incremental=True)[0]
        assert one(99, topic, ("retention.ms", "1", 0))[2:] == (42, "Unknown resource type 99")
        assert one(8, "0", ("kafka", "DEBUG", 0))[2] == 42            # BROKER_LOGGER
        assert one(0, topic, ("retention.ms", "1", 0))[2] == 42
        assert one(2, topic, ("retention.ms", "1", 7))[2:] == (42, "Unknown operations type 7")
        assert one(2, topic, ("retention.ms", "1", -1))[2] == 42
        assert one(2, topic, ("retention.ms", None, 0))[2] == 42      # null for SET
        assert one(2, topic, ("retention.ms", "1", 0), ("retention.ms", "2", 0))[2:] == (
            42, "Error due to duplicate config keys")
        assert one(2, topic, ("x" * 30_000, "1", 0))[2] == 40
        assert one(2, topic, ("retention.ms", "9" * 10_000, 0))[2] == 40
        assert one(2, topic, ("retention.ms", str(-(2 ** 63)), 0))[2] == 40
        assert one(2, topic, ("retention.ms", "1", 2))[2:] == (
            40, "Config value append is not allowed for config key: retention.ms")
        assert one(2, topic, ("no.such", None, 1))[2] == 40            # DELETE unknown key
        assert one(2, topic, ("retention.ms", "\x00\xff", 0))[2] == 40
        assert one(2, "bad/topic", ("retention.ms", "1", 0))[2] == 17
        assert one(2, "", ("retention.ms", "1", 0))[2] == 17
        assert one(4, "1", ("log.retention.ms", "1", 0))[2] == 42      # another node
        assert one(4, "abc", ("log.retention.ms", "1", 0))[2] == 42
        assert one(4, "0", ("node.id", "1", 0))[2:] == (
            42, "Cannot update these configs dynamically: node.id")
        assert one(4, "0", ("log.cleanup.policy", "delete", 3))[2] == 40   # empty list
        assert one(32, "", ("consumer.session.timeout.ms", "50000", 0))[2:] == (
            42, "Group name must not be empty")
        assert one(32, "g", ("consumer.session.timeout.ms", "50000", 2))[2] == 40
        # a resource named twice fails both times; the others are applied
        res = _raw_alter(c, version, [(2, topic, [("retention.ms", "11", 0)]),
                                      (2, topic, [("retention.ms", "12", 0)]),
                                      (32, "g-dup", [("consumer.session.timeout.ms",
                                                      "46000", 0)])], incremental=True)
        assert [r[2] for r in res] == [42, 42, 0]
        assert res[0][3] == "Each resource must appear at most once."
    assert all(e.is_default for e in _describe(admin, T, topic).values())
    assert _describe(admin, G, "g-dup")["consumer.session.timeout.ms"].value == "46000"


@pytest.mark.parametrize("version", [0, 1, 2])
def test_alter_configs_hostile_requests(server, admin, version):
    topic = f"cfg-legacy-hostile-{version}"
    _create(admin, topic, config={"retention.ms": "5555"})
    with RawClient(server.bootstrap) as c:
        def one(restype, name, *cfgs, validate_only=False):
            return _raw_alter(c, version, [(restype, name, [(k, v, None) for k, v in cfgs])],
                              validate_only=validate_only)[0]
        assert one(8, "0", ("kafka", "DEBUG"))[2] == 42                # not on AlterConfigs
        assert one(2, topic, ("retention.ms", None))[2] == 42
        assert one(2, topic, ("segment.bytes", "1"), ("segment.bytes", "2"))[2] == 42
        assert one(2, topic, ("segment.bytes", "-5"))[2] == 40
        assert one(2, topic, ("flush.messages", "1"), validate_only=True)[2] == 0
        assert _describe(admin, T, topic)["retention.ms"].value == "5555"
        assert one(2, topic)[2] == 0                                   # empty: all reset
        assert _describe(admin, T, topic)["retention.ms"].is_default
        assert one(4, "0", ("num.partitions", "2"))[2] == 0
        assert _describe(admin, B, "0")["num.partitions"].value == "2"
        assert one(4, "0")[2] == 0
        assert _describe(admin, B, "0")["num.partitions"].value == "1"


def test_describe_configs_v4_honours_synonyms_and_documentation(server, admin):
    _create(admin, "cfg-doc", config={"retention.ms": "1234"})
    with RawClient(server.bootstrap) as c:
        plain = _raw_describe(c, 2, "cfg-doc", keys=("retention.ms", "segment.bytes"))
        assert [(e.name, e.value, e.config_source) for e in plain.configs] == [
            ("segment.bytes", str(1 << 30), 5), ("retention.ms", "1234", 1)]
        assert all(e.synonyms == () and e.documentation is None for e in plain.configs)
        assert [e.config_type for e in plain.configs] == [3, 5]         # INT, LONG
        everything = _raw_describe(c, 2, "cfg-doc", keys=())          # empty = all, as Kafka
        assert len(everything.configs) == len(_describe(admin, T, "cfg-doc")) > 20
        full = _raw_describe(c, 2, "cfg-doc", keys=("retention.ms",), synonyms=True,
                             docs=True).configs[0]
        assert [(s.name, s.value, s.source) for s in full.synonyms] == [
            ("retention.ms", "1234", 1), ("log.retention.ms", "604800000", 5)]
        assert full.documentation == "Delete segments older than this; -1 keeps forever."
        broker = {e.name: e for e in _raw_describe(c, 4, "0", synonyms=True).configs}
        assert broker["node.id"].read_only and broker["node.id"].config_source == 4
        assert broker["auto.create.topics.enable"].config_type == 1      # BOOLEAN
        assert broker["log.cleanup.policy"].config_type == 7             # LIST
        assert [(s.name, s.source) for s in broker["num.partitions"].synonyms] == [
            ("num.partitions", 4)]
        group = {e.name: e for e in _raw_describe(c, 32, "any-group", docs=True).configs}
        assert group["consumer.session.timeout.ms"].value == "45000"
        assert group["consumer.session.timeout.ms"].config_source == 5
        assert group["consumer.session.timeout.ms"].documentation
        for restype, name, code in ((4, "7", 42), (4, "x", 42), (99, "a", 42), (32, "", 42),
                                    (2, "cfg-nosuch", 3), (2, "a/b", 17)):
            r = _raw_describe(c, restype, name)
            assert (int(r.error_code), r.configs) == (code, ()), (restype, name)


# ---- in-process: what each change does to the partitions -----------------------------
def _inproc(broker, restype, name, *ops, validate_only=False):
    mod = module(44, 1)
    req = mod.IncrementalAlterConfigsRequest(resources=(mod.AlterConfigsResource(
        resource_type=restype, resource_name=name, configs=tuple(
            mod.AlterableConfig(name=k, config_operation=op, value=v) for k, v, op in ops)),),
        validate_only=validate_only)
    ctx = RequestContext(broker, RequestHeader(44, 1, 1, "t", 0))
    r = API_TABLE[44].handler(ctx, req).responses[0]
    return int(r.error_code)


@pytest.fixture
def broker(tmp_path):
    log = pylog.open(tmp_path / "data")
    yield BrokerContext(log)
    log.close()


def test_topic_changes_apply_live_to_every_partition(broker):
    topic = broker.create_topic("live", 2, {})
    assert _inproc(broker, 2, "live", ("flush.messages", "1", 0),
                   ("segment.bytes", "16384", 0)) == 0
    for p in topic.partitions:
        assert p.config.flush_messages == 1 and p.config.segment_bytes == 16384
    part = topic.partition(0)
    for _ in range(100):
        part.append(b"x" * 500)
    assert len(part.segments) > 2                       # rolled at the new size
    assert _inproc(broker, 2, "live", ("retention.bytes", "20000", 0)) == 0
    assert part.enforce_retention() > 0 and part.size_bytes <= 40000
    assert _inproc(broker, 2, "live", ("flush.messages", None, 1)) == 0
    assert part.config.flush_messages is None           # back to the default policy
    assert _inproc(broker, 2, "live", ("max.message.bytes", "1000", 0),
                   ("message.timestamp.type", "LogAppendTime", 0)) == 0
    with pytest.raises(RecordTooLargeError):
        part.append(b"y" * 2000)
    stamped = part.read(part.append(b"z", timestamp=1), 1)[0].timestamp
    assert stamped > 1_000_000_000_000                    # the broker's clock, not 1


def test_broker_topic_defaults_apply_live_and_come_back_after_a_restart(tmp_path):
    log = pylog.open(tmp_path / "data")
    broker = BrokerContext(log)
    broker.create_topic("plain", 1, {})
    broker.create_topic("own", 1, {"segment.bytes": "65536"})
    assert _inproc(broker, 4, "0", ("log.segment.bytes", "32768", 0),
                   ("log.flush.interval.messages", "1", 0)) == 0
    assert log.partition("plain", 0).config.segment_bytes == 32768
    assert log.partition("plain", 0).config.flush_messages == 1
    assert log.partition("own", 0).config.segment_bytes == 65536
    assert log.create_topic("later").config.segment_bytes == 32768   # any creator
    log.close()
    log = pylog.open(tmp_path / "data")
    try:
        # the Log reads them at open (an embedded open too), before any retention runs
        assert log.partition("plain", 0).config.segment_bytes == 32768
        assert log.partition("own", 0).config.segment_bytes == 65536
        BrokerContext(log)
        assert log.partition("plain", 0).config.segment_bytes == 32768
        assert log.partition("later", 0).config.segment_bytes == 32768
        meta = json.loads((tmp_path / "data" / "topic-metadata.json").read_text())
        assert meta["topics"]["plain"]["config"] == {}       # not written as the topic's
    finally:
        log.close()


def test_a_damaged_broker_configs_file_is_refused_naming_it(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "broker-configs.json").write_text('{"version": 1, "node": '
                                                            '{"node.id": "4"}}')
    with pytest.raises(StorageError, match="broker-configs.json.*node.id"):
        pylog.open(tmp_path / "data")
    (tmp_path / "data" / "broker-configs.json").write_text('{"version": 1, "cluster": '
                                                            '{"log.retention.ms": "soon"}}')
    with pytest.raises(StorageError, match="broker-configs.json.*log.retention.ms"):
        pylog.open(tmp_path / "data")
    (tmp_path / "data" / "broker-configs.json").write_text('{"version": 1, "clus')
    with pytest.raises(StorageError, match="broker-configs.json: unreadable"):
        pylog.open(tmp_path / "data")
    (tmp_path / "data" / "broker-configs.json").unlink()
    pylog.open(tmp_path / "data").close()                 # the lock was released each time


_KEYS = ["retention.ms", "segment.bytes", "flush.messages", "cleanup.policy", "no.such"]
_VALUES = st.sampled_from(["1", "-1", "16384", "delete", "x", "", "99999999999999999999",
                           None, "604800000"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_KEYS), _VALUES, st.sampled_from([0, 1, 2, 3, 9])),
                max_size=4, unique_by=lambda t: t[0]))
def test_incremental_ops_either_apply_whole_or_change_nothing(ops):
    log = pylog.open(None)
    try:
        broker = BrokerContext(log)
        broker.create_topic("h", 1, {"retention.ms": "5000"})
        before = log.topic("h").config
        code = _inproc(broker, 2, "h", *ops)
        after = log.topic("h").config
        if code != 0:
            assert code in (40, 42) and after == before and after.explicit == before.explicit
        else:
            for k, v, op in ops:
                if op == 0:
                    assert k in after.explicit
                elif op == 1:
                    assert k not in after.explicit
            assert log.partition("h", 0).config == after
    finally:
        log.close()


def test_group_configs_file_round_trip_and_damage(tmp_path):
    from pylog.broker.group_configs import GroupConfigs
    configs = GroupConfigs(tmp_path)
    assert configs.alter("g", {"consumer.session.timeout.ms": " 50000 "}) == {
        "consumer.session.timeout.ms": "50000"}
    assert configs.alter("g", {"share.record.lock.duration.ms": "20000"}, validate_only=True)
    assert GroupConfigs(tmp_path).get("g") == {"consumer.session.timeout.ms": "50000"}
    assert configs.alter("g", {"consumer.session.timeout.ms": None}) == {}
    assert GroupConfigs(tmp_path).get("g") == {}
    for text in ('{"version": 1, "groups": {"g": {"consumer.session.timeout.ms": "1"}}}',
                 '{"version": 1, "groups": {"g": 5}}', '{"version": 2, "groups": {}}', "{"):
        (tmp_path / "group-configs.json").write_text(text)
        with pytest.raises(StorageError, match="group-configs.json"):
            GroupConfigs(tmp_path)


def test_auto_create_switch_and_num_partitions_change_live(broker):
    assert _inproc(broker, 4, "", ("auto.create.topics.enable", "false", 0)) == 0
    with pytest.raises(UnknownTopicError):
        broker.ensure_topic("auto-off", allow_create=True)
    assert _inproc(broker, 4, "0", ("auto.create.topics.enable", "true", 0),
                   ("num.partitions", "3", 0)) == 0
    assert broker.ensure_topic("auto-on", allow_create=True).num_partitions == 3
    assert _inproc(broker, 4, "0", ("num.partitions", None, 1),
                   ("auto.create.topics.enable", None, 1)) == 0
    assert broker.settings.auto_create_topics is False       # the cluster default again
    assert _inproc(broker, 4, "", ("auto.create.topics.enable", None, 1)) == 0
    assert broker.settings.auto_create_topics is True        # the static setting
    assert broker.settings.num_partitions == 1
