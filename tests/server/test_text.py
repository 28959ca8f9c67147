"""The text protocol over real sockets against a real pylog-server subprocess."""
from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

MiB = 1 << 20


class Conn:
    """A blocking text-protocol connection for tests."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.rfile = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        raw = self.rfile.readline()
        assert raw.endswith(b"\n"), f"connection closed; got {raw[:200]!r}"
        return raw[:-1]

    def cmd(self, text: str | bytes) -> bytes:
        self.send((text.encode() if isinstance(text, str) else text) + b"\n")
        return self.line()

    def listing(self, text: str) -> list[bytes]:
        self.send(text.encode() + b"\n")
        rows = []
        while not (row := self.line()).startswith(b"END"):
            rows.append(row)
        return rows + [row]

    def consume(self, text: str):
        """[(offset, timestamp, value)], end line."""
        self.send(text.encode() + b"\n")
        records = []
        while True:
            head = self.line().split()
            if head[0] == b"END":
                return records, head
            assert head[0] == b"RECORD", head
            off, ts, n = int(head[1]), int(head[2]), int(head[3])
            data = self.rfile.read(n + 1)
            assert data.endswith(b"\n")
            records.append((off, ts, data[:-1]))

    def at_eof(self) -> bool:
        try:
            return self.rfile.read() == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


@pytest.fixture
def conn(server):
    c = Conn(server.text_port)
    yield c
    c.close()


_topic_counter = iter(range(10**6))


@pytest.fixture
def topic(conn):
    name = f"text-{next(_topic_counter)}"
    assert conn.cmd(f"CREATE {name} 2") == b"OK 2"
    return name


def end_offsets(conn: Conn, topic: str) -> list[int]:
    return [int(row.split()[3]) for row in conn.listing(f"DESCRIBE {topic}")[:-1]]


# -- the happy paths -------------------------------------------------------------------
def test_produce_answers_offsets_and_consume_returns_offset_timestamp_and_value(conn, topic):
    before = int(time.time() * 1000)
    assert conn.cmd(f"PRODUCE {topic} 0 hello world") == b"OK 0"
    assert conn.cmd(f"PRODUCE {topic} 0  two  spaces ") == b"OK 1"
    assert conn.cmd(f"PRODUCE {topic} 1 other partition") == b"OK 0"
    records, end = conn.consume(f"CONSUME {topic} 0")
    assert [(o, v) for o, _, v in records] == [(0, b"hello world"), (1, b" two  spaces ")]
    assert all(before - 1000 <= ts <= time.time() * 1000 + 1000 for _, ts, _ in records)
    assert end == [b"END", b"2", b"2"]


def test_binary_payload_with_newlines_nul_and_every_byte_round_trips(conn, topic):
    payloads = [bytes(range(256)), b"\n", b"", b"\0\0\n\r\nPING\n", b"line\nCONSUME x 0\n"]
    for i, p in enumerate(payloads):
        conn.send(f"PRODUCEB {topic} 0 {len(p)}\n".encode() + p)
        assert conn.line() == f"OK {i}".encode()
    assert conn.cmd("PING") == b"PONG"          # the payloads were never read as commands
    records, end = conn.consume(f"CONSUME {topic} 0 0 100")
    assert [v for _, _, v in records] == payloads
    assert end[1] == str(len(payloads)).encode()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.binary(max_size=3000))
def test_any_bytes_survive_produceb_and_consume(conn, topic, value):
    conn.send(f"PRODUCEB {topic} 1 {len(value)}\n".encode() + value)
    offset = int(conn.line().split()[1])
    records, _ = conn.consume(f"CONSUME {topic} 1 {offset} 1")
    assert records[0][0] == offset and records[0][2] == value


def test_pipelined_commands_are_answered_in_order(conn, topic):
    batch = b"".join(f"PRODUCE {topic} 0 m{i}\nPING\n".encode() for i in range(300))
    batch += f"PRODUCEB {topic} 0 3\na\nbPING\n".encode()
    conn.send(batch)
    for i in range(300):
        assert conn.line() == f"OK {i}".encode()
        assert conn.line() == b"PONG"
    assert conn.line() == b"OK 300"
    assert conn.line() == b"PONG"
    records, end = conn.consume(f"CONSUME {topic} 0 298")
    assert [v for _, _, v in records] == [b"m298", b"m299", b"a\nb"]


def test_consume_honours_offset_max_and_earliest_latest(conn, topic):
    for i in range(10):
        conn.cmd(f"PRODUCE {topic} 1 v{i}")
    records, end = conn.consume(f"CONSUME {topic} 1 3 4")
    assert [o for o, _, _ in records] == [3, 4, 5, 6] and end == [b"END", b"7", b"10"]
    records, end = conn.consume(f"CONSUME {topic} 1 earliest 2")
    assert [o for o, _, _ in records] == [0, 1]
    records, end = conn.consume(f"CONSUME {topic} 1 latest")
    assert records == [] and end == [b"END", b"10", b"10"]
    records, end = conn.consume(f"CONSUME {topic} 1 10")
    assert records == [] and end == [b"END", b"10", b"10"]


def test_topics_create_describe_delete(conn):
    assert conn.cmd("CREATE admin-a 3") == b"OK 3"
    assert conn.cmd("create admin-b") == b"OK 1"          # the server's num.partitions
    rows = conn.listing("TOPICS")
    assert b"TOPIC admin-a 3" in rows and b"TOPIC admin-b 1" in rows
    assert rows[-1] == f"END {len(rows) - 1}".encode()
    assert conn.cmd("PRODUCE admin-a 2 x") == b"OK 0"
    desc = conn.listing("DESCRIBE admin-a")
    assert [r.split()[:4] for r in desc[:-1]] == [
        [b"PARTITION", b"0", b"0", b"0"], [b"PARTITION", b"1", b"0", b"0"],
        [b"PARTITION", b"2", b"0", b"1"]]
    assert int(desc[2].split()[4]) > 0 and desc[-1] == b"END 3"
    assert not any(r.startswith(b"TOPIC __") for r in rows)      # internal: only if asked
    assert b"TOPIC __consumer_offsets 1" in conn.listing("TOPICS internal")
    assert conn.cmd("DELETE admin-a") == b"OK"
    assert b"TOPIC admin-a 3" not in conn.listing("TOPICS")


def test_commit_then_offset_and_group_description(conn, topic):
    for i in range(5):
        conn.cmd(f"PRODUCE {topic} 0 v{i}")
    assert conn.cmd(f"OFFSET text-group {topic} 0") == b"OK -1"
    assert conn.cmd(f"COMMIT text-group {topic} 0 3") == b"OK"
    assert conn.cmd(f"OFFSET text-group {topic} 0") == b"OK 3"
    assert b"GROUP text-group" in conn.listing("GROUPS")
    assert conn.listing("GROUP text-group") == [b"STATE Empty 0",
                                                f"COMMITTED {topic} 0 3 5 2".encode(), b"END 1"]
    assert conn.listing("GROUP never-seen") == [b"STATE Dead 0", b"END 0"]


def test_ping_help_crlf_empty_lines_and_quit(server):
    c = Conn(server.text_port)
    assert c.cmd("PING") == b"PONG"
    assert c.cmd(b"ping\r") == b"PONG"                    # telnet / nc -C line endings
    c.send(b"\n\n\r\n")                                   # empty lines: no answer
    help_rows = c.listing("HELP")
    assert any(r.startswith(b"PRODUCEB") for r in help_rows)
    assert c.cmd("QUIT") == b"BYE"
    assert c.at_eof()
    c.close()


def test_last_command_without_newline_is_answered_before_close(server):
    c = Conn(server.text_port)
    c.send(b"PING")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.line() == b"PONG"
    assert c.at_eof()
    c.close()


# -- errors: one ERR line, nothing written, the connection goes on ----------------------
BAD = [
    ("FROB x", "INVALID_REQUEST", "unknown command"),
    ("PRODUCE {t}", "INVALID_REQUEST", "usage: PRODUCE"),
    ("PRODUCE {t} 0", "INVALID_REQUEST", "usage: PRODUCE"),
    ("PRODUCE {t} zero hello", "INVALID_REQUEST", "partition must be an integer"),
    ("PRODUCE {t} -1 hello", "INVALID_REQUEST", "partition must be at least 0"),
    ("PRODUCE {t} 7 hello", "UNKNOWN_TOPIC_OR_PARTITION", "no partition 7"),
    ("PRODUCE no-such-topic 0 hello", "UNKNOWN_TOPIC_OR_PARTITION", "unknown topic"),
    ("PRODUCE bad/name 0 hello", "INVALID_TOPIC_EXCEPTION", "invalid topic name"),
    ("PRODUCE .. 0 hello", "INVALID_TOPIC_EXCEPTION", "invalid topic name"),
    ("CONSUME {t}", "INVALID_REQUEST", "wrong number of arguments"),
    ("CONSUME {t} 0 1 2 3", "INVALID_REQUEST", "wrong number of arguments"),
    ("CONSUME {t} x", "INVALID_REQUEST", "partition must be an integer"),
    ("CONSUME {t} 0 first", "INVALID_REQUEST", "offset must be an integer"),
    ("CONSUME {t} 0 0 lots", "INVALID_REQUEST", "max must be an integer"),
    ("CONSUME {t} 0 0 0", "INVALID_REQUEST", "max must be at least 1"),
    ("CONSUME {t} 0 0 10001", "INVALID_REQUEST", "max must be at most 10000"),
    ("CONSUME {t} 0 99", "OFFSET_OUT_OF_RANGE", "outside"),
    ("CONSUME no-such-topic 0", "UNKNOWN_TOPIC_OR_PARTITION", "unknown topic"),
    ("TOPICS extra", "INVALID_REQUEST", "usage: TOPICS"),
    ("TOPICS internal extra", "INVALID_REQUEST", "usage: TOPICS"),
    ("CREATE", "INVALID_REQUEST", "usage: CREATE"),
    ("CREATE {t}", "TOPIC_ALREADY_EXISTS", ""),
    ("CREATE fresh-topic 0", "INVALID_PARTITIONS", "from 1 to 10000"),
    ("CREATE fresh-topic many", "INVALID_PARTITIONS", "integer"),
    ("CREATE fresh-topic 100000", "INVALID_PARTITIONS", "from 1 to 10000"),
    ("CREATE bad:name", "INVALID_TOPIC_EXCEPTION", "invalid topic name"),
    ("DELETE no-such-topic", "UNKNOWN_TOPIC_OR_PARTITION", ""),
    ("DESCRIBE", "INVALID_REQUEST", "usage: DESCRIBE"),
    ("COMMIT g {t} 0", "INVALID_REQUEST", "usage: COMMIT"),
    ("COMMIT g {t} 0 ten", "INVALID_REQUEST", "offset must be an integer"),
    ("COMMIT g {t} 0 -5", "INVALID_REQUEST", "offset must be at least 0"),
    ("COMMIT g {t} 0 9223372036854775808", "INVALID_REQUEST", "at most 9223372036854775807"),
    ("CONSUME {t} 0 9223372036854775808", "INVALID_REQUEST", "at most"),
    ("PRODUCE {t} 2147483648 x", "INVALID_REQUEST", "partition must be at most"),
    ("COMMIT " + "g" * 300 + " {t} 0 1", "INVALID_GROUP_ID", "1-255 characters"),
    ("COMMIT g no-such-topic 0 1", "UNKNOWN_TOPIC_OR_PARTITION", "unknown topic"),
    ("COMMIT g {t} 9 1", "UNKNOWN_TOPIC_OR_PARTITION", "no partition 9"),
    ("OFFSET g {t}", "INVALID_REQUEST", "usage: OFFSET"),
    ("OFFSET g {t} p", "INVALID_REQUEST", "partition must be an integer"),
    ("GROUP", "INVALID_REQUEST", "usage: GROUP"),
    (b"CONSUME \xff\xfe 0", "INVALID_REQUEST", "UTF-8"),
]


@pytest.mark.parametrize("line,name,text", BAD, ids=[str(b[0])[:40] for b in BAD])
def test_bad_command_answers_one_err_line_writes_nothing_and_keeps_the_connection(
        conn, topic, line, name, text):
    conn.cmd(f"PRODUCE {topic} 0 existing")
    before = end_offsets(conn, topic)
    if isinstance(line, str):
        line = line.replace("{t}", topic)
    answer = conn.cmd(line)
    assert answer.startswith(f"ERR {name} ".encode()), answer
    assert text.encode() in answer, answer
    assert conn.cmd("PING") == b"PONG"
    assert end_offsets(conn, topic) == before
    assert b"TOPIC fresh-topic" not in b"".join(conn.listing("TOPICS"))


def test_produceb_over_the_payload_limit_is_skipped_and_the_connection_goes_on(conn, topic):
    payload = b"\n".join([b"PRODUCE " + topic.encode() + b" 0 smuggled"] * 50_000)
    assert len(payload) > MiB
    conn.send(f"PRODUCEB {topic} 0 {len(payload)}\n".encode() + payload)
    answer = conn.line()
    assert answer.startswith(b"ERR MESSAGE_TOO_LARGE "), answer
    assert conn.cmd("PING") == b"PONG"
    assert end_offsets(conn, topic) == [0, 0]


def test_produceb_to_an_unknown_topic_consumes_its_payload(conn, topic):
    conn.send(b"PRODUCEB nowhere 0 12\nPING\nPING\nPI")
    assert conn.line().startswith(b"ERR UNKNOWN_TOPIC_OR_PARTITION ")
    assert conn.cmd("PING") == b"PONG"


@pytest.mark.parametrize("header,name", [
    (b"PRODUCEB {t} 0 lots", b"INVALID_REQUEST"),
    (b"PRODUCEB {t} 0", b"INVALID_REQUEST"),
    (b"PRODUCEB {t} 0 -4", b"INVALID_REQUEST"),
    (b"PRODUCEB {t} 0 999999999999", b"MESSAGE_TOO_LARGE"),
])
def test_produceb_whose_payload_end_is_unknown_answers_err_and_closes(server, header, name):
    c = Conn(server.text_port)
    t = f"text-close-{next(_topic_counter)}"
    assert c.cmd(f"CREATE {t}") == b"OK 1"
    c.send(header.replace(b"{t}", t.encode()) + b"\n" + f"PRODUCE {t} 0 smuggled\n".encode())
    answer = c.line()
    assert answer.startswith(b"ERR " + name + b" ") and b"clos" in answer, answer
    assert c.at_eof()
    c.close()
    other = Conn(server.text_port)
    assert end_offsets(other, t) == [0]
    other.close()


def _server_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
    raise AssertionError("no VmRSS")


def test_ten_megabyte_line_without_newline_answers_err_closes_and_stays_bounded(server, topic,
                                                                                conn):
    rss_before = _server_rss_kib(server.process.pid)
    for _ in range(3):
        c = Conn(server.text_port)
        line = f"PRODUCE {topic} 0 ".encode() + b"x" * (10 * MiB)

        def send_all():
            try:
                c.sock.sendall(line)
            except OSError:
                pass                        # the server closed its end: expected
        sender = threading.Thread(target=send_all)
        sender.start()
        answer = c.line()
        assert answer.startswith(b"ERR INVALID_REQUEST line longer than 1048576 bytes"), answer
        assert c.at_eof()
        sender.join(20)
        c.close()
    # Three 10 MB lines did not become 30 MB of buffers (each is cut at ~2 MiB).
    assert _server_rss_kib(server.process.pid) - rss_before < 12 * 1024
    assert conn.cmd("PING") == b"PONG"          # other connections unaffected
    assert end_offsets(conn, topic) == [0, 0]


def test_line_just_under_the_limit_is_accepted(conn, topic):
    value = b"v" * (1_000_000)
    assert conn.cmd(f"PRODUCE {topic} 1 ".encode() + value) == b"OK 0"
    records, _ = conn.consume(f"CONSUME {topic} 1 0 1")
    assert records[0][2] == value


def test_connections_are_independent(server, topic):
    a, b = Conn(server.text_port), Conn(server.text_port)
    a.send(f"PRODUCE {topic} 0 from-a\n".encode())
    assert b.cmd(f"PRODUCE {topic} 0 from-b").startswith(b"OK ")
    assert a.line().startswith(b"OK ")
    a.close()
    assert b.cmd("PING") == b"PONG"
    b.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_disabled_text_listener_is_not_started(pylog_server_factory):
    srv = pylog_server_factory(args=["--text-port", "-1"])
    assert srv.text_port is None and srv.http_port is not None


def test_shutdown_with_idle_and_half_sent_text_connections_is_clean(pylog_server_factory):
    srv = pylog_server_factory()
    idle, partial = Conn(srv.text_port), Conn(srv.text_port)
    assert idle.cmd("CREATE shut 1") == b"OK 1"
    partial.send(b"PRODUCE shut 0 never finished")
    assert srv.stop() == 0
    assert idle.at_eof() and partial.at_eof()
    assert "Traceback" not in srv.log_text() and "ERROR" not in srv.log_text()
    idle.close()
    partial.close()


def test_commit_is_refused_while_a_kafka_consumer_group_has_members(server, conn, topic):
    from kafka import KafkaConsumer
    conn.cmd(f"PRODUCE {topic} 0 x")
    consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=f"busy-{topic}",
                             enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        assert consumer.assignment()
        answer = conn.cmd(f"COMMIT busy-{topic} {topic} 0 1")
        assert answer.startswith((b"ERR UNKNOWN_MEMBER_ID ", b"ERR REBALANCE_IN_PROGRESS ",
                                  b"ERR ILLEGAL_GENERATION ")), answer
        assert conn.cmd(f"OFFSET busy-{topic} {topic} 0") == b"OK -1"
        assert conn.listing(f"GROUP busy-{topic}")[0] == b"STATE Stable 1"
    finally:
        consumer.close()


def test_client_leaving_in_the_middle_of_a_produceb_payload_writes_nothing(server, conn,
                                                                          topic):
    c = Conn(server.text_port)
    c.send(f"PRODUCEB {topic} 0 100\n".encode() + b"only forty bytes" * 2)
    c.close()
    time.sleep(0.3)
    assert conn.cmd("PING") == b"PONG"
    assert end_offsets(conn, topic) == [0, 0]
    assert "failed" not in server.log_text()[-2000:]


def test_default_text_port_taken_is_skipped_with_a_warning(tmp_path):
    import subprocess
    import sys
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 3000))
        holder.listen()
    except OSError:
        pass                                # taken already, by someone else: same case
    cmd = [sys.executable, "-m", "pylog.server.main", "--data-dir", str(tmp_path / "d"),
           "--kafka-listener", "127.0.0.1:0", "--http-port", "-1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = []
        while not any(b"kafka listening" in ln for ln in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read().decode()
            lines.append(line)
        assert not any(b"text listening" in ln for ln in lines)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        holder.close()
    assert b"text listener not started: 127.0.0.1:3000" in err and b"--text-port" in err


_COMMAND_WORDS = st.sampled_from([b"PRODUCE", b"CONSUME", b"TOPICS", b"CREATE", b"DELETE",
                                  b"DESCRIBE", b"COMMIT", b"OFFSET", b"GROUPS", b"GROUP",
                                  b"ping", b"HELP", b"", b"\xff"])
_ARGS = st.lists(st.one_of(st.binary(max_size=12), st.sampled_from(
    [b"0", b"-1", b"99999999999999999999", b"fuzz-nothing", b"..", b"earliest", b"1e3"])),
    max_size=5)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(word=_COMMAND_WORDS, args=_ARGS)
def test_fuzzed_command_lines_never_break_the_connection(conn, word, args):
    line = b" ".join([word, *args]).replace(b"\n", b" ")
    if line.lstrip().upper().startswith((b"QUIT", b"PRODUCEB", b"CREATE", b"DELETE")):
        return                         # these may legitimately close or change state
    conn.send(line + b"\nPING\n")
    rows = []
    while (row := conn.line()) != b"PONG":      # answered, and the connection goes on
        rows.append(row)
    assert not any(r.startswith(b"ERR UNKNOWN_SERVER_ERROR") for r in rows), rows
