"""group.initial.rebalance.delay.ms reaches the coordinator from pylog-server's flag."""
from __future__ import annotations

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, ConfigResource

from pylog.testing import start_server


def _broker_config(bootstrap: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.BROKER, "0")
    configs = admin.describe_configs([res])[res].result(timeout=10)
    return {name: entry.value for name, entry in configs.items()}


def _first_generation_assignments(server) -> list[set[tuple[int, ...]]]:
    """Every assignment two members see, the second subscribing 0.6 s after the first
    (well after a new group's first join completes when there is no delay)."""
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([ck.admin.NewTopic("delayed", 2, 1)])["delayed"].result(timeout=10)
    consumers = [ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": "g",
                              "auto.offset.reset": "earliest"}) for _ in range(2)]
    consumers[0].subscribe(["delayed"])
    seen: list[set[tuple[int, ...]]] = [set(), set()]
    current: list[tuple[int, ...]] = [(), ()]
    for step in range(120):
        if step == 12:
            consumers[1].subscribe(["delayed"])
        for i, c in enumerate(consumers):
            if i == 0 or step >= 12:
                c.poll(0.05)
            current[i] = tuple(sorted(tp.partition for tp in c.assignment()))
            if current[i]:
                seen[i].add(current[i])
        if all(current) and sorted(current) == [(0,), (1,)]:
            break
    for c in consumers:
        c.close()
    return seen


def test_initial_rebalance_delay_flag_is_served_and_gathers_early_joiners(tmp_path):
    server = start_server(tmp_path / "data", args=["--group-initial-rebalance-delay-ms", "1500"])
    try:
        assert _broker_config(server.bootstrap)["group.initial.rebalance.delay.ms"] == "1500"
        # Two members that subscribe within the delay land in the group's first
        # generation together: neither ever holds both partitions.
        seen = _first_generation_assignments(server)
        assert sorted(map(sorted, seen)) == [[(0,)], [(1,)]], seen
    finally:
        server.stop()


def test_default_initial_rebalance_delay_is_zero(tmp_path):
    server = start_server(tmp_path / "data")
    try:
        assert _broker_config(server.bootstrap)["group.initial.rebalance.delay.ms"] == "0"
    finally:
        server.stop()
