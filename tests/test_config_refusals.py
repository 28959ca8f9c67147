"""No silent no-ops: every topic config value pylog would not act on and every unknown key is refused with INVALID_CONFIG (40) and a message saying why,
everywhere a config is accepted: pylog.open / create_topic / alter_topic_config, Kafka
CreateTopics from kafka-python and confluent-kafka, and partition bounds through the text
protocol.  A data directory an older pylog wrote with such a value still opens.
cleanup.policy=compact and the compaction keys are applied (storage/cleaner.py) and so
accepted everywhere."""
from __future__ import annotations

import json
import socket

import pytest
from hypothesis import given, settings, strategies as st

import pylog
from pylog.config import MAX_PARTITIONS, TOPIC_CONFIG_SPECS, TopicConfig
from pylog.errors import InvalidConfigError, InvalidPartitionsError
from pylog.testing import PylogServer

UNIMPLEMENTED = [s for s in TOPIC_CONFIG_SPECS if s.unimplemented]
NON_DEFAULT = {
    "segment.jitter.ms": "5", "compression.type": "zstd", "file.delete.delay.ms": "1",
    "min.insync.replicas": "2",
    "unclean.leader.election.enable": "true", "preallocate": "true",
}
COMPACTION = {"cleanup.policy": "compact", "delete.retention.ms": "1",
              "min.compaction.lag.ms": "1", "max.compaction.lag.ms": "5",
              "min.cleanable.dirty.ratio": "0.1"}


def test_every_unimplemented_key_has_a_non_default_case():
    assert {s.name for s in UNIMPLEMENTED} == set(NON_DEFAULT)


@pytest.mark.parametrize("policy", ["compact", "compact,delete", "delete,compact"])
def test_embedded_compact_is_accepted_and_applied(policy):
    with pylog.open(None) as log:
        t = log.create_topic("c", partitions=1, config={"cleanup.policy": policy})
        assert "compact" in t.config.cleanup_policy
        log.create_topic("d", partitions=1, config={"cleanup.policy": "delete"})
        log.alter_topic_config("d", {"cleanup.policy": policy})
        assert "compact" in log.topic("d").config.cleanup_policy


@pytest.mark.parametrize("key", sorted(COMPACTION))
def test_compaction_keys_are_applied(key):
    assert TopicConfig.from_dict({key: COMPACTION[key]}).get(key) is not None


@pytest.mark.parametrize("key", sorted(NON_DEFAULT))
def test_embedded_unimplemented_values_refused_and_defaults_accepted(key):
    spec = next(s for s in TOPIC_CONFIG_SPECS if s.name == key)
    with pytest.raises(InvalidConfigError, match=key.replace(".", r"\.")) as err:
        TopicConfig.from_dict({key: NON_DEFAULT[key]})
    assert "not implemented" in str(err.value)
    default = ",".join(spec.default) if isinstance(spec.default, tuple) else spec.default
    assert TopicConfig.from_dict({key: default}).get(key) == spec.default


def test_unknown_key_refused_with_a_hint():
    with pylog.open(None) as log:
        with pytest.raises(InvalidConfigError, match=r"unknown topic config 'retention\.msx'"
                                                     r".*did you mean 'retention\.ms'"):
            log.create_topic("u", config={"retention.msx": 1})
        with pytest.raises(InvalidConfigError, match="docs/configuration.md"):
            log.create_topic("u", config={"zzz": 1})


@given(n=st.one_of(st.integers(max_value=0), st.integers(min_value=MAX_PARTITIONS + 1)))
@settings(max_examples=20, deadline=None)
def test_embedded_partition_bounds(n):
    with pylog.open(None) as log:
        with pytest.raises(InvalidPartitionsError, match=str(MAX_PARTITIONS)):
            log.create_topic("p", partitions=n)


