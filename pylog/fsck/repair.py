"""--repair: make a data directory valid again without silently deleting data.

Runs after a full check, with the exclusive lock on ``<data>/.lock`` held by the
caller, and only acts on findings that name a ``fix``:

1. ``truncate`` (a partition's cut, partition.py) at a bad batch that valid data
   follows (a later segment, or a valid batch after it in the same segment): the
   partition is recovered as ``pylog.open`` recovers it after an unclean stop
   (storage/loader.py, storage/salvage.py): the bad batch's bytes are copied to the
   quarantine, its offsets recorded in ``lost-offsets.json``, and every valid batch
   after it stays at its offset (split off into a segment of its own when it shares
   the bad batch's segment).  Otherwise (a torn tail of the last segment, a gap or
   an overlap): the bytes of the cut segment from
   the cut position, and every later segment, are *moved* to
   ``<data>/quarantine/<topic>-<partition>/`` with a JSON note of where they came from
   (file, byte range, first offset, reason); then the segment is truncated to its
   valid prefix (or removed, if the cut is at its first byte and it is not the
   first segment) and the later segments' files are removed.  The log then ends
   exactly where recovery would end it.
2. ``rebuild-index``: ``.index`` and ``.timeindex`` are rewritten from the log with
   the index.interval.bytes rule (atomically: tmp, fsync, rename, fsync(dir)).
3. ``trim``: a sealed segment's zero tail is cut off (nothing to keep).
4. ``remove-empty``, ``quarantine``: empty middle segments are removed; orphan
   indexes and temporary files are moved to the quarantine.
5. ``rewrite-checkpoints``: both checkpoints are rewritten with offsets clamped to
   the partitions' valid ranges (entries for missing partitions dropped).
6. ``rebuild-txnindex``: every ``.txnindex`` and ``txn-state.snapshot`` of the
   partition are rewritten from its repaired log (fsck/txn.py), keeping the valid
   entries the log cannot replay; nothing of the log changes.
7. ``rebuild-metadata``: a damaged or missing ``topic-metadata.json`` is rebuilt as
   ``pylog.open`` would (storage/metadata.py: from ``.prev`` reconciled with the
   partition directories, else from the directories with default configs); the
   damaged file is moved to ``<data>/quarantine/metadata/``.
   ``rewrite-metadata-prev``: an unusable ``.prev`` is replaced by a copy of the
   (good) main file.
If any ``.log`` changed, the clean-shutdown marker is removed (so the next open runs
recovery rather than trusting the old state).  Each step is idempotent: a repair
interrupted by a crash is finished by the next one, and a repair of a clean
directory does nothing.
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path

from pylog._ffi import ffi, lib
from pylog.config import TopicConfig
from pylog.errors import StorageError
from pylog.fsck.model import PartitionScan, Report, SegmentScan
from pylog.fsck.partition import scan_partition
from pylog.fsck import txn
from pylog.fsck.segments import expected_index, expected_timeindex
from pylog.storage import files, metadata
from pylog.storage.checkpoint import read_offset_checkpoint, write_offset_checkpoint
from pylog.storage.loader import load_segments
from pylog.storage.quarantine import Quarantine
from pylog.storage.segment import GROW_CHUNK, segment_config

__all__ = ["repair"]

def repair(data_dir: str, report: Report) -> None:
    """Apply every fix the findings name (module doc); marks them fixed."""
    q = Quarantine(data_dir, by="pylog-fsck --repair")
    clean = os.path.exists(os.path.join(data_dir, files.CLEAN_SHUTDOWN_FILE))
    logs_changed = False
    by_part: dict[tuple, list] = {}
    for f in report.findings:
        if f.fix:
            by_part.setdefault((f.topic, f.partition), []).append(f)
    # Temporary files and orphans first: the salvage below runs the loader, whose first
    # passes would delete them rather than keep them.
    for f in report.findings:
        if f.fix == "quarantine" and not f.fixed and f.file:
            path = os.path.join(data_dir, f.file)
            if os.path.lexists(path):
                q.move_file(os.path.dirname(f.file) or ".", path, {"reason": f.message})
            f.fixed = True
    q.sync()
    configs = None
    salvaged = False
    for ps in report.partitions:
        fixes = by_part.get((ps.topic, ps.partition), [])
        if ps.unreadable or not fixes:
            continue
        if _salvageable(data_dir, ps, fixes):
            if configs is None:
                configs = _topic_configs(data_dir)
            _salvage(data_dir, ps, fixes, q, configs.get(ps.topic, TopicConfig()))
            logs_changed = salvaged = True
            continue
        logs_changed |= _repair_partition(data_dir, ps, fixes, q, clean)
    for ps in report.partitions:          # after the logs are repaired: reads them again
        fixes = [f for f in by_part.get((ps.topic, ps.partition), []) if f.fix == txn.FIX]
        if fixes and not ps.unreadable:
            txn.repair_partition(os.path.join(data_dir, ps.dir_name))
            for f in fixes:
                f.fixed = True
    q.sync()
    if salvaged or any(f.fix == "rewrite-checkpoints" for f in report.findings):
        _rewrite_checkpoints(data_dir, report)
    _repair_metadata(data_dir, report)
    marker = os.path.join(data_dir, files.CLEAN_SHUTDOWN_FILE)
    if logs_changed and os.path.exists(marker):
        os.unlink(marker)
        files.fsync_dir(data_dir)
    report.repaired = True


def _salvageable(data_dir: str, ps: PartitionScan, fixes: list) -> bool:
    """A cut at a bad batch that valid data follows (a later segment, or a batch after
    it in the same segment): not a torn tail, so the loader's salvage keeps what
    follows (storage/salvage.py) instead of the cut quarantining it all."""
    if ps.cut is None or any(f.kind in ("gap", "overlap") for f in fixes):
        return False
    k, pos = ps.cut
    seg = ps.segments[k]
    if not seg.corrupt_tail or pos != seg.valid_end:
        return False
    if k < len(ps.segments) - 1:
        return True
    path = _path(os.path.join(data_dir, ps.dir_name), seg, files.LOG_SUFFIX)
    return _valid_batch_after(path, seg)


def _valid_batch_after(path: str, seg: SegmentScan) -> bool:
    """Whether a valid batch with baseOffset >= nextOffset starts after the bad one
    (csrc/scan.c's resync, as recovery uses it)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size <= seg.valid_end + 1:
            return False
        with mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ) as mm:
            out = ffi.new("uint64_t *")
            with ffi.from_buffer(mm) as buf:
                rc = lib.pl_batch_resync(buf, size, seg.valid_end + 1, seg.data_end,
                                         seg.next_offset, out)
    return rc == 0


