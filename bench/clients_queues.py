"""Work queues: N consumers receive + ack 100 B messages (pylog share groups vs the peers).

Every contender is driven the same way by `_drive`:

1. N consumers (each its own spawned process, so N Python clients run in parallel; the
   embedded queue uses threads, it lives in the job's process) connect, join and say ready.
2. Throughput (`*_throughput`): the job's process pre-fills `count` messages (not timed),
   then opens the gate; the time is gate → last ack, over all consumers.  Latency
   (`*_latency`): the gate opens at once and the job's process produces at a paced rate
   (`rate` messages/s for `seconds`), each value stamped with CLOCK_MONOTONIC at produce
   (system-wide on Linux); the consumer takes (ack completed) − stamp per message.
3. A consumer loops `step()`: receive a batch, ack it, return the stamps of the messages
   whose ack completed in that step; it stops once the shared count reaches `count`.

What "ack completed" means per client (each the fastest documented way to ack a batch):
pylog-server explicit — `acknowledge()` each, `commit_async()`, completed in the
acknowledgement-commit callback (broker answered); implicit — the records of a poll are
accepted by the next `poll()`, completed when it returns; embedded — `q.ack_all(msgs)` returned
(durable per the topic's flush policy); Redis — XACK of batch k pipelined with a
non-blocking XREADGROUP of batch k+1, completed when that round trip returns; NATS —
`ack()` each, then one `flush()` (PING/PONG: the server has read the acks); RabbitMQ —
`basic_ack(multiple)` once per batch (AMQP 0-9-1 acks have no answer: completed when
written).

Stamps are little-endian i64 at the value's start: 0 for a warm-up message, -(p + 1) for
the warm-up of partition p (pylog-server share groups start at the log end, so before the
pre-fill every partition must have been fetched once: the job produces warm-ups until the
consumers have seen one from every partition).
"""
from __future__ import annotations

import multiprocessing
import struct
import threading
import time

from bench._job import cpu_now
from bench.latency import _percentiles
from bench.servers import NotAvailable

STAMP = struct.Struct("<q")
BATCH = 100                 # records per receive for every contender
PREFETCH = 500              # RabbitMQ basic_qos / NATS max_ack_pending per consumer
PARTITIONS = 6              # pylog topics (share-partition lock window: 200 records each)
GROUP = "workers"
STALL_S = 30.0


def _value(size: int, stamp: int) -> bytes:
    return STAMP.pack(stamp) + b"x" * (size - STAMP.size)


def _stamp(v: bytes) -> int:
    return STAMP.unpack_from(v)[0]


# ---- the driver ----------------------------------------------------------------------------

def _consumer_main(make, kwargs: dict, total: int, counter, gate, seen, parked,
                   conn) -> None:
    """One consumer: make(**kwargs) -> session with step() / close(); see the module doc."""
    try:
        s = make(**kwargs)
    except Exception as e:           # noqa: BLE001 -- reported as n/a by the job
        conn.send(f"consumer setup failed: {type(e).__name__}: {e}")
        return
    conn.send("ready")
    lat: list[int] = []
    acked = 0
    last_ns = 0
    try:
        if seen is not None:         # warm-up (pylog-server): until every partition is seen
            while not all(seen):
                for st in s.step():
                    if st < 0:
                        seen[-st - 1] = 1
            with parked.get_lock():
                parked.value += 1
        gate.wait()
        cpu0 = cpu_now()
        idle_since = time.monotonic()
        while counter.value < total:
            stamps = s.step()
            now = time.monotonic_ns()
            n = 0
            for st in stamps:
                if st > 0:
                    lat.append(now - st)
                    n += 1
            if n:
                with counter.get_lock():
                    counter.value += n
                acked += n
                last_ns = now
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > STALL_S:
                conn.send(f"consumer stalled: {counter.value} of {total} acked")
                return
        cpu = cpu_now() - cpu0
        s.close()
    except Exception as e:           # noqa: BLE001
        conn.send(f"consumer failed: {type(e).__name__}: {e}")
        return
    conn.send((acked, lat, cpu, last_ns))


