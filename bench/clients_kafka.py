"""Kafka-protocol load drivers for pylog-server: confluent-kafka (Python) and kcat (native).

Produce then consume `count` records of `size` bytes on one partition.  The producer batches
(linger.ms=5, up to 10,000 records a batch, no compression, acks=1 unless told); the consumer
assigns partition 0 from offset 0 (no group coordination) and stops after `count` records.
kcat runs as a child process; its CPU seconds come from wait4's rusage.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time

from bench._job import Timer, result
from bench.servers import NotAvailable

PRODUCER_CONF = {
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "compression.type": "none",
    "enable.idempotence": False,
}
STALL_S = 15.0


def _ck():
    try:
        import confluent_kafka
    except ImportError as e:
        raise NotAvailable("python module confluent_kafka missing") from e
    return confluent_kafka


def create_topic(bootstrap: str, topic: str, config: dict | None = None,
                 partitions: int = 1) -> None:
    """CreateTopics through the admin API (needed for per-topic flush configs)."""
    ck = _ck()
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1,
                   config={k: str(v) for k, v in (config or {}).items()})
    fut = admin.create_topics([new], operation_timeout=10, request_timeout=15)[topic]
    try:
        fut.result(timeout=20)
    except ck.KafkaException as e:
        raise NotAvailable(f"CreateTopics {topic} {config or ''} failed: {e}") from e


def _payload(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def confluent_produce(bootstrap: str, topic: str, size: int, count: int,
                      acks: str = "1", config: dict | None = None) -> dict:
    """confluent_kafka.Producer: produce() in a loop, poll on a full queue, flush at the end."""
    ck = _ck()
    if config is not None:
        create_topic(bootstrap, topic, config)
    errors = []
    conf = dict(PRODUCER_CONF, **{"bootstrap.servers": bootstrap, "acks": acks,
                                  "error_cb": lambda e: errors.append(str(e))})
    p = ck.Producer(conf)
    value = _payload(size)
    produce, poll = p.produce, p.poll
    with Timer() as t:
        for _ in range(count):
            while True:
                try:
                    produce(topic, value, partition=0)
                    break
                except BufferError:
                    poll(0.005)
        left = p.flush(60)
    if left:
        raise NotAvailable(f"{left} records undelivered after 60 s; errors: {errors[:3]}")
    return result(count, size, t)


def confluent_consume(bootstrap: str, topic: str, size: int, count: int) -> dict:
    """confluent_kafka.Consumer assigned to partition 0 at offset 0, consume() 10,000 at a time."""
    ck = _ck()
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{topic}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "fetch.wait.max.ms": 100, "queued.min.messages": 1_000_000})
    c.assign([ck.TopicPartition(topic, 0, 0)])
    n = 0
    last = time.perf_counter()
    try:
        with Timer() as t:
            while n < count:
                # consume(n) returns early only once n messages are there: never ask for more
                # than remain, or the last call would idle out its whole timeout in the timing.
                msgs = c.consume(min(10_000, count - n), timeout=0.5)
                for m in msgs:
                    if m.error() is None:
                        n += 1
                now = time.perf_counter()
                if msgs:
                    last = now
                elif now - last > STALL_S:
                    raise NotAvailable(f"consumer stalled at {n} of {count} records")
    finally:
        c.close()
    return result(n, size, t)


def _kcat_file(size: int, count: int) -> str:
    """A file of `count` lines of `size` printable bytes each, for kcat -P -l."""
    fd, path = tempfile.mkstemp(prefix="kcat-", suffix=".txt")
    line = _payload(size) + b"\n"
    with os.fdopen(fd, "wb") as f:
        chunk = line * 10_000
        for _ in range(count // 10_000):
            f.write(chunk)
        f.write(line * (count % 10_000))
    return path


def _run_child(argv: list[str], stdout=subprocess.DEVNULL) -> tuple[float, float, int, bytes]:
    """Run argv; return (wall s, child CPU s from wait4, exit status, captured stdout)."""
    with Timer() as t:
        proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE)
        out = proc.stdout.read() if stdout == subprocess.PIPE else b""
        _, status, ru = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise NotAvailable(f"{argv[0]} exited {proc.returncode}: {err.strip()[-300:]}")
    return t.seconds, ru.ru_utime + ru.ru_stime, proc.returncode, out


def kcat_produce(bootstrap: str, topic: str, size: int, count: int, acks: str = "1",
                 producers: int = 1, config: dict | None = None,
                 batch_bytes: int | None = None) -> dict:
    """`kcat -P -l FILE` (librdkafka, batching as PRODUCER_CONF); `producers` kcats at once.

    `batch_bytes` caps a producer batch (librdkafka batch.size; Kafka's default is 16384), so
    a durable-ack run pays one barrier per few hundred records rather than per 10,000."""
    if config is not None:
        create_topic(bootstrap, topic, config)
    per = count // producers
    path = _kcat_file(size, per)
    argv = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-l", path,
            "-X", f"acks={acks}"]
    conf = dict(PRODUCER_CONF)
    if batch_bytes:
        conf["batch.size"] = batch_bytes
    for k, v in conf.items():
        argv += ["-X", f"{k}={str(v).lower()}"]
    try:
        with Timer() as t:
            procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for _ in range(producers)]
            cpu = 0.0
            for proc in procs:
                _, status, ru = os.wait4(proc.pid, 0)
                cpu += ru.ru_utime + ru.ru_stime
                if os.waitstatus_to_exitcode(status) != 0:
                    raise NotAvailable(f"kcat -P failed: {proc.stderr.read().decode()[-300:]}")
    finally:
        os.unlink(path)
    out = result(per * producers, size, t)
    out["cpu_client"] = cpu
    return out


def kcat_consume(bootstrap: str, topic: str, size: int, count: int) -> dict:
    """`kcat -C -o beginning -e -c COUNT` printing one byte per record (counted here)."""
    argv = ["kcat", "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-e",
            "-c", str(count), "-q", "-f", "."]
    seconds, cpu, _, out = _run_child(argv, stdout=subprocess.PIPE)
    if len(out) < count:
        raise NotAvailable(f"kcat -C got {len(out)} of {count} records")
    return dict(records=len(out), bytes=len(out) * size, seconds=seconds, cpu_client=cpu)


def kcat_both(bootstrap: str, topic: str, size: int, count: int) -> dict:
    """One `kcat -P` and one `kcat -C` at once, unthrottled (Kreps' "producer and consumer
    together"): seconds until the consumer has all `count` records."""
    create_topic(bootstrap, topic)
    path = _kcat_file(size, count)
    consumer = ["kcat", "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning",
                "-c", str(count), "-q", "-f", "."]
    producer = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-l", path, "-X", "acks=1"]
    for k, v in PRODUCER_CONF.items():
        producer += ["-X", f"{k}={str(v).lower()}"]
    try:
        with Timer() as t:
            c = subprocess.Popen(consumer, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            p = subprocess.Popen(producer, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            got = len(c.stdout.read())
            cpu = 0.0
            for proc in (c, p):
                _, status, ru = os.wait4(proc.pid, 0)
                cpu += ru.ru_utime + ru.ru_stime
                if os.waitstatus_to_exitcode(status) != 0:
                    raise NotAvailable(f"{proc.args[1]} failed: "
                                       f"{proc.stderr.read().decode()[-300:]}")
    finally:
        os.unlink(path)
    if got < count:
        raise NotAvailable(f"consumer got {got} of {count} records")
    return dict(records=count, bytes=count * size, seconds=t.seconds, cpu_client=cpu)