def test_old_data_dir_with_compact_still_opens_and_says_so(tmp_path, caplog):
    with pylog.open(tmp_path) as log:
        log.create_topic("old", partitions=1).append(b"kept")
    meta_path = tmp_path / "topic-metadata.json"
    meta = json.loads(meta_path.read_text())
    text = json.dumps(meta)
    assert '"old"' in text
    # what an older pylog wrote for a topic created with cleanup.policy=compact (kept
    # unapplied then): now it opens and is compacted
    def put(obj):
        if isinstance(obj, dict):
            if "old" in obj and isinstance(obj["old"], dict):
                obj["old"].setdefault("config", {})["cleanup.policy"] = "compact"
                return True
            return any(put(v) for v in obj.values())
        return False
    assert put(meta)
    meta.pop("crc32c", None)            # an older pylog wrote no checksum
    meta_path.write_text(json.dumps(meta))
    with pylog.open(tmp_path) as log:
        assert [r.value for r in log.topic("old").partition(0).read(0)] == [b"kept"]
        assert log.topic("old").config.cleanup_policy == ("compact",)


# ---- over the network -------------------------------------------------------------------

@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = PylogServer(tmp_path_factory.mktemp("refusals") / "data").start()
    yield s
    assert s.stop() == 0


def test_kafka_python_create_topics_refusals_and_compact(srv):
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import InvalidConfigurationError
    admin = KafkaAdminClient(bootstrap_servers=srv.bootstrap, request_timeout_ms=10_000)
    try:
        admin.create_topics([NewTopic("kp-compact", 1, 1,
                                      topic_configs={"cleanup.policy": "compact"})])
        with pytest.raises(InvalidConfigurationError, match="unknown topic config"):
            admin.create_topics([NewTopic("kp-unknown", 1, 1,
                                          topic_configs={"no.such.key": "1"})])
        admin.create_topics([NewTopic("kp-ok", 1, 1,
                                      topic_configs={"cleanup.policy": "delete"})])
        assert "kp-compact" in admin.list_topics() and "kp-ok" in admin.list_topics()
    finally:
        admin.close()


@pytest.mark.parametrize("configs,needle", [
    ({"preallocate": "true"}, "not implemented"),
    ({"min.insync.replicas": "2"}, "single node"),
    ({"retention.msx": "1"}, "did you mean"),
])
def test_confluent_create_topics_refusals(srv, configs, needle):
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": srv.bootstrap})
    name = "ck-" + "-".join(configs).replace(".", "-")
    for validate in (True, False):
        fut = admin.create_topics([NewTopic(name, 1, 1, config=configs)],
                                  validate_only=validate, request_timeout=10)[name]
        with pytest.raises(ck.KafkaException) as err:
            fut.result(timeout=20)
        kerr = err.value.args[0]
        assert kerr.code() == ck.KafkaError.INVALID_CONFIG, kerr
        assert needle in kerr.str()
    assert name not in admin.list_topics(timeout=10).topics


def test_partition_bounds_agree_on_every_interface(srv):
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": srv.bootstrap})
    fut = admin.create_topics([NewTopic("too-many", MAX_PARTITIONS + 1, 1)],
                              request_timeout=10)["too-many"]
    with pytest.raises(ck.KafkaException) as err:
        fut.result(timeout=20)
    assert err.value.args[0].code() == ck.KafkaError.INVALID_PARTITIONS
    with socket.create_connection(("127.0.0.1", srv.text_port), timeout=10) as s:
        f = s.makefile("rwb")
        for n in (0, -3, MAX_PARTITIONS + 1):
            f.write(f"CREATE text-bounds {n}\n".encode())
            f.flush()
            line = f.readline().decode()
            assert line.startswith("ERR INVALID_PARTITIONS"), line
            assert str(MAX_PARTITIONS) in line
        f.write(b"CREATE text-bounds 2\n")
        f.flush()
        assert f.readline() == b"OK 2\n"


def test_broker_topic_defaults_go_through_the_same_refusals():
    from pylog.server.kafka.context import BrokerContext, BrokerSettings
    with pylog.open(None) as log:
        broker = BrokerContext(log, BrokerSettings(topic_defaults={"preallocate": "true"}))
        with pytest.raises(InvalidConfigError, match="not implemented"):
            broker.create_topic("auto", 1, {})
        assert not log.has_topic("auto")
