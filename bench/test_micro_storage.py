"""Micro benchmarks of the storage engine's hot paths (DESIGN section 7 figures).

    python -m pytest bench/ --benchmark-json=bench/results/micro.json

- append, one record per call (100 B, 1 KiB): timed as 1,000 calls per round.
- append_batch, 1,000 records per call (100 B, 1 KiB): one RecordBatch, one CRC per call.
- read as Record objects and read_columns (numpy) over 10,000 / 100,000 records.
- index lookups: offset_for_time and read(max_records=1) at random offsets.
"""
from __future__ import annotations

import random

import pytest

from bench.conftest import make_values, per_record
from bench.embedded import _ncols

SIZES = [100, 1024]


@pytest.mark.parametrize("size", SIZES, ids=["100B", "1KiB"])
def test_append_single(benchmark, partition, size):
    values = make_values(size)
    append = partition.append

    def thousand():
        for v in values:
            append(v)
    benchmark.pedantic(thousand, rounds=100 if size < 1024 else 30, warmup_rounds=2)
    per_record(benchmark, len(values), size)


@pytest.mark.parametrize("size", SIZES, ids=["100B", "1KiB"])
def test_append_batch(benchmark, partition, size):
    values = make_values(size)
    benchmark.pedantic(partition.append_batch, args=(values,),
                       rounds=300 if size < 1024 else 60, warmup_rounds=2)
    per_record(benchmark, len(values), size)


def test_read_records(benchmark, filled):
    p, _ = filled
    recs = benchmark(p.read, 50_000, max_records=10_000, max_bytes=16 << 20)
    assert len(recs) == 10_000
    per_record(benchmark, len(recs), 100)


def test_read_columns(benchmark, filled):
    p, _ = filled
    cols = benchmark(p.read_columns, 0, max_records=100_000)
    n = _ncols(cols)
    assert n > 0
    per_record(benchmark, n, 100)


def test_offset_for_time_random(benchmark, filled):
    p, base_ts = filled
    rng = random.Random(7)
    targets = [base_ts + rng.randrange(200 * 1000) for _ in range(1000)]
    lookup = p.offset_for_time

    def thousand():
        for ts in targets:
            lookup(ts)
    benchmark(thousand)
    per_record(benchmark, len(targets))
    benchmark.extra_info["unit"] = "lookups"


def test_read_one_at_random_offset(benchmark, filled):
    p, _ = filled
    rng = random.Random(11)
    offsets = [rng.randrange(p.log_end_offset) for _ in range(1000)]
    read = p.read

    def thousand():
        for off in offsets:
            read(off, max_records=1)
    benchmark(thousand)
    per_record(benchmark, len(offsets))
    benchmark.extra_info["unit"] = "lookups"
