"""Compaction over the Kafka protocol: confluent-kafka creates a cleanup.policy=compact
topic, produces overwrites and tombstones, a keyless record is refused (Kafka's
INVALID_RECORD), and consumers (confluent-kafka, kafka-python) after cleaning see the
latest value per key."""
from __future__ import annotations

import time

import pytest

from pylog.testing import PylogServer

pytest.importorskip("confluent_kafka")


@pytest.fixture
def srv(tmp_path):
    s = PylogServer(tmp_path / "data", args=["--log-cleaner-backoff-ms", "100"]).start()
    yield s
    assert s.stop() == 0


def test_confluent_consumer_after_cleaning_sees_latest_values(srv):
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": srv.bootstrap})
    admin.create_topics([NewTopic("table", 1, 1, config={
        "cleanup.policy": "compact", "segment.bytes": "16384", "segment.ms": "200",
        "min.cleanable.dirty.ratio": "0.01"})])["table"].result(timeout=20)
    prod = ck.Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 0,
                        "batch.size": 4000})
    failed = []
    model = {}
    for i in range(3000):
        k = b"key-%d" % (i % 50)
        v = None if i % 97 == 0 else b"value-%d" % i
        prod.produce("table", key=k, value=v,
                     on_delivery=lambda e, m: failed.append(e) if e else None)
        model.pop(k, None) if v is None else model.__setitem__(k, v)
        if i % 500 == 0:
            prod.flush(10)
    assert prod.flush(20) == 0 and failed == []
    errors = []
    prod2 = ck.Producer({"bootstrap.servers": srv.bootstrap, "retries": 0})
    prod2.produce("table", value=b"no key", on_delivery=lambda e, m: errors.append(e))
    prod2.flush(20)
    assert errors and errors[0] is not None
    assert errors[0].code() == ck.KafkaError.INVALID_RECORD, errors[0]
    time.sleep(0.5)                                     # segment.ms passes: a roll
    prod.produce("table", key=b"key-0", value=b"last")  # ... and the next append rolls
    model[b"key-0"] = b"last"
    prod.flush(10)

    def consume():
        c = ck.Consumer({"bootstrap.servers": srv.bootstrap, "group.id": f"g{time.time()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe(["table"])
        seen, n, offsets, idle = {}, 0, [], 0
        while idle < 10:
            m = c.poll(0.5)
            if m is None:
                idle += 1
                continue
            idle = 0
            assert m.error() is None, m.error()
            n += 1
            offsets.append(m.offset())
            seen.pop(m.key(), None) if m.value() is None else seen.__setitem__(m.key(),
                                                                             m.value())
        c.close()
        return seen, n, offsets

    deadline = time.monotonic() + 30
    while True:
        seen, n, offsets = consume()
        assert seen == model, (n, offsets[-5:])
        assert offsets == sorted(offsets)
        if n < 3001 // 4 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert n < 3001 // 4, f"not compacted: {n} records read"
    # kafka-python reads the compacted log the same way (offsets with gaps)
    from kafka import KafkaConsumer
    kc = KafkaConsumer("table", bootstrap_servers=srv.bootstrap,
                       auto_offset_reset="earliest", consumer_timeout_ms=3000)
    seen = {}
    offs = []
    for m in kc:
        offs.append(m.offset)
        seen.pop(m.key, None) if m.value is None else seen.__setitem__(m.key, m.value)
    kc.close()
    assert seen == model and offs == sorted(offs) and len(offs) < 3001 // 4
