"""pylog against its peers and the machine's limits, in one run: `python -m bench.compare`.

    python -m bench.compare                 # full run (several minutes)
    python -m bench.compare --quick         # < 2 minutes, fewer records and rounds
    python -m bench.compare --tiny          # seconds; only proves the runner works (CI)
    python -m bench.compare --only embedded.batched,server   # groups whose key starts so

Steps: install what is missing (pip; apt-get for redis-server, nats-server, kcat,
rabbitmq-server), start every
server on 127.0.0.1 on free ports with its data in a temporary directory, run every contender
round-robin for several rounds (each run in a fresh process, see bench/_job.py, and on a fresh
topic or directory), stop every server (also on an error or Ctrl-C), then print one table of
medians and spreads, and write results.json and results.png into --out (bench/results/).
Contenders that cannot run here are reported as "n/a: <reason>", never estimated.
"""
from __future__ import annotations

import argparse
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench import plan, report
from bench._job import run_job
from bench.servers import (
    NotAvailable,
    ServerPool,
    ensure_python_packages,
    ensure_tools,
    start_nats,
    start_pylog_server,
    start_rabbitmq,
    start_redis,
)

PY_MODULES = {"numpy": "numpy", "matplotlib": "matplotlib", "lmdb": "lmdb", "redis": "redis",
              "nats": "nats-py", "confluent_kafka": "confluent-kafka", "pika": "pika"}
TOOLS = {"redis-server": "redis-server", "redis-benchmark": "redis-tools",
         "nats-server": "nats-server", "kcat": "kcat", "rabbitmq-server": "rabbitmq-server"}
STARTERS = {
    "pylog": (start_pylog_server, ()),
    "redis-none": (start_redis, ("none",)),
    "redis-everysec": (start_redis, ("everysec",)),
    "redis-always": (start_redis, ("always",)),
    "nats": (start_nats, ()),
    "rabbitmq": (start_rabbitmq, ()),
}
NEEDS = {"redis-none": "redis-server", "redis-everysec": "redis-server",
         "redis-always": "redis-server", "nats": "nats-server",
         "rabbitmq": "rabbitmq-server"}


def start_servers(pool: ServerPool, wanted: set[str], missing_tools: dict) -> dict:
    """Start each wanted server; returns {key: Server or NotAvailable}."""
    out = {}
    for key in sorted(wanted):
        fn, extra = STARTERS[key]
        tool = NEEDS.get(key)
        if tool in missing_tools:
            out[key] = NotAvailable(missing_tools[tool])
            continue
        try:
            server = fn(pool, key, *extra) if extra else fn(pool, key)
            time.sleep(0.3)                       # let it settle before reading its RSS
            server.extra["rss_mib_idle"] = server.rss_mib()
            out[key] = server
        except NotAvailable as e:
            out[key] = e
    return out


def _fill(args: dict, ctx: dict) -> dict:
    """Replace the "{dir}", "{shared}", "{topic}", "{bootstrap}", "{port}" placeholders."""
    filled = {}
    for k, v in args.items():
        if isinstance(v, str) and v.startswith("{") and v.endswith("}") and v[1:-1] in ctx:
            v = ctx[v[1:-1]]
        filled[k] = v
    return filled


def run_case(case: plan.Case, ctx: dict, servers: dict) -> dict:
    """One run of one case: {"rate", "seconds", "cpu_client", "cpu_server", ...} or {"n/a"}."""
    server = None
    if case.server:
        server = servers.get(case.server)
        if isinstance(server, NotAvailable):
            return {"n/a": str(server)}
        if not server.alive():
            return {"n/a": f"{server.name} is no longer running"}
        ctx = dict(ctx, port=server.port, bootstrap=f"127.0.0.1:{server.port}")
    cpu0 = server.cpu_seconds() if server else 0.0
    try:
        out = run_job(case.target, _fill(case.args, ctx), timeout=case.timeout)
    except NotAvailable as e:
        return {"n/a": " ".join(str(e).split())[:400]}
    if server:
        out["cpu_server"] = server.cpu_seconds() - cpu0
    out["rate"] = out["records"] / out["seconds"] if out["seconds"] > 0 else 0.0
    return out


