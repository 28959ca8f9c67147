"""C core file handling: pl_mfile growth/seal/truncate, segment create/open errors,
index checks against the log, and decode's flow-control stops."""
from __future__ import annotations

import gzip
import os

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder

from core_segment_util import CoreSegment, seg_paths
from pylog import errors
from pylog._ffi import Columns, check, decode_records, ffi, lib, segment_config


def open_mfile(path, reserved=1 << 16, chunk=4096, create=lib.PL_MF_CREATE, writable=1):
    mf = ffi.new("pl_mfile *")
    check(lib.pl_mfile_open(mf, os.fsencode(path), create, writable, reserved, chunk), path)
    return mf


def release(mf):
    lib.pl_mfile_close(mf)
    lib.pl_io_unmap(mf.map, mf.reserved)


def test_mfile_grows_in_chunks_within_its_reservation(tmp_path):
    p = tmp_path / "f"
    mf = open_mfile(p, reserved=40000, chunk=8192)
    assert mf.reserved == 40960 and mf.allocated == 0 and mf.limit == mf.reserved
    check(lib.pl_mfile_ensure(mf, 1))
    assert mf.allocated == 8192 and os.path.getsize(p) == 8192
    check(lib.pl_mfile_ensure(mf, 40000))
    assert mf.allocated == 40960
    assert lib.pl_mfile_ensure(mf, 40961) == lib.PL_EFULL
    release(mf)


def test_mfile_truncate_zeroes_and_seal_trims(tmp_path):
    p = tmp_path / "f"
    mf = open_mfile(p)
    check(lib.pl_mfile_ensure(mf, 10000))
    ffi.memmove(mf.map, b"\xab" * 10000, 10000)
    mf.size = 10000
    check(lib.pl_mfile_sync(mf))
    assert mf.synced == 10000
    check(lib.pl_mfile_truncate(mf, 3000))
    assert mf.size == 3000 and mf.synced == 3000
    assert p.read_bytes()[:3000] == b"\xab" * 3000 and not any(p.read_bytes()[3000:])
    assert lib.pl_mfile_truncate(mf, 5000) == lib.PL_EINVAL
    check(lib.pl_mfile_seal(mf))
    check(lib.pl_mfile_seal(mf))                        # idempotent
    assert os.path.getsize(p) == 3000 and not mf.writable
    assert lib.pl_mfile_ensure(mf, 4000) == lib.PL_ECLOSED
    assert bytes(ffi.buffer(mf.map, 3000)) == b"\xab" * 3000      # still readable
    release(mf)


def test_mfile_open_missing_and_exclusive(tmp_path):
    mf = ffi.new("pl_mfile *")
    assert lib.pl_mfile_open(mf, os.fsencode(tmp_path / "nope"), lib.PL_MF_EXISTING, 1,
                             4096, 0) == 2                                  # ENOENT
    release(open_mfile(tmp_path / "x"))
    assert lib.pl_mfile_open(mf, os.fsencode(tmp_path / "x"), lib.PL_MF_EXCL, 1,
                             4096, 0) == 17                                 # EEXIST
    ro = open_mfile(tmp_path / "x", create=lib.PL_MF_EXISTING, writable=0)
    assert ro.map == ffi.NULL and ro.reserved == 0
    release(ro)


def test_segment_create_errors_name_the_file_and_leave_nothing(tmp_path):
    s = CoreSegment(tmp_path)
    s.close()
    with pytest.raises(errors.StorageError, match="File exists"):
        CoreSegment(tmp_path)
    with pytest.raises(errors.StorageError, match="No such file"):
        CoreSegment(tmp_path, base=5, create=False)
    paths = [os.fsencode(p) for p in seg_paths(tmp_path, 9)]
    paths[2] = os.fsencode(tmp_path / "missing-dir" / "x.timeindex")
    seg = ffi.new("pl_segment *")
    assert lib.pl_segment_create(seg, *paths, 9, segment_config()) == 2
    assert not os.path.exists(paths[0]) and not os.path.exists(paths[1])
    bad_cfg = segment_config(segment_bytes=1 << 40)
    assert lib.pl_segment_create(seg, *paths[:2], paths[0] + b".t", 9, bad_cfg) == lib.PL_EINVAL


