"""pylog-fsck and an index file cut short (issue 18, defect 8): damage to a file is an
error (exit 4) that --repair rebuilds (exit 1), then the directory is clean (exit 0)."""
from __future__ import annotations

import json
import os

import pytest

import pylog
from pylog.fsck import main

CONFIG = {"segment.bytes": 4 << 10, "index.interval.bytes": 256}


def fill(d) -> list:
    log = pylog.open(str(d))
    p = log.create_topic("t", 1, CONFIG).partition(0)
    for i in range(300):
        p.append(b"v%03d" % i * 4, timestamp=1_000_000 + i)
    want = [(r.offset, r.value) for r in p.iter()]
    log.close()
    return want


@pytest.mark.parametrize("suffix,entry", [(".index", 8), (".timeindex", 12)])
@pytest.mark.parametrize("keep", ["half", "none", "all-but-one"])
def test_a_truncated_index_is_an_error_repair_fixes(tmp_path, capsys, suffix, entry, keep):
    d = tmp_path / "d"
    want = fill(d)
    victim = sorted((d / "t-0").glob("*" + suffix))[1]        # a sealed segment's
    n = victim.stat().st_size // entry
    assert n >= 4
    os.truncate(victim, {"half": n // 2, "none": 0, "all-but-one": n - 1}[keep] * entry)
    assert main([str(d), "--json"]) == 4
    found = json.loads(capsys.readouterr().out)["findings"]
    errors = [f for f in found if f["severity"] == "error"]
    assert errors and all(f["file"].endswith(victim.name) for f in errors), found
    assert main([str(d), "--repair"]) == 1
    assert victim.stat().st_size == n * entry
    capsys.readouterr()
    assert main([str(d)]) == 0
    with pylog.open(str(d)) as log:
        assert [(r.offset, r.value) for r in log.partition("t", 0).iter()] == want
