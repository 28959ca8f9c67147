"""Helpers for the consumer-group tests: topics, producing, and "consume N records in a
group, commit exactly what was consumed, close" for each real client.

Each ``consume_*`` returns the (partition, offset, value) of the records it handed to
the application, and commits, per partition, the offset after the last one of them.
Also runnable as a script: a group member that reports its assignment (see ``main``).
"""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

SESSION_MS = 6000
HEARTBEAT_MS = 1000


def create_topic(bootstrap: str, topic: str, partitions: int = 4) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(10)


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int = 4) -> None:
    import confluent_kafka as ck
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=i % partitions)
    assert p.flush(20) == 0


def _next_offsets(got) -> dict[int, int]:
    last: dict[int, int] = {}
    for p, off, _ in got:
        last[p] = max(last.get(p, -1), off)
    return {p: off + 1 for p, off in last.items()}


def consume_confluent(bootstrap, group, topic, n, timeout=30.0, **conf):
    import confluent_kafka as ck
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": HEARTBEAT_MS,
                     "fetch.wait.max.ms": 100, **conf})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            for m in c.consume(n - len(got), 0.2):
                if m.error() is None:
                    got.append((m.partition(), m.offset(), m.value()))
        if got:
            c.commit(offsets=[ck.TopicPartition(topic, p, off, metadata="ck")
                              for p, off in _next_offsets(got).items()], asynchronous=False)
    finally:
        c.close()
    return got


# kafka-python 3.0.12 bug: if a poll() times out between the JoinGroup and the SyncGroup
# responses, the member clears its "rejoin needed" flag without ever completing the
# join (no assignment, heartbeats left disabled) and stays stuck while the broker
# expires its session.  Long poll timeouts make that window rare; poll() still returns
# as soon as records arrive.
KP_POLL_MS = 1000


def consume_kafka_python(bootstrap, group, topic, n, timeout=30.0):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
                      fetch_max_wait_ms=100)
    got, deadline = [], time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=KP_POLL_MS, max_records=n - len(got)).values():
                got += [(r.partition, r.offset, r.value) for r in recs]
        if got:
            c.commit({TopicPartition(topic, p): OffsetAndMetadata(off, "kp", -1)
                      for p, off in _next_offsets(got).items()})
    finally:
        c.close()
    return got


def consume_aiokafka(bootstrap, group, topic, n, timeout=30.0):
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run():
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=SESSION_MS,
                             heartbeat_interval_ms=HEARTBEAT_MS, fetch_max_wait_ms=100)
        await c.start()
        got, deadline = [], time.monotonic() + timeout
        try:
            while len(got) < n and time.monotonic() < deadline:
                batches = await c.getmany(timeout_ms=200, max_records=n - len(got))
                for recs in batches.values():
                    got += [(r.partition, r.offset, r.value) for r in recs]
            if got:
                await c.commit({TopicPartition(topic, p): off
                                for p, off in _next_offsets(got).items()})
        finally:
            await c.stop()
        return got
    return asyncio.run(run())


def consume_kcat(bootstrap, group, topic, n=None, timeout=30.0):
    """kcat -G (librdkafka's high-level consumer, auto-commit of what it printed):
    ``-c n`` stops after n records, else ``-e`` stops at the end of every partition."""
    cmd = ["kcat", "-b", bootstrap, "-G", group, "-f", "%p %o %s\n", "-q",
           "-X", "auto.offset.reset=earliest", "-X", f"session.timeout.ms={SESSION_MS}",
           "-X", "fetch.wait.max.ms=100", topic]
    cmd[1:1] = ["-c", str(n)] if n is not None else ["-e"]
    out = subprocess.run(cmd, capture_output=True, timeout=timeout, check=True).stdout
    got = []
    for line in out.decode().splitlines():
        p, off, value = line.split(" ", 2)
        got.append((int(p), int(off), value.encode()))
    return got


CONSUMERS = {"confluent-kafka": consume_confluent, "kafka-python": consume_kafka_python,
             "aiokafka": consume_aiokafka, "kcat": consume_kcat}


# -- a group member as a subprocess -----------------------------------------------------------
def main(client: str, bootstrap: str, group: str, topic: str) -> None:
    """Join ``group`` with ``client`` and print {"assigned": [...]} on every change,
    until SIGTERM (then close: LeaveGroup).  Records are read and dropped."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    last = None

    def report(parts) -> None:
        nonlocal last
        parts = sorted(parts)
        if parts != last:
            last = parts
            print(json.dumps({"assigned": parts}), flush=True)

    if client == "aiokafka":
        asyncio.run(_aiokafka_member(bootstrap, group, topic, stop, report))
        return
    if client == "confluent-kafka":
        import confluent_kafka as ck
        c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "session.timeout.ms": SESSION_MS, "fetch.wait.max.ms": 100,
                         "heartbeat.interval.ms": HEARTBEAT_MS})
        c.subscribe([topic])
        while not stop:
            c.poll(0.1)
            report([tp.partition for tp in c.assignment()])
    else:
        from kafka import KafkaConsumer
        c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                          session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
                          fetch_max_wait_ms=100)
        while not stop:
            c.poll(timeout_ms=KP_POLL_MS)
            report([tp.partition for tp in c.assignment()])
    c.close()


async def _aiokafka_member(bootstrap, group, topic, stop, report) -> None:
    from aiokafka import AIOKafkaConsumer
    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                         session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
                         fetch_max_wait_ms=100)
    await c.start()
    while not stop:
        await c.getmany(timeout_ms=100)
        report([tp.partition for tp in c.assignment()])
    await c.stop()


if __name__ == "__main__":
    main(*sys.argv[1:5])
