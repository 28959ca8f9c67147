"""CI tier of tools/auth_flood.py: 1,000 failed SASL authentications over 100 concurrent
connections are all refused (58, then closed), the server's RSS stays within 20 % and it
keeps serving a good client (latency is measured by the tool, not asserted here)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import auth_flood  # noqa: E402


def test_failed_authentications_are_refused_and_cost_little(tmp_path):
    r = auth_flood.run(attempts=1000, concurrency=100, samples=50, workdir=tmp_path)
    assert r["flood"]["refused"] == 1000, r
    assert r["rss_ratio"] < 1.2, r
    assert r["after"]["n"] >= 1 and r["clean_stop"], r
