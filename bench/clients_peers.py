"""Load drivers for the peers: Redis Streams (redis-py, redis-benchmark) and NATS JetStream.

Same shape as bench/clients_kafka.py: produce `count` records of `size` bytes into one stream,
then read them all back.  redis-py pipelines 1,000 XADDs per round trip and reads with XRANGE
10,000 entries at a time; redis-benchmark (Redis's own C client) runs XADD with one connection
and a pipeline of 1,000, and XRANGE COUNT 1000 from the stream's start; nats-py publishes
asynchronously (up to 4,000 acks pending) into a file-store stream and reads with a pull
consumer (no acks) in fetches of 1,000.
"""
from __future__ import annotations

import asyncio
import subprocess
import time

from bench._job import Timer, result
from bench.clients_kafka import STALL_S, _payload, _run_child
from bench.servers import NotAvailable

PIPELINE = 1000


def _redis(port: int):
    try:
        import redis
    except ImportError as e:
        raise NotAvailable("python module redis missing (pip install redis)") from e
    return redis.Redis(host="127.0.0.1", port=port)


def redis_produce(port: int, stream: str, size: int, count: int) -> dict:
    """redis-py: XADD <stream> * v <value>, PIPELINE commands per round trip."""
    r = _redis(port)
    value = _payload(size)
    with Timer() as t:
        done = 0
        while done < count:
            n = min(PIPELINE, count - done)
            pipe = r.pipeline(transaction=False)
            for _ in range(n):
                pipe.xadd(stream, {b"v": value})
            pipe.execute()
            done += n
    return result(count, size, t)


def redis_consume(port: int, stream: str, size: int, count: int) -> dict:
    """redis-py: XRANGE from the start, 10,000 entries per call, exclusive ranges after."""
    r = _redis(port)
    n, start = 0, "-"
    with Timer() as t:
        while n < count:
            entries = r.xrange(stream, min=start, count=10_000)
            if not entries:
                raise NotAvailable(f"XRANGE ran dry at {n} of {count} entries")
            n += len(entries)
            start = b"(" + entries[-1][0]
    return result(n, size, t)


def redis_bench_produce(port: int, stream: str, size: int, count: int,
                        clients: int = 1, pipeline: int = PIPELINE) -> dict:
    """redis-benchmark -c CLIENTS -P PIPELINE -n COUNT XADD <stream> * v <value>."""
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
            "-P", str(pipeline), "-n", str(count), "-q",
            "XADD", stream, "*", "v", _payload(size).decode()]
    seconds, cpu, _, _ = _run_child(argv)
    got = _redis(port).xlen(stream)
    if got < count:
        raise NotAvailable(f"redis-benchmark added {got} of {count} entries")
    return dict(records=count, bytes=count * size, seconds=seconds, cpu_client=cpu)


def redis_bench_consume(port: int, stream: str, size: int, count: int) -> dict:
    """redis-benchmark: XRANGE <stream> - + COUNT 1000, COUNT/1000 times (pipeline 10)."""
    requests = max(1, count // 1000)
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "1", "-P", "10",
            "-n", str(requests), "-q", "XRANGE", stream, "-", "+", "COUNT", "1000"]
    if _redis(port).xlen(stream) < 1000 and count >= 1000:
        raise NotAvailable("stream holds fewer than 1000 entries")
    seconds, cpu, _, _ = _run_child(argv)
    n = requests * min(1000, count)
    return dict(records=n, bytes=n * size, seconds=seconds, cpu_client=cpu)


def redis_delete(port: int, stream: str) -> dict:
    """Drop a stream between rounds so the server's memory stays flat."""
    _redis(port).delete(stream)
    return dict(records=0, bytes=0, seconds=0.0, cpu_client=0.0)


# ---- NATS JetStream ------------------------------------------------------------------------

async def _nats(port: int):
    try:
        import nats
    except ImportError as e:
        raise NotAvailable("python module nats missing (pip install nats-py)") from e
    return await nats.connect(f"nats://127.0.0.1:{port}")


async def _nats_produce(port: int, stream: str, size: int, count: int) -> dict:
    nc = await _nats(port)
    js = nc.jetstream(publish_async_max_pending=4000)
    await js.add_stream(name=stream, subjects=[stream], storage="file")
    value = _payload(size)
    with Timer() as t:
        for _ in range(count):
            await js.publish_async(stream, value)
        await js.publish_async_completed()
    info = await js.stream_info(stream)
    await nc.close()
    if info.state.messages < count:
        raise NotAvailable(f"stream holds {info.state.messages} of {count} messages")
    return result(count, size, t)


async def _nats_consume(port: int, stream: str, size: int, count: int) -> dict:
    from nats.js.api import AckPolicy, ConsumerConfig
    nc = await _nats(port)
    js = nc.jetstream()
    sub = await js.pull_subscribe(stream, durable="bench", stream=stream,
                                  config=ConsumerConfig(ack_policy=AckPolicy.NONE))
    n = 0
    last = time.perf_counter()
    with Timer() as t:
        while n < count:
            try:
                msgs = await sub.fetch(batch=min(1000, count - n), timeout=1.0)
            except asyncio.TimeoutError:
                msgs = []
            n += len(msgs)
            if msgs:
                last = time.perf_counter()
            elif time.perf_counter() - last > STALL_S:
                raise NotAvailable(f"pull consumer stalled at {n} of {count}")
    await js.delete_stream(stream)
    await nc.close()
    return result(n, size, t)


def _asyncio_run(coro):
    """asyncio.run with uvloop when installed (both peers' Python clients benefit equally)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def nats_produce(port: int, stream: str, size: int, count: int) -> dict:
    """nats-py JetStream publish_async into a file-store stream, then wait for every ack."""
    return _asyncio_run(_nats_produce(port, stream, size, count))


def nats_consume(port: int, stream: str, size: int, count: int) -> dict:
    """nats-py pull consumer (AckPolicy none), fetch up to 1,000 per call; deletes the stream."""
    return _asyncio_run(_nats_consume(port, stream, size, count))


def check_binary(name: str) -> None:
    """NotAvailable unless `name --version` runs."""
    try:
        subprocess.run([name, "--version"], capture_output=True, timeout=10, check=False)
    except OSError as e:
        raise NotAvailable(f"{name} not runnable: {e}") from e
