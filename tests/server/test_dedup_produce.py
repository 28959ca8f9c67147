"""Dedup ids through every produce door of a real server: confluent-kafka (a producer
that restarts and re-sends, and a server restart between), kcat -H, the text
PRODUCEX command."""
from __future__ import annotations

import socket
import subprocess

from pylog.testing import PylogServer

ID = "pylog-msg-id"


def _produce(bootstrap, topic, items, **conf):
    """Produce (value, id) pairs; returns the offset each delivery report gave."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    got = {}

    def report(err, msg):
        assert err is None, err
        got[msg.value()] = msg.offset()

    for value, mid in items:
        p.produce(topic, value=value, partition=0, headers=[(ID, mid)] if mid else None,
                  on_delivery=report)
    assert p.flush(30) == 0
    return [got[v] for v, _ in items]


def _read_all(bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "dedup-reader",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    while True:
        batch = c.consume(500, timeout=2)
        if not batch:
            break
        out += [(m.offset(), m.value()) for m in batch if m.error() is None]
    c.close()
    return out


def _create(bootstrap, topic):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(20)


def test_producer_restart_resending_ids_is_stored_once(tmp_path):
    srv = PylogServer(tmp_path / "data").start()
    try:
        topic = "dedup-orders"
        _create(srv.bootstrap, topic)
        items = [(b"order-%d" % i, b"id-%d" % i) for i in range(100)]
        first = _produce(srv.bootstrap, topic, items)
        assert first == list(range(100))
        # a new producer (idempotent: a new producer id, so sequences cannot help)
        # re-sends half of them, then new ones
        again = _produce(srv.bootstrap, topic, items[50:] + [(b"new", b"id-new")],
                         **{"enable.idempotence": True})
        assert again == list(range(50, 100)) + [100]
        srv.restart()                       # the table is rebuilt from the log
        assert _produce(srv.bootstrap, topic, items[:10]) == list(range(10))
        # duplicates whose first copies are not at the log end, then a new record: the
        # stored one's offset is exact (storage/dedup.py: base = stored base - 10)
        assert _produce(srv.bootstrap, topic, items[20:30] + [(b"plain", None)])[-1] == 101
        got = _read_all(srv.bootstrap, topic)
        assert [v for _, v in got] == [v for v, _ in items] + [b"new", b"plain"]
        assert [o for o, _ in got] == list(range(102))
    finally:
        assert srv.stop() == 0


def test_kcat_headers_are_deduplicated(bootstrap):
    topic = "dedup-kcat"
    for _ in range(3):
        proc = subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-p", "0",
                               "-H", f"{ID}=kcat-1"], input=b"hello\n",
                              capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-e", "-o",
                           "beginning", "-f", "%o %s %h\n"], capture_output=True, timeout=30)
    assert proc.stdout.decode().splitlines() == [f"0 hello {ID}=kcat-1"]


def _text(server, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.text_port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_text_producex_answers_the_first_copys_offset(server):
    name, mid = ID.encode(), b"text-1"
    cmd = (b"PRODUCEX dedup-text 0 now -1 5 %d %d\nhello%s%s\n"
           % (len(name), len(mid), name, mid))
    out = _text(server, b"CREATE dedup-text 1\n" + cmd + b"PRODUCE dedup-text 0 plain\n"
                + cmd)
    assert out.split(b"\n")[:4] == [b"OK 1", b"OK 0 0", b"OK 1", b"OK 0 0"]
