"""tools/dumplog.py and tools/inject.py as command-line tools."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pylog

ROOT = Path(__file__).resolve().parents[2]


def _tool(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _log(d: Path) -> Path:
    with pylog.open(str(d)) as log:
        p = log.create_topic("t", 1, {"index.interval.bytes": 100}).partition(0)
        for i in range(8):
            p.append_batch([b"hello%d" % i, b"x" * 50], keys=[b"k", None],
                           headers=[[("h", b"v")], []])
    return d / "t-0"


def test_dumplog_prints_batches_records_and_index_entries(scratch):
    pdir = _log(scratch / "d")
    r = _tool("dumplog.py", pdir, "--print-data-log")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("isvalid: true") == 8
    assert "| offset: 15 " in r.stdout and "payload: hello7" in r.stdout
    assert "offset: 3 position: 136" in r.stdout and "<--" not in r.stdout
    lines = [json.loads(x) for x in _tool("dumplog.py", pdir / "00000000000000000000.log",
                                          "--json").stdout.splitlines()[1:]]
    assert [x["baseOffset"] for x in lines] == list(range(0, 16, 2))


def test_dumplog_stops_at_the_first_invalid_batch(scratch):
    pdir = _log(scratch / "d")
    r = _tool("inject.py", scratch / "d", "flip-crc", "--seed", "3", "--json")
    m = json.loads(r.stdout)
    out = _tool("dumplog.py", pdir / "00000000000000000000.log").stdout
    assert f"Found invalid batch at position {m['position']}" in out
    assert "non-zero bytes" in out


def test_inject_lists_its_kinds_and_refuses_unknown_ones(scratch):
    kinds = _tool("inject.py", scratch, "list").stdout.split()
    assert "tear" in kinds and "timeindex-zero-pad" in kinds and len(kinds) >= 25
    _log(scratch / "d")
    r = _tool("inject.py", scratch / "d", "bogus")
    assert r.returncode == 16 and "unknown kind" in r.stderr and "Traceback" not in r.stderr
