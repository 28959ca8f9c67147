"""Share group configs (pylog's and Kafka's) through a real admin client:
IncrementalAlterConfigs and DescribeConfigs on the GROUP resource of a pylog-server."""
from __future__ import annotations

import pytest
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource)

from pylog.testing import PylogServer

G = ConfigResource.Type.GROUP


@pytest.fixture
def admin(tmp_path):
    srv = PylogServer(tmp_path / "data").start()
    try:
        yield AdminClient({"bootstrap.servers": srv.bootstrap})
    finally:
        srv.stop()


def _set(admin, **kv):
    res = ConfigResource(G, "workers", incremental_configs=[
        ConfigEntry(k.replace("_", "."), v, incremental_operation=AlterConfigOpType.SET)
        for k, v in kv.items()])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(timeout=30)


def test_share_configs_set_and_describe_through_a_kafka_admin_client(admin):
    _set(admin, **{"share.expired.action": "dlq", "share.auto.offset.reset":
                   "by_duration:PT1H", "share.redelivery.backoff.multiplier": "1.5",
                   "errors.deadletterqueue.topic.name": "dead.orders"})
    [f] = admin.describe_configs([ConfigResource(G, "workers")]).values()
    got = {k: v.value for k, v in f.result(timeout=30).items()}
    assert got["share.expired.action"] == "dlq"
    assert got["share.auto.offset.reset"] == "by_duration:PT1H"
    assert got["share.redelivery.backoff.multiplier"] == "1.5"
    assert got["errors.deadletterqueue.topic.name"] == "dead.orders"
    assert got["share.delivery.count.limit"] == "5"
    assert got["errors.deadletterqueue.enable"] == "true"


@pytest.mark.parametrize("name,value", [
    ("share.delivery.count.limit", "11"), ("share.auto.offset.reset", "newest"),
    ("share.expired.action", "drop"), ("errors.deadletterqueue.enable", "maybe")])
def test_a_bad_share_config_is_invalid_config_and_changes_nothing(admin, name, value):
    with pytest.raises(Exception) as ei:
        _set(admin, **{name: value})
    assert "INVALID_CONFIG" in str(ei.value) and name in str(ei.value)
    [f] = admin.describe_configs([ConfigResource(G, "workers")]).values()
    assert f.result(timeout=30)[name].is_default
