"""A corrupt batch on disk over the wire (issue 18, defect 1): Fetch answers
CORRUPT_MESSAGE (2) for the partition, the text protocol's CONSUME answers
``ERR CORRUPT_MESSAGE`` naming the file, and the batches around it are still served."""
from __future__ import annotations

from pathlib import Path

from kafka_raw import RawClient
from test_protocol_raw import fetch
from test_text import Conn

import pylog
from pylog.records import iter_headers
from pylog.testing import PylogServer


def value(i: int) -> bytes:
    return b"value-%d-" % i + b"A" * 100


def build(d: Path) -> None:
    log = pylog.open(d)
    p = log.create_topic("t", config={"segment.bytes": 750,
                                      "index.interval.bytes": 0}).partition(0)
    for i in range(12):
        p.append(value(i))
    log.close()


def test_server_fetch_answers_corrupt_message_and_text_consume_says_err(tmp_path):
    data = tmp_path / "data"
    build(data)
    seg = sorted((data / "t-0").glob("*.log"))[1]
    buf = bytearray(seg.read_bytes())
    start, h = list(iter_headers(bytes(buf)))[1]
    base = h.base_offset
    buf[start + 70] ^= 0x10
    seg.write_bytes(bytes(buf))
    srv = PylogServer(data).start()
    try:
        with RawClient(srv.bootstrap) as c:
            assert fetch(c, "t", base).error_code == 2           # CORRUPT_MESSAGE
            good = fetch(c, "t", base + 1)
            assert good.error_code == 0 and value(base + 1) in bytes(good.records)
            before = fetch(c, "t", 0)
            assert before.error_code == 0 and value(0) in bytes(before.records)
        conn = Conn(srv.text_port)
        try:
            conn.send(f"CONSUME t 0 {base} 1\n".encode())
            line = conn.line()
            assert line.startswith(b"ERR CORRUPT_MESSAGE") and seg.name.encode() in line
            records, _ = conn.consume(f"CONSUME t 0 {base + 1} 1")
            assert [r[2] for r in records] == [value(base + 1)]
        finally:
            conn.close()
    finally:
        assert srv.stop() == 0, srv.log_text()[-2000:]
    assert seg.read_bytes() == bytes(buf)             # reads never rewrite the data


def test_metrics_show_what_recovery_quarantined(tmp_path):
    import urllib.request
    data = tmp_path / "data"
    log = pylog.open(data)
    p = log.create_topic("t", config={"segment.bytes": 750}).partition(0)
    for i in range(12):
        p.append(value(i))
    log.close()
    seg = sorted((data / "t-0").glob("*.log"))[1]
    buf = bytearray(seg.read_bytes())
    buf[buf.index(b"value-5-") + 30] ^= 0x04
    seg.write_bytes(bytes(buf))
    srv = PylogServer(data).start()
    try:
        url = f"http://127.0.0.1:{srv.http_port}/metrics?format=prometheus"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'pylog_lost_offsets{partition="0",topic="t"} 1.0' in text
        assert 'pylog_lost_offset_ranges{partition="0",topic="t"} 1.0' in text
        assert "offset 5 lost to corruption" in srv.log_text()
    finally:
        assert srv.stop() == 0, srv.log_text()[-2000:]
