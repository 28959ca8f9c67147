"""End-to-end latency at a fixed offered rate: one producer and one consumer at once.

Kreps' third shape ("producer and consumer together"), reported as p50/p99/p99.9 of
(time the consumer got a record) - (time the producer handed it to the client library).  The
consumer runs in its own process (spawned, so no client library state crosses a fork) and the
two share CLOCK_MONOTONIC, which is system-wide on Linux.  The producer is paced in ticks: at
each tick it sends every record due by then, so the offered rate holds even when one tick runs
late.  Each value starts with the send time as a little-endian i64 (0 marks a warm-up record).
"""
from __future__ import annotations

import multiprocessing
import struct
import time

from bench._job import Timer
from bench.servers import NotAvailable

STAMP = struct.Struct("<q")
TICK_S = 0.001


def _percentiles(lat_ns: list[int]) -> dict:
    import numpy as np
    a = np.asarray(lat_ns, dtype=np.float64) / 1e6
    p50, p99, p999 = np.percentile(a, [50, 99, 99.9])
    return dict(p50=float(p50), p99=float(p99), p999=float(p999), max=float(a.max()))


def _paced(send, flush, size: int, rate: int, seconds: float) -> int:
    """Call send(value) `rate` times a second for `seconds`; flush() after each tick."""
    total = int(rate * seconds)
    pad = b"x" * (size - STAMP.size)
    sent = 0
    t0 = time.monotonic_ns()
    while sent < total:
        elapsed = time.monotonic_ns() - t0
        due = min(total, elapsed * rate // 1_000_000_000 + 1)
        while sent < due:
            send(STAMP.pack(time.monotonic_ns()) + pad)
            sent += 1
        flush()
        ahead = sent / rate - (time.monotonic_ns() - t0) / 1e9
        if ahead > 0:
            time.sleep(min(ahead, TICK_S))
    return total


def _run(consumer, cargs: tuple, produce, total: int, timeout: float) -> dict:
    """Start `consumer(*cargs, total, conn)` in a spawned process, run `produce`, collect."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=consumer, args=(*cargs, total, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(30) or parent.recv() != "ready":
            raise NotAvailable("consumer did not get ready in 30 s")
        with Timer() as t:
            produce()
            if not parent.poll(timeout):
                raise NotAvailable(f"consumer did not receive {total} records in {timeout} s")
            out = parent.recv()
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    if isinstance(out, str):
        raise NotAvailable(out)
    lat, cpu_consumer = out
    return dict(records=total, seconds=t.seconds, cpu_client=t.cpu + cpu_consumer,
                latency_ms=_percentiles(lat))


def _consume_loop(poll, total: int, conn, deadline_s: float = 60.0) -> None:
    """Shared consumer body: poll() -> list of values; send (latencies, cpu) or an error."""
    from bench._job import cpu_now
    lat: list[int] = []
    cpu0 = cpu_now()
    end = time.monotonic() + deadline_s
    conn.send("ready")
    while len(lat) < total:
        if time.monotonic() > end:
            conn.send(f"consumer got {len(lat)} of {total} records in {deadline_s} s")
            return
        values = poll()
        now = time.monotonic_ns()
        for v in values:
            (sent,) = STAMP.unpack_from(v)
            if sent:
                lat.append(now - sent)
    conn.send((lat, cpu_now() - cpu0))


# ---- Kafka (pylog-server) ------------------------------------------------------------------

def _kafka_consumer(bootstrap: str, topic: str, total: int, conn) -> None:
    import confluent_kafka as ck
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"e2e-{topic}",
                     "enable.auto.commit": False, "fetch.wait.max.ms": 50,
                     "fetch.error.backoff.ms": 10})
    c.assign([ck.TopicPartition(topic, 0, 0)])
    c.consume(1, timeout=1.0)       # the warm-up record: the connection is up

    def poll():
        # consume(n, timeout) waits for n messages or the whole timeout, which would add up
        # to `timeout` of latency: block for the first message only, then drain what's queued.
        first = c.poll(0.1)
        if first is None:
            return []
        msgs = [first] + c.consume(1000, timeout=0)
        return [m.value() for m in msgs if m.error() is None]
    try:
        _consume_loop(poll, total, conn)
    finally:
        c.close()


def kafka_e2e(bootstrap: str, topic: str, size: int, rate: int, seconds: float) -> dict:
    """confluent-kafka producer (linger.ms=1, acks=1) and consumer against pylog-server."""
    try:
        import confluent_kafka as ck
    except ImportError as e:
        raise NotAvailable("python module confluent_kafka missing") from e
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": "1",
                     "enable.idempotence": False})
    p.produce(topic, STAMP.pack(0) + b"x" * (size - STAMP.size), partition=0)   # auto-create
    if p.flush(20):
        raise NotAvailable("warm-up record not delivered in 20 s")
    total = int(rate * seconds)
    out = _run(_kafka_consumer, (bootstrap, topic), lambda: _paced(
        lambda v: p.produce(topic, v, partition=0), lambda: p.poll(0), size, rate, seconds),
        total, seconds + 30)
    p.flush(10)
    out["bytes"] = total * size
    return out


# ---- Redis Streams -------------------------------------------------------------------------

def _redis_consumer(port: int, stream: str, total: int, conn) -> None:
    import redis
    r = redis.Redis(host="127.0.0.1", port=port)
    last = [b"0-0"]

    def poll():
        got = r.xread({stream: last[0]}, count=1000, block=100)
        if not got:
            return []
        entries = got[0][1]
        last[0] = entries[-1][0]
        return [fields[b"v"] for _id, fields in entries]
    _consume_loop(poll, total, conn)


def redis_e2e(port: int, stream: str, size: int, rate: int, seconds: float) -> dict:
    """redis-py: XADD pipelined per tick; consumer XREAD BLOCK 100 COUNT 1000."""
    import redis
    r = redis.Redis(host="127.0.0.1", port=port)
    pipe = r.pipeline(transaction=False)
    total = int(rate * seconds)
    out = _run(_redis_consumer, (port, stream), lambda: _paced(
        lambda v: pipe.xadd(stream, {b"v": v}), pipe.execute, size, rate, seconds),
        total, seconds + 30)
    r.delete(stream)
    out["bytes"] = total * size
    return out

