"""Micro benchmarks of CRC-32C, recovery after an unclean stop, and pylog-fsck verify.

Recovery: a ~256 MiB log of 1 KiB records is written once; before every round the clean-
shutdown marker and the recovery-point checkpoint are removed (what a kill -9 before the first
checkpoint leaves, FORMAT.md section 10), so `pylog.open` scans and validates every batch and
rebuilds the indexes.  Set PYLOG_BENCH_RECOVERY_MIB to change the size.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.conftest import make_values

RECOVERY_MIB = int(os.environ.get("PYLOG_BENCH_RECOVERY_MIB", "256"))


def test_crc32c_1mib(benchmark):
    try:
        from pylog._ffi import ffi, lib
    except ImportError as e:
        pytest.skip(f"pylog C core not built yet: {e}")
    buf = os.urandom(1 << 20)
    cbuf = ffi.from_buffer("uint8_t[]", buf)
    crc = lib.pl_crc32c
    benchmark(crc, 0, cbuf, len(buf))
    benchmark.extra_info["mb_per_s"] = len(buf) / benchmark.stats.stats.mean / 1e6
    benchmark.extra_info["hw"] = bool(lib.pl_crc32c_hw_available())


@pytest.fixture(scope="module")
def big_log(pylog_mod, tmp_path_factory):
    """A data dir with RECOVERY_MIB MiB of 1 KiB records in one partition (closed cleanly)."""
    root: Path = tmp_path_factory.mktemp("recovery")
    data = root / "data"
    log = pylog_mod.open(str(data))
    p = log.create_topic("bench", partitions=1).partition(0)
    values = make_values(1024)
    for _ in range(RECOVERY_MIB * 1024 // len(values)):
        p.append_batch(values)
    log.close()
    yield data, sum(f.stat().st_size for f in data.rglob("*.log"))
    shutil.rmtree(root, ignore_errors=True)


def _make_unclean(data: Path) -> None:
    for name in (".kafka_cleanshutdown", "recovery-point-offset-checkpoint"):
        (data / name).unlink(missing_ok=True)


def test_recovery_full_scan(benchmark, pylog_mod, big_log):
    data, size = big_log

    def reopen():
        log = pylog_mod.open(str(data))
        log.close()
    benchmark.pedantic(reopen, setup=lambda: _make_unclean(data), rounds=3, warmup_rounds=0)
    benchmark.extra_info["log_bytes"] = size
    benchmark.extra_info["gib_per_s"] = size / benchmark.stats.stats.mean / 2**30


def test_restart_after_clean_stop(benchmark, pylog_mod, big_log):
    data, size = big_log

    def reopen():
        pylog_mod.open(str(data)).close()
    benchmark.pedantic(reopen, rounds=5, warmup_rounds=1)
    benchmark.extra_info["log_bytes"] = size


def test_fsck_verify(benchmark, big_log):
    exe = shutil.which("pylog-fsck") or str(Path(sys.executable).parent / "pylog-fsck")
    if not Path(exe).exists():
        pytest.skip("pylog-fsck not built yet")
    data, size = big_log

    def verify():
        return subprocess.run([exe, str(data), "--json"], capture_output=True, check=False)
    proc = benchmark.pedantic(verify, rounds=3, warmup_rounds=0)
    assert proc.returncode == 0, proc.stderr[-500:]
    benchmark.extra_info["log_bytes"] = size
    benchmark.extra_info["gib_per_s"] = size / benchmark.stats.stats.mean / 2**30
    # The whole command includes the interpreter's start-up; fsck's own summary times the scan.
    scan_s = json.loads(proc.stdout)["summary"]["seconds"]
    benchmark.extra_info["scan_gib_per_s"] = size / scan_s / 2**30 if scan_s else None
