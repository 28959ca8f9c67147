"""Where the time goes: py-spy over one bench job, summarized as text.

    python -m bench.profile bench.embedded:pylog_append '{"size": 100, "count": 500000}'
    python -m bench.profile --native bench.embedded:pylog_read '{"size": 100, "count": 1000000}'

Runs the job (a row of bench/plan.py, "{dir}" filled with a temporary directory) under
`py-spy record --format raw` (pip install py-spy) and prints the functions with the most
samples: by self time (the leaf frame) and inclusive (anywhere on the stack).  --native adds
C frames (the cffi core, libc), which is how time inside pylog._core shows up.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def summarize(raw: Path, top: int, focus: str) -> str:
    """Top frames by self and inclusive samples, over stacks that pass through `focus`."""
    self_t: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        hit = next((i for i, f in enumerate(frames) if f.startswith(focus + " (")), None)
        if hit is None:
            continue
        frames = frames[hit:]
        total += count
        self_t[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    out = [f"{total} samples in {focus}"]
    for title, counter in (("self", self_t), ("inclusive", incl)):
        out.append(f"-- top {top} by {title} time")
        for frame, count in counter.most_common(top):
            out.append(f"{100 * count / max(total, 1):5.1f}%  {frame[:150]}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", help="module:function of a bench job")
    ap.add_argument("args", help="JSON arguments; a missing \"dir\" gets a temporary directory")
    ap.add_argument("--native", action="store_true", help="include C frames")
    ap.add_argument("--rate", type=int, default=250, help="samples per second")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--focus", help="only stacks through this function (default: the target)")
    ns = ap.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not installed: pip install py-spy", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="pylog-profile-"))
    args = json.loads(ns.args)
    args.setdefault("dir", str(tmp))
    raw = tmp / "profile.txt"
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    cmd = [spy, "record", "--format", "raw", "-o", str(raw), "-r", str(ns.rate), "--function",
           "--subprocesses"] + (["--native"] if ns.native else []) + [
           "--", sys.executable, "-m", "bench._job", ns.target, json.dumps(args)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        print(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr)
        print(summarize(raw, ns.top, ns.focus or ns.target.split(":")[1]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
