"""Queue commands of the text protocol (server/text_queue.py): RECEIVE / ACK / RELEASE /
REJECT / QUEUE / DLQ / REQUEUE, on a real server, and one state with the embedded
``log.queue`` (an in-process text listener over the same Log)."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

import pylog
from pylog.broker.dead_letters import DeadLetterOrigin, dlq_headers


class Conn:
    """A blocking text-protocol connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.f = self.sock.makefile("rb")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def line(self) -> str:
        return self.f.readline().decode().rstrip("\n")

    def cmd(self, line: str) -> str:
        self.send(line)
        return self.line()

    def receive(self, group, topic, n=100, wait=0):
        """[(partition, offset, delivery count, value)] from RECEIVE."""
        self.send(f"RECEIVE {group} {topic} {n} {wait}")
        out = []
        while True:
            head = self.line().split()
            if head[0] != "MESSAGE":
                assert head[0] == "END", head
                assert int(head[1]) == len(out)
                return out
            lengths = [int(x) for x in head[5:]]
            data = self.f.read(sum(max(0, n) for n in lengths) + 1)[:-1]
            klen = max(0, lengths[0])
            value = data[klen:klen + max(0, lengths[1])]
            out.append((int(head[1]), int(head[2]), int(head[3]), value))

    def listing(self, line: str) -> list[str]:
        self.send(line)
        rows = []
        while not (row := self.line()).startswith("END"):
            rows.append(row)
        return rows

    def close(self) -> None:
        self.f.close()
        self.sock.close()


@pytest.fixture
def conn(server):
    c = Conn(server.text_port)
    yield c
    c.close()


def _fill(c: Conn, topic: str, n: int, partitions: int = 1) -> None:
    assert c.cmd(f"CREATE {topic} {partitions}") == f"OK {partitions}"
    for i in range(n):
        assert c.cmd(f"PRODUCE {topic} {i % partitions} m{i}").startswith("OK")


def test_receive_ack_and_stats(server, conn):
    # share.auto.offset.reset=latest (Kafka's default): the group starts where the log
    # ends when it is first used, so receive once before producing
    assert conn.cmd("CREATE tq-basic 1") == "OK 1"
    assert conn.receive("g1", "tq-basic") == []
    for i in range(5):
        conn.cmd(f"PRODUCE tq-basic 0 m{i}")
    got = conn.receive("g1", "tq-basic", 3)
    assert got == [(0, 0, 1, b"m0"), (0, 1, 1, b"m1"), (0, 2, 1, b"m2")]
    assert conn.cmd("ACK g1 tq-basic 0 0-1") == "OK 2"
    assert conn.cmd("RELEASE g1 tq-basic 0 2") == "OK 1"
    again = conn.receive("g1", "tq-basic", 10)
    assert again == [(0, 2, 2, b"m2"), (0, 3, 1, b"m3"), (0, 4, 1, b"m4")]
    assert conn.cmd("REJECT g1 tq-basic 0 2") == "OK 1"
    assert conn.cmd("ACK g1 tq-basic 0 3-4") == "OK 2"
    rows = conn.listing("QUEUE g1 tq-basic")
    assert len(rows) == 1 and rows[0].startswith("PARTITION 0 ")
    fields = dict(kv.split("=") for kv in rows[0].split()[2:])
    assert fields["spso"] == "5" and fields["acknowledged_total"] == "4"
    assert fields["available"] == "0" and fields["acquired"] == "0"


def test_two_connections_share_a_partition_and_close_releases(server, conn):
    other = Conn(server.text_port)
    try:
        assert conn.cmd("CREATE tq-share 1") == "OK 1"
        conn.receive("g2", "tq-share")
        other.receive("g2", "tq-share")
        for i in range(4):
            conn.cmd(f"PRODUCE tq-share 0 m{i}")
        a = conn.receive("g2", "tq-share", 2)
        b = other.receive("g2", "tq-share", 10)
        assert [g[1] for g in a] == [0, 1] and [g[1] for g in b] == [2, 3]
        # another member's records: refused, nothing changed
        assert conn.cmd("ACK g2 tq-share 0 2").startswith("ERR INVALID_RECORD_STATE")
        assert other.cmd("ACK g2 tq-share 0 2-3") == "OK 2"
        other.close()
        conn.close()                    # leaves: its two records come back at once
        third = Conn(server.text_port)
        deadline = time.monotonic() + 10
        got = []
        while not got and time.monotonic() < deadline:
            got = third.receive("g2", "tq-share", 10, 200)
        assert [(g[1], g[2]) for g in got] == [(0, 2), (1, 2)]
        third.close()
    finally:
        other.close()


