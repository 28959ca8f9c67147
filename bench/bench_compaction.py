"""Log compaction (issue 16): cleaner throughput in MB/s of dirty log, the issue's
1 M records over 10,000 keys with overwrites and tombstones compacted to one record per
live key (checked against a dict), tombstones gone after delete.retention.ms, and a
concurrent producer's p99 append latency with and without the cleaner running.

    python -m bench.bench_compaction [--records 1000000] [--keys 10000] [--value 100]

Embedded API only (``pylog.open(..., log_cleaner_enable=False)``; the passes run with
``log.cleaner.clean_once``, so they are timed exactly and driven by an injected clock).
``--records 50000`` is the CI-sized variant (tests/test_bench_quick.py style).
"""
from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time

import pylog

DAY = 86_400_000


def build(log, records: int, keys: int, value: int, seed: int = 1) -> dict:
    """records over keys: 5% tombstones, the rest overwrites; returns the live model."""
    t = log.create_topic("c", config={"cleanup.policy": "compact",
                                      "segment.bytes": 16 << 20, "delete.retention.ms": DAY})
    p = t.partition(0)
    rng = random.Random(seed)
    model: dict = {}
    pad = b"x" * max(0, value - 12)
    batch_v, batch_k = [], []
    for i in range(records):
        k = b"key-%06d" % rng.randrange(keys)
        v = None if rng.random() < 0.05 else b"%010d" % i + pad
        batch_k.append(k)
        batch_v.append(v)
        model.pop(k, None) if v is None else model.__setitem__(k, v)
        if len(batch_k) == 100:
            p.append_batch(batch_v, batch_k)
            batch_v, batch_k = [], []
    if batch_k:
        p.append_batch(batch_v, batch_k)
    p.roll()
    p.barrier()
    return model


def check(p, model: dict, tombstones_allowed: bool) -> int:
    seen, n, last = {}, 0, -1
    for r in p.iter():
        assert r.offset > last
        last = r.offset
        n += 1
        if r.value is None:
            assert tombstones_allowed, f"tombstone at {r.offset} after its horizon"
            seen.pop(r.key, None)
        else:
            assert r.key not in seen, f"two records of {r.key!r}"
            seen[r.key] = r.value
    assert seen == model, "latest values differ from the model"
    return n


def producer_p99(log, seconds: float, clean: bool, now_ms: int, first: list):
    """p50/p99 (us) of single appends to a second topic while (optionally) the cleaner
    runs: its first pass over the dirty log (stats into ``first``), then passes over
    the whole (compacted) log in a loop."""
    q = log.create_topic(f"load-{int(clean)}").partition(0)
    stop = threading.Event()
    passes = [0]

    def cleaner():
        c = log.cleaner
        first.append(c.clean_once(now_ms))
        while not stop.is_set():
            c.checkpoints.clear()             # force full passes over the whole log
            c._horizons.clear()
            if c.clean_once(now_ms) is not None:
                passes[0] += 1

    th = threading.Thread(target=cleaner) if clean else None
    if th:
        th.start()
    lat = []
    end = time.monotonic() + seconds
    v = b"y" * 100
    while time.monotonic() < end:
        t0 = time.perf_counter_ns()
        q.append(v, key=b"k")
        lat.append(time.perf_counter_ns() - t0)
        time.sleep(0.0002)
    stop.set()
    if th:
        th.join()
    lat.sort()
    return lat[len(lat) // 2] / 1000, lat[int(len(lat) * 0.99)] / 1000, passes[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--latency-seconds", type=float, default=5.0)
    args = ap.parse_args()
    now = int(time.time() * 1000)
    with tempfile.TemporaryDirectory(prefix="bench-compaction-") as d:
        log = pylog.open(d, log_cleaner_enable=False)
        t0 = time.perf_counter()
        model = build(log, args.records, args.keys, args.value)
        build_s = time.perf_counter() - t0
        p = log.topic("c").partition(0)
        dirty = p.size_bytes
        p50a, p99a, _ = producer_p99(log, args.latency_seconds, False, now, [])
        first = []
        p50b, p99b, passes = producer_p99(log, args.latency_seconds, True, now, first)
        st = first[0]
        n1 = check(p, model, tombstones_allowed=True)
        after = p.size_bytes
        st2 = log.cleaner.clean_once(now + DAY + 1)    # past every tombstone's horizon
        n2 = check(p, model, tombstones_allowed=False)
        print(f"{args.records:,} records over {args.keys:,} keys ({args.value} B values, "
              f"5% tombstones), written in {build_s:.1f} s: {dirty / 1e6:.1f} MB dirty")
        print(f"first pass: {st.seconds:.2f} s = {dirty / 1e6 / st.seconds:.0f} MB/s of "
              f"dirty log; {after / 1e6:.2f} MB left, {n1:,} records "
              f"({len(model):,} live keys + tombstones); latest value per key exact")
        print(f"pass after delete.retention.ms: {st2.seconds:.3f} s, "
              f"{st2.tombstones_dropped:,} tombstones removed, {n2:,} records = "
              f"{len(model):,} live keys")
        print(f"concurrent producer (single appends of 100 B to another topic, "
              f"{args.latency_seconds:.0f} s each): without the cleaner p50 {p50a:.1f} us "
              f"p99 {p99a:.1f} us; with it (the first pass, then {passes} more passes "
              f"back to back) p50 {p50b:.1f} us p99 {p99b:.1f} us")
        log.close()


if __name__ == "__main__":
    main()
