"""kill -9 of the server under three ShareConsumers (tools/share_crashloop.py, CI tier):
no record whose acceptance was confirmed comes back, every other record does, nothing
is lost, delivery counts never go down.  The long tier: ``--cycles 50``."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import share_crashloop  # noqa: E402


def test_share_groups_survive_server_kill_9(tmp_path):
    report = share_crashloop.run(cycles=3, records=6000, consumers=3, seed=1234,
                                 workdir=tmp_path, work_ms=1.0)
    assert report["redelivered_after_ack"] == 0, report
    assert report["count_went_down"] == 0, report
    assert report["lost"] == 0, report
    assert report["clean_stop"], report
    assert report["delivered"] >= 6000, report
