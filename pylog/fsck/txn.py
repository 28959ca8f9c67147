"""Checks of a partition's transactions (FORMAT.md section 6a): control batches,
each segment's ``.txnindex`` and ``txn-state.snapshot``.

The valid prefix of every segment (up to the partition's cut) is walked with
``pl_txn_scan`` (csrc/txn.c: batch headers, plus the record of control batches), and
the partition's transactions are replayed from the log start, starting from the
snapshot's open transactions that began before it (retention may have deleted their
first batches).  Then:

    bad-control       error  a control batch whose record is not a marker (one record,
                             key version 0 and type 0/1, value version 0): reported only
                             (it is CRC-valid data; nothing is deleted)
    txnindex          error  a .txnindex that is not a multiple of 34 bytes, has an entry
                             of another version, first > last, a lastOffset outside its
                             segment or not an ABORT marker of that producer there, or
                             lacks an entry the replay gives: --repair rewrites it
    txn-snapshot      error  the snapshot is unreadable, or missing although the log holds
                             transactional batches: --repair rewrites it
    txnindex-pending  info   after an unclean stop (or while live) the indexes of
                             segments written after the snapshot may lag: the next open
                             rebuilds them

--repair (``repair_partition``) rewrites every index as the replay's entries plus the
on-disk entries that are valid and name an ABORT marker (an entry whose transaction
began before the log start cannot be replayed: kept), then the snapshot as of the log
end.  It reads the files again, so it runs after the partition's other repairs.
"""
from __future__ import annotations

import mmap
import os

from pylog._ffi import ffi, lib
from pylog.fsck.model import ERROR, INFO
from pylog.storage import files, swap, txn_index
from pylog.storage.txn_index import AbortedTxn, Snapshot

__all__ = ["check_transactions", "repair_partition", "FIX"]

FIX = "rebuild-txnindex"
_CAP = 4096


def _scan_file(path: str, end: int) -> list[tuple]:
    """(base, last, pid, marker offset, type) of the transactional batches of
    path[0, end)."""
    out: list[tuple] = []
    if end <= 0:
        return out
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    try:
        buf = ffi.from_buffer("uint8_t[]", mm)
        arr = ffi.new("pl_txn_batch[]", _CAP)
        n, pos = ffi.new("uint32_t *"), ffi.new("uint64_t *")
        start = 0
        while True:
            rc = lib.pl_txn_scan(buf, start, min(end, len(mm)), arr, _CAP, n, pos)
            for i in range(n[0]):
                e = arr[i]
                out.append((e.base_offset, e.last_offset, e.producer_id,
                            e.marker_offset, e.type))
            if rc != lib.PL_ENOSPACE_CAP:
                break
            start = pos[0]
        del buf
    finally:
        mm.close()
    return out


class _Replay:
    """The partition's transactions replayed over (base, path, end, next) segments."""

    def __init__(self, segments, snap: Snapshot | None):
        first_base = segments[0][0] if segments else 0
        self.ongoing = {pid: f for pid, f in (snap.ongoing.items() if snap else ())
                        if f < first_base}
        self.expected: dict[int, list[AbortedTxn]] = {}
        self.aborts: dict[int, set] = {}          # base -> {(pid, marker offset)}
        self.bad_controls: list[tuple] = []       # (base, batch base offset)
        self.transactional = False
        for base, path, end, _ in segments:
            for b, last, pid, marker, kind in _scan_file(path, end):
                self.transactional = True
                if kind == lib.PL_TXN_DATA:
                    self.ongoing.setdefault(pid, b)
                elif kind == lib.PL_TXN_BAD:
                    self.bad_controls.append((base, b, last))
                else:
                    if kind == lib.PL_TXN_ABORT:
                        self.aborts.setdefault(base, set()).add((pid, marker))
                    first = self.ongoing.pop(pid, None)
                    if first is not None and kind == lib.PL_TXN_ABORT:
                        lso = min(self.ongoing.values(), default=marker + 1)
                        self.expected.setdefault(base, []).append(
                            AbortedTxn(pid, first, marker, lso))

    def merged(self, d: str, base: int, nxt: int) -> tuple[list[AbortedTxn], list[str]]:
        """The index segment ``base`` should have, and what is wrong with its file."""
        on_disk, problem = txn_index.read_index(d, base, max(nxt, base + 1))
        problems = [problem] if problem else []
        aborts = self.aborts.get(base, set())
        want = {(e.producer_id, e.last_offset): e for e in self.expected.get(base, ())}
        keep = dict(want)
        for e in on_disk:
            k = (e.producer_id, e.last_offset)
            if k not in aborts:
                problems.append(f"entry of producer {e.producer_id} at offset "
                                f"{e.last_offset} names no ABORT marker of it")
            elif k not in keep:
                keep[k] = e                       # began before the log start
        have = {(e.producer_id, e.last_offset) for e in on_disk}
        missing = [k for k in want if k not in have]
        if missing:
            problems.append(f"{len(missing)} aborted transaction(s) missing (first: "
                            f"producer {missing[0][0]}, marker {missing[0][1]})")
        return sorted(keep.values(), key=lambda e: e.last_offset), problems


