"""What `python -m bench.compare` measures: the groups of contenders and their record counts.

A `Group` is one comparison (same record size, count and shape); its first pylog row is the
reference its peers' ratios are taken against.  A `Case` names the workload function that runs
in its own process (bench/_job.py) and its arguments; the placeholders "{dir}", "{topic}",
"{bootstrap}" and "{port}" are filled in per run; "{shared}" is one directory per group that
every round sees (for data that is expensive to build and only read).  A case with `then`
runs that follow-up right after itself on the same topic/stream (produce, then consume what
was produced).
"""
from __future__ import annotations

from dataclasses import dataclass, field

KIB = 1024

# Record counts per profile.  "quick" must finish in < 2 minutes on 2 busy cores; "tiny" only
# proves the runner works end to end (the CI smoke test).
PROFILES = {
    "full": dict(rounds=3, batched=1_000_000, single=200_000, read=1_000_000, kib_factor=5,
                 native=1_000_000, python=200_000, e2e_rate=10_000, e2e_s=10.0,
                 durable=400_000, mib=256, segments=1000, machine_mib=512, sizes=(100, KIB),
                 queue=100_000, queue_rate=2_000, queue_s=5.0),
    "quick": dict(rounds=2, batched=200_000, single=20_000, read=200_000, kib_factor=5,
                  native=200_000, python=15_000, e2e_rate=5_000, e2e_s=1.0,
                  durable=30_000, mib=128, segments=400, machine_mib=128, sizes=(100, KIB),
                  queue=20_000, queue_rate=1_000, queue_s=3.0),
    "tiny": dict(rounds=1, batched=3_000, single=1_000, read=3_000, kib_factor=2,
                 native=2_000, python=1_000, e2e_rate=500, e2e_s=0.5,
                 durable=1_600, mib=4, segments=20, machine_mib=8, sizes=(100, KIB),
                 queue=2_000, queue_rate=500, queue_s=1.0),
}


@dataclass
class Case:
    name: str                     # contender, e.g. "pylog append_batch"
    target: str                   # "module:function" run by bench._job
    args: dict
    policy: str = ""              # flush / sync policy in force
    server: str | None = None     # key of the server it talks to (bench.compare.SERVERS)
    then: Case | None = None      # follow-up on the same topic (consume after produce)
    timeout: float = 300.0


@dataclass
class Group:
    key: str                      # stable id used in JSON and §7 checks
    title: str
    size: int                     # record size in bytes (0 for machine rows)
    count: int
    cases: list[Case] = field(default_factory=list)
    unit: str = "records"         # "records", "MiB" (machine bandwidth) or "syncs"


def machine_groups(p: dict) -> list[Group]:
    mib = p["machine_mib"]
    return [Group("machine", "machine limits (data dir filesystem, this run)", 0, mib, [
        Case("write, new data (fresh page-cache pages)", "bench.machine:write_bandwidth",
             dict(dir="{dir}", mib=mib), "buffered, no fsync"),
        Case("write, rewritten data (cached pages)", "bench.machine:rewrite_bandwidth",
             dict(dir="{dir}", mib=mib), "buffered, no fsync"),
        Case("fdatasync after 4 KiB write", "bench.machine:fdatasync_latency",
             dict(dir="{dir}"), "fdatasync"),
        Case("memcpy (numpy copyto)", "bench.machine:memcpy_bandwidth", dict(mib=mib), ""),
    ], unit="MiB")]


