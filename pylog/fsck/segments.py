"""Checks of one segment: the ``.log`` batches, the ``.index`` and the ``.timeindex``.

The ``.log`` is read through a read-only mmap and every batch is validated by the C
core (``pl_batch_validate``: length bounds, magic, CRC-32C, recordsCount vs
lastOffsetDelta), then the offset chain (FORMAT.md rule V8) and timestamps are
checked here.  The scan stops at the first invalid batch, as recovery does; what
follows is either zero fill (preallocated space) or a torn/corrupt tail.

The indexes are caches, so they are judged against the batches just scanned:

- ``.index``: every entry must name a batch of the valid prefix (position = its
  first byte, relativeOffset = its last offset - baseOffset), both fields strictly
  increasing, and the entries must be exactly the ones the ``index.interval.bytes``
  rule gives (FORMAT.md section 5 rule 2), since recovery rebuilds with that rule.
- ``.timeindex``: timestamps strictly increasing, offsets non-decreasing; every entry
  must be a (running max timestamp, offset of the batch that set it) pair of the
  segment, the rule's entries must all be present (recovery may add one more entry
  per unclean open, so extra valid entries are accepted), and a sealed segment's last
  entry holds its largest timestamp (section 6 rule 3).
"""
from __future__ import annotations

import mmap
import os
import struct

import numpy as np

from pylog import _ffi
from pylog._ffi import ffi, lib
from pylog.errors import CorruptRecordError
from pylog.fsck.model import ERROR, INFO, WARNING, Finding, SegmentScan
from pylog.records import validate_batch

__all__ = ["scan_segment_log", "check_index", "check_timeindex", "expected_index",
           "expected_timeindex", "read_entries", "INDEX_DTYPE", "TIMEINDEX_DTYPE",
           "last_nonzero_end"]

INDEX_DTYPE = np.dtype([("rel", ">u4"), ("pos", ">u4")])
TIMEINDEX_DTYPE = np.dtype([("ts", ">i8"), ("rel", ">u4")])
_INT32_MAX = 2**31 - 1
_KIND = {lib.PL_ETRUNCATED: "torn-batch", lib.PL_EBADLEN: "bad-length",
         lib.PL_EBADMAGIC: "bad-magic", lib.PL_EBADCRC: "bad-crc",
         lib.PL_EBADOFFSET: "bad-offset", lib.PL_EBADRECORD: "bad-records"}
_CHUNK = 1 << 20


def last_nonzero_end(mm, lo: int, hi: int) -> int:
    """End of the last non-zero byte in mm[lo:hi] (lo if all zero), scanning back in
    1 MiB chunks so a large zero tail costs no big copies."""
    while hi > lo:
        start = max(lo, hi - _CHUNK)
        chunk = np.frombuffer(mm, dtype=np.uint8, count=hi - start, offset=start)
        nz = np.flatnonzero(chunk)
        if len(nz):
            return start + int(nz[-1]) + 1
        hi = start
    return lo


class _Ctx:
    """Where findings of one segment go and how they are labelled."""

    def __init__(self, findings: list, topic: str, partition: int, rel_dir: str):
        self.findings, self.topic, self.partition, self.rel_dir = (findings, topic,
                                                                   partition, rel_dir)

    def add(self, severity, kind, message, file, position=None, offsets=None, fix=None):
        f = Finding(severity, kind, message, self.topic, self.partition,
                    f"{self.rel_dir}/{file}", position, offsets, fix)
        self.findings.append(f)
        return f


