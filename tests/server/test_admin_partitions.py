"""CreatePartitions (37) and DeleteRecords (21) through each client's admin API and raw
requests: new partitions take keys routed as Kafka does (murmur2 over the new count),
deleted records stay deleted for consumers from the start and across a restart."""
from __future__ import annotations

import asyncio
import datetime

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kafka_raw import RawClient, module

from pylog.partitioner import partition_for_key
from pylog.testing import PylogServer

MS = datetime.timedelta(milliseconds=1)
KEYS = [f"key-{i}".encode() for i in range(40)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = PylogServer(tmp_path_factory.mktemp("admin-parts") / "data").start()
    yield srv
    assert srv.stop() == 0, srv.log_text()[-3000:]


def _create(bootstrap, name, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=10)


def _consume_all(bootstrap, topic, partitions, expect) -> dict[int, list[bytes]]:
    """Every record's key per partition, read from the start of each partition."""
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}",
                     "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(partitions)])
    seen: dict[int, list[bytes]] = {}
    try:
        for _ in range(200):
            msg = c.poll(0.1)
            if msg is not None and msg.error() is None:
                seen.setdefault(msg.partition(), []).append(msg.key())
            if sum(map(len, seen.values())) >= expect:
                break
    finally:
        c.close()
    return seen


def _expected(total) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    for k in KEYS:
        out.setdefault(partition_for_key(k, total), []).append(k)
    return out


def test_confluent_create_partitions_then_keys_route_over_the_new_count(server):
    _create(server.bootstrap, "grow-ck")
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_partitions([NewPartitions("grow-ck", 5)])["grow-ck"].result(timeout=10)
    md = admin.list_topics("grow-ck", timeout=10).topics["grow-ck"]
    assert sorted(md.partitions) == [0, 1, 2, 3, 4]
    p = ck.Producer({"bootstrap.servers": server.bootstrap, "partitioner": "murmur2_random"})
    got = {}
    for k in KEYS:
        p.produce("grow-ck", b"v", key=k,
                  on_delivery=lambda err, m: got.__setitem__(m.key(), m.partition()))
    assert p.flush(10) == 0
    assert got == {k: partition_for_key(k, 5) for k in KEYS}
    assert _consume_all(server.bootstrap, "grow-ck", 5, len(KEYS)) == _expected(5)


def test_kafka_python_create_partitions_then_keys_route_over_the_new_count(server):
    from kafka import KafkaAdminClient, KafkaProducer
    _create(server.bootstrap, "grow-kp", 2)
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        resp = admin.create_partitions({"grow-kp": 6})
        assert [r.error_code for r in resp.results] == [0]
    finally:
        admin.close()
    prod = KafkaProducer(bootstrap_servers=server.bootstrap)
    try:
        parts = {k: prod.send("grow-kp", b"v", key=k).get(timeout=10).partition for k in KEYS}
    finally:
        prod.close()
    assert parts == {k: partition_for_key(k, 6) for k in KEYS}
    assert _consume_all(server.bootstrap, "grow-kp", 6, len(KEYS)) == _expected(6)


def test_aiokafka_create_partitions_then_keys_route_over_the_new_count(server):
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions as AioNewPartitions
    _create(server.bootstrap, "grow-aio")

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=server.bootstrap)
        await admin.start()
        try:
            resp = await admin.create_partitions({"grow-aio": AioNewPartitions(3)})
            assert [r[1] for r in resp.topic_errors] == [0]
        finally:
            await admin.close()
        prod = AIOKafkaProducer(bootstrap_servers=server.bootstrap)
        await prod.start()
        try:
            return {k: (await prod.send_and_wait("grow-aio", b"v", key=k)).partition
                    for k in KEYS}
        finally:
            await prod.stop()

    assert asyncio.run(run()) == {k: partition_for_key(k, 3) for k in KEYS}
    assert _consume_all(server.bootstrap, "grow-aio", 3, len(KEYS)) == _expected(3)


def test_create_partitions_refusals_through_confluent(server):
    _create(server.bootstrap, "grow-no", 3)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    for count, code in ((3, 37), (2, 37), (10_001, 37)):
        with pytest.raises(ck.KafkaException) as e:
            admin.create_partitions([NewPartitions("grow-no", count)])["grow-no"].result(10)
        assert e.value.args[0].code() == code, e.value
    admin.create_partitions([NewPartitions("grow-no", 4)],
                            validate_only=True)["grow-no"].result(timeout=10)
    with pytest.raises(ck.KafkaException) as e:
        admin.create_partitions([NewPartitions("nosuch", 4)])["nosuch"].result(10)
    assert e.value.args[0].code() == 3
    md = admin.list_topics("grow-no", timeout=10).topics["grow-no"]
    assert len(md.partitions) == 3                   # nothing changed


def _grow(client, topics, validate_only=False):
    mod = module(37, 3)
    req = mod.CreatePartitionsRequest(
        topics=tuple(mod.CreatePartitionsTopic(
            name=n, count=c, assignments=None if a is None else tuple(
                mod.CreatePartitionsAssignment(broker_ids=tuple(b)) for b in a))
            for n, c, a in topics), timeout=1000 * MS, validate_only=validate_only)
    return [(r.name, int(r.error_code), r.error_message) for r in client.call(37, 3, req).results]