def _embedded(kind: str, size: int, count: int) -> list[Case]:
    a = dict(dir="{dir}", size=size, count=count)
    e = "bench.embedded:"
    if kind == "batched":
        return [
            Case("pylog append_batch", e + "pylog_batched", a, "flush.ms=1000"),
            Case("naive length-prefixed file", e + "naive_batched", a, "no fsync"),
            Case("SQLite WAL executemany", e + "sqlite_batched", dict(a, synchronous="OFF"),
                 "synchronous=OFF"),
            Case("SQLite WAL executemany", e + "sqlite_batched", dict(a, synchronous="NORMAL"),
                 "synchronous=NORMAL"),
            Case("LMDB putmulti", e + "lmdb_batched", a, "sync=False"),
            Case("raw os.write of prebuilt batches", "bench.machine:raw_append", a, "no fsync"),
        ]
    if kind == "single":
        return [
            Case("pylog append", e + "pylog_append", a, "flush.ms=1000"),
            Case("naive length-prefixed file", e + "naive_append", a, "no fsync"),
            Case("SQLite WAL autocommit", e + "sqlite_append", dict(a, synchronous="OFF"),
                 "synchronous=OFF"),
            Case("SQLite WAL autocommit", e + "sqlite_append", dict(a, synchronous="NORMAL"),
                 "synchronous=NORMAL"),
            Case("LMDB txn per record", e + "lmdb_append", a, "sync=False"),
        ]
    return [
        Case("pylog read (Record objects)", e + "pylog_read", a, "flush.ms=1000"),
        Case("pylog read_columns (numpy)", e + "pylog_read_columns", a, "flush.ms=1000"),
        Case("naive file read (bytes objects)", e + "naive_read", a, "no fsync"),
        Case("SQLite SELECT fetchmany", e + "sqlite_read", a, "synchronous=OFF"),
        Case("LMDB cursor", e + "lmdb_read", a, "sync=False"),
    ]


