"""kill -9 of the server and of a consume-transform-produce app
(tools/txn_crashloop.py, CI tier): read_committed sees every input record's output
exactly once and in order, the group's offsets end at the input's end, and the
records of aborted transactions stay invisible.  The long tier: ``--cycles 50``."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import txn_crashloop  # noqa: E402


def test_consume_transform_produce_is_exactly_once_under_kill_9(tmp_path):
    report = txn_crashloop.run(cycles=3, records=4000, partitions=2, seed=1234,
                               workdir=tmp_path, batch=50, work_ms=20.0)
    assert report["drain_finished"], report
    assert report["duplicates"] == 0, report
    assert report["missing"] == 0 and report["unexpected"] == 0, report
    assert report["out_of_order"] == 0, report
    assert report["offsets_short"] == 0, report
    assert report["outputs"] == 4000, report
    assert report["uncommitted_missing"] == 0, report
    assert report["server_kills"] + report["app_kills"] >= 3, report
    assert report["clean_stop"], report
    assert report["ok"] and report["violations"] == [], report
