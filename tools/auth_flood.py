#!/usr/bin/env python3
"""Failed SASL authentications in bulk: does the server stay small and fast for good clients?

    python tools/auth_flood.py --attempts 10000 --concurrency 200      # the issue's figure
    python tools/auth_flood.py --attempts 1000 --json                  # what CI runs

Starts a pylog-server with a SASL_PLAINTEXT listener and one user, measures a good
client's produce latency (confluent-kafka, one record at a time, acks=1: p50/p99) and the
server's RSS, then floods it with failed SASL/PLAIN attempts (SaslHandshake +
SaslAuthenticate with a wrong password, each on its own connection, ``--concurrency`` at
once) while the good client measures again.  Reports both, the ratios, and that every
attempt was refused (error 58, then the connection closed).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kio.serial import entity_reader, entity_writer  # noqa: E402

from pylog.security.users import UserStore  # noqa: E402
from pylog.server.kafka.messages import request_class, response_module  # noqa: E402
from pylog.testing import PylogServer  # noqa: E402


def _frame(api_key: int, version: int, cid: int, body) -> bytes:
    buf = io.BytesIO()
    entity_writer(type(body))(buf, body)
    head = struct.pack(">hhih", api_key, version, cid, 5) + b"flood"
    if type(body).__flexible__:
        head += b"\0"
    payload = head + buf.getvalue()
    return struct.pack(">i", len(payload)) + payload


async def _read_frame(reader) -> bytes:
    (n,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(n)


async def _one_attempt(host: str, port: int) -> bool:
    """True if the server refused with 58 and closed the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        hs = request_class(17, 1)(mechanism="PLAIN")
        writer.write(_frame(17, 1, 1, hs))
        await _read_frame(reader)
        token = b"\0mallory\0not-the-password"
        writer.write(_frame(36, 2, 2, request_class(36, 2)(auth_bytes=token)))
        frame = await _read_frame(reader)
        mod = response_module(36, 2)
        resp, _ = entity_reader(mod.SaslAuthenticateResponse)(frame, 5)
        closed = await reader.read(1) == b""
        return int(resp.error_code) == 58 and closed
    finally:
        writer.close()


async def _flood(host: str, port: int, attempts: int, concurrency: int) -> dict:
    sem = asyncio.Semaphore(concurrency)
    refused = failed = 0

    async def run():
        nonlocal refused, failed
        async with sem:
            try:
                ok = await _one_attempt(host, port)
            except (OSError, asyncio.IncompleteReadError):
                ok = False
            if ok:
                refused += 1
            else:
                failed += 1
    t0 = time.monotonic()
    await asyncio.gather(*(run() for _ in range(attempts)))
    return {"attempts": attempts, "refused": refused, "other": failed,
            "seconds": round(time.monotonic() - t0, 2)}


def _latency(bootstrap: str, password: str, n: int, stop: threading.Event | None = None):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "good",
                  "sasl.password": password, "linger.ms": 0, "acks": 1})
    p.produce("flood", b"warm")
    p.flush(10)
    lat = []
    for i in range(n):
        if stop is not None and stop.is_set():
            break
        t0 = time.perf_counter()
        p.produce("flood", b"x" * 100)
        p.flush(10)
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return {"n": len(lat), "p50_ms": round(lat[len(lat) // 2], 3),
            "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 3)}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(attempts: int, concurrency: int, samples: int, workdir: Path) -> dict:
    data = workdir / "data"
    UserStore(data).set_password("good", "good-pw", mechanisms=("SCRAM-SHA-256",))
    srv = PylogServer(data, args=["--kafka-listener", "SASL_PLAINTEXT://127.0.0.1:0"]).start()
    try:
        base = _latency(srv.bootstrap, "good-pw", samples)
        rss0 = _rss_mib(srv.process.pid)
        out: dict = {}

        def flood():
            host, port = srv.bootstrap.rsplit(":", 1)
            out.update(asyncio.run(_flood(host, int(port), attempts, concurrency)))
        t = threading.Thread(target=flood)
        t.start()
        time.sleep(0.5)
        under = _latency(srv.bootstrap, "good-pw", samples)
        t.join()
        rss1 = _rss_mib(srv.process.pid)
        after = _latency(srv.bootstrap, "good-pw", samples // 4 or 1)
    finally:
        code = srv.stop()
    return {"flood": out, "baseline": base, "during_flood": under, "after": after,
            "rss_mib_before": round(rss0, 1), "rss_mib_after": round(rss1, 1),
            "rss_ratio": round(rss1 / rss0, 3) if rss0 else None,
            "p99_ratio": round(under["p99_ms"] / base["p99_ms"], 3),
            "clean_stop": code == 0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attempts", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    report = run(a.attempts, a.concurrency, a.samples, Path(tempfile.mkdtemp(prefix="flood-")))
    print(json.dumps(report, indent=None if a.json else 2))
    ok = report["flood"].get("refused") == a.attempts and report["clean_stop"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
