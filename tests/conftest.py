"""Fixtures shared by the tests (storage, broker): a small real tmpfs for full-disk cases."""
from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def small_fs(tmp_path, request):
    """A freshly mounted tmpfs of ``request.param`` bytes (default 4 MiB), for full-disk
    tests: needs root (CI runs as root); skipped with the reason when it cannot mount."""
    size = getattr(request, "param", 4 << 20)
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a {size >> 10} KiB tmpfs (needs root): "
                    f"{r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
