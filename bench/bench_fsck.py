#!/usr/bin/env python3
"""pylog-fsck verify speed on a warm page cache (DESIGN.md §7: >= 1 GiB/s).

    python bench/bench_fsck.py [--mib 512] [--rounds 5] [--dir DIR] [--json]

Writes a log through the engine (``pylog.open``), closes it cleanly, reads every
file once to warm the page cache, then times ``pylog.fsck.run`` (read-only verify:
every batch's length/magic/CRC-32C/offset chain, every index and time-index entry)
``--rounds`` times and reports GiB/s of ``.log`` bytes per round (best and median).
Shapes: ``1k-x1000`` (1 KiB records, 1,000 per batch, Kafka's classic shape and the
one DESIGN §7 quotes) and ``100b-x1`` (one 100-byte record per batch: the per-batch
cost, the worst case).  Also times ``--deep`` (every record decoded) on the first
shape and the console script end to end (interpreter start included).
The data lives on the regular file system (tempfile's default, or --dir), not tmpfs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pylog  # noqa: E402
from pylog.fsck import run  # noqa: E402

GIB = 1 << 30


def write_log(data: Path, mib: int, record: int, per_batch: int) -> int:
    """Append ``mib`` MiB of records; returns the bytes of .log written."""
    values = [os.urandom(record) for _ in range(per_batch)]
    with pylog.open(str(data)) as log:
        p = log.create_topic("bench", 1).partition(0)
        total = mib << 20
        done = 0
        step = per_batch * (record + 10)
        while done < total:
            if per_batch == 1:
                p.append(values[0])
            else:
                p.append_batch(values)
            done += step
    return sum(f.stat().st_size for f in data.rglob("*.log"))


def warm(data: Path) -> None:
    for f in data.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(16 << 20):
                    pass


def time_rounds(data: Path, size: int, rounds: int, deep: bool = False) -> dict:
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        rep = run(str(data), deep=deep)
        dt = time.perf_counter() - t0
        assert rep.exit_code() == 0, [f.to_json() for f in rep.findings]
        rates.append(size / dt / GIB)
    return {"best_gib_s": round(max(rates), 3), "median_gib_s":
            round(statistics.median(rates), 3), "rounds": rounds, "log_bytes": size,
            "batches": rep.batches, "deep": deep}


def time_cli(data: Path, size: int) -> dict:
    exe = Path(sys.executable).parent / "pylog-fsck"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "pylog.fsck.cli"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd + [str(data), "--json"], capture_output=True)
    dt = time.perf_counter() - t0
    return {"seconds": round(dt, 3), "gib_s": round(size / dt / GIB, 3),
            "exit": p.returncode}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--small-mib", type=int, default=32, help="size of the 100b-x1 log")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="pylog-bench-fsck-", dir=args.dir))
    out = {"machine_cpus": os.cpu_count()}
    try:
        for name, mib, rec, per in (("1k-x1000", args.mib, 1024, 1000),
                                    ("100b-x1", args.small_mib, 100, 1)):
            data = root / name
            size = write_log(data, mib, rec, per)
            warm(data)
            out[name] = time_rounds(data, size, args.rounds)
            if name == "1k-x1000":
                out[name + "-deep"] = time_rounds(data, size, max(1, args.rounds // 2),
                                                  deep=True)
                out[name + "-cli"] = time_cli(data, size)
            shutil.rmtree(data)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:16} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
