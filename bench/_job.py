"""Run one workload in a fresh interpreter and print its measurement as JSON.

Every contender runs in its own process so that none inherits another's heap, page-cache
mappings, GC state or client threads, and so that its CPU time is its own.  A workload is a
function ``fn(**args) -> dict`` in a bench module; it times only its measured section and
returns at least ``records``, ``bytes``, ``seconds`` and ``cpu_client`` (CPU seconds of this
process during that section, all threads).  It raises `NotAvailable` when it cannot run here.

    python -m bench._job bench.embedded:pylog_batched '{"size": 100, "count": 100000, ...}'
"""
from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
import time

from bench.servers import NotAvailable

MARK = "@@BENCH_RESULT@@ "


def cpu_now() -> float:
    """CPU seconds (user + system, all threads) of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Timer:
    """Wall and CPU time of a `with` block: ``.seconds`` and ``.cpu``."""

    def __enter__(self) -> Timer:
        self._cpu0 = cpu_now()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.cpu = cpu_now() - self._cpu0


def result(records: int, size: int, timer: Timer, **extra) -> dict:
    """The common measurement dict of a workload."""
    return dict(records=records, bytes=records * size, seconds=timer.seconds,
                cpu_client=timer.cpu, **extra)


def run_job(target: str, args: dict, timeout: float = 600.0, cwd: str | None = None) -> dict:
    """Run `target` ("module:function") with `args` in a subprocess; return its result dict.

    Raises NotAvailable with the reason the workload gave, or with the error it died of."""
    argv = [sys.executable, "-m", "bench._job", target, json.dumps(args)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              env=env)
    except subprocess.TimeoutExpired as e:
        raise NotAvailable(f"{target} timed out after {timeout:.0f} s") from e
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            out = json.loads(line[len(MARK):])
            if "n/a" in out:
                raise NotAvailable(out["n/a"])
            return out
    err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise NotAvailable(f"{target} failed (exit {proc.returncode}): {err[:300]}")


def main(argv: list[str]) -> int:
    target, args = argv[0], json.loads(argv[1])
    module, fn = target.split(":")
    try:
        out = getattr(importlib.import_module(module), fn)(**args)
    except NotAvailable as e:
        out = {"n/a": str(e)}
    except ImportError as e:
        out = {"n/a": f"import failed: {e}"}
    print(MARK + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