def _drive(make, kwargs: dict, consumers: int, total: int, produce, size: int = 100,
           warm=None, threads: bool = False, timeout: float = 300.0) -> dict:
    """Run `consumers` consumers of make(**kwargs) against produce(); see the module doc.

    produce(gate_open) is called in this process: a pre-fill calls gate_open() after its
    last message, a paced producer before its first.  warm(seen) produces warm-ups until
    every flag of `seen` is set."""
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    gate = ctx.Event()
    seen = ctx.Array("b", PARTITIONS) if warm else None
    parked = ctx.Value("i", 0)
    pipes, procs = [], []
    start = threading.Thread if threads else ctx.Process
    for i in range(consumers):
        parent, child = ctx.Pipe()
        args = (make, dict(kwargs, index=i), total, counter, gate, seen, parked, child)
        proc = start(target=_consumer_main, args=args, daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    try:
        for p in pipes:
            msg = p.recv() if p.poll(60) else "consumer not ready in 60 s"
            if msg != "ready":
                raise NotAvailable(msg)
        if warm:
            warm(seen)
            deadline = time.monotonic() + 30
            while parked.value < consumers and time.monotonic() < deadline:
                time.sleep(0.01)      # no consumer polls while the pre-fill runs
        opened = []

        def gate_open() -> None:
            opened.append(time.monotonic_ns())
            opened.append(cpu_now())
            gate.set()
        produce(gate_open)
        if not gate.is_set():
            gate_open()
        outs = []
        deadline = time.monotonic() + timeout
        for p in pipes:
            if not p.poll(max(0.1, deadline - time.monotonic())):
                raise NotAvailable(f"consumers did not ack {total} messages in {timeout:.0f} s"
                                   f" ({counter.value} acked)")
            out = p.recv()
            if isinstance(out, str):
                raise NotAvailable(out)
            outs.append(out)
    finally:
        gate.set()
        for proc in procs:
            proc.join(10)
            if not threads and proc.is_alive():
                proc.kill()
    acked = sum(o[0] for o in outs)
    if acked != total:
        raise NotAvailable(f"{acked} acks for {total} messages (redelivered or lost)")
    # Threads share this process's rusage: count it once, from the gate to the end.
    cpu = cpu_now() - opened[1] if threads else sum(o[2] for o in outs)
    lat = [x for o in outs for x in o[1]]
    seconds = (max(o[3] for o in outs) - opened[0]) / 1e9
    return dict(records=total, bytes=total * size, seconds=seconds,
                cpu_client=cpu,
                latency_ms=_percentiles(lat), per_consumer=[o[0] for o in outs])


def _prefill(send, flush, size: int, count: int):
    """A produce(gate_open) that sends `count` stamped messages, then opens the gate."""
    def produce(gate_open) -> None:
        v = _value(size, 1)
        for i in range(count):
            send(v, i)
        flush()
        gate_open()
    return produce


def _paced(send, flush, size: int, rate: int, seconds: float):
    """A produce(gate_open) that sends rate × seconds messages at `rate`/s, stamped now."""
    total = int(rate * seconds)
    pad = b"x" * (size - STAMP.size)

    def produce(gate_open) -> None:
        gate_open()
        sent = 0
        t0 = time.monotonic_ns()
        while sent < total:
            due = min(total, (time.monotonic_ns() - t0) * rate // 1_000_000_000 + 1)
            while sent < due:
                send(STAMP.pack(time.monotonic_ns()) + pad, sent)
                sent += 1
            flush()
            ahead = sent / rate - (time.monotonic_ns() - t0) / 1e9
            if ahead > 0:
                time.sleep(min(ahead, 0.001))
    return produce, total


def _producer(mode: str, send, flush, size: int, count: int, rate: int, seconds: float):
    if mode == "prefill":
        return _prefill(send, flush, size, count), count
    return _paced(send, flush, size, rate, seconds)


def _result(out: dict, mode: str) -> dict:
    if mode == "prefill":
        out.pop("latency_ms")           # pre-filled: the wait in the queue, not a latency
    return out


# ---- pylog-server: confluent-kafka ShareConsumer -------------------------------------------

class KafkaShare:
    def __init__(self, bootstrap: str, topic: str, mode: str, index: int,
                 conf: dict | None = None) -> None:
        from confluent_kafka import AcknowledgeType, ShareConsumer
        self.accept = AcknowledgeType.ACCEPT
        self.explicit = mode == "explicit"
        self.c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": GROUP + topic,
                                "share.acknowledgement.mode": mode,
                                "max.poll.records": BATCH, "log_level": 3, **(conf or {})})
        self.pending: dict = {}         # (partition, offset) -> stamp, explicit mode
        self.done: list[int] = []
        self.last: list[int] = []       # implicit: stamps of the previous poll
        if self.explicit:
            self.c.set_acknowledgement_commit_callback(self._committed)
        self.c.subscribe([topic])
        self.c.poll(1.0)

    def _committed(self, offsets, exc) -> None:
        if exc is not None:
            raise exc
        for tp, offs in offsets.items():
            for o in offs:
                st = self.pending.pop((tp.partition, o), None)
                if st is not None:
                    self.done.append(st)

    def step(self) -> list[int]:
        msgs = self.c.poll(0.1)
        if not self.explicit:
            done, self.last = self.last, [_stamp(m.value()) for m in msgs
                                          if m.error() is None]
            return done
        for m in msgs:
            if m.error() is None:
                self.pending[(m.partition(), m.offset())] = _stamp(m.value())
            self.c.acknowledge(m, self.accept)
        if msgs:
            self.c.commit_async()
        done, self.done = self.done, []
        return done

    def close(self) -> None:
        self.c.close()


