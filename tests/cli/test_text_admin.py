"""The text-protocol commands the CLI added (pylog/server/text_admin.py) over raw sockets."""
from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pylog.partitioner import partition_for_key
from pylog.testing import PylogServer


class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.rfile = self.sock.makefile("rb")

    def line(self) -> bytes:
        raw = self.rfile.readline()
        assert raw.endswith(b"\n"), f"connection closed; got {raw[:200]!r}"
        return raw[:-1]

    def cmd(self, text: str | bytes) -> bytes:
        self.sock.sendall((text.encode() if isinstance(text, str) else text) + b"\n")
        return self.line()

    def listing(self, text: str) -> list[bytes]:
        self.sock.sendall(text.encode() + b"\n")
        rows = []
        while not (row := self.line()).startswith(b"END"):
            rows.append(row)
        return rows

    def produce(self, topic, partition, key, value, headers=(), ts="now") -> bytes:
        fields, blobs = [], []
        for b in (key, value):
            fields.append(-1 if b is None else len(b))
            blobs.append(b or b"")
        for n, v in headers:
            fields += [len(n), -1 if v is None else len(v)]
            blobs += [n, v or b""]
        head = f"PRODUCEX {topic} {partition} {ts} {' '.join(map(str, fields))}\n".encode()
        self.sock.sendall(head + b"".join(blobs))
        return self.line()

    def consume(self, text: str):
        self.sock.sendall(text.encode() + b"\n")
        out = []
        while True:
            head = self.line().split()
            if head[0] == b"END":
                return out
            lengths = [int(x) for x in head[3:]]
            data = self.rfile.read(sum(max(0, n) for n in lengths) + 1)
            assert data.endswith(b"\n")
            blobs, pos = [], 0
            for n in lengths:
                blobs.append(None if n < 0 else data[pos:pos + n])
                pos += max(0, n)
            out.append((int(head[1]), int(head[2]), blobs[0], blobs[1],
                        [(blobs[i], blobs[i + 1]) for i in range(2, len(blobs), 2)]))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = PylogServer(tmp_path_factory.mktemp("textx") / "data").start()
    yield srv
    assert srv.stop() == 0, srv.log_text()[-3000:]


@pytest.fixture
def conn(server):
    c = Conn(server.text_port)
    yield c
    c.sock.close()


blobs = st.one_of(st.none(), st.binary(max_size=300))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=blobs, value=blobs, headers=st.lists(st.tuples(
    st.text(min_size=0, max_size=20).map(str.encode), blobs), max_size=4),
    ts=st.integers(0, 2**50))
def test_producex_consumex_round_trip_any_bytes(conn, key, value, headers, ts):
    if "hx" not in getattr(conn, "made", ()):
        assert conn.cmd("CREATE hx 3") == b"OK 3"
        conn.made = {"hx"}
    answer = conn.produce("hx", -1, key, value, headers, ts).split()
    assert answer[0] == b"OK"
    p, offset = int(answer[1]), int(answer[2])
    if key is not None:
        assert p == partition_for_key(key, 3)
    (got,) = conn.consume(f"CONSUMEX hx {p} {offset} 1")
    assert got == (offset, ts, key, value, [(n, v) for n, v in headers])


def test_create_with_configs_configs_alter_partitions(conn):
    assert conn.cmd("CREATE cx 2 retention.ms=1000 flush.messages=1") == b"OK 2"
    assert conn.cmd("CREATE cy segment.ms=99999") == b"OK 1"
    rows = {r.split(b" ")[1]: r.split(b" ", 3)[2:] for r in conn.listing("CONFIGS cx")}
    assert rows[b"retention.ms"] == [b"set", b"1000"]
    assert rows[b"segment.bytes"][0] == b"default"
    assert conn.cmd("ALTER cx retention.ms=5000 segment.ms=100000") == b"OK 2"
    rows = {r.split(b" ")[1]: r.split(b" ", 3)[2:] for r in conn.listing("CONFIGS cx")}
    assert rows[b"retention.ms"] == [b"set", b"5000"]
    assert conn.cmd("PARTITIONS cx 5") == b"OK 5"
    assert b"TOPIC cx 5" in conn.listing("TOPICS")
    assert conn.cmd("PRODUCE cx 4 hi") == b"OK 0"