def run_rounds(groups: list[plan.Group], servers: dict, root: Path, rounds: int,
               log=print) -> dict:
    """Run every case of every group once per round, rotating the order inside each group.

    Returns {(group key, row index): [run dicts]} where rows are cases then their follow-ups
    in the order report.rows_of() lists them."""
    runs: dict = {}
    for r in range(rounds):
        log(f"-- round {r + 1}/{rounds}")
        for g in groups:
            rows = report.rows_of(g)
            order = list(range(len(g.cases)))
            shift = r % max(1, len(order))
            for ci in order[shift:] + order[:shift]:
                case = g.cases[ci]
                topic = re.sub(r"[^a-zA-Z0-9_-]", "_", f"{g.key}-c{ci}-r{r}")
                run_dir = Path(tempfile.mkdtemp(prefix=f"{topic}-", dir=root))
                shared = root / f"shared-{g.key}"
                shared.mkdir(exist_ok=True)
                ctx = {"dir": str(run_dir), "topic": topic, "shared": str(shared)}
                chain = [case] + ([case.then] if case.then else [])
                for c in chain:
                    t0 = time.perf_counter()
                    out = run_case(c, ctx, servers)
                    idx = rows.index(c)
                    runs.setdefault((g.key, idx), []).append(out)
                    log(f"   {g.key:24} {c.name[:42]:42} {c.policy[:20]:20} "
                        f"{_brief(out, g)}  ({time.perf_counter() - t0:.1f} s)")
                    if "n/a" in out and c is case and case.then:
                        runs.setdefault((g.key, idx + 1), []).append(
                            {"n/a": "nothing produced: " + out["n/a"]})
                        break
                shutil.rmtree(run_dir, ignore_errors=True)
    return runs


def _brief(out: dict, g: plan.Group) -> str:
    if "n/a" in out:
        return "n/a: " + out["n/a"][:70]
    if "latency_ms" in out:
        lat = out["latency_ms"]
        return "  ".join(f"{k} {v:.2f} ms" for k, v in lat.items())
    if g.unit == "seconds":
        return f"{out['seconds']:.3f} s"
    if g.unit == "MiB":
        return f"{out['bytes'] / out['seconds'] / 1e6:,.0f} MB/s"
    return f"{out['rate']:,.0f} rec/s"


def summarize(groups: list[plan.Group], runs: dict) -> list[dict]:
    """Medians, spreads and ratios per row (see report.py for the row dict)."""
    out = []
    for g in groups:
        rows = []
        for idx, case in enumerate(report.rows_of(g)):
            rows.append(report.summarize_row(case, runs.get((g.key, idx), []), g))
        report.add_ratios(g, rows)
        out.append(dict(key=g.key, title=g.title, size=g.size, count=g.count, unit=g.unit,
                        rows=rows))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer records, 2 rounds (< 2 min)")
    mode.add_argument("--tiny", action="store_true",
                      help="a few thousand records, 1 round: proves the runner works (CI)")
    ap.add_argument("--rounds", type=int, help="override the profile's number of rounds")
    ap.add_argument("--only", help="comma-separated group key prefixes (e.g. embedded,server)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"),
                    help="directory for results.json and results.png (default bench/results)")
    ap.add_argument("--data-dir", help="parent of the temporary data directory (default: $TMPDIR)")
    ap.add_argument("--no-install", action="store_true",
                    help="do not pip/apt-get install missing tools; report them as n/a")
    return ap.parse_args(argv)


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = "tiny" if args.tiny else "quick" if args.quick else "full"
    prof = plan.PROFILES[profile]
    rounds = args.rounds or prof["rounds"]
    only = set(args.only.split(",")) if args.only else None
    groups = plan.build(profile, only)
    missing_py = ensure_python_packages(PY_MODULES, install=not args.no_install)
    missing_tools = ensure_tools(TOOLS, install=not args.no_install)
    signal.signal(signal.SIGTERM, _terminate)
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="pylog-bench-", dir=args.data_dir))
    wanted = {c.server for g in groups for c in report.rows_of(g) if c.server}
    try:
        with ServerPool(root) as pool:
            servers = start_servers(pool, wanted, missing_tools)
            for key, s in sorted(servers.items()):
                print(f"server {key}: " + (f"n/a: {s}" if isinstance(s, NotAvailable) else
                                           f"pid {s.pid} port {s.port} up in {s.startup_s:.2f} s"))
            print(f"-- servers started ({time.perf_counter() - t0:.1f} s)")
            runs = run_rounds(groups, servers, root, rounds)
            server_facts = report.server_facts(servers)
            print(f"-- rounds done ({time.perf_counter() - t0:.1f} s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"-- servers stopped ({time.perf_counter() - t0:.1f} s)")
    results = dict(meta=report.meta(profile, rounds, args, time.perf_counter() - t0, root,
                                    missing_py, missing_tools),
                   servers=server_facts, groups=summarize(groups, runs))
    results["checks"] = report.checks(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = report.table(results)
    print(text)
    report.write(results, text, out)
    print(f"wrote results.json, results.txt, results.md, results.png into {out} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: every server was stopped", file=sys.stderr)
        sys.exit(130)