def _segments_from_scan(dir_path: str, ps) -> list[tuple]:
    last_k = len(ps.segments) - 1 if ps.cut is None else ps.cut[0]
    out = []
    for k, seg in enumerate(ps.segments[:last_k + 1]):
        end = ps.cut[1] if ps.cut is not None and k == ps.cut[0] else seg.valid_end
        out.append((seg.base_offset, os.path.join(
            dir_path, files.filename_prefix(seg.base_offset) + files.LOG_SUFFIX), end,
            seg.next_offset))
    return out


def check_transactions(dir_path: str, ps, ctx, *, clean: bool, live: bool) -> None:
    """Add the findings of the module doc for partition scan ``ps``."""
    names = os.listdir(dir_path)
    snap, snap_problem = txn_index.read_snapshot(dir_path)
    has_files = snap is not None or snap_problem is not None or any(
        n.endswith(files.TXNINDEX_SUFFIX) for n in names)
    segs = _segments_from_scan(dir_path, ps)
    rp = _Replay(segs, snap)
    if not (has_files or rp.transactional):
        return
    for base, first, last in rp.bad_controls:
        ctx.add(ERROR, "bad-control", "control batch whose record is not a transaction "
                "marker (one record, key version 0 type 0/1, value version 0); kept",
                files.filename_prefix(base) + files.LOG_SUFFIX, offsets=(first, last))
    if snap_problem is not None:
        ctx.add(ERROR, "txn-snapshot", f"{snap_problem}; --repair rewrites it from the log",
                files.TXN_SNAPSHOT_FILE, fix=FIX)
    elif snap is None and rp.transactional:
        ctx.add(ERROR, "txn-snapshot", "the log holds transactional batches but there is "
                "no snapshot: an open would take the partition for one without "
                "transactions; --repair writes it", files.TXN_SNAPSHOT_FILE, fix=FIX)
    as_of = snap.as_of if snap is not None else None
    for base, _, _, nxt in segs:
        _, problems = rp.merged(dir_path, base, nxt)
        if not problems:
            continue
        name = files.filename_prefix(base) + files.TXNINDEX_SUFFIX
        pending = (not clean or live) and (as_of is None or nxt > as_of)
        if pending:
            ctx.add(INFO, "txnindex-pending", f"{'; '.join(problems)} (written after "
                    "the snapshot: the next open rebuilds it)", name)
        else:
            ctx.add(ERROR, "txnindex", "; ".join(problems) + "; --repair rewrites it",
                    name, fix=FIX)


def repair_partition(dir_path: str) -> None:
    """Rewrite the partition's .txnindex files and snapshot from its (repaired) log."""
    bases = sorted(b for b, sfx in filter(None, map(files.parse_base_offset,
                                                    os.listdir(dir_path)))
                   if sfx == files.LOG_SUFFIX)
    segs = []
    for b in bases:
        path = os.path.join(dir_path, files.filename_prefix(b) + files.LOG_SUFFIX)
        nxt = swap.log_end_offset_of(path)
        segs.append((b, path, os.path.getsize(path), b if nxt is None else nxt))
    snap, _ = txn_index.read_snapshot(dir_path)
    rp = _Replay(segs, snap)
    counts = {}
    for base, _, _, nxt in segs:
        entries, _ = rp.merged(dir_path, base, nxt)
        if txn_index.read_bytes(dir_path, base) != txn_index.encode(entries):
            txn_index.write_index(dir_path, base, entries)
        if entries:
            counts[base] = len(entries)
    end = segs[-1][3] if segs else 0
    txn_index.write_snapshot(dir_path, Snapshot(end, rp.ongoing, counts))
    files.fsync_dir(dir_path)
