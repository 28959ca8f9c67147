"""The chart of a bench.compare run: one panel per group, pylog in orange, peers in blue.

Bars start at zero (ratios are read off the bar lengths), whiskers span the rounds' min..max,
each peer bar is labelled with "pylog N.NN×"; the end-to-end latency group shows p50, p99 and
p99.9 instead of a rate.
"""
from __future__ import annotations

from pathlib import Path


def _panel(ax, g) -> None:
    """One group as horizontal bars from zero: median with min..max whiskers."""
    rows = g["rows"]
    if ".e2e." in g["key"]:
        _latency_panel(ax, g)
        return
    if g["unit"] == "seconds":
        vals, unit = [r.get("seconds", 0) for r in rows], "seconds (lower is better)"
        lo = hi = vals
    elif g["unit"] == "MiB":
        rows = [r for r in rows if "latency_ms" not in r]
        vals, unit = [r.get("mb_per_s", 0) for r in rows], "MB/s"
        lo = hi = vals
    else:
        vals, unit = [r.get("records_per_s", 0) for r in rows], "records/s"
        lo, hi = [r.get("min", 0) for r in rows], [r.get("max", 0) for r in rows]
    colors = ["tab:orange" if r["name"].startswith("pylog") else "tab:blue" for r in rows]
    err = [[max(0, v - a) for v, a in zip(vals, lo)], [max(0, b - v) for v, b in zip(vals, hi)]]
    ax.barh(range(len(rows)), vals, xerr=err, color=colors, capsize=3)
    ax.set_yticks(range(len(rows)), [f"{r['name'][:38]} [{r['policy'][:20]}]" for r in rows],
                  fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(unit, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    for i, r in enumerate(rows):
        if r["status"] != "ok":
            ax.text(0.01, i, "n/a: " + r["reason"][:70], fontsize=6, va="center",
                    transform=ax.get_yaxis_transform())
        elif "pylog_ratio" in r and not r["name"].startswith("pylog"):
            ax.text(vals[i], i, f"  pylog {r['pylog_ratio']:.2f}×", fontsize=6, va="center")


def _latency_panel(ax, g) -> None:
    rows = g["rows"]
    keys = ("p50", "p99", "p999")
    width = 0.25
    for j, k in enumerate(keys):
        vals = [r.get("latency_ms", {}).get(k, 0) for r in rows]
        ax.barh([i + (j - 1) * width for i in range(len(rows))], vals, height=width,
                label=k.replace("p999", "p99.9"))
    ax.set_yticks(range(len(rows)), [f"{r['name'][:38]} [{r['policy'][:20]}]" for r in rows],
                  fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("end-to-end latency, ms (lower is better)", fontsize=8)
    ax.legend(fontsize=7)
    for i, r in enumerate(rows):
        if r["status"] != "ok":
            ax.text(0.01, i, "n/a: " + r["reason"][:70], fontsize=6, va="center",
                    transform=ax.get_yaxis_transform())


def chart(results, path: Path) -> None:
    """One panel per group (machine limits first), pylog in orange, peers in blue."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = [g for g in results["groups"] if g["rows"]]
    ncols = 2
    nrows = max(1, (len(groups) + 1) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(18, 2.8 * nrows), squeeze=False,
                             layout="constrained")
    for ax, g in zip(axes.flat, groups):
        _panel(ax, g)
        ax.set_title(g["title"][:95], fontsize=9)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    m = results["meta"]
    fig.suptitle(f"pylog vs peers and machine limits -- {m['date']} ({m['command']}, "
                 f"{m['rounds']} rounds, medians, whiskers min..max)", fontsize=11)
    fig.savefig(path, dpi=80)
    plt.close(fig)
