#!/usr/bin/env python3
"""Copy topics and committed group offsets from a pylog-server to a Kafka or Redpanda
cluster (or another pylog-server), with confluent-kafka.  docs/moving-to-kafka.md.

    python tools/copy_to_kafka.py --source 127.0.0.1:9092 --target kafka:9092 \\
        [--topic orders ...] [--group billing ...] [--dry-run]

Per topic: created on the target with the same partition count and the topic configs set
explicitly on pylog (DescribeConfigs); every record of every partition copied in order to the
same partition, with its key, value, headers and timestamp.  The target topic must not exist
(the offsets would not line up).  Offsets are not preserved across clusters: record i of a
partition on the target has offset i.  So each group's committed offset is translated: to the
target offset of the first copied record at or after it (the source log start offset, lost
offsets and retention make the mapping non-linear, so it is computed from what was copied).
Groups must have no active members on the target (stop the consumers first).  Prints one line
per topic and per group; exits 0, or 1 with the error.
"""
from __future__ import annotations

import argparse
import bisect
import sys

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic


def _list_user_topics(admin) -> list[str]:
    md = admin.list_topics(timeout=10)
    return sorted(t for t in md.topics if not t.startswith("__"))


def copy_topic(source: str, target: str, topic: str, dry_run: bool) -> dict:
    """Copy one topic; returns {partition: sorted source offsets copied}."""
    src_admin, dst_admin = AdminClient({"bootstrap.servers": source}), \
        AdminClient({"bootstrap.servers": target})
    md = src_admin.list_topics(topic, timeout=10).topics[topic]
    partitions = sorted(md.partitions)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = {k: v.value for k, v in src_admin.describe_configs([res])[res].result(20).items()
               if not v.is_default and v.value is not None}
    copied: dict[int, list[int]] = {p: [] for p in partitions}
    consumer = ck.Consumer({"bootstrap.servers": source, "group.id": "pylog-copy",
                            "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        if not dry_run:
            fut = dst_admin.create_topics([NewTopic(topic, len(partitions), -1,
                                                    config=configs)])[topic]
            fut.result(30)
        producer = None if dry_run else ck.Producer({"bootstrap.servers": target,
                                                     "enable.idempotence": True})
        for p in partitions:
            low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, p), 10)
            if high <= low:
                continue
            consumer.assign([ck.TopicPartition(topic, p, low)])
            while True:
                m = consumer.poll(10)
                if m is None:
                    raise RuntimeError(f"{topic}-{p}: no answer from the source")
                if m.error():
                    if m.error().code() == ck.KafkaError._PARTITION_EOF:
                        break
                    raise ck.KafkaException(m.error())
                copied[p].append(m.offset())
                if producer is not None:
                    ts_type, ts = m.timestamp()
                    producer.produce(topic, m.value(), m.key(), partition=p,
                                     headers=m.headers(),
                                     timestamp=ts if ts_type != ck.TIMESTAMP_NOT_AVAILABLE
                                     else 0)
                    producer.poll(0)
                if m.offset() + 1 >= high:
                    break
        if producer is not None and producer.flush(60) != 0:
            raise RuntimeError(f"{topic}: records still unsent after 60 s")
    finally:
        consumer.close()
    print(f"topic {topic}: {len(partitions)} partitions, "
          f"{sum(map(len, copied.values()))} records, configs {configs or '{}'}"
          f"{' (dry run)' if dry_run else ''}")
    return copied


def copy_group(source: str, target: str, group: str, copied: dict, dry_run: bool) -> None:
    admin = AdminClient({"bootstrap.servers": source})
    from confluent_kafka import ConsumerGroupTopicPartitions
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    offsets = result[group].result(20).topic_partitions
    moved = []
    for tp in offsets:
        if tp.offset < 0 or (tp.topic, tp.partition) not in copied:
            continue
        src = copied[(tp.topic, tp.partition)]
        moved.append(ck.TopicPartition(tp.topic, tp.partition, bisect.bisect_left(src, tp.offset)))
    if moved and not dry_run:
        c = ck.Consumer({"bootstrap.servers": target, "group.id": group,
                         "enable.auto.commit": False})
        try:
            c.commit(offsets=moved, asynchronous=False)
        finally:
            c.close()
    print(f"group {group}: " + (", ".join(f"{t.topic}-{t.partition}@{t.offset}" for t in moved)
                                or "no committed offsets on the copied topics")
          + (" (dry run)" if dry_run else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="pylog-server bootstrap HOST:PORT")
    ap.add_argument("--target", required=True, help="Kafka / Redpanda bootstrap HOST:PORT")
    ap.add_argument("--topic", action="append", help="topic to copy (default: all)")
    ap.add_argument("--group", action="append", default=[],
                    help="group whose committed offsets to copy (repeatable)")
    ap.add_argument("--dry-run", action="store_true", help="read and report, write nothing")
    args = ap.parse_args(argv)
    try:
        topics = args.topic or _list_user_topics(AdminClient({"bootstrap.servers":
                                                              args.source}))
        copied = {}
        for t in topics:
            for p, offs in copy_topic(args.source, args.target, t, args.dry_run).items():
                copied[(t, p)] = offs
        for g in args.group:
            copy_group(args.source, args.target, g, copied, args.dry_run)
    except (ck.KafkaException, RuntimeError) as exc:
        print(f"copy_to_kafka: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
