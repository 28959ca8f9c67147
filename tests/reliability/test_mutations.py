"""Randomized corruption (tools/inject.py) against pylog-fsck: every mutation is
detected and located, --repair makes the log open again with exactly the records
before the damage point (and, past it, those a salvage kept: rel_verify.check_lookups),
lookups match brute force, and a second --repair is a no-op.

CI runs MUTATIONS (default 1000) mutations in 10 seeded shards; set PYLOG_MUTATIONS
for a longer run (research/reliability.md §7 T5 asks for 10,000).
"""
from __future__ import annotations

import os
import random
import shutil

import pytest

import inject
import pylog
from pylog.fsck import EXIT_CLEAN, EXIT_CORRECTED, EXIT_UNCORRECTED, run
from pylog.records import encode_batch
from rel_verify import check_lookups, snapshot

MUTATIONS = int(os.environ.get("PYLOG_MUTATIONS", "1000"))
SHARDS = 10
CONFIG = {"segment.bytes": 12 << 10, "index.interval.bytes": 300}


def _write(data, clean: bool, seed: int) -> dict:
    """A small log through the real engine: 2 topics, 3 partitions, ~5 segments each,
    uncompressed and compressed batches, timestamps that go back and forth."""
    rng = random.Random(seed)
    log = pylog.open(str(data))
    orders = log.create_topic("orders", 2, CONFIG)
    parts = [orders.partition(0), orders.partition(1)]
    parts.append(log.create_topic("audit.v1", 1, CONFIG).partition(0))
    ts = 1_700_000_000_000
    for p in parts:
        for b in range(45):
            n = rng.choice((1, 1, 3, 8))
            vals = [rng.randbytes(rng.choice((0, 20, 120, 400))) for _ in range(n)]
            tss = [ts + rng.randrange(-300, 500) for _ in vals]
            ts += 200
            if b % 6 == 5:
                p.append_raw(encode_batch(vals, timestamps=tss, compression=1 + b % 4))
            else:
                p.append_batch(vals, timestamps=tss)
    expected = {(p.topic, p.partition): list(p.iter(0)) for p in parts}
    if clean:
        log.close()
    else:
        log.write_checkpoints()             # as the periodic checkpoint would have
        log._simulate_crash()
    return expected


@pytest.fixture(scope="module")
def templates(module_scratch):
    out = {}
    for clean in (True, False):
        d = module_scratch / f"template-{clean}"
        out[clean] = (d, _write(d, clean, seed=int(clean)))
    return out


def _located(report, m) -> bool:
    for f in report.findings:
        if f.severity == "info" or f.file != m.file:
            continue
        if m.position is None or f.position == m.position:
            return True
    return False


def _one(templates, work, rng, stats) -> None:
    clean = rng.random() < 0.5
    src, expected = templates[clean]
    d = work / "d"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, d)
    kind = rng.choice(inject.KINDS)
    try:
        m = inject.mutate(d, kind, rng)
    except inject.NotApplicable:
        return
    stats["mutations"] += 1
    before = run(str(d))
    assert _located(before, m), (m, [f.to_json() for f in before.findings])
    if kind not in inject.REPAIRABLE:
        assert before.exit_code() == EXIT_UNCORRECTED
        return
    assert before.exit_code() in (EXIT_UNCORRECTED, EXIT_CLEAN) and \
        (before.exit_code() == EXIT_UNCORRECTED or
         any(f.fix for f in before.findings)), m
    fixed = run(str(d), repair=True)
    assert fixed.exit_code() == EXIT_CORRECTED, (m, [f.to_json() for f in fixed.findings])
    snap = snapshot(d)
    again = run(str(d), repair=True)
    assert again.exit_code() == EXIT_CLEAN, (m, [f.to_json() for f in again.findings])
    assert snapshot(d) == snap, m
    lost = {}
    if m.first_lost_offset is not None:
        lost[(m.topic, m.partition)] = m.first_lost_offset
    # Every offset and timestamp of the damaged partition on every 5th mutation, a
    # random sample otherwise (a read is ~0.5 ms; this keeps the CI tier short).
    every = stats["mutations"] % 5 == 0
    counts = check_lookups(d, expected, lost, full={(m.topic, m.partition)} if every
                           else set(), sample=25, rng=rng)
    stats["lookups"] += counts["offsets"] + counts["timestamps"]
    if every:                                   # the engine's recovery + close agree
        assert run(str(d)).exit_code() == EXIT_CLEAN, m


@pytest.mark.parametrize("shard", range(SHARDS))
def test_random_mutations_are_detected_located_and_repaired(templates, scratch, shard):
    rng = random.Random(1000 + shard)
    stats = {"mutations": 0, "lookups": 0}
    attempts = 0
    while stats["mutations"] < MUTATIONS // SHARDS:
        attempts += 1
        assert attempts < 4 * MUTATIONS, "too many inapplicable mutations"
        _one(templates, scratch, rng, stats)
    assert stats["lookups"] > 0


def test_every_kind_applies_to_both_templates(templates, scratch):
    """No kind is silently skipped: each applies to a clean and an unclean log."""
    for clean in (True, False):
        for kind in inject.KINDS:
            d = scratch / f"{kind}-{clean}"
            shutil.copytree(templates[clean][0], d)
            m = inject.mutate(d, kind, random.Random(7))
            assert _located(run(str(d)), m), m
