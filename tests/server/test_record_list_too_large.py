"""A produce batch larger than the topic's segment.bytes: RECORD_LIST_TOO_LARGE (18), as Kafka
answers, not MESSAGE_TOO_LARGE (10), which made librdkafka's idempotent producer bump its epoch
and re-send messages already written (duplicates).  A batch over max.message.bytes stays 10."""
from __future__ import annotations

import datetime
import time

from kafka_raw import RawClient, module

from pylog.records import encode_batch

MS = datetime.timedelta(milliseconds=1)
SEGMENT_BYTES = 16_384


def create(client, name, configs):
    mod = module(19, 4)
    ct = mod.CreatableTopic(name=name, num_partitions=1, replication_factor=1, assignments=(),
                            configs=tuple(mod.CreatableTopicConfig(name=k, value=v)
                                          for k, v in configs))
    r = client.call(19, 4, mod.CreateTopicsRequest(topics=(ct,), timeout=MS, validate_only=False))
    assert r.topics[0].error_code == 0


def produce_raw(client, topic, records):
    mod = module(0, 7)
    pd = mod.PartitionProduceData(index=0, records=records)
    r = client.call(0, 7, mod.ProduceRequest(
        transactional_id=None, acks=-1, timeout=5000 * MS,
        topic_data=(mod.TopicProduceData(name=topic, partition_data=(pd,)),)))
    return r.responses[0].partition_responses[0]


def test_batch_over_segment_bytes_is_record_list_too_large_on_the_wire(bootstrap):
    with RawClient(bootstrap) as c:
        create(c, "seg-wire", [("segment.bytes", str(SEGMENT_BYTES)),
                               ("max.message.bytes", "100000")])
        assert produce_raw(c, "seg-wire", encode_batch([b"small"])).error_code == 0
        over_segment = produce_raw(c, "seg-wire", encode_batch([b"x" * 20_000]))
        assert over_segment.error_code == 18                 # RECORD_LIST_TOO_LARGE
        over_max = produce_raw(c, "seg-wire", encode_batch([b"x" * 200_000]))
        assert over_max.error_code == 10                     # MESSAGE_TOO_LARGE
        after = produce_raw(c, "seg-wire", encode_batch([b"after"]))
        assert (after.error_code, after.base_offset) == (0, 1)   # nothing else was written


def test_librdkafka_idempotent_producer_stores_what_fits_exactly_once(bootstrap):
    import confluent_kafka as ck
    topic = "seg-idem"
    with RawClient(bootstrap) as c:
        create(c, topic, [("segment.bytes", str(SEGMENT_BYTES))])
    producer = ck.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                            "linger.ms": 2, "max.in.flight.requests.per.connection": 5,
                            "message.max.bytes": 1_000_000})
    delivered, failed = [], []

    def report(err, msg):
        (failed if err else delivered).append((msg.value(), err))

    # Small records pipelined around records that cannot fit any segment (20 KB each,
    # under max.message.bytes): several requests in flight when each 18 comes back.
    sent_small = []
    for round_ in range(12):
        for i in range(40):
            value = f"small-{round_}-{i}".encode()
            sent_small.append(value)
            producer.produce(topic, value=value, partition=0, on_delivery=report)
        producer.produce(topic, value=b"B%d" % round_ + b"x" * 20_000, partition=0,
                         on_delivery=report)
        producer.poll(0)
        time.sleep(0.01)
    assert producer.flush(60) == 0

    assert failed, "the oversized records must fail"
    big_failed = [v for v, _ in failed if v.startswith(b"B")]
    assert len(big_failed) == 12
    assert {e.code() for _, e in failed} == {ck.KafkaError.RECORD_LIST_TOO_LARGE}
    ok = [v for v, _ in delivered]
    assert not any(v.startswith(b"B") for v in ok)

    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "seg-idem-check",
                            "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    stored, deadline = [], time.monotonic() + 20
    try:
        consumer.assign([ck.TopicPartition(topic, 0, 0)])
        while len(stored) < len(ok) and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                stored.append(m.value())
        # Nothing more arrives (no duplicate written after the last acknowledged record).
        extra = consumer.poll(1.0)
        assert extra is None or extra.error() is not None
    finally:
        consumer.close()
    assert len(stored) == len(set(stored)), "duplicates stored"
    assert sorted(stored) == sorted(ok)                      # every acknowledged one, once
    assert stored == [v for v in sent_small if v in set(ok)]  # in the order sent