def test_index_check_against_log_finds_entry_not_at_batch_start(tmp_path):
    s = CoreSegment(tmp_path, index_interval_bytes=50)
    for i in range(30):
        s.append_values([b"v" * 30, b"w"], timestamp=i)
    bad = ffi.new("int64_t *")
    idx = ffi.addressof(s.seg, "index")
    log = ffi.addressof(s.seg, "log")
    assert lib.pl_index_check(idx, 0, s.next_offset, log, bad) == 0 and bad[0] == -1
    entries = s.index_entries()
    assert len(entries) > 5
    s.seg.index.map[5 * 8 + 7] += 3                    # entry 5 now points mid-batch
    assert lib.pl_index_check(idx, 0, s.next_offset, log, bad) == lib.PL_EBADOFFSET
    assert bad[0] == 5
    assert lib.pl_index_check(idx, 0, entries[3][0], ffi.NULL, bad) == lib.PL_EBADOFFSET
    assert bad[0] == 3                                  # offset >= next_offset


def gzip_batch(n: int) -> bytes:
    b = DefaultRecordBatchBuilder(2, 1, False, -1, -1, -1, 1 << 30)
    for i in range(n):
        b.append(i, 1000 + i, None, b"compressible " * 20, [])
    return bytes(b.build())


def test_decode_stops_at_compressed_batch_then_caller_inflates(tmp_path):
    s = CoreSegment(tmp_path)
    s.append_values([b"a", b"b"])
    s.append_raw(gzip_batch(3))
    s.append_values([b"c"])
    batches = s.batches()
    cols = Columns(100)
    pos = ffi.new("uint64_t *")
    rc = lib.pl_segment_decode(s.seg, 0, s.size, 0, cols.ptr, pos)
    assert rc == lib.PL_ECOMPRESSED and pos[0] == batches[1][0] and cols.count == 2
    h = ffi.new("pl_batch_header *")
    nxt = ffi.new("uint64_t *")
    check(lib.pl_segment_batch_at(s.seg, pos[0], h, nxt))
    raw = s.log_bytes()[pos[0] + 61:nxt[0]]
    inflated = gzip.decompress(raw)
    check(decode_records(inflated, h, 0, cols))
    assert list(cols.offsets[: cols.count]) == [0, 1, 2, 3, 4]
    check(lib.pl_segment_decode(s.seg, nxt[0], s.size, 0, cols.ptr, pos))
    assert list(cols.offsets[: cols.count]) == [0, 1, 2, 3, 4, 5] and pos[0] == s.size


def test_decode_stops_when_columns_are_full(tmp_path):
    s = CoreSegment(tmp_path)
    for i in range(4):
        s.append_values([b"x%d" % j for j in range(3)])
    batches = s.batches()
    cols = Columns(7)
    pos = ffi.new("uint64_t *")
    rc = lib.pl_segment_decode(s.seg, 0, s.size, 1, cols.ptr, pos)
    assert rc == lib.PL_ENOSPACE_CAP and pos[0] == batches[2][0]
    assert list(cols.offsets[: cols.count]) == [1, 2, 3, 4, 5]
    assert lib.pl_segment_decode(s.seg, 0, s.size + 1, 0, cols.ptr, pos) == lib.PL_ERANGE


def test_sync_of_segment_is_a_barrier_on_all_three_files(tmp_path):
    s = CoreSegment(tmp_path, index_interval_bytes=0)
    s.append_values([b"x"])
    s.append_values([b"y"])
    assert s.seg.log.synced == 0
    check(lib.pl_segment_sync(s.seg))
    assert s.seg.log.synced == s.size and s.seg.index.synced == s.seg.index.size == 8
    s.close()
