"""Real Kafka clients against a real pylog-server: every record comes back identical.

Each scenario produces records with keys, values, headers and explicit
timestamps, then reads them back by assign + seek (and by offsets-for-times)
and compares every field, in order, per partition.  Clients: kafka-python
(default idempotent producer), confluent-kafka (plain, idempotent, gzip,
snappy, lz4, zstd), aiokafka, and Debian's kcat (-P, -C -e, -C -o -2, -L, -Q).
"""
from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

BASE_TS = 1_700_000_000_000


def expected_records(n: int, tag: str, partitions: int = 1):
    """Per partition: list of (key, value, headers, timestamp), the order produced."""
    out: dict[int, list] = {p: [] for p in range(partitions)}
    for i in range(n):
        p = i % partitions
        key = f"{tag}-k{i}".encode() if i % 7 else None
        value = (f"{tag}-v{i}-" + "x" * (i % 50)).encode()
        headers = [("idx", str(i).encode()), ("tag", tag.encode())] if i % 3 else []
        out[p].append((key, value, headers, BASE_TS + i))
    return out


def produce_confluent(bootstrap, topic, records, **conf):
    import confluent_kafka as ck
    producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    errors = []
    for p, recs in records.items():
        for key, value, headers, ts in recs:
            producer.produce(topic, value=value, key=key, headers=headers or None,
                             partition=p, timestamp=ts,
                             on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0
    assert errors == []


def consume_confluent(bootstrap, topic, partition, start, count, timeout=20):
    import confluent_kafka as ck
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-assign-only",
                     "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    try:
        c.assign([ck.TopicPartition(topic, partition, start)])
        got, deadline = [], time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append((m.key(), m.value(), [(k, v) for k, v in (m.headers() or [])],
                        m.timestamp()[1], m.offset()))
        return got
    finally:
        c.close()


def strip(got):
    return [g[:4] for g in got]


@pytest.mark.parametrize("conf", [
    {}, {"enable.idempotence": True}, {"compression.type": "gzip"},
    {"compression.type": "snappy"}, {"compression.type": "lz4"},
    {"compression.type": "zstd", "enable.idempotence": True},
], ids=["plain", "idempotent", "gzip", "snappy", "lz4", "zstd-idempotent"])
def test_confluent_kafka_records_come_back_identical(bootstrap, conf):
    topic = "ck-" + "-".join(str(v) for v in conf.values()) if conf else "ck-plain"
    records = expected_records(300, topic)
    produce_confluent(bootstrap, topic, records, **conf)
    got = consume_confluent(bootstrap, topic, 0, 0, 300)
    assert strip(got) == records[0]
    assert [g[4] for g in got] == list(range(300))


def test_confluent_kafka_seek_and_offsets_for_times(bootstrap):
    import confluent_kafka as ck
    topic = "ck-seek"
    records = expected_records(100, topic)
    produce_confluent(bootstrap, topic, records)
    assert strip(consume_confluent(bootstrap, topic, 0, 40, 60)) == records[0][40:]
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        found = c.offsets_for_times([ck.TopicPartition(topic, 0, BASE_TS + 25)], timeout=10)
        assert found[0].offset == 25
        late = c.offsets_for_times([ck.TopicPartition(topic, 0, BASE_TS + 10**6)], timeout=10)
        assert late[0].offset == -1                      # nothing at or after: end
        low, high = c.get_watermark_offsets(ck.TopicPartition(topic, 0), timeout=10)
        assert (low, high) == (0, 100)
    finally:
        c.close()


def test_kafka_python_default_idempotent_producer_and_assign_seek(bootstrap):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    topic = "kp-default"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()
    records = expected_records(240, topic, partitions=3)
    producer = KafkaProducer(bootstrap_servers=bootstrap)      # idempotent, acks=all
    futures = [producer.send(topic, value=v, key=k, headers=h, partition=p, timestamp_ms=ts)
               for p, recs in records.items() for k, v, h, ts in recs]
    producer.flush()
    metas = [f.get(timeout=10) for f in futures]
    producer.close()
    assert sorted((m.partition, m.offset) for m in metas) == \
        sorted((p, o) for p in range(3) for o in range(80))
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    try:
        for p in range(3):
            tp = TopicPartition(topic, p)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got = []
            while len(got) < 80:
                batch = consumer.poll(timeout_ms=2000).get(tp, [])
                assert batch or got, "no records"
                got += [(m.key, m.value, list(m.headers), m.timestamp) for m in batch]
            assert got == records[p]
        times = consumer.offsets_for_times({TopicPartition(topic, 1): BASE_TS + 100})
        # partition 1 holds records i = 1, 4, 7, ...: the first with ts >= BASE_TS+100 is i=100.
        assert times[TopicPartition(topic, 1)].offset == 33
        assert times[TopicPartition(topic, 1)].timestamp == BASE_TS + 100
    finally:
        consumer.close()


def test_aiokafka_produces_and_consumes(bootstrap):
    topic = "aio"
    records = expected_records(150, topic)

    async def run():
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True,
                                    compression_type="gzip")
        await producer.start()
        try:
            for k, v, h, ts in records[0]:
                await producer.send(topic, v, key=k, headers=h, partition=0, timestamp_ms=ts)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got = []
            while len(got) < len(records[0]):
                batch = await consumer.getmany(tp, timeout_ms=3000)
                assert batch, "no records"
                got += [(m.key, m.value, list(m.headers), m.timestamp) for m in batch[tp]]
            offsets = await consumer.offsets_for_times({tp: BASE_TS + 10})
            return got, offsets[tp].offset
        finally:
            await consumer.stop()

    got, at_10 = asyncio.run(run())
    assert got == records[0]
    assert at_10 == 10