@pytest.mark.parametrize("command, error", [
    ("CREATE bad1 2 retention.ms", b"ERR INVALID_CONFIG"),
    ("CREATE bad2 nope=1", b"ERR INVALID_CONFIG"),
    ("ALTER cx", b"ERR INVALID_REQUEST"),
    ("ALTER missing a=b", b"ERR UNKNOWN_TOPIC_OR_PARTITION"),
    ("ALTER cx retention.ms=x", b"ERR INVALID_CONFIG"),
    ("PARTITIONS cx 2", b"ERR INVALID_PARTITIONS"),
    ("PARTITIONS cx 0", b"ERR INVALID_PARTITIONS"),
    ("PARTITIONS missing 3", b"ERR UNKNOWN_TOPIC_OR_PARTITION"),
    ("TIMEOFFSET cx 0 soon", b"ERR INVALID_REQUEST"),
    ("TIMEOFFSET missing 0 5", b"ERR UNKNOWN_TOPIC_OR_PARTITION"),
    ("CONFIGS missing", b"ERR UNKNOWN_TOPIC_OR_PARTITION"),
    ("DELETEGROUP never-seen", b"ERR GROUP_ID_NOT_FOUND"),
    ("MEMBERS", b"ERR INVALID_REQUEST"),
])
def test_bad_commands_answer_err_and_the_connection_goes_on(conn, command, error):
    conn.cmd("CREATE cx 5")                     # exists (or TOPIC_ALREADY_EXISTS): fine
    assert conn.cmd(command).startswith(error)
    assert conn.cmd("PING") == b"PONG"
    assert b"bad1" not in b"".join(conn.listing("TOPICS"))


def test_producex_with_an_unreadable_length_closes_like_produceb(conn):
    assert conn.cmd("CREATE px 1") in (b"OK 1", b"ERR TOPIC_ALREADY_EXISTS topic 'px' "
                                                b"already exists")
    assert conn.cmd("PRODUCEX px 0 now 3 x").startswith(b"ERR INVALID_REQUEST")
    assert conn.rfile.read() == b""             # closed


def test_producex_over_the_payload_limit_is_discarded_and_the_connection_goes_on(conn):
    conn.cmd("CREATE px 1")
    big = 2 << 20
    conn.sock.sendall(f"PRODUCEX px 0 now -1 {big}\n".encode() + b"\n" * big)
    assert conn.line().startswith(b"ERR MESSAGE_TOO_LARGE")
    assert conn.cmd("PING") == b"PONG"
    assert conn.produce("px", 0, None, b"after") == b"OK 0 0"


def test_timeoffset_finds_the_first_record_at_or_after_a_time(conn):
    conn.cmd("CREATE tx 1")
    for i, ts in enumerate((1000, 2000, 3000)):
        assert conn.produce("tx", 0, None, b"v", ts=ts) == f"OK 0 {i}".encode()
    assert [conn.cmd(f"TIMEOFFSET tx 0 {t}") for t in (0, 1500, 3000, 3001)] == \
        [b"OK 0", b"OK 1", b"OK 2", b"OK 3"]


def test_a_deleted_group_stays_deleted_after_a_restart(tmp_path):
    srv = PylogServer(tmp_path / "data").start()
    try:
        c = Conn(srv.text_port)
        assert c.cmd("CREATE gx 1") == b"OK 1"
        c.cmd("PRODUCE gx 0 a")
        assert c.cmd("COMMIT gone gx 0 1") == b"OK"
        assert c.cmd("COMMIT kept gx 0 1") == b"OK"
        assert c.cmd("DELETEGROUP gone") == b"OK 1"
        assert c.listing("GROUPS") == [b"GROUP kept"]
        c.sock.close()
        assert srv.stop() == 0
        srv.start()
        c = Conn(srv.text_port)
        assert c.listing("GROUPS") == [b"GROUP kept"]
        assert c.cmd("OFFSET gone gx 0") == b"OK -1"
        assert c.cmd("OFFSET kept gx 0") == b"OK 1"
        c.sock.close()
    finally:
        srv.stop()