def test_receive_waits_for_a_record(server, conn):
    assert conn.cmd("CREATE tq-wait 2") == "OK 2"
    conn.receive("g3", "tq-wait")
    producer = Conn(server.text_port)

    def later():
        time.sleep(0.3)
        producer.cmd("PRODUCE tq-wait 1 late")
    t = threading.Thread(target=later)
    t.start()
    got = conn.receive("g3", "tq-wait", 10, 10_000)
    t.join()
    producer.close()
    assert got == [(1, 0, 1, b"late")]


@pytest.mark.parametrize("line, error", [
    ("ACK g4 tq-bad 0 0", "UNKNOWN_MEMBER_ID"),
    ("ACK g4 tq-bad 0 x", "INVALID_REQUEST"),
    ("ACK g4 tq-bad 0 5-3", "INVALID_REQUEST"),
    ("ACK g4 tq-bad zero 1", "INVALID_REQUEST"),
    ("ACK g4 tq-bad 0", "INVALID_REQUEST"),
    ("ACK g4 nope 0 1", "UNKNOWN_TOPIC_OR_PARTITION"),
    ("RECEIVE g4 tq-bad -1", "INVALID_REQUEST"),
    ("RECEIVE g4 tq-bad 10 soon", "INVALID_REQUEST"),
    ("RECEIVE g4 nope", "UNKNOWN_TOPIC_OR_PARTITION"),
    ("QUEUE g4", "INVALID_REQUEST"),
    ("DLQ nope", "UNKNOWN_TOPIC_OR_PARTITION"),
    ("REQUEUE tq-bad 0 99", "OFFSET_OUT_OF_RANGE"),
    ("REQUEUE tq-bad 0 0", "INVALID_REQUEST"),
])
def test_bad_input_is_refused_and_disturbs_nothing(server, conn, line, error):
    if conn.cmd("CREATE tq-bad 1") == "OK 1":
        conn.cmd("PRODUCE tq-bad 0 not-a-dead-letter")
    member = Conn(server.text_port)
    try:
        member.receive("g4", "tq-bad")
        before = member.listing("QUEUE g4 tq-bad")
        assert conn.cmd(line).startswith(f"ERR {error} ")
        assert conn.cmd("PING") == "PONG"
        assert member.listing("QUEUE g4 tq-bad") == before
    finally:
        member.close()


def test_acks_for_records_not_acquired(server, conn):
    assert conn.cmd("CREATE tq-state 1") == "OK 1"
    conn.receive("g5", "tq-state")
    conn.cmd("PRODUCE tq-state 0 a")
    conn.cmd("PRODUCE tq-state 0 b")
    assert conn.receive("g5", "tq-state", 1)[0][1] == 0
    # 0 held, 1 not acquired: the range is all or nothing
    assert conn.cmd("ACK g5 tq-state 0 0-1").startswith("ERR INVALID_RECORD_STATE")
    assert conn.cmd("ACK g5 tq-state 0 7").startswith("ERR INVALID_RECORD_STATE")
    assert conn.cmd("ACK g5 tq-state 0 0") == "OK 1"
    assert conn.cmd("ACK g5 tq-state 0 0").startswith("ERR INVALID_RECORD_STATE")


def test_dlq_list_and_requeue_is_idempotent(server, conn):
    assert conn.cmd("CREATE tq-orders 2") == "OK 2"
    assert conn.cmd("CREATE tq-orders.dlq 1") == "OK 1"
    from pylog.cli.client import TextClient
    client = TextClient(f"127.0.0.1:{server.text_port}")
    try:
        for i, reason in enumerate(("rejected", "delivery-limit")):
            origin = DeadLetterOrigin("g6", "tq-orders", 1, 40 + i, 5, reason, 1_700_000)
            headers = [(b"app", b"x"), (b"pylog-msg-id", b"orig-%d" % i)] + [
                (k.encode(), v) for k, v in dlq_headers(origin)]
            client.send(client.produce_frame("tq-orders.dlq", 0, b"body%d" % i, b"k%d" % i,
                                             headers))
            client.line()
    finally:
        client.close()
    conn.cmd("PRODUCE tq-orders.dlq 0 not-a-dead-letter")
    conn.send("DLQ tq-orders.dlq")
    rows = []
    while not (head := conn.line()).startswith("END"):
        rows.append((head, conn.f.readline()))
    assert head == "END 2"
    assert rows[0][0] == "DEAD 0 0 g6 tq-orders 1 40 5 rejected 1700000 2 5"
    assert rows[0][1] == b"k0body0\n"
    assert rows[1][0].startswith("DEAD 0 1 g6 tq-orders 1 41 5 delivery-limit")
    assert conn.cmd("REQUEUE tq-orders.dlq 0 1") == "OK tq-orders 1 0"
    assert conn.cmd("REQUEUE tq-orders.dlq 0 1") == "OK tq-orders 1 0"   # stored once
    assert conn.cmd("REQUEUE tq-orders.dlq 0 0") == "OK tq-orders 1 1"
    assert conn.cmd("REQUEUE tq-orders.dlq 0 2").startswith("ERR INVALID_REQUEST")
    conn.send("CONSUMEX tq-orders 1")
    head = conn.line().split()
    data = conn.f.read(sum(max(0, int(n)) for n in head[3:]) + 1)
    assert data.startswith(b"k1body1app")
    assert b"pylog-dlq" not in data and b"orig-1" not in data
    assert b"requeue/tq-orders.dlq/0/1" in data


