"""Committed offsets survive kill -9 of the server and a clean restart; an embedded
consumer and a Kafka client in the same group see the same committed offsets."""
from __future__ import annotations

import asyncio
import threading

import pytest
from group_clients import consume_confluent, consume_kafka_python, create_topic, produce

import pylog
from pylog.server.app import Server


def committed(bootstrap, group, topic, partitions=4):
    import confluent_kafka as ck
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = c.committed([ck.TopicPartition(topic, p) for p in range(partitions)], 10)
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}
    finally:
        c.close()


def test_committed_offsets_survive_kill_9_and_clean_restart(pylog_server_factory):
    srv = pylog_server_factory()
    topic = group = "durable"
    create_topic(srv.bootstrap, topic)
    values = [b"d%d" % i for i in range(60)]
    produce(srv.bootstrap, topic, values)
    got = consume_confluent(srv.bootstrap, group, topic, 20)
    before = committed(srv.bootstrap, group, topic)
    assert sum(before.values()) == 20

    srv.kill()                                           # SIGKILL: no flush, no marker
    srv.start()
    assert committed(srv.bootstrap, group, topic) == before
    got += consume_kafka_python(srv.bootstrap, group, topic, 20)
    after = committed(srv.bootstrap, group, topic)
    assert sum(after.values()) == 40

    assert srv.restart() is srv                          # SIGTERM, then start again
    assert committed(srv.bootstrap, group, topic) == after
    got += consume_confluent(srv.bootstrap, group, topic, 20)
    assert sorted(v for _, _, v in got) == sorted(values)


@pytest.fixture
def inprocess(tmp_path):
    """A pylog-server running in this process (a thread with its own event loop) over a
    Log the test also uses directly: (log, bootstrap)."""
    log = pylog.open(tmp_path / "data")
    loop = asyncio.new_event_loop()
    server = Server(log, "127.0.0.1", 0)
    ready = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="test-server", daemon=True)
    thread.start()
    assert ready.wait(10)
    yield log, server.address
    asyncio.run_coroutine_threadsafe(server.shutdown(2.0), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
    log.close()


def test_embedded_consumer_and_kafka_client_share_committed_offsets(inprocess):
    log, bootstrap = inprocess
    topic = group = "shared"
    create_topic(bootstrap, topic)
    values = [b"s%d" % i for i in range(40)]
    produce(bootstrap, topic, values)

    got = consume_confluent(bootstrap, group, topic, 10)      # Kafka client commits 10
    with log.consumer(group, [topic]) as c:
        assert sum(c.position(topic, p) for p in range(4)) == 10
        recs = c.poll(timeout=1.0, max_records=15)            # resumes after them
        c.commit()
    got += [(r.partition, r.offset, r.value) for r in recs]
    ours = {p: log.groups.offsets.fetch(group, topic, p) for p in range(4)}
    assert committed(bootstrap, group, topic) == {p: c.offset for p, c in ours.items() if c}
    got += consume_kafka_python(bootstrap, group, topic, 15)  # and the Kafka client after it
    assert sorted(v for _, _, v in got) == sorted(values)
    assert [x.lag for x in log.groups.lag(group)] == [0, 0, 0, 0]