def _kafka_warm(bootstrap: str, topic: str):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})

    def warm(seen) -> None:
        deadline = time.monotonic() + 60
        while not all(seen):
            if time.monotonic() > deadline:
                raise NotAvailable(f"share group saw warm-ups of {sum(seen)} of "
                                   f"{PARTITIONS} partitions in 60 s")
            for i in range(PARTITIONS):
                if not seen[i]:
                    p.produce(topic, _value(100, -(i + 1)), partition=i)
            p.flush(10)
            time.sleep(0.3)
    return warm


def kafka_share(bootstrap: str, topic: str, ack: str, consumers: int, size: int = 100,
                count: int = 0, mode: str = "prefill", rate: int = 0,
                seconds: float = 0.0, conf: dict | None = None,
                producer: dict | None = None) -> dict:
    """pylog-server share group, confluent-kafka ShareConsumer in `ack` mode
    ("explicit": acknowledge + commit_async; "implicit": the next poll accepts); `conf`
    adds ShareConsumer settings (experiments: e.g. {"fetch.wait.max.ms": 20}), `producer`
    Producer settings (e.g. {"batch.num.messages": 200})."""
    try:
        from confluent_kafka import Producer
        from bench.clients_kafka import PRODUCER_CONF, create_topic
    except ImportError as e:
        raise NotAvailable("python module confluent_kafka missing") from e
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    pconf = dict(PRODUCER_CONF, **{"bootstrap.servers": bootstrap, "acks": "1"})
    if mode == "paced":
        pconf["linger.ms"] = 1          # as bench/latency.py: each tick's records go at once
    p = Producer(dict(pconf, **(producer or {})))

    def send(v: bytes, i: int) -> None:
        while True:
            try:
                p.produce(topic, v, partition=i % PARTITIONS)
                return
            except BufferError:
                p.poll(0.005)
    produce, total = _producer(mode, send, lambda: p.flush(60) if mode == "prefill"
                               else p.poll(0), size, count, rate, seconds)
    out = _drive(KafkaShare, dict(bootstrap=bootstrap, topic=topic, mode=ack, conf=conf),
                 consumers,
                 total, produce, size=size, warm=_kafka_warm(bootstrap, topic))
    p.flush(10)
    return _result(out, mode)


# ---- pylog embedded: log.queue -------------------------------------------------------------

class EmbeddedQueue:
    def __init__(self, log, topic: str, index: int) -> None:
        self.q = log.queue(GROUP, topic, **{"share.auto.offset.reset": "earliest"})

    def step(self) -> list[int]:
        msgs = self.q.receive(max_records=BATCH, wait_ms=100)
        if msgs:
            self.q.ack_all(msgs)     # one state write per partition, as XACK ids...
        return [_stamp(m.value) for m in msgs]

    def close(self) -> None:
        self.q.close()