# ---- one state: the embedded queue and the text door over the same Log ----------------
def _serve_text(log):
    """A text listener over ``log`` in a thread; returns (port, stop)."""
    from pylog.server.kafka.context import BrokerContext
    from pylog.server.metrics import CommittedOffsets
    from pylog.server.text import TextServer
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box = {}

    async def main():
        broker = BrokerContext(log)
        broker.loop = asyncio.get_running_loop()
        srv = TextServer(broker, port=0, offsets=CommittedOffsets(broker))
        await srv.start()
        box["srv"] = srv
        ready.set()
        while not box.get("stop"):
            await asyncio.sleep(0.02)
        await srv.shutdown(1)

    t = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    t.start()
    assert ready.wait(10)

    def stop():
        box["stop"] = True
        t.join(10)
    return box["srv"].port, stop


def test_text_and_embedded_queue_are_one_state(tmp_path):
    with pylog.open(tmp_path / "data") as log:
        log.create_topic("tq-one", partitions=1)
        q = log.queue("workers", "tq-one")
        assert q.receive() == []                      # latest: starts at the log end
        for i in range(6):
            log.topic("tq-one").partition(0).append(b"m%d" % i)
        port, stop = _serve_text(log)
        try:
            c = Conn(port)
            got = c.receive("workers", "tq-one", 3)
            assert [g[1] for g in got] == [0, 1, 2]
            assert c.cmd("ACK workers tq-one 0 0-2") == "OK 3"
            msgs = q.receive(max_records=10)
            assert [m.offset for m in msgs] == [3, 4, 5]   # acked via text: not again
            for m in msgs[:2]:
                m.ack()
            msgs[2].release()
            again = c.receive("workers", "tq-one", 10)
            assert [(g[1], g[2]) for g in again] == [(5, 2)]
            stats = q.stats()[0]
            assert stats["acknowledged_total"] == 5 and stats["acquired"] == 1
            c.close()
        finally:
            stop()
            q.close()


def test_release_with_a_delay(server, conn):
    """RELEASE ... <delay-ms> needs the queue features' release_delay_ms; without them
    it is refused and nothing changes."""
    import inspect

    from pylog.broker.queues import ShareGroups
    has_delay = "release_delay_ms" in inspect.signature(ShareGroups.acknowledge).parameters
    assert conn.cmd("CREATE tq-delay 1") == "OK 1"
    conn.receive("g7", "tq-delay")
    conn.cmd("PRODUCE tq-delay 0 a")
    assert conn.receive("g7", "tq-delay")[0][1] == 0
    assert conn.cmd("RELEASE g7 tq-delay 0 0 -5").startswith("ERR INVALID_REQUEST")
    answer = conn.cmd("RELEASE g7 tq-delay 0 0 60000")
    if not has_delay:
        assert answer.startswith("ERR INVALID_REQUEST")
        assert conn.cmd("ACK g7 tq-delay 0 0") == "OK 1"       # still held: undisturbed
        return
    assert answer == "OK 1"
    assert conn.receive("g7", "tq-delay", 10, 300) == []       # not before a minute


def test_dead_letter_headers_make_each_dead_letter_its_own_id():
    """Two records with one pylog-msg-id (two partitions) dead-lettered to one DLQ
    partition are both kept; a retried dead-letter write is stored once; a requeue
    drops every pylog-dlq-* header."""
    from pylog.broker.dead_letters import (H_MSG_ID, dead_letter_headers, parse_dlq_headers,
                                           requeue)
    with pylog.open(None) as log:
        log.create_topic("dl-orders", partitions=2)
        dp = log.create_topic("dl-orders.dlq", partitions=1).partition(0)
        own = [("app", b"1"), ("pylog-msg-id", b"same")]
        for part in (0, 1):
            origin = DeadLetterOrigin("g", "dl-orders", part, 7, 5, "rejected", 1)
            hs = dead_letter_headers(own, origin)
            assert dp.append(b"v", headers=hs) == part
            assert dp.append(b"v", headers=hs) == part          # the retry: stored once
        recs = dp.read(0)
        assert len(recs) == 2 and parse_dlq_headers(recs[1].headers).partition == 1
        assert (H_MSG_ID, b"same") in recs[0].headers
        topic, p, new = requeue(log, "dl-orders.dlq", 0, 0)
        back = log.partition(topic, p).read(new)[0]
        assert [k for k, _ in back.headers] == ["app", "pylog-msg-id"]
