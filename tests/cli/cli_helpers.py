"""Assertions shared by the CLI tests."""
from __future__ import annotations

import subprocess
import time


def ok(r: subprocess.CompletedProcess) -> bytes:
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert b"Traceback" not in r.stderr
    return r.stdout


def refused(r: subprocess.CompletedProcess, code: int = 1) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert b"Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(b"pylog: ") or r.stderr.startswith(b"usage: "), r.stderr
    return r.stderr.decode()


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
