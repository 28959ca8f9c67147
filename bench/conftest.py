"""Fixtures for the pytest-benchmark micro benchmarks of the storage engine.

Run them on their own (they are not under the main test run's `testpaths`):

    python -m pytest bench/ --benchmark-json=bench/results/micro.json

Each benchmark records `records_per_s` (and `mb_per_s` where bytes matter) in extra_info, so
the JSON can be read against DESIGN section 7 without dividing by hand.  Parts of pylog that
do not exist yet are skipped with the reason, never faked.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

VALUES_DISTINCT = 1000


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.timeout(900))


@pytest.fixture(scope="session")
def pylog_mod():
    """The pylog package, or a skip while the storage engine is not built."""
    try:
        import pylog
        pylog.open
    except (ImportError, AttributeError) as e:
        pytest.skip(f"pylog storage engine not importable yet: {e}")
    return pylog


def make_values(size: int, n: int = VALUES_DISTINCT) -> list[bytes]:
    blob = os.urandom(size * n)
    return [blob[i * size:(i + 1) * size] for i in range(n)]


@pytest.fixture
def partition(pylog_mod, tmp_path):
    """A fresh one-partition topic (default flush policy, flush.ms=1000) on disk."""
    log = pylog_mod.open(str(tmp_path / "data"))
    p = log.create_topic("bench", partitions=1).partition(0)
    yield p
    log.close()
    shutil.rmtree(tmp_path / "data", ignore_errors=True)


@pytest.fixture(scope="module")
def filled(pylog_mod, tmp_path_factory):
    """A partition holding 200,000 records of 100 B with timestamps 1 ms apart (per batch)."""
    path: Path = tmp_path_factory.mktemp("filled")
    log = pylog_mod.open(str(path / "data"))
    p = log.create_topic("bench", partitions=1).partition(0)
    values = make_values(100)
    base_ts = 1_700_000_000_000
    for b in range(200):
        p.append_batch(values, timestamps=[base_ts + b * 1000 + i for i in range(1000)])
    yield p, base_ts
    log.close()
    shutil.rmtree(path, ignore_errors=True)


def per_record(benchmark, records_per_call: int, size: int | None = None) -> None:
    """Store records/s (and MB/s) from the benchmark's mean time per call."""
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["records_per_call"] = records_per_call
    benchmark.extra_info["records_per_s"] = records_per_call / mean
    if size:
        benchmark.extra_info["mb_per_s"] = records_per_call * size / mean / 1e6