def test_create_partitions_raw_hostile_requests(server):
    _create(server.bootstrap, "grow-raw", 1)
    with RawClient(server.bootstrap) as c:
        res = _grow(c, [("grow-raw", 3, [[1], [0]])])          # node 1 does not exist
        assert res[0][1] == 39 and "node 0" in res[0][2]
        res = _grow(c, [("grow-raw", 3, [[0]])])               # one assignment for two
        assert res[0][1] == 39 and "2 additional" in res[0][2]
        res = _grow(c, [("grow-raw", 3, [[0, 0], [0]])])       # replication factor 2
        assert res[0][1] == 39
        res = _grow(c, [("grow-raw", 2, None), ("grow-raw", 3, None)])
        assert [r[1] for r in res] == [42, 42]
        assert _grow(c, [("grow-raw", -5, None)])[0][1] == 37
        assert _grow(c, [("grow-raw", 2 ** 31 - 1, None)])[0][1] == 37
        assert _grow(c, [("bad/name", 2, None)])[0][1] == 17
        assert _grow(c, [("grow-raw", 3, [[0], [0]])], validate_only=True)[0][1] == 0
        res = _grow(c, [("grow-raw", 3, [[0], [0]]), ("nosuch-raw", 2, None)])
        assert [r[1] for r in res] == [0, 3]                   # one bad topic fails alone
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    assert len(admin.list_topics("grow-raw", timeout=10).topics["grow-raw"].partitions) == 3


# ---- DeleteRecords ----------------------------------------------------------------
def _fill(bootstrap, topic, partitions, n):
    _create(bootstrap, topic, partitions)
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(n):
        for part in range(partitions):
            p.produce(topic, f"{i}".encode(), partition=part)
    assert p.flush(10) == 0


def _first_offset(bootstrap, topic, partition=0):
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"first-{topic}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([ck.TopicPartition(topic, partition, ck.OFFSET_BEGINNING)])
    try:
        for _ in range(100):
            msg = c.poll(0.1)
            if msg is not None and msg.error() is None:
                return msg.offset()
    finally:
        c.close()
    return None


def _list_earliest(client, topic, partition=0):
    mod = module(2, 9)
    req = mod.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=(
        mod.ListOffsetsTopic(name=topic, partitions=(mod.ListOffsetsPartition(
            partition_index=partition, current_leader_epoch=-1, timestamp=-2),)),))
    r = client.call(2, 9, req).topics[0].partitions[0]
    return int(r.error_code), r.offset


def _fetch_code(client, topic, offset, partition=0):
    mod = module(1, 12)
    req = mod.FetchRequest(
        replica_id=-1, max_wait=0 * MS, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
        session_id=0, session_epoch=-1, forgotten_topics_data=(), rack_id="",
        topics=(mod.FetchTopic(topic=topic, partitions=(mod.FetchPartition(
            partition=partition, current_leader_epoch=-1, fetch_offset=offset,
            log_start_offset=-1, partition_max_bytes=1 << 20, last_fetched_epoch=-1),)),))
    r = client.call(1, 12, req).responses[0].partitions[0]
    return int(r.error_code), r.log_start_offset


def test_confluent_delete_records_moves_the_log_start_for_consumers(server):
    _fill(server.bootstrap, "del-ck", 2, 30)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    futs = admin.delete_records([ck.TopicPartition("del-ck", 0, 12),
                                 ck.TopicPartition("del-ck", 1, ck.OFFSET_END)])
    lows = {tp.partition: f.result(timeout=10).low_watermark for tp, f in futs.items()}
    assert lows == {0: 12, 1: 30}                     # OFFSET_END (-1): the high watermark
    assert _first_offset(server.bootstrap, "del-ck", 0) == 12
    with RawClient(server.bootstrap) as c:
        assert _list_earliest(c, "del-ck") == (0, 12)
        assert _fetch_code(c, "del-ck", 11)[0] == 1           # OFFSET_OUT_OF_RANGE
        assert _fetch_code(c, "del-ck", 12) == (0, 12)
    with pytest.raises(ck.KafkaException) as e:                   # past the high watermark
        admin.delete_records([ck.TopicPartition("del-ck", 0, 31)])[
            ck.TopicPartition("del-ck", 0, 31)].result(timeout=10)
    assert e.value.args[0].code() == 1


def test_kafka_python_delete_records(server):
    from kafka import KafkaAdminClient, TopicPartition
    _fill(server.bootstrap, "del-kp", 1, 20)
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        got = admin.delete_records({TopicPartition("del-kp", 0): 7})
    finally:
        admin.close()
    assert [r["low_watermark"] for r in got.values()] == [7]
    assert _first_offset(server.bootstrap, "del-kp") == 7


