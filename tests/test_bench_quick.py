"""The benchmark runner keeps working: `python -m bench.compare --tiny` end to end.

Runs the comparison with a few thousand records against the real servers that are installed
(redis-server, nats-server, kcat, pylog-server); whatever is missing shows as "n/a" rows, which
is a valid outcome here.  No timing is asserted -- speed lives in bench/, not in tests.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROW_KEYS = {"name", "policy", "role", "status", "runs"}
OK_KEYS = {"records_per_s", "mb_per_s", "spread_pct", "cpu_client_s", "cpu_server_s"}


@pytest.mark.timeout(120)
def test_compare_tiny_writes_table_json_and_chart(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--tiny", "--no-install", "--out", str(out),
         "--data-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DESIGN §7 figures:" in proc.stdout

    results = json.loads((out / "results.json").read_text())
    assert {"meta", "servers", "groups", "checks"} <= results.keys()
    assert results["meta"]["profile"] == "tiny"
    keys = {g["key"] for g in results["groups"]}
    assert {"machine", "embedded.batched.100", "embedded.batched.1024", "server.native.100",
            "server.python.100", "server.e2e.100", "durability.server"} <= keys
    for g in results["groups"]:
        for row in g["rows"]:
            assert ROW_KEYS <= row.keys(), row
            if row["status"] == "ok":
                assert OK_KEYS <= row.keys(), row
                assert row["records_per_s"] > 0
            else:
                assert row["status"] == "n/a" and row["reason"], row
    # The peers that need nothing of pylog ran for real.
    machine = next(g for g in results["groups"] if g["key"] == "machine")
    assert all(r["status"] == "ok" for r in machine["rows"])
    naive = next(g for g in results["groups"] if g["key"] == "embedded.batched.100")["rows"]
    assert any(r["name"].startswith("naive") and r["status"] == "ok" for r in naive)
    for check in results["checks"]:
        assert {"figure", "target", "measured", "met"} <= check.keys()
    png = (out / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert (out / "results.txt").read_text().startswith("pylog bench.compare")


def test_fetch_sessions_bench_runs_and_sessions_send_fewer_bytes(capsys):
    from bench import fetch_sessions
    fetch_sessions.main(["--partitions", "50", "--fetches", "20"])
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()
            if line.startswith(("sessionless", "session "))}
    assert float(rows["session"][0]) < float(rows["sessionless"][0]) / 5


@pytest.mark.timeout(120)
def test_queue_bench_pylog_contenders_ack_every_message(tmp_path):
    """The work-queue group's pylog rows (bench/clients_queues.py), 2,000 messages each:
    every message is acked exactly once (the driver raises otherwise); the peers run in
    `python -m bench.compare --only queues`."""
    from bench._job import run_job
    from pylog.testing import start_server
    a = dict(consumers=3, count=2000, mode="prefill")
    out = run_job("bench.clients_queues:embedded_queue", dict(a, dir=str(tmp_path / "emb")),
                  timeout=100)
    assert out["records"] == 2000 and sum(out["per_consumer"]) == 2000
    srv = start_server(tmp_path / "srv")
    try:
        out = run_job("bench.clients_queues:kafka_share",
                      dict(a, bootstrap=srv.bootstrap, topic="q-explicit", ack="explicit"),
                      timeout=100)
        assert sum(out["per_consumer"]) == 2000, out
        out = run_job("bench.clients_queues:kafka_share",
                      dict(consumers=1, mode="paced", rate=500, seconds=0.5,
                           bootstrap=srv.bootstrap, topic="q-paced", ack="implicit"),
                      timeout=100)
        assert out["records"] == 250 and out["latency_ms"]["p99"] > 0
    finally:
        assert srv.stop() == 0, srv.log_text()[-2000:]
