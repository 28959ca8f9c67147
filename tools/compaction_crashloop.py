"""kill -9 at random points of log cleaning, N cycles (default 200); after each, the
log must hold exactly the latest value per key, no offset twice, no .swap/.cleaned
left, and pylog-fsck must be clean.  Usage: python tools/compaction_crashloop.py
[--cycles N] [--dir D].  (CI runs a few cycles: tests/storage/test_compaction.py.)"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "storage"))

import pylog  # noqa: E402
import test_compaction as tc  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    d = Path(args.dir or tempfile.mkdtemp(prefix="compaction-crashloop-")) / "data"
    steps = ["segment", "cleaned", "indexed", "swap", "installed", "random", "random",
             "timer"]
    kills = 0
    t0 = time.monotonic()
    for cycle in range(args.cycles):
        model = tc._fill(d, cycle)
        step = random.Random(cycle).choice(steps)
        before = os.listdir(d / "c-0")
        kills += tc._crash_cycle(d, step, cycle) == -9
        with pylog.open(d, log_cleaner_enable=False) as log:
            p = log.topic("c").partition(0)
            offs = [r.offset for r in p.iter()]
            assert offs == sorted(set(offs)), f"cycle {cycle}: an offset twice"
            got = dict(log.table("c").items())
            assert got == model, f"cycle {cycle} ({step}): latest values differ"
            left = [n for n in os.listdir(p.directory) if n.endswith((".swap", ".cleaned"))]
            assert not left, f"cycle {cycle}: left {left}"
        tc._fsck_clean(d)
        del before
    print(f"{args.cycles} cycles ({kills} killed by SIGKILL, at the steps {steps}) in "
          f"{time.monotonic() - t0:.0f} s: latest value per key exact, no offset twice, "
          f"no temp file left, fsck clean every time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