def test_aiokafka_delete_records(server):
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
    from aiokafka.structs import TopicPartition
    _fill(server.bootstrap, "del-aio", 1, 20)

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=server.bootstrap)
        await admin.start()
        try:
            return await admin.delete_records({TopicPartition("del-aio", 0):
                                               RecordsToDelete(before_offset=15)})
        finally:
            await admin.close()

    assert list(asyncio.run(run()).values()) == [15]
    assert _first_offset(server.bootstrap, "del-aio") == 15


def _delete(client, topic, parts):
    mod = module(21, 2)
    req = mod.DeleteRecordsRequest(topics=(mod.DeleteRecordsTopic(name=topic, partitions=tuple(
        mod.DeleteRecordsPartition(partition_index=p, offset=o) for p, o in parts)),),
        timeout=1000 * MS)
    return [(r.partition_index, int(r.error_code), r.low_watermark)
            for r in client.call(21, 2, req).topics[0].partitions]


def test_delete_records_raw_hostile_requests(server):
    _fill(server.bootstrap, "del-raw", 1, 10)
    with RawClient(server.bootstrap) as c:
        assert _delete(c, "del-raw", [(0, 4)]) == [(0, 0, 4)]
        assert _delete(c, "del-raw", [(0, 2)]) == [(0, 0, 4)]        # never backwards
        assert _delete(c, "del-raw", [(0, 11)]) == [(0, 1, -1)]      # past the watermark
        assert _delete(c, "del-raw", [(0, -2)]) == [(0, 1, -1)]
        assert _delete(c, "del-raw", [(0, -(2 ** 63))]) == [(0, 1, -1)]
        assert _delete(c, "del-raw", [(7, 1), (-1, 1)]) == [(7, 3, -1), (-1, 3, -1)]
        assert _delete(c, "nosuch-del", [(0, 1)]) == [(0, 3, -1)]
        assert _delete(c, "bad/name", [(0, 1)]) == [(0, 17, -1)]
        assert _delete(c, "__consumer_offsets", [(0, 0)]) == [(0, 17, -1)]
        assert _delete(c, "del-raw", [(0, 10)]) == [(0, 0, 10)]      # all of it
        assert _list_earliest(c, "del-raw") == (0, 10)


def test_deleted_records_stay_deleted_after_a_restart(tmp_path):
    srv = PylogServer(tmp_path / "data").start()
    try:
        _fill(srv.bootstrap, "del-restart", 1, 50)
        admin = AdminClient({"bootstrap.servers": srv.bootstrap})
        tp = ck.TopicPartition("del-restart", 0, 33)
        assert admin.delete_records([tp])[tp].result(timeout=10).low_watermark == 33
        srv.restart()
        with RawClient(srv.bootstrap) as c:
            assert _list_earliest(c, "del-restart") == (0, 33)
        assert _first_offset(srv.bootstrap, "del-restart") == 33
        srv.kill()                                       # and after a crash
        srv.start()
        with RawClient(srv.bootstrap) as c:
            assert _list_earliest(c, "del-restart") == (0, 33)
    finally:
        assert srv.stop() == 0, srv.log_text()[-3000:]


@pytest.mark.parametrize("key,version", [(21, 0), (21, 2), (37, 0), (37, 2), (37, 3), (33, 0),
                                         (33, 2), (44, 0), (44, 1), (32, 4)])
@pytest.mark.parametrize("body", [
    b"\xff\xff\xff\xff\xff\x0f" + b"\0" * 8,          # compact length varint of 2**32-ish
    b"\x7f\xff\xff\xff" + b"\0" * 8,                   # array of INT32_MAX
    b"\0",                                             # truncated
    b"\x00\x80\x80\x80\x80\x80\x01",                   # tagged-field varint longer than 5
])
def test_garbled_admin_requests_close_the_connection_and_the_server_serves_on(
        server, key, version, body):
    with RawClient(server.bootstrap) as c:
        head = c.header(key, version)
        if version >= {21: 2, 37: 2, 33: 2, 44: 1, 32: 4}[key]:
            head += b"\0"                              # request header v2: no tags
        c.send_frame(head + body)
        assert c.is_closed_by_server()
    with RawClient(server.bootstrap) as c:
        assert _delete(c, "nosuch-after-garble", [(0, 1)]) == [(0, 3, -1)]


@pytest.mark.parametrize("key,version", [(21, 3), (37, 4), (33, 3), (44, 2), (32, 5), (32, 0)])
def test_admin_versions_out_of_range_close_the_connection(server, key, version):
    with RawClient(server.bootstrap) as c:
        c.send_frame(c.header(key, version) + b"\0" * 30)
        assert c.is_closed_by_server()


def test_the_offsets_topic_keeps_its_partitions_and_configs(server):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    assert "__consumer_offsets" in admin.list_topics(timeout=10).topics   # made at startup
    with RawClient(server.bootstrap) as raw:
        assert _grow(raw, [("__consumer_offsets", 5, None)])[0][1] == 44
    res = ConfigResource(ConfigResource.Type.TOPIC, "__consumer_offsets", incremental_configs=[
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(ck.KafkaException) as e:
        admin.incremental_alter_configs([res])[res].result(timeout=10)
    assert e.value.args[0].code() == 44
    assert len(admin.list_topics(timeout=10).topics["__consumer_offsets"].partitions) == 1
