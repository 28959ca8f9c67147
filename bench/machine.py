"""The machine's own limits, measured in the same run as the contenders.

- new-data write bandwidth: buffered sequential writes that extend a fresh file, so every page
  is a fresh page-cache page (allocated and zeroed by the kernel).  On the VMs this runs on that
  costs far more than a memcpy, so it -- not memcpy -- is what an appending log is held against.
- rewrite bandwidth: the same writes over pages already in the page cache.
- fdatasync latency: one 4 KiB overwrite followed by fdatasync, median of several.
- memcpy bandwidth: numpy copy between two warm arrays.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from bench._job import Timer

CHUNK = 1 << 20


def _write_file(fd: int, total: int, buf: bytes) -> None:
    for _ in range(total // len(buf)):
        os.write(fd, buf)


def write_bandwidth(dir: str, mib: int) -> dict:
    """Buffered sequential writes of `mib` MiB: first into a new file, then over it again."""
    path = Path(dir) / "machine-write.bin"
    buf = os.urandom(CHUNK)
    total = mib * CHUNK
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
    try:
        with Timer() as new:
            _write_file(fd, total, buf)
        os.lseek(fd, 0, os.SEEK_SET)
        with Timer() as again:
            _write_file(fd, total, buf)
    finally:
        os.close(fd)
        path.unlink()
    return dict(records=mib, bytes=total, seconds=new.seconds, cpu_client=new.cpu,
                rewrite_seconds=again.seconds, rewrite_cpu=again.cpu)


def rewrite_bandwidth(dir: str, mib: int) -> dict:
    """Only the rewrite half of `write_bandwidth`, as its own row."""
    out = write_bandwidth(dir, mib)
    return dict(records=mib, bytes=out["bytes"], seconds=out["rewrite_seconds"],
                cpu_client=out["rewrite_cpu"])


def fdatasync_latency(dir: str, count: int = 20) -> dict:
    """Median latency of one fdatasync after a 4 KiB overwrite of an allocated file."""
    path = Path(dir) / "machine-sync.bin"
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR, 0o644)
    lat = []
    try:
        os.write(fd, b"\0" * (count * 4096))
        os.fdatasync(fd)
        block = os.urandom(4096)
        with Timer() as t:
            for i in range(count):
                os.pwrite(fd, block, i * 4096)
                t0 = time.perf_counter()
                os.fdatasync(fd)
                lat.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    lat.sort()
    return dict(records=count, bytes=count * 4096, seconds=t.seconds, cpu_client=t.cpu,
                latency_ms=dict(p50=statistics.median(lat) * 1e3,
                                max=lat[-1] * 1e3))


def memcpy_bandwidth(mib: int) -> dict:
    """numpy copy of `mib` MiB between two arrays already faulted in (best of 3)."""
    import numpy as np
    src = np.ones(mib * CHUNK, dtype=np.uint8)
    dst = np.zeros_like(src)
    best = None
    for _ in range(3):
        with Timer() as t:
            np.copyto(dst, src)
        if best is None or t.seconds < best.seconds:
            best = t
    return dict(records=mib, bytes=mib * CHUNK, seconds=best.seconds, cpu_client=best.cpu)


def raw_append(dir: str, size: int, count: int, batch: int = 1000) -> dict:
    """The filesystem's own limit for an append-only log, at the same volume and in the same
    round as the embedded contenders: one os.write of a prebuilt `batch` x `size` buffer per
    batch into a new file (fresh page-cache pages, no fsync, no per-record work at all)."""
    path = Path(dir) / "raw.log"
    buf = os.urandom(size * batch)
    full, rest = divmod(count, batch)
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_APPEND, 0o644)
    try:
        with Timer() as t:
            for _ in range(full):
                os.write(fd, buf)
            if rest:
                os.write(fd, buf[:rest * size])
    finally:
        os.close(fd)
    return dict(records=count, bytes=count * size, seconds=t.seconds, cpu_client=t.cpu)
