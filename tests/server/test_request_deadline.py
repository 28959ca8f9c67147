"""A request must be complete within request_timeout_ms of its first byte, on every listener
(issue 18, defect 5): a client that trickles a request a byte at a time is cut off although
bytes keep arriving; a client that is merely idle between requests is not (that is idle_ms)."""
from __future__ import annotations

import json
import socket
import struct
import time
import urllib.request

import pytest
from kafka_raw import RawClient, module

DEADLINE_MS = 1000


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    from pylog.testing import PylogServer
    server = PylogServer(tmp_path_factory.mktemp("deadline") / "data",
                         args=["--request-timeout-ms", str(DEADLINE_MS),
                               "--idle-ms", "60000"]).start()
    yield server
    assert server.stop() == 0, server.log_text()[-3000:]


def trickle(sock: socket.socket, first: bytes, byte: bytes = b"x", every: float = 0.2,
            limit: float = 10.0) -> tuple[float, bytes]:
    """Send ``first``, then one byte every ``every`` s until the server closes; returns
    (seconds from the first byte until the close was seen, what the server sent)."""
    sock.settimeout(every)
    started = time.monotonic()
    sock.sendall(first)
    got = b""
    while time.monotonic() - started < limit:
        try:
            chunk = sock.recv(4096)
            if not chunk:
                return time.monotonic() - started, got
            got += chunk
            continue
        except socket.timeout:
            pass
        try:
            sock.sendall(byte)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started, got
    raise AssertionError(f"still open after {limit} s of trickling; received {got!r}")


def metrics(srv) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/metrics", timeout=10) as r:
        return json.loads(r.read())


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_kafka_request_trickled_after_its_size_is_cut_off(srv):
    before = metrics(srv)["requests_timed_out"]["kafka"]
    with connect(srv.port) as s:
        took, got = trickle(s, struct.pack(">i", 200))
    assert got == b""
    assert took >= DEADLINE_MS / 1000 * 0.9              # not before the deadline
    assert metrics(srv)["requests_timed_out"]["kafka"] == before + 1
    assert "request not complete 1 s after its first byte" in srv.log_text()


def test_kafka_connection_idle_between_requests_is_not_cut(srv):
    mod = module(3, 1)
    with RawClient(srv.bootstrap) as c:
        for _ in range(3):
            c.call(3, 1, mod.MetadataRequest(topics=()))
            time.sleep(DEADLINE_MS / 1000 * 1.6)          # idle, longer than the deadline
        c.call(3, 1, mod.MetadataRequest(topics=()))
        # A request split over several sends within the deadline is fine too.
        frame = c.header(3, 1) + b"\xff\xff\xff\xff"      # topics = null (all)
        payload = struct.pack(">i", len(frame)) + frame
        for i in range(0, len(payload), 3):
            c.sock.sendall(payload[i:i + 3])
            time.sleep(0.02)
        assert c.recv_frame()


def test_text_half_line_is_cut_off_with_an_error(srv):
    before = metrics(srv)["requests_timed_out"]["text"]
    with connect(srv.text_port) as s:
        took, got = trickle(s, b"PRODUCE deadline-text 0 hel", byte=b"l")
    assert got.startswith(b"ERR REQUEST_TIMED_OUT"), got
    assert took >= DEADLINE_MS / 1000 * 0.9
    assert metrics(srv)["requests_timed_out"]["text"] == before + 1


def test_text_produceb_payload_trickled_is_cut_off_and_writes_nothing(srv):
    with connect(srv.text_port) as s:
        s.sendall(b"CREATE deadline-bin 1\n")
        assert s.recv(100) == b"OK 1\n"
        _took, got = trickle(s, b"PRODUCEB deadline-bin 0 100\n")
    assert got.startswith(b"ERR REQUEST_TIMED_OUT"), got
    with connect(srv.text_port) as s:
        s.sendall(b"DESCRIBE deadline-bin\n")
        time.sleep(0.2)
        assert s.recv(1000).startswith(b"PARTITION 0 0 0 ")


def test_text_connection_idle_between_commands_is_not_cut(srv):
    with connect(srv.text_port) as s:
        for _ in range(3):
            s.sendall(b"PING\n")
            assert s.recv(100) == b"PONG\n"
            time.sleep(DEADLINE_MS / 1000 * 1.6)
        s.sendall(b"PI")                                   # a command in two pieces
        time.sleep(0.1)
        s.sendall(b"NG\n")
        assert s.recv(100) == b"PONG\n"


def test_http_unfinished_headers_get_408_and_close(srv):
    before = metrics(srv)["requests_timed_out"]["http"]
    with connect(srv.http_port) as s:
        took, got = trickle(s, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", byte=b"a")
    assert got.startswith(b"HTTP/1.1 408"), got
    assert took >= DEADLINE_MS / 1000 * 0.9
    assert metrics(srv)["requests_timed_out"]["http"] == before + 1


def test_http_keep_alive_connection_idle_between_requests_is_not_cut(srv):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(srv.http_port) as s:
        for _ in range(3):
            s.sendall(request)
            answer = s.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            time.sleep(DEADLINE_MS / 1000 * 1.6)
        s.sendall(request)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
