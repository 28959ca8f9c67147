"""bench/bench_transactions.py keeps working at CI size: every row runs and reports a
positive rate, and the transactional rows their ratios.  No timing is asserted."""
from __future__ import annotations

import json

import pytest


@pytest.mark.timeout(120)
def test_transactions_bench_runs_every_row(capsys, tmp_path):
    from bench import bench_transactions
    out = tmp_path / "transactions.md"
    assert bench_transactions.main(["--records", "2000", "--rounds", "1", "--json",
                                    "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    rows = {r["name"]: r for r in result["rows"]}
    assert list(rows) == [name for name, _ in bench_transactions.ROWS]
    assert all(r["records_per_s"] > 0 for r in rows.values()), rows
    ratios = [v for r in rows.values() for v in r["ratios"].values()]
    assert len(ratios) == 3 and all(v > 0 for v in ratios), rows
    table = out.read_text()
    assert "--records 2000 --rounds 1" in table and "| server, transactional" in table
