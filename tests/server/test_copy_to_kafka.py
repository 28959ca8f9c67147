"""tools/copy_to_kafka.py (docs/moving-to-kafka.md) between two real pylog-servers, the
target standing in for a Kafka cluster: records keep partition, key, value, headers and
timestamp; topic configs go along; committed offsets land where the group stopped."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

from pylog.testing import PylogServer

TOOL = Path(__file__).resolve().parents[2] / "tools" / "copy_to_kafka.py"


def test_copy_topics_and_committed_offsets(tmp_path):
    src = PylogServer(tmp_path / "src").start()
    dst = PylogServer(tmp_path / "dst").start()
    try:
        admin = AdminClient({"bootstrap.servers": src.bootstrap})
        admin.create_topics([NewTopic("orders", 2, 1, config={"retention.ms": "3600000"})]
                            )["orders"].result(20)
        p = ck.Producer({"bootstrap.servers": src.bootstrap})
        for i in range(10):
            p.produce("orders", b"v%d" % i, b"k%d" % i, partition=i % 2,
                      headers=[("h", b"%d" % i)], timestamp=1_700_000_000_000 + i)
        assert p.flush(20) == 0
        c = ck.Consumer({"bootstrap.servers": src.bootstrap, "group.id": "billing",
                         "enable.auto.commit": False})
        c.commit(offsets=[ck.TopicPartition("orders", 0, 3),
                          ck.TopicPartition("orders", 1, 5)], asynchronous=False)
        c.close()
        dry = subprocess.run([sys.executable, TOOL, "--source", src.bootstrap, "--target",
                              dst.bootstrap, "--group", "billing", "--dry-run"],
                             capture_output=True, text=True, timeout=120)
        assert dry.returncode == 0 and "(dry run)" in dry.stdout, dry.stderr
        out = subprocess.run([sys.executable, TOOL, "--source", src.bootstrap, "--target",
                              dst.bootstrap, "--group", "billing"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "topic orders: 2 partitions, 10 records" in out.stdout
        assert "group billing: orders-0@3, orders-1@5" in out.stdout
        c = ck.Consumer({"bootstrap.servers": dst.bootstrap, "group.id": "billing"})
        got = c.committed([ck.TopicPartition("orders", 0), ck.TopicPartition("orders", 1)],
                          timeout=10)
        assert [t.offset for t in got] == [3, 5]
        c.assign([ck.TopicPartition("orders", 1, 0)])
        m = c.poll(10)
        assert (m.offset(), m.key(), m.value(), m.headers()) == (0, b"k1", b"v1",
                                                                 [("h", b"1")])
        assert m.timestamp()[1] == 1_700_000_000_001
        c.close()
        dst_admin = AdminClient({"bootstrap.servers": dst.bootstrap})
        from confluent_kafka.admin import ConfigResource
        res = ConfigResource(ConfigResource.Type.TOPIC, "orders")
        assert dst_admin.describe_configs([res])[res].result(20)["retention.ms"].value == \
            "3600000"
        # a second copy refuses: the target topic exists (offsets would not line up)
        again = subprocess.run([sys.executable, TOOL, "--source", src.bootstrap, "--target",
                                dst.bootstrap], capture_output=True, text=True, timeout=120)
        assert again.returncode == 1 and "already exists" in again.stderr
    finally:
        assert src.stop() == 0 and dst.stop() == 0
