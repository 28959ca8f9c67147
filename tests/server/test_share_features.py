"""pylog's queue features through confluent-kafka's ShareConsumer, unmodified: the
delivery limit and REJECT dead-letter the record with its pylog-dlq-* headers; RELEASE
comes back after the group's redelivery backoff; delayed, expired and prioritised
records; and the text protocol drives the same queue a ShareConsumer reads."""
from __future__ import annotations

import socket
import time

import pytest
from confluent_kafka import AcknowledgeType, Consumer, Producer, ShareConsumer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource)
from group_clients import create_topic

from pylog.testing import start_server

LOCK_MS = 2000


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("sharefeat") / "data",
                     args=["--group-share-record-lock-duration-ms", str(LOCK_MS),
                           "--group-share-delivery-count-limit", "2"])
    yield s
    assert s.stop() == 0, s.log_text()[-3000:]


def _configure(srv, group: str, **configs) -> None:
    admin = AdminClient({"bootstrap.servers": srv.bootstrap})
    res = ConfigResource("GROUP", group, incremental_configs=[
        ConfigEntry(k.replace("_", "."), str(v), incremental_operation=AlterConfigOpType.SET)
        for k, v in configs.items()])
    admin.incremental_alter_configs([res])[res].result(10)


def _consumer(srv, group):
    return ShareConsumer({"bootstrap.servers": srv.bootstrap, "group.id": group,
                          "share.acknowledgement.mode": "explicit"})


def _produce(srv, topic, records):
    p = Producer({"bootstrap.servers": srv.bootstrap})
    for value, headers in records:
        p.produce(topic, value, headers=headers)
    assert p.flush(10) == 0


def _poll(c, want, timeout=15.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += [m for m in c.poll(0.3) if m.error() is None]
    return got


def _dead_letters(srv, topic, n, timeout=10.0):
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": f"dlq-{topic}-{time.time()}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.3)
        if m is not None and m.error() is None:
            got.append(m)
    c.close()
    return got


def test_reject_and_the_delivery_limit_dead_letter_with_headers(srv):
    create_topic(srv.bootstrap, "sf-dlq", partitions=1)
    _configure(srv, "sf-dlq-g", share_auto_offset_reset="earliest")
    _produce(srv, "sf-dlq", [(b"poison", [("trace", b"t1")]), (b"flaky", None)])
    c = _consumer(srv, "sf-dlq-g")
    c.subscribe(["sf-dlq"])
    first = _poll(c, 2)
    assert [m.value() for m in first] == [b"poison", b"flaky"]
    c.acknowledge(first[0], AcknowledgeType.REJECT)
    c.acknowledge(first[1], AcknowledgeType.RELEASE)
    c.commit_sync()
    again = _poll(c, 1)
    assert [(m.value(), m.delivery_count()) for m in again] == [(b"flaky", 2)]
    c.acknowledge(again[0], AcknowledgeType.RELEASE)       # the limit (2) is reached
    c.commit_sync()
    assert _poll(c, 1, timeout=3) == []
    c.close()
    dead = _dead_letters(srv, "sf-dlq.dlq", 2)
    heads = [dict(m.headers()) for m in dead]
    assert [m.value() for m in dead] == [b"poison", b"flaky"]
    assert heads[0]["trace"] == b"t1" and heads[0]["pylog-dlq-reason"] == b"rejected"
    assert heads[1]["pylog-dlq-reason"] == b"delivery-limit"
    assert heads[1]["pylog-dlq-delivery-count"] == b"2"
    assert {h["pylog-dlq-topic"] for h in heads} == {b"sf-dlq"}
    assert [h["pylog-dlq-offset"] for h in heads] == [b"0", b"1"]


def test_release_comes_back_after_the_backoff(srv):
    create_topic(srv.bootstrap, "sf-backoff", partitions=1)
    _configure(srv, "sf-backoff-g", share_auto_offset_reset="earliest",
               share_redelivery_backoff_ms=1500, share_redelivery_backoff_jitter=0)
    _produce(srv, "sf-backoff", [(b"retry-me", None)])
    c = _consumer(srv, "sf-backoff-g")
    c.subscribe(["sf-backoff"])
    [m] = _poll(c, 1)
    c.acknowledge(m, AcknowledgeType.RELEASE)
    c.commit_sync()
    released = time.monotonic()
    [again] = _poll(c, 1)
    waited = time.monotonic() - released
    assert again.delivery_count() == 2 and waited >= 1.4, waited
    c.acknowledge(again)
    c.commit_sync()
    c.close()


