"""pylog-server throughput and latency with confluent-kafka (issue 4's server figures).

    .venv/bin/python bench/bench_server.py              # ~1 min
    .venv/bin/python bench/bench_server.py --quick      # ~15 s
    .venv/bin/python bench/bench_server.py --durable    # topics with flush.messages=1

Starts a real pylog-server (``pylog.testing.PylogServer``, temporary data dir,
127.0.0.1 ephemeral port) and measures, for 100 B and 1 KiB records:
- produce throughput: one confluent-kafka Producer, batching on (linger.ms 5,
  batch.size 1 MiB), acks=all, no compression, N records then flush();
- consume throughput: one Consumer, assign() at offset 0, consume(10,000) until
  all N records are read;
- produce latency at a fixed rate: linger.ms 0, acks=all, one record every
  1/rate s; latency = delivery callback time − produce() time; p50/p99/p99.9.
Each result states the flush policy.  The machine is shared: read the numbers
as orders of magnitude and ratios (bench/compare.py runs the peer comparison).
Writes bench/results/server.json.

Measured 2026-11-22 on the project machine (2 cores shared with ~6 engineers, load
average 4-5 during the runs; confluent-kafka 2.16.1 / librdkafka 2.16.0, uvloop):

    flush.ms=1000 (default)   produce              consume
      100 B x 1,000,000       297,503 rec/s  29.8 MB/s   447,249 rec/s  44.7 MB/s
      1 KiB x   200,000       133,010 rec/s 136.2 MB/s   306,593 rec/s 314.0 MB/s
      latency, 1000/s, acks=all: p50 0.31 ms  p99 6.11 ms  p99.9 32.7 ms
    flush.messages=1 (durable acks, group commit)
      100 B x 1,000,000       296,901 rec/s  29.7 MB/s   556,583 rec/s  55.7 MB/s
      1 KiB x   200,000       132,907 rec/s 136.1 MB/s   446,218 rec/s 456.9 MB/s
      latency, 1000/s, acks=all: p50 14.7 ms  p99 379 ms  p99.9 434 ms

Throughput is bound by the Python client (one produce()/Message object per record:
kcat reads the same 100 B topic at ~0.8 M rec/s); durable throughput equals no-flush
throughput because concurrent appends share barriers.  Durable latency is the barrier
(msync + fdatasync) under a continuous stream on this VM's disk: the server-side wait
for durable_future measured p50 27 ms / p99 143 ms in the same conditions, against
p50 1.7 ms for an isolated barrier; the numbers move by 2-10x with the machine's load.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import confluent_kafka as ck  # noqa: E402
import confluent_kafka.admin  # noqa: E402,F401

from pylog.testing import PylogServer  # noqa: E402


def create_topic(bootstrap: str, name: str, config: dict) -> None:
    admin = ck.admin.AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([ck.admin.NewTopic(name, 1, 1, config=config)])
    for f in futures.values():
        f.result(30)


def produce_throughput(bootstrap: str, topic: str, n: int, size: int) -> dict:
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1 << 20,
                     "acks": "all", "queue.buffering.max.messages": 1_000_000,
                     "queue.buffering.max.kbytes": 1 << 20})
    value = os.urandom(size)
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    started = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=value, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.001)
        if i % 10_000 == 0:
            p.poll(0)
    remaining = p.flush(120)
    elapsed = time.perf_counter() - started
    if remaining or errors:
        raise RuntimeError(f"{remaining} unflushed, {len(errors)} errors: {errors[:3]}")
    return {"records": n, "seconds": elapsed, "records_per_s": n / elapsed,
            "mb_per_s": n * size / elapsed / 1e6}


def consume_throughput(bootstrap: str, topic: str, n: int, size: int) -> dict:
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-unused",
                     "enable.auto.commit": False, "fetch.max.bytes": 50 << 20,
                     "max.partition.fetch.bytes": 8 << 20,
                     # librdkafka stops fetching for fetch.queue.backoff.ms (1 s) whenever
                     # queued.min.messages (100,000) are waiting: with 100 B records that,
                     # not the broker, would set the pace.
                     "queued.min.messages": 1_000_000, "fetch.queue.backoff.ms": 10})
    c.assign([ck.TopicPartition(topic, 0, 0)])
    got = 0
    started = time.perf_counter()
    deadline = started + 120
    while got < n and time.perf_counter() < deadline:
        for m in c.consume(10_000, 1.0):
            if m.error() is None:
                got += 1
    elapsed = time.perf_counter() - started
    c.close()
    if got < n:
        raise RuntimeError(f"consumed {got} of {n}")
    return {"records": n, "seconds": elapsed, "records_per_s": n / elapsed,
            "mb_per_s": n * size / elapsed / 1e6}


def produce_latency(bootstrap: str, topic: str, rate: int, seconds: float, size: int) -> dict:
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    value = os.urandom(size)
    latencies: list[float] = []
    p.produce(topic, value=value, partition=0)          # connect and warm up
    p.flush(10)
    stop = threading.Event()

    def poller():
        while not stop.is_set():
            p.poll(0.0005)

    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    interval, count = 1.0 / rate, int(rate * seconds)
    start = time.perf_counter()
    for i in range(count):
        due = start + i * interval
        while (now := time.perf_counter()) < due:
            time.sleep(min(due - now, 0.0005))
        sent = time.perf_counter()
        p.produce(topic, value=value, partition=0,
                  on_delivery=lambda err, _m, sent=sent:
                  err is None and latencies.append(time.perf_counter() - sent))
    p.flush(30)
    stop.set()
    thread.join()
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {"rate_per_s": rate, "records": len(latencies), "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "p999_ms": pct(0.999), "max_ms": latencies[-1] * 1000}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer records, shorter latency run")
    ap.add_argument("--durable", action="store_true",
                    help="topics with flush.messages=1 (durable acks)")
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="topic config for the benchmark topics (repeatable), e.g. "
                         "flush.ms=60000")
    ap.add_argument("--records", type=int, help="records per throughput run (100 B)")
    ap.add_argument("--rate", type=int, default=1000, help="latency run: records per second")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "server.json"))
    args = ap.parse_args(argv)
    n100 = args.records or (200_000 if args.quick else 1_000_000)
    runs = [(100, n100), (1024, max(1, n100 // 5))]
    config = dict(kv.split("=", 1) for kv in args.config)
    if args.durable:
        config["flush.messages"] = "1"
    policy = ", ".join(f"{k}={v}" for k, v in config.items()) or "flush.ms=1000 (default)"
    seconds = 3 if args.quick else 10
    results = {"flush_policy": policy, "client": f"confluent-kafka {ck.version()[0]} / "
               f"librdkafka {ck.libversion()[0]}", "throughput": [], "latency": []}
    with tempfile.TemporaryDirectory(prefix="pylog-bench-") as tmp:
        server = PylogServer(Path(tmp) / "data").start()
        try:
            for size, n in runs:
                topic = f"bench-{size}"
                create_topic(server.bootstrap, topic, config)
                prod = produce_throughput(server.bootstrap, topic, n, size)
                cons = consume_throughput(server.bootstrap, topic, n, size)
                results["throughput"].append({"size": size, "produce": prod, "consume": cons})
                print(f"{size:>5} B  produce {prod['records_per_s']:>11,.0f} rec/s "
                      f"{prod['mb_per_s']:7.1f} MB/s   consume {cons['records_per_s']:>11,.0f} "
                      f"rec/s {cons['mb_per_s']:7.1f} MB/s   ({n:,} records, {policy})",
                      flush=True)
            create_topic(server.bootstrap, "bench-latency", config)
            lat = produce_latency(server.bootstrap, "bench-latency", args.rate, seconds, 100)
            results["latency"].append(lat)
            print(f"  100 B  produce latency at {args.rate}/s, acks=all: p50 {lat['p50_ms']:.2f} "
                  f"ms  p99 {lat['p99_ms']:.2f} ms  p99.9 {lat['p999_ms']:.2f} ms  "
                  f"max {lat['max_ms']:.2f} ms  ({lat['records']} records, {policy})")
        finally:
            server.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