def scan_segment_log(path: str, seg: SegmentScan, ctx: _Ctx, *, deep: bool,
                     is_last: bool, sealed: bool, live: bool) -> None:
    """Fill ``seg`` from the .log at ``path`` and add findings about its batches.

    ``sealed``: the segment must be trimmed to its batches (not the last one, or
    the directory was closed cleanly).  ``live``: another process holds the lock, so
    the last segment's tail may be changing under us.
    """
    name = os.path.basename(path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        seg.file_size = size
        if size == 0:
            seg.next_offset = seg.base_offset
            return
        mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    try:
        status, detail = _walk(mm, size, seg, ctx, name, deep)
        seg.stop_status, seg.stop_detail = status, detail
        seg.data_end = (last_nonzero_end(mm, seg.valid_end, size)
                        if seg.valid_end < size else seg.valid_end)
    finally:
        mm.close()
    _tail_findings(seg, ctx, name, is_last=is_last, sealed=sealed, live=live)


# The 61-byte header (FORMAT.md 3.1) as a numpy record, to read many at once.
_HDR = np.dtype({"names": ["base_offset", "batch_length", "epoch", "magic", "crc",
                           "attributes", "last_offset_delta", "base_ts", "max_ts",
                           "producer_id", "producer_epoch", "base_sequence",
                           "records_count"],
                 "formats": [">i8", ">i4", ">i4", "i1", ">u4", ">i2", ">i4", ">i8", ">i8",
                             ">i8", ">i2", ">i4", ">i4"],
                 "offsets": [0, 8, 12, 16, 17, 21, 23, 27, 35, 43, 51, 53, 57],
                 "itemsize": 61})
_I32 = struct.Struct(">i")
_CHUNK_BATCHES = 1 << 18          # batches per C scan call and numpy pass (16 MiB of headers)


def _walk(mm, size: int, seg: SegmentScan, ctx: _Ctx, name: str,
          deep: bool) -> tuple[int, str]:
    """The batch loop, in two passes.

    First pass (C, pl_batch_scan: one call per _CHUNK_BATCHES batches):
    pl_batch_validate checks length bounds, magic and CRC-32C of each batch; its
    start position and a copy of its header are recorded.
    Second pass (numpy, over each chunk's headers at once): the offset chain (V8), offsets
    that fit the index, leader epoch and timestamps; the scan is cut back to the
    first batch that breaks the chain.  Returns (status, detail) of the batch it
    stopped at, (0, "") at the end.
    """
    buf = ffi.from_buffer("uint8_t[]", mm)
    positions = np.empty(_CHUNK_BATCHES, dtype=np.int64)
    headers = np.empty(_CHUNK_BATCHES * 61, dtype=np.uint8)
    c_positions = ffi.from_buffer("int64_t[]", positions)
    c_headers = ffi.from_buffer("uint8_t[]", headers)
    out = ffi.new("uint64_t[2]")
    pos = 0
    status, detail = 0, ""
    expected = seg.base_offset
    try:
        while True:
            rc = lib.pl_batch_scan(buf, size, pos, c_positions, c_headers,
                                   _CHUNK_BATCHES, out, out + 1)
            n, pos = int(out[0]), int(out[1])
            h = headers[:n * 61].view(_HDR)
            stop = _headers(positions[:n], h, seg, ctx, name, expected)
            expected = seg.lasts[-1] + 1 if len(seg.lasts) else seg.base_offset
            if stop is not None:
                status, detail, pos = stop
                break
            if rc == lib.PL_ENOSPACE_CAP:
                continue
            if rc != 0:
                status, detail = rc, f"batch at byte {pos}: {_ffi.strerror(rc)}"
            break
    finally:
        ffi.release(buf)
    if len(seg.bad_epochs) > 1:
        ctx.add(WARNING, "leader-epoch", f"{len(seg.bad_epochs)} batches in all have a "
                f"partitionLeaderEpoch other than 0", name, fix="restamp")
    if deep:
        for p, bo, last in zip(seg.positions, _bases(seg), seg.lasts):
            _deep_ok(mm, p, ctx, name, bo, last)
    seg.valid_end, seg.next_offset = pos, expected
    return status, detail


def _bases(seg: SegmentScan):
    """baseOffset of each valid batch: the previous batch's last offset + 1."""
    yield seg.base_offset
    yield from (x + 1 for x in seg.lasts[:-1])


def _headers(P, h, seg: SegmentScan, ctx: _Ctx, name: str, expected: int):
    """Second pass over the batches at positions P (all CRC-valid) whose headers are
    h: append their facts to ``seg``; returns (status, detail, position) at a broken
    chain."""
    bo = h["base_offset"].astype(np.int64)
    last = bo + h["last_offset_delta"].astype(np.int64)
    want = np.concatenate(([expected], last[:-1] + 1))
    bad = np.flatnonzero((bo != want) | (last - seg.base_offset > _INT32_MAX))
    stop = None
    if len(bad):
        k = int(bad[0])
        p = int(P[k])
        if bo[k] != want[k]:
            detail = (f"batch at byte {p} has baseOffset {int(bo[k])}, expected "
                      f"{int(want[k])}" + (" (the segment's name)" if p == 0 else ""))
        else:
            detail = f"batch at byte {p}: last offset {int(last[k])} does not fit the index"
        stop = (lib.PL_EBADOFFSET, detail, p)
        P, h, bo, last = P[:k], h[:k], bo[:k], last[:k]
    mts = h["max_ts"].astype(np.int64)
    seg.positions.frombytes(P.astype(np.int64).tobytes())
    seg.lasts.frombytes(last.tobytes())
    seg.sizes.frombytes((h["batch_length"].astype(np.int64) + 12).tobytes())
    seg.max_ts.frombytes(mts.tobytes())
    seg.records += int(h["records_count"].astype(np.int64).sum())
    _odd_batches(seg, ctx, name, P, h, bo, last, mts)
    return stop


def _odd_batches(seg, ctx, name, P, h, bo, last, mts) -> None:
    """Warnings a valid batch can still earn: a leader epoch pylog never writes (it
    lies outside the CRC), or timestamps a client sent that contradict each other."""
    epoch = h["epoch"]
    for i in np.flatnonzero(epoch != 0):
        seg.bad_epochs.append(int(P[i]))
        if len(seg.bad_epochs) == 1:
            ctx.add(WARNING, "leader-epoch", f"partitionLeaderEpoch is {int(epoch[i])}; "
                    f"pylog stamps 0 (a flipped bit outside the CRC?)", name, int(P[i]),
                    (int(bo[i]), int(last[i])), fix="restamp")
    bts = h["base_ts"].astype(np.int64)
    # 0x08 LogAppendTime; 0x40 a compacted batch's delete horizon (KIP-534): its
    # baseTimestamp is the horizon, not a record's time
    odd = np.flatnonzero((mts < -1) | ((mts < bts) & (h["attributes"] & 0x48 == 0)))
    if len(odd):
        i = int(odd[0])
        ctx.add(WARNING, "timestamps", f"{len(odd)} batch(es) with maxTimestamp below "
                f"baseTimestamp or below -1, the first with maxTimestamp {int(mts[i])} "
                f"and baseTimestamp {int(bts[i])}", name, int(P[i]),
                (int(bo[i]), int(last[i])))


def _deep_ok(mm, pos: int, ctx: _Ctx, name: str, bo: int, last: int) -> bool:
    """--deep: decode every record (C walk, or the Python decoder if compressed)."""
    n = 12 + _I32.unpack_from(mm, pos + 8)[0]
    if mm[pos + 22] & 0x07 == 0:                   # attributes' low byte: no codec
        buf = ffi.from_buffer("uint8_t[]", mm)
        try:
            rc = lib.pl_batch_validate(buf + pos, n, 0, 1, ffi.NULL)
        finally:
            ffi.release(buf)
        if rc == 0:
            return True
        msg = f"records of the batch do not parse: {_ffi.strerror(rc)}"
    else:
        try:
            validate_batch(memoryview(mm)[pos:pos + n], 0, deep=True)
            return True
        except CorruptRecordError as e:
            msg = f"records of the compressed batch do not decode: {e}"
    ctx.add(ERROR, "bad-records", msg, name, pos, (bo, last))
    return False


def _tail_findings(seg: SegmentScan, ctx: _Ctx, name: str, *, is_last: bool,
                   sealed: bool, live: bool) -> None:
    zero_tail = seg.file_size - seg.valid_end
    if seg.corrupt_tail:
        dropped = seg.data_end - seg.valid_end
        kind = _KIND.get(seg.stop_status, "bad-batch")
        if live and is_last:
            ctx.add(INFO, "tail-in-progress", f"{seg.stop_detail}; the directory is in "
                    f"use, so this may be a write in progress", name, seg.valid_end,
                    (seg.next_offset, None))
            return
        ctx.add(ERROR, kind, f"{seg.stop_detail}; {dropped} bytes up to byte "
                f"{seg.data_end} are not valid batches (the log ends at offset "
                f"{seg.next_offset - 1} here)", name, seg.valid_end,
                (seg.next_offset, None), fix="truncate")
    elif zero_tail > 0:
        if not sealed:
            ctx.add(INFO, "preallocated-tail", f"{zero_tail} zero bytes of preallocated "
                    f"space after the last batch (an unclean stop or a live writer)",
                    name, seg.valid_end)
        elif is_last:
            ctx.add(WARNING, "untrimmed", f"{zero_tail} zero bytes after the last batch "
                    f"of a cleanly closed segment", name, seg.valid_end, fix="trim")
        else:
            ctx.add(ERROR, "untrimmed", f"sealed segment has {zero_tail} zero bytes after "
                    f"its last batch", name, seg.valid_end, fix="trim")


# ---- indexes ---------------------------------------------------------------------

def _running_max(seg: SegmentScan):
    """Per batch: the running max of maxTimestamp (-1 before any) and the last offset
    of the first batch that reached it (track_batch's "if mts > run_max")."""
    mts = np.frombuffer(seg.max_ts, dtype=np.int64)
    lasts = np.frombuffer(seg.lasts, dtype=np.int64)
    run = np.maximum.accumulate(np.maximum(mts, -1)) if len(mts) else mts
    prev = np.concatenate(([-1], run[:-1])) if len(run) else run
    rose = run > prev
    at = np.maximum.accumulate(np.where(rose, np.arange(len(run)), -1)) if len(run) \
        else np.zeros(0, np.int64)
    off = np.where(at >= 0, lasts[np.maximum(at, 0)], -1) if len(run) else at
    return run, off, rose


def expected_index(seg: SegmentScan, interval: int) -> tuple[list, list]:
    """(offset index, time index) entries the index.interval.bytes rule gives for the
    segment's valid batches (csrc/segment.c track_batch), without the seal entry.

    The rule: batch i gets an entry when the bytes appended since the last entry
    (counted from the start of the batch that got it) exceed ``interval``; so from a
    reset at batch r the next entry is the first i with start[i] - start[r] >
    interval: a binary search per entry, not a Python step per batch."""
    key = (interval, len(seg.positions))
    cached = getattr(seg, "_expected", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    n = len(seg.positions)
    idx, tidx = [], []
    if n:
        pos = np.frombuffer(seg.positions, dtype=np.int64)
        lasts = np.frombuffer(seg.lasts, dtype=np.int64)
        sel = np.empty(n, dtype=np.int64)
        count = ffi.new("uint64_t *")
        _ffi.check(lib.pl_index_rule(ffi.from_buffer("int64_t[]", pos), n, interval,
                                     ffi.from_buffer("int64_t[]", sel), count))
        sel = sel[:count[0]]
        run, off, _ = _running_max(seg)
        base = seg.base_offset
        idx = list(zip((lasts[sel] - base).tolist(), pos[sel].tolist()))
        # A time entry where the running max timestamp rose since the previous entry.
        rs = np.asarray(run)[sel]
        rose = rs > np.concatenate(([-1], np.maximum.accumulate(rs)[:-1])) if len(rs) \
            else rs.astype(bool)
        tidx = list(zip(rs[rose].astype(np.int64).tolist(),
                        (np.asarray(off)[sel][rose] - base).astype(np.int64).tolist()))
    seg._expected = (key, (idx, tidx))
    return idx, tidx


def expected_timeindex(seg: SegmentScan, interval: int, sealed: bool) -> list:
    """The time index a rebuild writes: the rule's entries plus, when sealed, the
    final entry for the segment's largest timestamp."""
    _, tidx = expected_index(seg, interval)
    if sealed and len(seg.max_ts):
        mts = max(seg.max_ts)
        if mts > (tidx[-1][0] if tidx else -1):
            j = list(seg.max_ts).index(mts)
            tidx.append((mts, seg.lasts[j] - seg.base_offset))
    return tidx


def read_entries(path: str, dtype: np.dtype, strip_zero_tail: bool):
    """Entries of an index file: (array, file length, whole-entry problem or None).

    ``strip_zero_tail``: an active segment's index is preallocated; all-zero entries
    at the end are unused space, not entries."""
    with open(path, "rb") as fh:
        data = fh.read()
    n = len(data) // dtype.itemsize
    problem = None
    if len(data) % dtype.itemsize and not strip_zero_tail:
        problem = (f"length {len(data)} is not a multiple of the "
                   f"{dtype.itemsize}-byte entry size")
    arr = np.frombuffer(data, dtype=dtype, count=n)
    if strip_zero_tail and n:
        raw = np.frombuffer(data, dtype=np.uint8, count=n * dtype.itemsize)
        nz = np.flatnonzero(raw)
        used = 0 if not len(nz) else int(nz[-1]) // dtype.itemsize + 1
        arr = arr[:used]
    return arr, len(data), problem


def _load_index(path: str, dtype, kind: str, label: str, ctx: _Ctx, *, active: bool,
                live: bool):
    """Entries of an index file, or None after adding the finding that it is missing
    or has a bad length.  Returns (entries, severity, fix): problems in the active
    segment of a live directory are INFO (a write may be in progress), else ERROR."""
    name = os.path.basename(path)
    if not os.path.exists(path):
        ctx.add(ERROR, f"{kind}-missing", f"{label} file is missing", name,
                fix="rebuild-index")
        return None
    arr, length, problem = read_entries(path, dtype, active)
    sev = INFO if (live and active) else ERROR
    fix = None if sev == INFO else "rebuild-index"
    if problem:
        ctx.add(sev, f"{kind}-length", f"{label} {problem}", name, length, fix=fix)
        return None
    return arr, sev, fix


def check_index(path: str, seg: SegmentScan, ctx: _Ctx, interval: int, *,
                active: bool, live: bool) -> bool:
    """Add findings about the .index; True when it is exactly what a rebuild gives."""
    name = os.path.basename(path)
    loaded = _load_index(path, INDEX_DTYPE, "index", "offset index", ctx, active=active,
                         live=live)
    if loaded is None:
        return False
    arr, sev, fix = loaded
    rels = arr["rel"].astype(np.int64)
    poss = arr["pos"].astype(np.int64)
    positions = np.frombuffer(seg.positions, dtype=np.int64)
    lasts = np.frombuffer(seg.lasts, dtype=np.int64) - seg.base_offset
    if sev == ERROR:
        _past_end(seg, ctx, "offset index", poss >= seg.valid_end, rels)
    bad = _first_bad_index_entry(rels, poss, positions, lasts)
    if bad is not None:
        i, why = bad
        ctx.add(sev, "index-entry", f"offset index entry {i} (relativeOffset {rels[i]}, "
                f"position {poss[i]}) {why}", name, i * 8,
                (seg.base_offset + int(rels[i]), None), fix=fix)
        return False
    want, _ = expected_index(seg, interval)
    have = np.stack((rels, poss), axis=1).tolist()
    if len(have) < len(want) and [list(w) for w in want[:len(have)]] == have and \
            sev == ERROR and not active:
        # Exactly the first entries a rebuild gives and then nothing: the file was
        # cut short (a different index.interval.bytes would space every entry).
        ctx.add(ERROR, "index-truncated", f"offset index ends after {len(have)} of the "
                f"{len(want)} entries a rebuild gives: the file was cut short", name,
                len(have) * 8, fix="rebuild-index")
        return False
    if len(want) != len(arr) or not np.array_equal(
            np.array(want, dtype=np.int64).reshape(-1, 2), np.stack((rels, poss), axis=1)):
        # Every entry is right, only the spacing differs: lookups still work (they
        # walk a little further).  index.interval.bytes may have been altered while
        # this segment was written, so this is a warning, not corruption.
        ctx.add(INFO if sev == INFO else WARNING, "index-mismatch", f"offset index has "
                f"{len(arr)} valid entries, a rebuild with index.interval.bytes="
                f"{interval} gives {len(want)} (config changed, or entries lost)", name,
                fix=fix)
        return False
    return True


def _past_end(seg: SegmentScan, ctx: _Ctx, what: str, beyond, rels) -> None:
    """An index naming batches past the valid end means the .log lost bytes that were
    once there (a truncation or a zeroed tail): say so on the .log, where it happened."""
    hits = np.flatnonzero(beyond)
    if len(hits) and not seg.corrupt_tail:
        ctx.add(ERROR, "log-truncated", f"the log ends at byte {seg.valid_end} (offset "
                f"{seg.next_offset}) but its {what} names offset "
                f"{seg.base_offset + int(rels[hits[-1]])}: bytes of the log were lost",
                os.path.basename(seg.log_path), seg.valid_end, (seg.next_offset, None),
                fix="rebuild-index")


def _first_bad_index_entry(rels, poss, positions, lasts):
    """(entry number, why) of the first entry that is not a valid-prefix batch."""
    if len(rels) == 0:
        return None
    inc = np.flatnonzero((np.diff(rels) <= 0) | (np.diff(poss) <= 0))
    j = np.searchsorted(positions, poss)
    jc = np.minimum(j, max(len(positions) - 1, 0))
    at_start = (j < len(positions)) & (positions[jc] == poss) if len(positions) else \
        np.zeros(len(poss), bool)
    not_start = np.flatnonzero(~at_start)
    wrong_off = np.flatnonzero(at_start & (lasts[jc] != rels)) if len(positions) else \
        np.zeros(0, np.int64)
    candidates = []
    if len(inc):
        candidates.append((int(inc[0]) + 1, "does not increase"))
    if len(not_start):
        candidates.append((int(not_start[0]), "does not point at a batch of the log"))
    if len(wrong_off):
        i = int(wrong_off[0])
        candidates.append((i, f"names offset {rels[i]} but the batch there ends at "
                              f"relative offset {lasts[jc[i]]}"))
    return min(candidates) if candidates else None


def check_timeindex(path: str, seg: SegmentScan, ctx: _Ctx, interval: int, *,
                    active: bool, sealed: bool, live: bool) -> bool:
    """Add findings about the .timeindex; True when it is consistent with the log."""
    name = os.path.basename(path)
    loaded = _load_index(path, TIMEINDEX_DTYPE, "timeindex", "time index", ctx,
                         active=active, live=live)
    if loaded is None:
        return False
    arr, sev, fix = loaded
    ts = arr["ts"].astype(np.int64)
    rels = arr["rel"].astype(np.int64)
    if sev == ERROR:
        _past_end(seg, ctx, "time index", rels + seg.base_offset >= seg.next_offset,
                  rels)
    why = _timeindex_problem(ts, rels, seg, interval, sealed)
    kind = None
    if why is not None:
        i, msg = why
        if i is None and msg.startswith("time index lacks") and sev == ERROR:
            want = expected_timeindex(seg, interval, sealed)
            have = list(zip(ts.tolist(), rels.tolist()))
            if active or len(have) >= len(want) or [tuple(w) for w in want[:len(have)]] \
                    != have:
                sev = WARNING                 # valid entries, other spacing: see above
            else:                             # the first entries, then nothing: cut short
                kind = "timeindex-truncated"
                msg = (f"time index ends after {len(have)} of the {len(want)} entries a "
                       f"rebuild gives: the file was cut short")
        ctx.add(sev, kind if kind else "timeindex-entry" if i is not None else
                "timeindex-mismatch", msg, name, None if i is None else i * 12,
                None if i is None or i >= len(rels) else
                (seg.base_offset + int(rels[i]), None), fix=fix)
        return False
    return True


def _timeindex_problem(ts, rels, seg: SegmentScan, interval: int, sealed: bool):
    n = len(ts)
    if n > 1:
        bad = np.flatnonzero((np.diff(ts) <= 0) | (np.diff(rels) < 0))
        if len(bad):
            i = int(bad[0]) + 1
            return i, (f"time index entry {i} (timestamp {ts[i]}) does not increase "
                       f"(FORMAT.md section 6 rule 1)")
    # Running max timestamp and the last offset of the batch that set it.
    mts = np.frombuffer(seg.max_ts, dtype=np.int64)
    run, off, rose = _running_max(seg)
    pairs = set(zip(run[rose].tolist(), (off[rose] - seg.base_offset).tolist()))
    for i in range(n):
        if (int(ts[i]), int(rels[i])) not in pairs:
            return i, (f"time index entry {i} (timestamp {ts[i]}, relativeOffset "
                       f"{rels[i]}) is not a max-timestamp point of the log")
    have = set(zip(ts.tolist(), rels.tolist()))
    _, want = expected_index(seg, interval)
    missing = [w for w in want if w not in have]
    if missing:
        return None, (f"time index lacks {len(missing)} of the {len(want)} entries a "
                      f"rebuild gives (first: timestamp {missing[0][0]})")
    if sealed and len(mts) and mts.max() >= 0 and (n == 0 or ts[-1] != mts.max()):
        return None, (f"sealed segment's time index does not end with its largest "
                      f"timestamp {int(mts.max())}")
    return None