def embedded_groups(p: dict, quick: bool) -> list[Group]:
    groups = []
    for size in p["sizes"]:
        div = p["kib_factor"] if size >= KIB else 1
        label = f"{size} B" if size < KIB else f"{size // KIB} KiB"
        groups.append(Group(f"embedded.batched.{size}", f"embedded append, 1000/batch, {label}",
                            size, p["batched"] // div, _embedded("batched", size,
                                                                 p["batched"] // div)))
        if quick and size >= KIB:
            continue            # --quick: the 1 KiB figure of DESIGN §7 is the batched one
        groups.append(Group(f"embedded.single.{size}", f"embedded append, single, {label}",
                            size, p["single"] // div, _embedded("single", size,
                                                                p["single"] // div)))
        groups.append(Group(f"embedded.read.{size}", f"embedded read, {label}", size,
                            p["read"] // div, _embedded("read", size, p["read"] // div)))
    return groups


def recovery_groups(p: dict) -> list[Group]:
    mib = p["mib"]
    a = dict(dir="{dir}", mib=mib)
    return [Group("recovery", f"recovery and restart, {mib} MiB log of 1 KiB records",
                  0, mib, [
                      Case("pylog.open after kill -9, full scan", "bench.recovery:pylog_recovery",
                           a, "no checkpoint"),
                      Case("pylog-fsck verify", "bench.recovery:fsck_verify", a, "read-only"),
                  ], unit="MiB"),
            Group("restart", f"restart after a clean stop, {p['segments']:,} segments of 64 KiB", 0,
                  p["segments"], [
                Case("pylog.open", "bench.recovery:pylog_restart",
                     dict(dir="{shared}", segments=p["segments"]), "clean marker"),
            ], unit="seconds")]


def server_groups(p: dict, quick: bool) -> list[Group]:
    k, c = "bench.clients_kafka:", "bench.clients_peers:"
    groups = []
    for size in (100,) if quick else p["sizes"]:
        n = p["native"] // (p["kib_factor"] if size >= KIB else 1)
        kafka = dict(bootstrap="{bootstrap}", topic="{topic}", size=size, count=n)
        redis = dict(port="{port}", stream="{topic}", size=size, count=n)
        label = f"{size} B" if size < KIB else f"{size // KIB} KiB"
        groups.append(Group(f"server.native.{size}", f"server produce then consume, native "
                            f"clients, {label}", size, n, [
            Case("pylog-server ← kcat -P", k + "kcat_produce", kafka, "flush.ms=1000",
                 "pylog", then=Case("pylog-server → kcat -C", k + "kcat_consume", kafka,
                                    "flush.ms=1000", "pylog")),
            Case("Redis Streams ← redis-benchmark XADD", c + "redis_bench_produce", redis,
                 "no persistence", "redis-none", then=Case(
                     "Redis Streams → redis-benchmark XRANGE", c + "redis_bench_consume", redis,
                     "no persistence", "redis-none")),
        ]))
    n = p["python"]
    kafka = dict(bootstrap="{bootstrap}", topic="{topic}", size=100, count=n)
    redis = dict(port="{port}", stream="{topic}", size=100, count=n)
    groups.append(Group("server.python.100", "server produce then consume, Python clients, 100 B",
                        100, n, [
        Case("pylog-server ← confluent-kafka", k + "confluent_produce", kafka, "flush.ms=1000",
             "pylog", then=Case("pylog-server → confluent-kafka", k + "confluent_consume",
                                kafka, "flush.ms=1000", "pylog")),
        Case("Redis Streams ← redis-py pipeline", c + "redis_produce", redis, "no persistence",
             "redis-none", then=Case("Redis Streams → redis-py XRANGE", c + "redis_consume",
                                     redis, "no persistence", "redis-none")),
        Case("NATS JetStream ← nats-py publish_async", c + "nats_produce", redis, "file store",
             "nats", then=Case("NATS JetStream → nats-py pull fetch", c + "nats_consume", redis,
                               "file store", "nats")),
    ]))
    if not quick:       # --quick: Redis with persistence is in the durability group
        groups[-1].cases.insert(2, Case(
            "Redis Streams ← redis-py pipeline", c + "redis_produce", redis,
            "appendfsync everysec", "redis-everysec", then=Case(
                "Redis Streams → redis-py XRANGE", c + "redis_consume", redis,
                "appendfsync everysec", "redis-everysec")))
    n = p["native"]
    groups.append(Group("server.both.100", "producer and consumer at once, unthrottled, "
                        "native clients, 100 B", 100, n, [
        Case("pylog-server ⇄ kcat -P + kcat -C", k + "kcat_both",
             dict(bootstrap="{bootstrap}", topic="{topic}", size=100, count=n),
             "flush.ms=1000", "pylog"),
    ]))
    rate, secs = p["e2e_rate"], p["e2e_s"]
    e2e = dict(size=100, rate=rate, seconds=secs)
    groups.append(Group("server.e2e.100", f"producer and consumer at once, {rate:,} rec/s "
                        f"offered, 100 B, end-to-end latency", 100, int(rate * secs), [
        Case("pylog-server, confluent-kafka", "bench.latency:kafka_e2e",
             dict(e2e, bootstrap="{bootstrap}", topic="{topic}"), "flush.ms=1000", "pylog"),
        Case("Redis Streams, redis-py XADD/XREAD", "bench.latency:redis_e2e",
             dict(e2e, port="{port}", stream="{topic}"), "no persistence", "redis-none"),
    ]))
    return groups


def durability_groups(p: dict) -> list[Group]:
    n = p["durable"]
    emb = dict(dir="{dir}", size=100, count=n, producers=8, batch=100)
    kcat = dict(bootstrap="{bootstrap}", topic="{topic}", size=100, count=n * 2, producers=8,
                batch_bytes=16384)
    rb = dict(port="{port}", stream="{topic}", size=100, count=n * 2, clients=8, pipeline=100)
    c = "bench.clients_peers:"
    return [
        Group("durability.embedded",
              "durability: 8 threads × append_batch(100 × 100 B), embedded",
              100, n, [
            Case("pylog", "bench.embedded:pylog_concurrent", dict(emb, config={"flush.ms": 1000}),
                 "flush.ms=1000"),
            Case("pylog", "bench.embedded:pylog_concurrent",
                 dict(emb, config={"flush.messages": 1}), "flush.messages=1"),
        ]),
        Group("durability.server", "durability: 8 concurrent producers, 100 B, acks=all, "
              "batch.size 16 KiB",
              100, n * 2, [
            Case("pylog-server ← 8 × kcat -P", "bench.clients_kafka:kcat_produce",
                 dict(kcat, acks="all", config={"flush.ms": 1000}), "flush.ms=1000", "pylog"),
            Case("pylog-server ← 8 × kcat -P", "bench.clients_kafka:kcat_produce",
                 dict(kcat, acks="all", config={"flush.messages": 1}), "flush.messages=1",
                 "pylog"),
            Case("Redis ← redis-benchmark -c 8 -P 100", c + "redis_bench_produce", rb,
                 "appendfsync everysec", "redis-everysec"),
            Case("Redis ← redis-benchmark -c 8 -P 100", c + "redis_bench_produce", rb,
                 "appendfsync always", "redis-always"),
        ]),
    ]


def _queue_cases(a: dict) -> list[Case]:
    """The work-queue contenders (bench/clients_queues.py) with the shared arguments `a`."""
    q = "bench.clients_queues:"
    kafka = dict(a, bootstrap="{bootstrap}", topic="{topic}")
    peer = dict(a, port="{port}")
    return [
        Case("pylog-server ShareConsumer, explicit", q + "kafka_share",
             dict(kafka, ack="explicit"), "flush.ms=1000", "pylog"),
        Case("pylog-server ShareConsumer, implicit", q + "kafka_share",
             dict(kafka, ack="implicit"), "flush.ms=1000", "pylog"),
        Case("pylog embedded log.queue (in-process)", q + "embedded_queue",
             dict(a, dir="{dir}"), "flush.ms=1000"),
        Case("RabbitMQ classic queue, pika", q + "rabbitmq_queue",
             dict(peer, queue="{topic}", durable=True), "durable, persistent", "rabbitmq"),
        Case("RabbitMQ classic queue, pika", q + "rabbitmq_queue",
             dict(peer, queue="{topic}", durable=False), "transient", "rabbitmq"),
        Case("Redis Streams XREADGROUP+XACK, redis-py", q + "redis_group",
             dict(peer, stream="{topic}"), "no persistence", "redis-none"),
        Case("Redis Streams XREADGROUP+XACK, redis-py", q + "redis_group",
             dict(peer, stream="{topic}"), "appendfsync everysec", "redis-everysec"),
        Case("NATS JetStream workqueue, nats-py pull", q + "nats_workqueue",
             dict(peer, stream="{topic}"), "file store", "nats"),
    ]


def queue_groups(p: dict) -> list[Group]:
    """N consumers receive + ack 100 B messages: pre-filled throughput (3 and 1 consumers)
    and produce -> ack latency at a paced rate (3 consumers)."""
    n, rate, secs = p["queue"], p["queue_rate"], p["queue_s"]
    groups = [Group(f"queues.{c}", f"work queue, {c} consumer{'s' * (c > 1)} receive + ack, "
                    f"pre-filled, 100 B", 100, n,
                    _queue_cases(dict(consumers=c, count=n, mode="prefill")))
              for c in (3, 1)]
    groups.append(Group("queues.e2e.3", f"work queue, 3 consumers, {rate:,} msg/s offered, "
                        f"100 B, produce -> ack latency", 100, int(rate * secs),
                        _queue_cases(dict(consumers=3, mode="paced", rate=rate,
                                          seconds=secs))))
    return groups


def build(profile: str, only: set[str] | None = None) -> list[Group]:
    """All groups of a profile, optionally only those whose key starts with one of `only`."""
    p = PROFILES[profile]
    quick = profile != "full"
    groups = (machine_groups(p) + embedded_groups(p, quick) + recovery_groups(p)
              + server_groups(p, quick) + durability_groups(p))
    if profile != "tiny" or (only and any(o.startswith("queues") for o in only)):
        groups += queue_groups(p)       # --tiny: only on request (RabbitMQ boots in ~10 s)
    if only:
        groups = [g for g in groups if any(g.key.startswith(o) for o in only)]
    return groups
