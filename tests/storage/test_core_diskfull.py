"""A full disk is an error code, never SIGBUS: the C core fallocates before any
store lands in new space (research/reliability.md section 4).  Uses a 2 MiB tmpfs
(needs root or a user namespace); skipped with the reason when it cannot mount."""
from __future__ import annotations

import os

import pytest

from core_segment_util import CoreSegment
from pylog import errors


@pytest.mark.parametrize("small_fs", [2 << 20], indirect=True)
def test_full_disk_append_raises_storage_error_then_resumes(small_fs):
    filler = small_fs / "filler"
    filler.write_bytes(b"\1" * (1 << 20))          # leave about 1 MiB free
    s = CoreSegment(small_fs, segment_bytes=8 << 20, grow_chunk=256 << 10,
                    index_interval_bytes=4096)
    value = os.urandom(1000)
    written = 0
    with pytest.raises(errors.StorageError, match="No space left") as ei:
        for _ in range(4000):
            s.append_values([value] * 4, timestamp=written)
            written += 4
    assert ei.value.os_errno == 28
    assert 100 < written < 4000
    size_before = s.size
    cols = s.decode(capacity=written + 1)          # data before the error is intact
    assert cols.count == written and s.next_offset == written
    assert all(v == value for v in s.values(cols))
    with pytest.raises(errors.StorageError):      # still full: still an error, no SIGBUS
        s.append_values([value] * 4)
    assert s.size == size_before
    filler.unlink()                                 # space comes back: appends resume
    for _ in range(50):
        s.append_values([value] * 4, timestamp=written)
        written += 4
    assert s.decode(capacity=written + 1).count == written
    s.close()
    assert os.path.getsize(s.paths[0]) == s.size
