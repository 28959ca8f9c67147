"""Server-Sent Events on a real server: the live tail sees records produced after the
stream opened (over Kafka too), the metrics stream ticks, and a client that stops
reading is dropped once it falls BUFFER_EVENTS behind instead of being buffered."""
from __future__ import annotations

import asyncio
import json
import socket
import time

import aiohttp


async def read_events(resp, want: int, kind: str, timeout: float = 20.0) -> list[dict]:
    events, event = [], None
    deadline = time.monotonic() + timeout
    while len(events) < want and time.monotonic() < deadline:
        line = (await asyncio.wait_for(resp.content.readline(), timeout)).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == kind:
            events.append(json.loads(line[6:]))
    return events


def test_live_tail_shows_records_produced_after_it_opened(server, http):
    from confluent_kafka import Producer
    http.post("/topics", {"topic": "tail", "partitions": 1})
    http.post("/produce", {"topic": "tail", "payload": "before"})

    async def run():
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{http.base}/api/live/topics/tail?partition=0") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                await resp.content.readline()                   # ": stream open"
                await asyncio.to_thread(http.post, "/produce",
                                        {"topic": "tail", "key": "<b>k</b>",
                                         "payload": {"n": 1}})
                p = Producer({"bootstrap.servers": server.bootstrap})
                p.produce("tail", value=b"from-kafka", partition=0)
                await asyncio.to_thread(p.flush, 10)
                return await read_events(resp, 2, "record")

    events = asyncio.run(run())
    assert [e["offset"] for e in events] == [1, 2]
    assert events[0]["payload"] == {"n": 1} and events[0]["key"] == "<b>k</b>"
    assert events[1]["value"] == "ZnJvbS1rYWZrYQ=="          # base64("from-kafka")


def test_metrics_stream_ticks(http):
    async def run():
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{http.base}/api/live/metrics") as resp:
                return await read_events(resp, 2, "metrics")

    first, second = asyncio.run(run())
    assert second["uptime_seconds"] > first["uptime_seconds"]
    assert {"topics", "partitions", "records", "connections"} <= set(first)


def test_a_client_that_stops_reading_is_dropped(server, http):
    from pylog.server.http.live import BUFFER_EVENTS
    http.post("/topics", {"topic": "flood", "partitions": 1})
    stats = http.get("/api/live")[2]
    dropped_before, streams_before = stats["dropped"], stats["streams"]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.http_port))
    sock.sendall(b"GET /api/live/topics/flood?partition=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    # Far more than the socket buffers and BUFFER_EVENTS hold: 64 KiB records.
    payload = "z" * 65536
    deadline = time.monotonic() + 60
    sent = 0
    while time.monotonic() < deadline:
        http.post("/produce", {"topic": "flood", "messages": [{"payload": payload}] * 16})
        sent += 16
        if http.get("/api/live")[2]["dropped"] > dropped_before:
            break
    stats = http.get("/api/live")[2]
    assert stats["dropped"] == dropped_before + 1, (stats, sent)
    assert sent >= BUFFER_EVENTS // 16
    # The server closed it: reading drains what was in flight, then EOF.
    sock.settimeout(20)
    total = 0
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    sock.close()
    assert total < sent * len(payload)       # it never got everything: it was cut off
    assert http.get("/api/live")[2]["streams"] <= streams_before    # its stream is gone


def test_shutdown_ends_streams_and_long_polls(tmp_path):
    """SIGTERM with an event stream, a REST long poll and a /consume long poll open:
    the server answers them and exits 0 promptly."""
    import threading

    from http_client import V2, Http

    from pylog.testing import PylogServer
    srv = PylogServer(tmp_path / "data").start()
    h = Http(srv.http_port)
    h.post("/topics", {"topic": "idle"})
    h.post("/consumers/sg", {"name": "i", "format": "json"}, ctype=V2)
    h.post("/consumers/sg/instances/i/subscription", {"topics": ["idle"]}, ctype=V2)
    answers = {}

    def poll(name, path, headers=None):
        answers[name] = h.get(path, headers=headers or {}, timeout=60)[0]

    threads = [threading.Thread(target=poll, args=a) for a in (
        ("records", "/consumers/sg/instances/i/records?timeout=30000",
         {"Accept": "application/vnd.kafka.json.v2+json"}),
        ("consume", "/consume?topic=idle&group=q&wait_ms=30000"))]
    for t in threads:
        t.start()
    sock = socket.create_connection(("127.0.0.1", srv.http_port))
    sock.sendall(b"GET /api/live/topics/idle HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(1.0)
    t0 = time.monotonic()
    assert srv.stop() == 0, srv.log_text()[-2000:]
    assert time.monotonic() - t0 < 15
    for t in threads:
        t.join(10)
    assert answers == {"records": 200, "consume": 200}
    sock.close()
