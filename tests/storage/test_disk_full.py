"""A full disk is an error from append, never a SIGBUS, and appends resume once space
returns (research/reliability.md T6), on a real 4 MiB tmpfs."""
from __future__ import annotations

import errno
import gc


import pylog
from pylog.errors import StorageError

CFG = {"segment.bytes": 1 << 20, "segment.index.bytes": 64 * 1024}


def _fill(p, value: bytes, limit: int = 10_000) -> StorageError:
    for _ in range(limit):
        leo = p.log_end_offset
        try:
            p.append(value)
        except StorageError as e:
            assert p.log_end_offset == leo            # nothing half-appended
            return e
    raise AssertionError("the disk never filled")


def _fill_filler(log) -> int:
    filler = log.create_topic("filler", config=CFG).partition(0)
    err = _fill(filler, b"f" * 10_000)
    assert getattr(err, "os_errno", None) == errno.ENOSPC
    assert len(list(filler.iter(0))) == filler.log_end_offset   # reads still work
    return filler.log_end_offset


def test_full_disk_is_a_storage_error_and_appends_resume_after_space_returns(small_fs):
    log = pylog.open(small_fs / "data")
    try:
        keep = log.create_topic("keep", config=CFG).partition(0)
        keep.append(b"k-before")
        assert _fill_filler(log) > 100
        _fill(keep, b"k" * 10_000)                    # the other topic is full too
        n_keep = keep.log_end_offset
        assert [r.value for r in keep.read(0, 1)] == [b"k-before"]
        log.delete_topic("filler")                    # frees the space (no refs left)
        gc.collect()
        for i in range(50):
            keep.append(b"k-after-%d" % i)
        assert keep.log_end_offset == n_keep + 50
        values = [r.value for r in keep.iter(0)]
        assert values[0] == b"k-before" and values[-1] == b"k-after-49"
    finally:
        log.close()
    with pylog.open(small_fs / "data") as log:
        assert log.recovery_reports[0].mode == "clean"
        assert log.topic("keep").partition(0).log_end_offset == n_keep + 50
