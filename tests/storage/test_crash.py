"""kill -9 of a writer process mid-appends loses no acknowledged record."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import pylog

WRITER = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def _run_and_kill(data: Path, policy: str, rng: random.Random) -> list[tuple[int, int, bytes]]:
    proc = subprocess.Popen([sys.executable, str(WRITER), str(data), policy],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(
        lambda: proc.stdout.read1(1 << 16), b"")))
    reader.start()                  # drain the pipe so the writer never blocks on it
    deadline = time.time() + 60
    while not chunks and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)            # the first ack
    time.sleep(rng.uniform(0.05, 0.4))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    reader.join(timeout=30)
    out = b"".join(chunks)
    assert out, proc.stderr.read().decode()
    proc.stderr.close()
    lines = out.decode().split("\n")
    lines.pop()                     # after the last newline: empty, or cut by the kill
    acked = []
    for line in lines:
        part, off, value = line.split()
        acked.append((int(part), int(off), bytes.fromhex(value)))
    return acked


@pytest.mark.parametrize("policy", ["durable", "interval", "never"])
def test_kill_9_mid_appends_loses_no_acknowledged_record(tmp_path, policy):
    rng = random.Random(policy)
    data = tmp_path / "data"
    all_acked: dict[tuple[int, int], bytes] = {}
    for cycle in range(3):
        acked = _run_and_kill(data, policy, rng)
        assert acked, "the writer acknowledged nothing"
        for part, off, value in acked:
            all_acked[(part, off)] = value
        with pylog.open(data) as log:
            assert log.recovery_reports and all(
                r.mode == "unclean" for r in log.recovery_reports)
            t = log.topic("crash")
            stored = {}
            for i in range(t.num_partitions):
                p = t.partition(i)
                for r in p.iter(0):
                    stored[(i, r.offset)] = r.value
                assert sorted(o for (pi, o) in stored if pi == i) == \
                    list(range(p.log_end_offset))     # offsets contiguous
            missing = [k for k in all_acked if stored.get(k) != all_acked[k]]
            assert not missing, f"cycle {cycle}: {len(missing)} acked records lost"