def _topic_configs(data_dir: str) -> dict:
    try:
        return {t: cfg for t, (_, cfg) in metadata.load(data_dir).topics.items()}
    except StorageError:
        return {}


def _salvage(data_dir: str, ps: PartitionScan, fixes: list, q: Quarantine,
             cfg: TopicConfig) -> None:
    """Recover the partition as ``pylog.open`` does after an unclean stop (every
    segment scanned, storage.loader + storage.salvage): the bad batch's bytes go to
    quarantine/, its offsets to lost-offsets.json, later batches stay at their offsets.
    A torn tail of the last segment, which recovery cuts, is copied to quarantine/
    first, as the cut of ``_cut`` would."""
    d = os.path.join(data_dir, ps.dir_name)
    last = ps.segments[-1]
    if last is not ps.segments[ps.cut[0]] and last.corrupt_tail:
        q.save_range(ps.dir_name, _path(d, last, files.LOG_SUFFIX), last.valid_end,
                     last.data_end, {"topic": ps.topic, "partition": ps.partition,
                                     "reason": last.stop_detail or "torn tail",
                                     "first_offset_dropped": last.next_offset})
        q.sync()
    segs, _, _, rep = load_segments(Path(d), ps.topic, ps.partition,
                                    segment_config(cfg, GROW_CHUNK), clean=False,
                                    recovery_point=None, log_start_offset=None)
    for seg in segs:
        seg.release()
    files.fsync_dir(d)
    # what the checkpoints are clamped to next: the partition as it is now
    after = scan_partition(data_dir, ps.dir_name, ps.topic, ps.partition, [], deep=False,
                           clean=False, live=False, interval=ps.interval)
    ps.__dict__.update(after.__dict__)
    for f in fixes:
        if f.fix != "quarantine" and f.fix != "rewrite-checkpoints":
            f.fixed = True


def _repair_metadata(data_dir: str, report: Report) -> None:
    todo = [f for f in report.findings if f.fix in ("rebuild-metadata",
                                                     "rewrite-metadata-prev")]
    if any(f.fix == "rebuild-metadata" for f in todo):
        rec = metadata.load(data_dir)
        if rec.needs_rewrite:
            metadata.rebuild(data_dir, rec, by="pylog-fsck --repair")
    elif todo:
        main = os.path.join(data_dir, files.METADATA_FILE)
        if metadata.read_generation(data_dir).ok:
            with open(main, "rb") as fh:
                files.atomic_write(os.path.join(data_dir, metadata.PREV_FILE), fh.read())
    for f in todo:
        f.fixed = True