def embedded_queue(dir: str, consumers: int, size: int = 100, count: int = 0,
                   mode: str = "prefill", rate: int = 0, seconds: float = 0.0) -> dict:
    """pylog.open(dir).queue(...): consumers are threads of this process; each receive's
    messages acked with one ``ack_all`` (a durable state write per partition)."""
    import pylog
    log = pylog.open(dir)
    try:
        topic = log.create_topic("orders", partitions=PARTITIONS)
        parts = topic.partitions

        def send(v: bytes, i: int) -> None:
            parts[i % PARTITIONS].append(v)
        produce, total = _producer(mode, send, lambda: None, size, count, rate, seconds)
        out = _drive(EmbeddedQueue, dict(log=log, topic="orders"), consumers, total,
                     produce, size=size, threads=True)
    finally:
        log.close()
    return _result(out, mode)


# ---- Redis Streams consumer group ----------------------------------------------------------

class RedisGroup:
    def __init__(self, port: int, stream: str, index: int) -> None:
        import redis
        self.r = redis.Redis(host="127.0.0.1", port=port)
        self.stream, self.name = stream, f"c{index}"
        self.ids: list = []
        self.stamps: list[int] = []

    def step(self) -> list[int]:
        pipe = self.r.pipeline(transaction=False)
        if self.ids:            # ack + read without BLOCK: the ack must not wait for news
            pipe.xack(self.stream, GROUP, *self.ids)
        pipe.xreadgroup(GROUP, self.name, {self.stream: ">"}, count=BATCH,
                        block=None if self.ids else 100)
        got = pipe.execute()[-1]
        done = self.stamps
        entries = got[0][1] if got else []
        self.ids = [e[0] for e in entries]
        self.stamps = [_stamp(f[b"v"]) for _, f in entries]
        return done

    def close(self) -> None:
        if self.ids:
            self.r.xack(self.stream, GROUP, *self.ids)


def redis_group(port: int, stream: str, consumers: int, size: int = 100, count: int = 0,
                mode: str = "prefill", rate: int = 0, seconds: float = 0.0) -> dict:
    """Redis Streams: XGROUP CREATE ... 0 MKSTREAM; XREADGROUP COUNT + XACK pipelined."""
    try:
        import redis
    except ImportError as e:
        raise NotAvailable("python module redis missing (pip install redis)") from e
    r = redis.Redis(host="127.0.0.1", port=port)
    r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    pipe = r.pipeline(transaction=False)
    n = [0]

    def send(v: bytes, i: int) -> None:
        pipe.xadd(stream, {b"v": v})
        n[0] += 1
        if n[0] % 1000 == 0:
            pipe.execute()
    produce, total = _producer(mode, send, pipe.execute, size, count, rate, seconds)
    out = _drive(RedisGroup, dict(port=port, stream=stream), consumers, total, produce,
                 size=size)
    r.delete(stream)
    return _result(out, mode)


# ---- NATS JetStream work-queue stream ------------------------------------------------------

class NatsWorkQueue:
    def __init__(self, port: int, stream: str, index: int) -> None:
        import asyncio
        try:
            import uvloop
            self.loop = uvloop.new_event_loop()
        except ImportError:
            self.loop = asyncio.new_event_loop()
        self.asyncio = asyncio
        self.nc, self.sub = self.loop.run_until_complete(self._setup(port, stream))

    async def _setup(self, port: int, stream: str):
        import nats
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        sub = await nc.jetstream().pull_subscribe_bind(durable=GROUP, stream=stream)
        return nc, sub

    async def _step(self) -> list[int]:
        try:
            msgs = await self.sub.fetch(batch=BATCH, timeout=0.1)
        except self.asyncio.TimeoutError:
            return []
        for m in msgs:
            await m.ack()
        await self.nc.flush()
        return [_stamp(m.data) for m in msgs]

    def step(self) -> list[int]:
        return self.loop.run_until_complete(self._step())

    def close(self) -> None:
        self.loop.run_until_complete(self.nc.close())
        self.loop.close()


