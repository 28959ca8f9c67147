"""Shared fixtures of the reliability tests: scratch space on tmpfs when there is
one (these tests copy and fsync many small directories; what they check is the
bytes, not the disk), and import paths for tools/."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def scratch():
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
        else None
    d = Path(tempfile.mkdtemp(prefix="pylog-rel-", dir=base))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def module_scratch():
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
        else None
    d = Path(tempfile.mkdtemp(prefix="pylog-rel-", dir=base))
    yield d
    shutil.rmtree(d, ignore_errors=True)