def kcat(*args, input=None, timeout=30):
    proc = subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_kcat_produce_consume_list_and_query(bootstrap):
    topic = "kcat-topic"
    lines = "".join(f"key{i}:value {i}\n" for i in range(20))
    code, _, err = kcat("-b", bootstrap, "-P", "-t", topic, "-K:", "-H", "src=kcat",
                        "-z", "gzip", input=lines.encode())
    assert code == 0, err
    code, out, err = kcat("-b", bootstrap, "-C", "-t", topic, "-e", "-o", "beginning",
                          "-f", "%k|%s|%h|%o\n")
    assert code == 0, err
    assert out.splitlines() == [f"key{i}|value {i}|src=kcat|{i}" for i in range(20)]
    code, out, err = kcat("-b", bootstrap, "-C", "-t", topic, "-o", "-2", "-e", "-f", "%s\n")
    assert code == 0, err
    assert out.splitlines() == ["value 18", "value 19"]
    code, out, err = kcat("-b", bootstrap, "-L", "-t", topic)
    assert code == 0, err
    assert f'topic "{topic}" with 1 partitions' in out and "leader 0" in out
    code, out, err = kcat("-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                          "-c", "1", "-f", "%T\n")
    first_ts = int(out.split()[0])
    code, out, err = kcat("-b", bootstrap, "-Q", "-t", f"{topic}:0:{first_ts}")
    assert code == 0, err
    assert f"{topic} [0] offset 0" in out


def test_clients_read_each_others_records(bootstrap):
    """kcat writes, kafka-python and confluent-kafka read the same bytes."""
    from kafka import KafkaConsumer, TopicPartition
    topic = "cross"
    code, _, err = kcat("-b", bootstrap, "-P", "-t", topic, "-K:", "-z", "lz4",
                        input=b"".join(b"a%d:b%d\n" % (i, i) for i in range(10)))
    assert code == 0, err
    got = consume_confluent(bootstrap, topic, 0, 0, 10)
    assert [(g[0], g[1]) for g in got] == [(b"a%d" % i, b"b%d" % i) for i in range(10)]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 5)
    values = [m.value for m in consumer][:5]
    consumer.close()
    assert values == [b"b%d" % i for i in range(5, 10)]


def test_kcat_idempotent_producers_with_each_codec(bootstrap):
    topic = "kcat-codecs"
    expected = []
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        lines = [f"{codec}-{i}" for i in range(300)]
        code, _, err = kcat("-b", bootstrap, "-P", "-t", topic, "-z", codec,
                            "-X", "enable.idempotence=true", input="\n".join(lines).encode())
        assert code == 0, err
        expected += lines
    code, out, err = kcat("-b", bootstrap, "-C", "-t", topic, "-e", "-o", "beginning",
                          "-f", "%s\n")
    assert code == 0, err
    assert out.splitlines() == expected
