"""Kafka transactions through real clients (confluent-kafka, aiokafka, kafka-python):
commit and abort, read_committed vs read_uncommitted, offsets sent to the transaction,
fencing, the open transaction holding back the last stable offset, and timeouts."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pylog.testing import PylogServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = PylogServer(tmp_path_factory.mktemp("txn") / "data",
                      args=["--transaction-abort-check-interval-ms", "200"]).start()
    yield srv
    code = srv.stop()
    assert code == 0, srv.log_text()[-3000:]


def _topic(server, partitions: int = 1) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(10)
    return name


def _producer(server, txn_id: str, **extra) -> Producer:
    p = Producer({"bootstrap.servers": server.bootstrap, "transactional.id": txn_id,
                  "linger.ms": 1, **extra})
    p.init_transactions(15)
    return p


def _plain(server, topic: str, values) -> None:
    """Non-transactional records."""
    plain = Producer({"bootstrap.servers": server.bootstrap})
    for v in values:
        plain.produce(topic, v)
    plain.flush(10)


def _values(server, topic: str, isolation: str, expect: int | None = None,
            timeout: float = 10.0) -> list[bytes]:
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "isolation.level": isolation,
                  "enable.auto.commit": False})
    c.subscribe([topic])
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    idle_since = None
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            if expect is None and out and idle_since and time.monotonic() - idle_since > 1.5:
                break
            idle_since = idle_since or time.monotonic()
            if expect is not None and len(out) >= expect:
                time.sleep(0.5)           # anything more would show up now
                while (m := c.poll(0.2)) is not None:
                    if not m.error():
                        out.append(m.value())
                break
            continue
        idle_since = None
        if m.error():
            continue
        out.append(m.value())
    c.close()
    return out


def test_confluent_commit_and_abort(server):
    topic = _topic(server)
    p = _producer(server, f"txn-{uuid.uuid4().hex[:6]}")
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, f"c{i}".encode())
    p.commit_transaction(15)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, f"a{i}".encode())
    p.flush(10)
    p.abort_transaction(15)
    _plain(server, topic, [f"p{i}".encode() for i in range(5)])
    committed = _values(server, topic, "read_committed", expect=15)
    assert committed == [f"c{i}".encode() for i in range(10)] + \
        [f"p{i}".encode() for i in range(5)]
    everything = _values(server, topic, "read_uncommitted", expect=25)
    assert sorted(everything) == sorted(committed + [f"a{i}".encode() for i in range(10)])


def test_open_transaction_holds_back_read_committed(server):
    topic = _topic(server)
    p = _producer(server, f"open-{uuid.uuid4().hex[:6]}")
    p.begin_transaction()
    p.produce(topic, b"pending")
    p.flush(10)
    _plain(server, topic, [b"after"])
    assert _values(server, topic, "read_committed", timeout=3) == []
    assert sorted(_values(server, topic, "read_uncommitted", expect=2)) == [b"after",
                                                                          b"pending"]
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "lso",
                  "isolation.level": "read_committed"})
    low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    assert high == 0                      # read_committed LATEST = the last stable offset
    c.close()
    p.commit_transaction(15)
    assert _values(server, topic, "read_committed", expect=2) == [b"pending", b"after"]


def test_second_producer_fences_the_first(server):
    topic = _topic(server)
    txn_id = f"fence-{uuid.uuid4().hex[:6]}"
    first = _producer(server, txn_id)
    first.begin_transaction()
    first.produce(topic, b"zombie")
    first.flush(10)
    second = _producer(server, txn_id)     # aborts the first's transaction and fences it
    second.begin_transaction()
    second.produce(topic, b"live")
    second.commit_transaction(15)
    with pytest.raises(KafkaException) as info:
        first.produce(topic, b"zombie-2")
        first.commit_transaction(10)
    assert info.value.args[0].fatal() or "fenc" in str(info.value).lower()
    assert _values(server, topic, "read_committed", expect=1) == [b"live"]


def test_consume_transform_produce_with_offsets(server):
    src, dst = _topic(server), _topic(server)
    _plain(server, src, [str(i).encode() for i in range(100)])
    group = f"ctp-{uuid.uuid4().hex[:6]}"
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.subscribe([src])
    p = _producer(server, f"ctp-{uuid.uuid4().hex[:6]}")
    seen = 0
    deadline = time.monotonic() + 30
    while seen < 100 and time.monotonic() < deadline:
        msgs = [m for m in c.consume(20, 1.0) if not m.error()]
        if not msgs:
            continue
        p.begin_transaction()
        for m in msgs:
            p.produce(dst, m.value() + b"!")
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(),
                                      10)
        p.commit_transaction(15)
        seen += len(msgs)
    committed = c.committed([TopicPartition(src, 0)], timeout=10)
    c.close()
    assert seen == 100
    assert committed[0].offset == 100
    out = _values(server, dst, "read_committed", expect=100)
    assert out == [f"{i}!".encode() for i in range(100)]


def test_offsets_of_an_aborted_transaction_are_not_committed(server):
    src = _topic(server)
    group = f"abort-off-{uuid.uuid4().hex[:6]}"
    p = _producer(server, f"ao-{uuid.uuid4().hex[:6]}")
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": group})
    p.begin_transaction()
    p.send_offsets_to_transaction([TopicPartition(src, 0, 7)], c.consumer_group_metadata(),
                                  10)
    p.abort_transaction(15)
    assert c.committed([TopicPartition(src, 0)], timeout=10)[0].offset < 0
    p.begin_transaction()
    p.send_offsets_to_transaction([TopicPartition(src, 0, 9)], c.consumer_group_metadata(),
                                  10)
    p.commit_transaction(15)
    assert c.committed([TopicPartition(src, 0)], timeout=10)[0].offset == 9
    c.close()


def test_timed_out_transaction_is_aborted(server):
    topic = _topic(server)
    p = _producer(server, f"slow-{uuid.uuid4().hex[:6]}", **{"transaction.timeout.ms": 1500})
    p.begin_transaction()
    p.produce(topic, b"too-slow")
    p.flush(10)
    _plain(server, topic, [b"later"])
    # the coordinator aborts it after 1.5 s: the plain record becomes readable
    assert _values(server, topic, "read_committed", expect=1, timeout=15) == [b"later"]
    with pytest.raises(KafkaException):
        p.commit_transaction(10)


def test_aiokafka_commit_and_abort(server):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    topic = _topic(server)

    async def main():
        prod = AIOKafkaProducer(bootstrap_servers=server.bootstrap,
                                transactional_id=f"aio-{uuid.uuid4().hex[:6]}")
        await prod.start()
        try:
            async with prod.transaction():
                for i in range(5):
                    await prod.send(topic, f"ok{i}".encode())
            await prod.begin_transaction()
            await prod.send(topic, b"no")
            await prod.abort_transaction()
            async with prod.transaction():
                await prod.send(topic, b"ok5")
        finally:
            await prod.stop()
        got = {}
        for iso in ("read_committed", "read_uncommitted"):
            c = AIOKafkaConsumer(topic, bootstrap_servers=server.bootstrap,
                                 isolation_level=iso, auto_offset_reset="earliest",
                                 group_id=None)
            await c.start()
            vals = []
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    batch = await c.getmany(timeout_ms=500)
                    for msgs in batch.values():
                        vals += [m.value for m in msgs]
                    if len(vals) >= (6 if iso == "read_committed" else 7):
                        await asyncio.sleep(0.3)
                        for msgs in (await c.getmany(timeout_ms=300)).values():
                            vals += [m.value for m in msgs]
                        break
            finally:
                await c.stop()
            got[iso] = vals
        return got

    got = asyncio.run(main())
    assert got["read_committed"] == [f"ok{i}".encode() for i in range(6)]
    assert sorted(got["read_uncommitted"]) == sorted(got["read_committed"] + [b"no"])


def test_kafka_python_commit_and_abort(server):
    from kafka import KafkaConsumer, KafkaProducer
    topic = _topic(server)
    prod = KafkaProducer(bootstrap_servers=server.bootstrap,
                         transactional_id=f"kp-{uuid.uuid4().hex[:6]}")
    prod.init_transactions()
    prod.begin_transaction()
    for i in range(4):
        prod.send(topic, f"y{i}".encode())
    prod.commit_transaction()
    prod.begin_transaction()
    prod.send(topic, b"n")
    prod.flush()
    prod.abort_transaction()
    prod.close()
    for iso, want in (("read_committed", 4), ("read_uncommitted", 5)):
        c = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, isolation_level=iso,
                          auto_offset_reset="earliest", consumer_timeout_ms=3000)
        vals = [m.value for m in c]
        c.close()
        if iso == "read_committed":
            assert vals == [f"y{i}".encode() for i in range(4)]
        else:
            assert len(vals) == want and b"n" in vals