def test_delay_ttl_and_priority(srv):
    create_topic(srv.bootstrap, "sf-hints", partitions=1)
    _configure(srv, "sf-hints-g", share_auto_offset_reset="earliest")
    now = int(time.time() * 1000)
    _produce(srv, "sf-hints", [
        (b"low", [("pylog-priority", b"1")]),
        (b"later", [("pylog-deliver-at", str(now + 2500).encode())]),
        (b"stale", [("pylog-ttl-ms", b"1")]),
        (b"high", [("pylog-priority", b"9")]),
        (b"plain", None)])
    time.sleep(0.1)                                        # "stale" has expired
    c = _consumer(srv, "sf-hints-g")
    c.subscribe(["sf-hints"])
    got = _poll(c, 3)
    for m in got:
        c.acknowledge(m)
    c.commit_sync()
    assert {m.value() for m in got} == {b"low", b"high", b"plain"}  # not later, never stale
    order = [m.value() for m in sorted(got, key=lambda m: m.offset())]
    assert order == [b"low", b"high", b"plain"]
    later = _poll(c, 1, timeout=10)
    assert [m.value() for m in later] == [b"later"]
    assert time.time() * 1000 >= now + 2400
    c.acknowledge(later[0])
    c.commit_sync()
    assert _poll(c, 1, timeout=2) == []                    # "stale" never comes
    c.close()


def test_priority_decides_who_goes_first(srv):
    create_topic(srv.bootstrap, "sf-prio", partitions=1)
    _configure(srv, "sf-prio-g", share_auto_offset_reset="earliest")
    _produce(srv, "sf-prio", [(b"p%d-%d" % (p, i), [("pylog-priority", b"%d" % p)])
                              for i, p in enumerate([1, 5, 9, 5, 1, 9])])
    c = ShareConsumer({"bootstrap.servers": srv.bootstrap, "group.id": "sf-prio-g",
                       "share.acknowledgement.mode": "explicit", "max.poll.records": 1})
    c.subscribe(["sf-prio"])
    order = []
    while len(order) < 6:
        batch = _poll(c, 1, timeout=10)     # one record per fetch: the highest available
        assert batch, order
        for m in batch:
            order.append(m.value())
            c.acknowledge(m)
        c.commit_sync()
    c.close()
    assert order[:2] == [b"p9-2", b"p9-5"] and order[2:4] == [b"p5-1", b"p5-3"]


def test_text_protocol_and_share_consumer_share_one_queue(srv):
    create_topic(srv.bootstrap, "sf-text", partitions=1)
    _configure(srv, "sf-text-g", share_auto_offset_reset="earliest")
    _produce(srv, "sf-text", [(b"r%d" % i, None) for i in range(10)])
    with socket.create_connection(("127.0.0.1", srv.text_port), timeout=10) as t:
        f = t.makefile("rb")
        t.sendall(b"RECEIVE sf-text-g sf-text 4 1000\n")
        lines = []
        while True:
            line = f.readline()
            lines.append(line)
            if line.startswith(b"END") or line.startswith(b"ERR"):
                break
        assert not lines[-1].startswith(b"ERR"), lines
        offsets = sorted({int(ln.split()[2]) for ln in lines if ln.startswith(b"MESSAGE")})
        assert len(offsets) == 4
        for o in offsets:
            f_line = None
            t.sendall(b"ACK sf-text-g sf-text 0 %d\n" % o)
            f_line = f.readline()
            assert f_line.startswith(b"OK"), f_line
        c = _consumer(srv, "sf-text-g")
        c.subscribe(["sf-text"])
        got = _poll(c, 6)
        assert sorted(m.offset() for m in got) == sorted(set(range(10)) - set(offsets))
        for m in got:
            c.acknowledge(m)
        c.commit_sync()
        c.close()
