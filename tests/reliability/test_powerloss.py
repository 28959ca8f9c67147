"""Simulated power loss at every barrier (tools/powerloss.py, powerloss_model.py).

CI tier: 1,000 crash states from two recordings (each: four writer sessions, two
ending mid-write as kill -9 does, ~800 barriers) with flush.messages=1.  Every
state: 0 acknowledged records lost or changed, 0 wrong bytes served, recovery never
fails, crashes or hangs, pylog-fsck exits 0 or 4 and --repair loses nothing.  The
long tier is ``python tools/powerloss.py --states 10000``.

KNOWN_DEFECTS are counted and printed but not failed here: each has its own xfail
test below, to be made strict when fixed.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pylog
from pylog.fsck import run as fsck_run
from pylog.records import valid_headers

ROOT = Path(__file__).resolve().parents[2]
STATES = int(os.environ.get("PYLOG_POWERLOSS_STATES", "1000"))

# Fixed: a rolled segment whose tail was never synced now records the hole as a
# lost range, and a read across it up to an empty last segment is the log end.
KNOWN_DEFECTS: set[str] = set()


def _tool(*args, timeout=600) -> dict:
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "powerloss.py"), "--json",
                        *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.stdout.strip(), p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["_code"], out["_stderr"] = p.returncode, p.stderr[-3000:]
    return out


@pytest.mark.slow
def test_power_loss_states_lose_no_acked_record_and_serve_no_corrupt_one():
    from powerloss import VIOLATIONS
    out = _tool("--states", STATES, "--seed", 7, "--states-per-recording", 500,
                "--jobs", 2)
    bad = {k: out[k] for k in VIOLATIONS if out[k] and k not in KNOWN_DEFECTS}
    assert not bad, (bad, out["failures"], out["_stderr"])
    print({k: out[k] for k in KNOWN_DEFECTS}, out["fsck_exit"], out["fsck_error_kinds"])
    assert out["states"] == STATES and out["acked_checked"] > 0
    assert out["barriers"] > 100 * out["recordings"]
    # The states did damage: pages from both sides, torn pages, torn tails recovery
    # had to cut.
    assert out["changed_pages"] > 0 and out["torn_pages"] > 0
    assert out["states_dropping_data"] > 0
    assert set(out["fsck_exit"]) <= {"0", "4"}, out["fsck_exit"]


@pytest.mark.slow
def test_power_loss_check_catches_acks_given_before_the_barrier():
    """Negative control: topics without flush.messages=1 ack before any barrier
    covers the record; the same check must then report lost records."""
    out = _tool("--states", 60, "--seed", 8, "--unsafe-acks", "--sessions", 2)
    assert out["lost"] > 0, out
    assert out["_code"] == 1


@pytest.fixture(scope="module")
def recording(module_scratch):
    from powerloss import build_shim, record
    shim = build_shim(module_scratch)
    return record(module_scratch / "rec", 99, sessions=3, appends=40, shim=shim,
                  vseed=99)


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_a_state_is_a_function_of_its_seed(recording, scratch):
    from powerloss_model import StateBuilder
    b = StateBuilder(recording)
    for i in range(20):
        k = random.Random(i).randrange(b.intervals)
        b.build(k, 1000 + i, scratch / f"a{i}")
        b.build(k, 1000 + i, scratch / f"b{i}")
        assert _tree(scratch / f"a{i}") == _tree(scratch / f"b{i}")


def test_atomically_replaced_files_are_old_or_new_never_torn(recording, scratch):
    """topic-metadata.json and the checkpoints are written tmp -> fsync -> rename:
    in every state each is absent or exactly one version the writer synced."""
    from powerloss_model import StateBuilder
    b = StateBuilder(recording)
    synced = {b._bytes(cid) for files, _ in b._durable for cid in files.values()}
    names = ("topic-metadata.json", "recovery-point-offset-checkpoint",
             "log-start-offset-checkpoint")
    seen = {n: set() for n in names}
    for i in range(300):
        d = scratch / f"s{i}"
        b.build(random.Random(i).randrange(b.intervals), i, d)
        for n in names:
            if (d / n).exists():
                data = (d / n).read_bytes()
                assert data in synced, (n, i, data[:80])
                seen[n].add(data)
        if (d / names[0]).exists():
            json.loads((d / names[0]).read_bytes())
        shutil.rmtree(d)
    # Both topics' creations were crossed (the checkpoints are written at close).
    assert len(seen[names[0]]) >= 2 and seen[names[1]], {k: len(v) for k, v in seen.items()}


def test_acks_are_journaled_with_the_barrier_that_covered_them(recording):
    """Every ack names a barrier at or after the one that made it durable: a barrier
    number that only grows per session, never past the barriers recorded."""
    assert recording.acks
    assert all(0 < a[0] <= recording.n_barriers for a in recording.acks)
    offsets = {}
    for _, topic, part, base, _, n in recording.acks:
        for o in range(base, base + n):
            assert offsets.setdefault((topic, part, o), 1) == 1   # each offset once


def test_power_cut_after_a_roll_before_the_old_tail_was_synced(scratch):
    d = scratch / "d"
    subprocess.run([sys.executable, "-c", f"""
import os, pylog
log = pylog.open({str(d)!r})
p = log.create_topic("t", 1, {{"flush.messages": 1}}).partition(0)
for i in range(5):
    p.append(b"v%d" % i)
os._exit(0)
"""], check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    # The crash state: offset 4's batch never reached segment 0; segment 5 had been
    # created and its directory fsynced, but its size (fallocate) was never synced.
    seg0 = d / "t-0" / "00000000000000000000.log"
    buf = bytearray(seg0.read_bytes())
    pos, _ = valid_headers(bytes(buf))[-1]
    buf[pos:] = bytes(len(buf) - pos)
    seg0.write_bytes(bytes(buf))
    for ext in ("log", "index", "timeindex"):
        (d / "t-0" / f"00000000000000000005.{ext}").write_bytes(b"")
    with pylog.open(str(d)) as log:
        p = log.topic("t").partition(0)
        assert [r.value for r in p.iter(0)] == [b"v0", b"v1", b"v2", b"v3"]
    assert fsck_run(str(d)).exit_code() == 0
