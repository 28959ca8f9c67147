"""confluent-kafka's ShareConsumer (KIP-932), unmodified, against pylog-server.

Three consumers share a one-partition topic of 30,000 records and each record is
accepted exactly once; explicit acknowledgement releases and rejects; a consumer
SIGKILLed while holding records has them redelivered to another with delivery count 2
after the lock duration.  Records are produced after the consumers joined (the share
groups here start at the log end: share.auto.offset.reset=latest, Kafka's default).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from group_clients import create_topic

from pylog.testing import start_server

LOCK_MS = 2000


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("share") / "data",
                     args=["--group-share-record-lock-duration-ms", str(LOCK_MS)])
    yield s
    assert s.stop() == 0, s.log_text()[-3000:]


def _consumer(bootstrap: str, group: str, **conf) -> ShareConsumer:
    return ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, **conf})


def _produce(bootstrap: str, topic: str, n: int, start: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(start, start + n):
        p.produce(topic, value=b"v%d" % i)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def _join(c: ShareConsumer, topic: str) -> None:
    """Subscribe and poll until the group has handed this member its partitions."""
    c.subscribe([topic])
    c.poll(1.0)


def _drain(c: ShareConsumer, want: int, timeout: float = 20.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        for m in c.poll(0.5):
            assert m.error() is None, m.error()
            got.append(m)
    return got


def test_three_consumers_accept_each_record_exactly_once(srv):
    topic, group, total = "share-30k", "share-30k-g", 30_000
    create_topic(srv.bootstrap, topic, partitions=1)
    consumers = [_consumer(srv.bootstrap, group) for _ in range(3)]
    for c in consumers:
        _join(c, topic)
    seen: list[list[int]] = [[] for _ in consumers]
    done = threading.Event()

    def run(i: int) -> None:
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            for m in consumers[i].poll(0.2):
                assert m.error() is None, m.error()
                seen[i].append(m.offset())
            if sum(map(len, seen)) >= total:
                done.set()
        consumers[i].commit_sync()          # implicit mode: accepts the last poll

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    _produce(srv.bootstrap, topic, total)
    for t in threads:
        t.join(180)
    for c in consumers:
        c.close()
    offsets = [o for s in seen for o in s]
    assert sorted(offsets) == list(range(total)), "every record once, none lost"
    assert sum(1 for s in seen if s) >= 2, [len(s) for s in seen]
    # Every record was accepted: a new member of the group gets nothing.
    late = _consumer(srv.bootstrap, group)
    _join(late, topic)
    assert _drain(late, 1, timeout=3) == []
    late.close()


def test_explicit_release_redelivers_and_reject_does_not(srv):
    topic, group = "share-explicit", "share-explicit-g"
    create_topic(srv.bootstrap, topic, partitions=1)
    c = _consumer(srv.bootstrap, group, **{"share.acknowledgement.mode": "explicit"})
    _join(c, topic)
    _produce(srv.bootstrap, topic, 10)
    msgs = _drain(c, 10)
    assert [m.offset() for m in msgs] == list(range(10))
    assert all(m.delivery_count() == 1 for m in msgs)
    for m in msgs:
        kind = {3: AcknowledgeType.RELEASE, 4: AcknowledgeType.REJECT}.get(m.offset(),
                                                                          AcknowledgeType.ACCEPT)
        c.acknowledge(m, kind)
    result = c.commit_sync()
    assert all(v is None for v in result.values()), result
    again = _drain(c, 1, timeout=10)
    assert [(m.offset(), m.delivery_count()) for m in again] == [(3, 2)]
    assert again[0].value() == b"v3"
    c.acknowledge(again[0], AcknowledgeType.ACCEPT)
    c.commit_sync()
    assert _drain(c, 1, timeout=2) == [], "offset 4 was rejected: never again"
    c.close()


_HOLDER = textwrap.dedent("""
    import sys, time
    from confluent_kafka import ShareConsumer
    c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                       "share.acknowledgement.mode": "explicit"})
    c.subscribe([sys.argv[3]])
    got = []
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        got = [m.offset() for m in c.poll(0.5) if m.error() is None]
    print(" ".join(map(str, got)), flush=True)
    time.sleep(600)
""")


def test_sigkilled_consumer_records_come_back_with_delivery_count_2(srv, tmp_path):
    topic, group = "share-kill", "share-kill-g"
    create_topic(srv.bootstrap, topic, partitions=1)
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), srv.bootstrap, group, topic],
                              stdout=subprocess.PIPE, text=True)
    other = None
    try:
        time.sleep(2)                        # the holder joins before the records exist
        _produce(srv.bootstrap, topic, 50)
        held = [int(x) for x in holder.stdout.readline().split()]
        assert held, "the holder got records"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        # Joined only now: a member polling all along would have prefetched them.
        other = _consumer(srv.bootstrap, group, **{"share.acknowledgement.mode": "explicit"})
        other.subscribe([topic])
        got = {}
        deadline = time.monotonic() + 30
        while len(got) < 50 and time.monotonic() < deadline:
            for m in other.poll(0.5):
                got[m.offset()] = m.delivery_count()
                other.acknowledge(m, AcknowledgeType.ACCEPT)
            other.commit_sync()
        assert sorted(got) == list(range(50))
        assert {o: got[o] for o in held} == {o: 2 for o in held}
        assert all(n == 1 for o, n in got.items() if o not in held)
    finally:
        holder.kill()
        if other is not None:
            other.close()


def test_close_commits_the_last_poll(srv):
    """Implicit mode: close() accepts the records of the last poll before leaving."""
    topic, group = "share-close", "share-close-g"
    create_topic(srv.bootstrap, topic, partitions=1)
    c = _consumer(srv.bootstrap, group)
    _join(c, topic)
    _produce(srv.bootstrap, topic, 20)
    assert len(_drain(c, 20)) == 20
    c.close()
    late = _consumer(srv.bootstrap, group)
    _join(late, topic)
    assert _drain(late, 1, timeout=3) == []
    late.close()
