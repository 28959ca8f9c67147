"""Turn the runs of bench.compare into medians, ratios, DESIGN section 7 checks, a table
(text and Markdown) and results.json; bench/chart.py draws the PNG.

A row dict holds: name, policy, role ("produce" for a case, "consume" for its follow-up),
status ("ok" or "n/a"), reason, runs, failed, records_per_s (median), min/max, spread_pct
((max - min) / 2 / median), mb_per_s, seconds, cpu_client_s, cpu_server_s, latency_ms, and
pylog_ratio = the group's pylog reference rate / this row's rate ("how many times pylog").
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from bench.servers import NotAvailable

MED = statistics.median


def rows_of(g) -> list:
    """The rows of a group: each case, followed by its follow-up (`then`) when it has one."""
    rows = []
    for c in g.cases:
        rows.append(c)
        if c.then:
            rows.append(c.then)
    return rows


def summarize_row(case, runs: list[dict], g) -> dict:
    followups = {id(c.then) for c in g.cases if c.then}
    ok = [r for r in runs if "n/a" not in r]
    reasons = [r["n/a"] for r in runs if "n/a" in r]
    row = dict(name=case.name, policy=case.policy, target=case.target,
               role="consume" if id(case) in followups else "produce",
               runs=len(runs), failed=len(runs) - len(ok))
    if not ok:
        row.update(status="n/a", reason=reasons[0] if reasons else "not run")
        return row
    rates = [r["rate"] for r in ok]
    med = MED(rates)
    row.update(status="ok", records_per_s=med, min=min(rates), max=max(rates),
               spread_pct=(max(rates) - min(rates)) / 2 / med * 100 if med else 0.0,
               mb_per_s=MED([r["bytes"] / r["seconds"] / 1e6 for r in ok]),
               seconds=MED([r["seconds"] for r in ok]),
               cpu_client_s=MED([r["cpu_client"] for r in ok]),
               cpu_server_s=MED([r["cpu_server"] for r in ok]) if "cpu_server" in ok[0] else None,
               per_round=[None if "n/a" in r else r["rate"] for r in runs],
               per_round_mb=[None if "n/a" in r else r["bytes"] / r["seconds"] / 1e6
                             for r in runs])
    if "latency_ms" in ok[0]:
        row["latency_ms"] = {k: MED([r["latency_ms"][k] for r in ok])
                             for k in ok[0]["latency_ms"]}
    if "note" in ok[0]:
        row["note"] = ok[0]["note"]
    if ok[0].get("scan_gib_s"):
        row["scan_gib_s"] = MED([r["scan_gib_s"] for r in ok if r.get("scan_gib_s")])
        row["startup_s"] = MED([r["startup_s"] for r in ok])
    if reasons:
        row["reason"] = f"{len(reasons)} of {len(runs)} runs failed: {reasons[0]}"
    return row


def paired_ratio(a: dict, b: dict, key: str = "per_round") -> float | None:
    """Median over rounds of a's rate / b's rate in the same round.

    Pairing by round cancels most of the machine's drift (other jobs, page-cache state),
    which on a shared machine moves medians far more than the contenders differ."""
    pairs = [x / y for x, y in zip(a.get(key, []), b.get(key, [])) if x and y]
    return MED(pairs) if pairs else None


def add_ratios(g, rows: list[dict]) -> None:
    """pylog_ratio per row against the first ok pylog row of the same role (rate groups only)."""
    if g.key == "machine" or g.unit == "seconds" or ".e2e." in g.key:
        return
    for role in ("produce", "consume"):
        ref = next((r for r in rows if r["role"] == role and r["status"] == "ok"
                    and r["name"].startswith("pylog")), None)
        for r in rows:
            if r["role"] == role and r["status"] == "ok" and ref:
                ratio = paired_ratio(ref, r)
                if ratio is not None:
                    r["pylog_ratio"] = ratio


def server_facts(servers: dict) -> dict:
    out = {}
    for key, s in servers.items():
        if isinstance(s, NotAvailable):
            out[key] = {"status": "n/a", "reason": str(s)}
        else:
            out[key] = {"status": "ok", "startup_s": s.startup_s,
                        "rss_mib_idle": s.extra.get("rss_mib_idle")}
    return out


def _version(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (p.stdout or p.stderr).strip().splitlines()[0][:100]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "n/a"


def meta(profile, rounds, args, elapsed, root, missing_py, missing_tools) -> dict:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    repo = Path(__file__).resolve().parent.parent
    commit = _version(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    fs = _version(["sh", "-c", f"df --output=source,fstype '{root.parent}' | tail -1"])
    return dict(
        date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), profile=profile,
        rounds=rounds, elapsed_s=round(elapsed, 1), command="python -m bench.compare"
        + (f" --{profile}" if profile != "full" else "")
        + (f" --only {args.only}" if getattr(args, "only", None) else ""), git_commit=commit,
        machine=dict(cpu=cpu, cores=os.cpu_count(), memory_gib=round(mem, 1),
                     kernel=platform.release(), python=platform.python_version(),
                     data_fs=" ".join(fs.split()), load_avg=os.getloadavg()),
        versions=dict(redis=_version(["redis-server", "--version"]),
                      nats=_version(["nats-server", "--version"]),
                      kcat=_version(["kcat", "-V"])),
        missing={**missing_py, **missing_tools})


# ---- DESIGN section 7 ----------------------------------------------------------------------

def _row(results, key, name, policy=None, role=None):
    for g in results["groups"]:
        if g["key"] != key:
            continue
        for r in g["rows"]:
            if (r["name"].startswith(name) and (policy is None or r["policy"] == policy)
                    and (role is None or r["role"] == role)):
                return r
    return None


def _ratio_check(figure, target, a, b, value_of="records_per_s"):
    """Check a[value] / b[value] >= target (None when either side is missing)."""
    if not a or not b or a["status"] != "ok" or b["status"] != "ok":
        why = "; ".join(f"{r['name']}: {r.get('reason', 'n/a')}" for r in (a, b)
                        if r and r["status"] != "ok") or "not measured in this run"
        return dict(figure=figure, target=target, measured=f"n/a ({why})", met=None)
    ratio = paired_ratio(a, b, "per_round_mb" if value_of == "mb_per_s" else "per_round")
    if ratio is None:
        ratio = a[value_of] / b[value_of]
    return dict(figure=figure, target=target, value=ratio, measured=f"{ratio:.2f}×",
                met=ratio >= target)


def _abs_check(figure, target, row, value, fmt, lower_is_better=False):
    if not row or row["status"] != "ok":
        why = row.get("reason", "n/a") if row else "not measured in this run"
        return dict(figure=figure, target=target, measured=f"n/a ({why})", met=None)
    met = value <= target if lower_is_better else value >= target
    return dict(figure=figure, target=target, value=value, measured=fmt.format(value), met=met)


def checks(results) -> list[dict]:
    R = lambda *a, **k: _row(results, *a, **k)  # noqa: E731
    b100 = "embedded.batched.100"
    out = [
        _ratio_check("batched append 100 B vs LMDB (sync off)", 1.5,
                     R(b100, "pylog"), R(b100, "LMDB")),
        _ratio_check("batched append 100 B vs naive file append", 1.5,
                     R(b100, "pylog"), R(b100, "naive")),
        _ratio_check("batched append 1 KiB vs raw new-data write bandwidth, same round (MB/s)",
                     0.8, R("embedded.batched.1024", "pylog"),
                     R("embedded.batched.1024", "raw os.write"), value_of="mb_per_s"),
        _ratio_check("batched append 1 KiB vs machine new-data write, 512/128 MiB (MB/s)", 0.8,
                     R("embedded.batched.1024", "pylog"), R("machine", "write, new data"),
                     value_of="mb_per_s"),
    ]
    for key, name, target, label in (
            ("embedded.single.100", "pylog append", 1e6, "single append 100 B, rec/s"),
            ("embedded.read.100", "pylog read (", 2e6, "read as Record objects 100 B, rec/s"),
            ("embedded.read.100", "pylog read_columns", 20e6, "read_columns 100 B, rec/s")):
        r = R(key, name)
        out.append(_abs_check(label, target, r, r and r.get("records_per_s"), "{:,.0f}"))
    n, p = "server.native.100", "server.python.100"
    out += [
        _ratio_check("server produce, kcat vs redis-benchmark", 1.5,
                     R(n, "pylog", role="produce"), R(n, "Redis", role="produce")),
        _ratio_check("server consume, kcat vs redis-benchmark", 1.5,
                     R(n, "pylog", role="consume"), R(n, "Redis", role="consume")),
        _ratio_check("server produce, confluent-kafka vs redis-py", 3,
                     R(p, "pylog", role="produce"),
                     R(p, "Redis", "no persistence", role="produce")),
        _ratio_check("server consume, confluent-kafka vs redis-py", 3,
                     R(p, "pylog", role="consume"),
                     R(p, "Redis", "no persistence", role="consume")),
        _ratio_check("server produce, confluent-kafka vs nats-py", 10,
                     R(p, "pylog", role="produce"), R(p, "NATS", role="produce")),
        _ratio_check("server consume, confluent-kafka vs nats-py", 10,
                     R(p, "pylog", role="consume"), R(p, "NATS", role="consume")),
        _ratio_check("durable acks, 8 producers, server: flush.messages=1 / flush.ms=1000", 0.25,
                     R("durability.server", "pylog", "flush.messages=1"),
                     R("durability.server", "pylog", "flush.ms=1000")),
        _ratio_check("durable acks, 8 threads, embedded: flush.messages=1 / flush.ms=1000",
                     0.25, R("durability.embedded", "pylog", "flush.messages=1"),
                     R("durability.embedded", "pylog", "flush.ms=1000")),
    ]
    r = R("recovery", "pylog.open")
    out.append(_abs_check("recovery scan after kill -9, GiB/s", 1.0, r,
                          r and r.get("mb_per_s", 0) * 1e6 / 2**30, "{:.2f} GiB/s"))
    r = R("recovery", "pylog-fsck")
    out.append(_abs_check("pylog-fsck verify, whole command, GiB/s", 1.0, r,
                          r and r.get("mb_per_s", 0) * 1e6 / 2**30, "{:.2f} GiB/s"))
    out.append(_abs_check("pylog-fsck verify, scan only (its --json seconds), GiB/s", 1.0, r,
                          r and r.get("scan_gib_s"), "{:.2f} GiB/s"))
    r = R("restart", "pylog.open")
    segs = next((g["count"] for g in results["groups"] if g["key"] == "restart"), 0)
    if r and segs != 1000:
        r = dict(r, status="n/a", reason=f"measured with {segs} segments "
                 f"({r.get('seconds', 0):.3f} s); the figure is for 1,000 (full run)")
    out.append(_abs_check("restart after clean stop, 1,000 segments, s", 0.3, r,
                          r and r.get("seconds"), "{:.3f} s", lower_is_better=True))
    s = results["servers"].get("pylog", {})
    srow = dict(status=s.get("status", "n/a"), reason=s.get("reason", "not started"))
    out.append(_abs_check("pylog-server accepting connections after start, s", 0.5, srow,
                          s.get("startup_s"), "{:.2f} s", lower_is_better=True))
    out.append(_abs_check("pylog-server idle RSS, MiB", 60, srow, s.get("rss_mib_idle"),
                          "{:.0f} MiB", lower_is_better=True))
    return out


# ---- output --------------------------------------------------------------------------------

def _fmt_row(g, r) -> str:
    head = f"  {r['name'][:40]:40} {r['policy'][:22]:22}"
    if r["status"] != "ok":
        return head + f" n/a: {r['reason']}"
    cpu_s = "" if r["cpu_server_s"] is None else f"{r['cpu_server_s']:.2f}"
    ratio = f"{r['pylog_ratio']:.2f}" if "pylog_ratio" in r else ""
    if g["unit"] == "seconds":
        main = f"{r['seconds']:>12.3f} s {'':>6}"
    elif g["unit"] == "MiB" and "latency_ms" in r:
        main = f"{r['latency_ms']['p50']:>9.3f} ms p50 {'':>3}"
    elif g["unit"] == "MiB":
        main = f"{'':>14} {r['spread_pct']:>5.0f}%"
    else:
        main = f"{r['records_per_s']:>14,.0f} {r['spread_pct']:>5.0f}%"
    line = (head + f" {main} {r['mb_per_s']:>9,.1f} {r['cpu_client_s']:>7.2f} {cpu_s:>7}"
            f" {ratio:>7}")
    if "latency_ms" in r and g["unit"] != "MiB":
        lat = r["latency_ms"]
        line += (f"\n  {'':40} {'':22} end-to-end p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f}"
                 f" ms, p99.9 {lat['p999']:.2f} ms, max {lat['max']:.1f} ms")
    if r.get("note"):
        line += f"   ({r['note'][:80]})"
    if r.get("reason"):
        line += f"   [{r['reason'][:80]}]"
    return line


def table(results) -> str:
    m = results["meta"]
    mc = m["machine"]
    lines = [f"pylog bench.compare -- {m['date']}, {m['command']}, {m['rounds']} round(s), "
             f"commit {m['git_commit']}",
             f"machine: {mc['cpu']}, {mc['cores']} cores, {mc['memory_gib']} GiB, Linux "
             f"{mc['kernel']}, Python {mc['python']}, data on {mc['data_fs']}, "
             f"load {mc['load_avg'][0]:.2f}",
             "medians over rounds; spread = (max - min) / 2 / median; pylog× = median over rounds "
             "of pylog's rate / this row's rate in the same round (same group and role)", "",
             f"  {'contender':40} {'policy':22} {'records/s':>14} {'±':>6} {'MB/s':>9} "
             f"{'CPU cli':>7} {'CPU srv':>7} {'pylog×':>7}"]
    for g in results["groups"]:
        lines.append(g["title"] + ("" if g["unit"] == "seconds" else
                                   f" ({g['count']:,} {g['unit']})"))
        lines += [_fmt_row(g, r) for r in g["rows"]]
    lines += ["", "servers: " + ", ".join(
        f"{k} " + (f"up in {v['startup_s']:.2f} s, idle RSS {v['rss_mib_idle']:.0f} MiB"
                   if v["status"] == "ok" else f"n/a ({v['reason'][:60]})")
        for k, v in sorted(results["servers"].items())), "",
        "DESIGN §7 figures:"]
    for c in results["checks"]:
        mark = {True: "met    ", False: "NOT met", None: "n/a    "}[c["met"]]
        lines.append(f"  [{mark}] {c['figure']}: {c['measured']} (target {c['target']:g})")
    return "\n".join(lines)


def markdown(results) -> str:
    """The table as Markdown (for the README's Performance section): one row per contender."""
    m, mc = results["meta"], results["meta"]["machine"]
    lines = [f"Measured {m['date']} with `{m['command']}` ({m['rounds']} rounds, medians; "
             f"commit {m['git_commit']}) on {mc['cpu']}, {mc['cores']} cores, "
             f"{mc['memory_gib']} GiB, Linux {mc['kernel']}, Python {mc['python']}, "
             f"data on {mc['data_fs']} (load average {mc['load_avg'][0]:.1f}).", "",
             "| group | contender | policy | records/s | ± | MB/s | CPU client s | "
             "CPU server s | pylog× |", "|---|---|---|--:|--:|--:|--:|--:|--:|"]
    for g in results["groups"]:
        for i, r in enumerate(g["rows"]):
            cells = [g["title"] if i == 0 else "", r["name"], r["policy"] or "–"]
            if r["status"] != "ok":
                cells += [f"n/a: {r['reason'][:90]}", "", "", "", "", ""]
            else:
                if g["unit"] == "seconds":
                    main = f"{r['seconds']:.3f} s"
                elif "latency_ms" in r:
                    lat = r["latency_ms"]
                    main = " / ".join(f"{k.replace('p999', 'p99.9')} {v:.2f}"
                                      for k, v in lat.items()) + " ms"
                elif g["unit"] == "MiB":
                    main = ""
                else:
                    main = f"{r['records_per_s']:,.0f}"
                srv = "" if r["cpu_server_s"] is None else f"{r['cpu_server_s']:.2f}"
                ratio = f"{r['pylog_ratio']:.2f}" if "pylog_ratio" in r else ""
                cells += [main, f"{r['spread_pct']:.0f}%", f"{r['mb_per_s']:,.1f}",
                          f"{r['cpu_client_s']:.2f}", srv, ratio]
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines += ["", "DESIGN §7 figures:", ""]
    for c in results["checks"]:
        mark = {True: "met", False: "**not met**", None: "n/a"}[c["met"]]
        lines.append(f"- {mark}: {c['figure']} -- {c['measured']} (target {c['target']:g})")
    return "\n".join(lines)


def write(results, text: str, out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "results.txt").write_text(text + "\n")
    (out / "results.md").write_text(markdown(results) + "\n")
    try:
        from bench.chart import chart
        chart(results, out / "results.png")
    except ImportError as e:
        print(f"no chart: {e}")