def _repair_partition(data_dir: str, ps: PartitionScan, fixes: list, q: Quarantine,
                      clean: bool) -> bool:
    d = os.path.join(data_dir, ps.dir_name)
    kinds = {f.fix for f in fixes}
    changed = False
    segs = list(ps.segments)
    if ps.cut is not None and "truncate" in kinds:
        changed = True
        segs = _cut(d, ps, q)
    for k, seg in enumerate(segs):
        is_last = k == len(segs) - 1
        path = _path(d, seg, files.LOG_SUFFIX)
        if "remove-empty" in kinds and seg.file_size == 0 and not is_last:
            for suffix in (files.LOG_SUFFIX, files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX):
                _unlink(_path(d, seg, suffix))
            changed = True
            continue
        if "restamp" in kinds and seg.bad_epochs:
            with open(path, "r+b") as fh:
                for pos in seg.bad_epochs:
                    fh.seek(pos + 12)               # partitionLeaderEpoch, outside the CRC
                    fh.write(b"\0\0\0\0")
                fh.flush()
                os.fsync(fh.fileno())
            del seg.bad_epochs[:]
        if "trim" in kinds and not seg.corrupt_tail and seg.file_size > seg.valid_end:
            _truncate(path, seg.valid_end)
            seg.file_size = seg.valid_end
            changed = True
        cut_here = ps.cut is not None and seg is ps.segments[ps.cut[0]]
        if cut_here or not (seg.index_ok and seg.timeindex_ok):
            _rebuild_indexes(d, seg, sealed=not is_last or (clean and not changed),
                             interval=ps.interval)
    files.fsync_dir(d)
    for f in fixes:
        if f.fix != "quarantine" and f.fix != "rewrite-checkpoints":
            f.fixed = True
    return changed


def _cut(d: str, ps: PartitionScan, q: Quarantine) -> list[SegmentScan]:
    """Quarantine everything from the cut on; returns the segments that remain."""
    k, pos = ps.cut
    seg = ps.segments[k]
    note = {"topic": ps.topic, "partition": ps.partition,
            "reason": seg.stop_detail or "segment does not continue the offset chain",
            "first_offset_dropped": seg.next_offset if pos else seg.base_offset}
    keep = ps.segments[:k]
    path = _path(d, seg, files.LOG_SUFFIX)
    if pos == 0 and k > 0:
        q.move_file(ps.dir_name, path, note)
        for suffix in (files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX):
            _unlink(_path(d, seg, suffix))
    else:
        end = max(seg.data_end, seg.valid_end)
        if end > pos:
            q.save_range(ps.dir_name, path, pos, end, note)
        _truncate(path, pos)
        seg.file_size = seg.data_end = seg.valid_end = pos
        _trim_scan(seg)
        keep.append(seg)
    for later in ps.segments[k + 1:]:
        note_l = dict(note, reason=f"follows the corrupt tail of {seg.log_path}",
                      first_offset_dropped=later.base_offset)
        q.move_file(ps.dir_name, _path(d, later, files.LOG_SUFFIX), note_l)
        for suffix in (files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX):
            _unlink(_path(d, later, suffix))
    return keep


def _trim_scan(seg: SegmentScan) -> None:
    """Drop per-batch facts at or past the new end (a cut at a batch boundary)."""
    n = sum(1 for p in seg.positions if p < seg.valid_end)
    for arr in (seg.positions, seg.lasts, seg.sizes, seg.max_ts):
        del arr[n:]
    seg.next_offset = seg.lasts[-1] + 1 if n else seg.base_offset


def _rebuild_indexes(d: str, seg: SegmentScan, *, sealed: bool, interval: int) -> None:
    idx, _ = expected_index(seg, interval)
    tidx = expected_timeindex(seg, interval, sealed)
    files.atomic_write(_path(d, seg, files.INDEX_SUFFIX),
                       b"".join(r.to_bytes(4, "big") + p.to_bytes(4, "big")
                                for r, p in idx))
    files.atomic_write(_path(d, seg, files.TIMEINDEX_SUFFIX),
                       b"".join(t.to_bytes(8, "big", signed=True) + r.to_bytes(4, "big")
                                for t, r in tidx))
    seg.index_ok = seg.timeindex_ok = True


def _rewrite_checkpoints(data_dir: str, report: Report) -> None:
    parts = {(ps.topic, ps.partition): ps for ps in report.partitions
             if not ps.unreadable}
    for fname, is_rp in ((files.RECOVERY_POINT_CHECKPOINT, True),
                         (files.LOG_START_CHECKPOINT, False)):
        path = os.path.join(data_dir, fname)
        if not os.path.exists(path):
            continue
        entries, warning = read_offset_checkpoint(path)
        out = {}
        for tp, off in entries.items():
            ps = parts.get(tp)
            if ps is None:
                if report.topic_filter is not None and tp[0] != report.topic_filter:
                    out[tp] = off                    # not ours to judge
                continue
            first = ps.segments[0].base_offset if ps.segments else 0
            out[tp] = min(off, ps.log_end_offset) if is_rp else \
                min(max(off, first), ps.log_end_offset)
        if warning:                                   # unparseable: what we know
            for tp, ps in parts.items():
                first = ps.segments[0].base_offset if ps.segments else 0
                out[tp] = first
        write_offset_checkpoint(path, out)
    for f in report.findings:
        if f.fix == "rewrite-checkpoints":
            f.fixed = True


def _path(d: str, seg: SegmentScan, suffix: str) -> str:
    return os.path.join(d, files.filename_prefix(seg.base_offset) + suffix)


def _truncate(path: str, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