def nats_workqueue(port: int, stream: str, consumers: int, size: int = 100, count: int = 0,
                   mode: str = "prefill", rate: int = 0, seconds: float = 0.0) -> dict:
    """NATS JetStream: retention=workqueue file stream, one durable pull consumer shared by
    every worker (AckExplicit, max_ack_pending PREFETCH × consumers), fetch(BATCH) + ack."""
    try:
        import nats  # noqa: F401
        from nats.js.api import (AckPolicy, ConsumerConfig, RetentionPolicy,
                                 StorageType, StreamConfig)
    except ImportError as e:
        raise NotAvailable("python module nats missing (pip install nats-py)") from e
    import asyncio
    loop = asyncio.new_event_loop()

    async def setup():
        import nats as nats_
        nc = await nats_.connect(f"nats://127.0.0.1:{port}")
        js = nc.jetstream(publish_async_max_pending=4000)
        await js.add_stream(StreamConfig(name=stream, subjects=[stream],
                                         retention=RetentionPolicy.WORK_QUEUE,
                                         storage=StorageType.FILE))
        await js.add_consumer(stream, ConsumerConfig(
            durable_name=GROUP, ack_policy=AckPolicy.EXPLICIT,
            max_ack_pending=PREFETCH * consumers, max_waiting=512))
        return nc, js
    nc, js = loop.run_until_complete(setup())

    def send(v: bytes, i: int) -> None:
        loop.run_until_complete(js.publish_async(stream, v))

    def flush() -> None:
        loop.run_until_complete(js.publish_async_completed())
    produce, total = _producer(mode, send, flush, size, count, rate, seconds)
    try:
        out = _drive(NatsWorkQueue, dict(port=port, stream=stream), consumers, total, produce,
                 size=size)
    finally:
        async def teardown():
            await js.delete_stream(stream)
            await nc.close()
        loop.run_until_complete(teardown())
        loop.close()
    return _result(out, mode)


# ---- RabbitMQ (pika) -----------------------------------------------------------------------

class RabbitConsumer:
    def __init__(self, port: int, queue: str, index: int) -> None:
        import pika
        self.conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        self.ch = self.conn.channel()
        self.ch.basic_qos(prefetch_count=PREFETCH)
        self.got: list = []
        self.ch.basic_consume(queue, self._on_message, auto_ack=False)

    def _on_message(self, ch, method, props, body) -> None:
        self.got.append((method.delivery_tag, body))

    def step(self) -> list[int]:
        """What has arrived (waiting up to 0.1 s for the first), one ack(multiple) for it."""
        if not self.got:
            self.conn.process_data_events(time_limit=0.1)
        self.conn.process_data_events(time_limit=0)
        got, self.got = self.got[:BATCH], self.got[BATCH:]
        if got:
            self.ch.basic_ack(got[-1][0], multiple=True)
        return [_stamp(body) for _, body in got]

    def close(self) -> None:
        self.ch.close()
        self.conn.close()


def rabbitmq_queue(port: int, queue: str, consumers: int, durable: bool = True,
                   size: int = 100, count: int = 0, mode: str = "prefill", rate: int = 0,
                   seconds: float = 0.0) -> dict:
    """RabbitMQ classic queue (durable + persistent messages, or transient), pika
    BlockingConnection, publisher confirms off, basic_qos(PREFETCH), ack(multiple) per
    BATCH."""
    try:
        import pika
    except ImportError as e:
        raise NotAvailable("python module pika missing (pip install pika)") from e
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.queue_declare(queue, durable=durable)
    props = pika.BasicProperties(delivery_mode=2 if durable else 1)

    def send(v: bytes, i: int) -> None:
        ch.basic_publish("", queue, v, props)
    produce, total = _producer(mode, send, lambda: conn.process_data_events(0), size, count,
                               rate, seconds)
    try:
        out = _drive(RabbitConsumer, dict(port=port, queue=queue), consumers, total, produce,
                 size=size)
    finally:
        ch.queue_delete(queue)
        conn.close()
    return _result(out, mode)
