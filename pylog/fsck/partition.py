"""Checks of one partition directory ``<topic>-<partition>/``: its files, its
segments in order, and the offset chain across them.

First pass: sort the directory's files into segments (``.log`` with its two
indexes), orphan indexes, Kafka's temporary files and strays.  Second pass: scan
each segment's ``.log`` (segments.py) and chain them: segment ``k+1`` must start at
``nextOffset`` of segment ``k`` (a gap or an overlap is an error).  The first place
where the log stops being valid is the partition's *cut*: recovery and --repair keep
everything before it and nothing after it.  Third pass: check the indexes of the
segments before the cut against their batches.  Fourth pass: transactions
(control batches, ``.txnindex``, ``txn-state.snapshot``: txn.py).
"""
from __future__ import annotations

import os

from pylog.fsck.model import ERROR, INFO, WARNING, PartitionScan, SegmentScan
from pylog.fsck.segments import _Ctx, check_index, check_timeindex, scan_segment_log
from pylog.fsck.txn import check_transactions
from pylog.storage import files, swap
from pylog.storage.lost import LOST_OFFSETS_FILE, LostOffsets, describe

from pylog.storage.partition_metadata import PARTITION_METADATA_FILE

__all__ = ["scan_partition", "TEMP_SUFFIXES"]

TEMP_SUFFIXES = (files.DELETED_SUFFIX, files.CLEANED_SUFFIX, files.SWAP_SUFFIX, ".tmp")


def _classify(dir_path: str, ctx: _Ctx) -> dict[int, set[str]]:
    """Segment files by base offset; report temp and stray files on the way."""
    by_base: dict[int, set[str]] = {}
    for name in sorted(os.listdir(dir_path)):
        full = os.path.join(dir_path, name)
        parsed = files.parse_base_offset(name)
        if parsed is not None:
            if not os.path.isfile(full):
                ctx.add(ERROR, "unreadable", "segment file is not a regular file", name)
                by_base.setdefault(parsed[0], set()).add("!" + parsed[1])
                continue
            by_base.setdefault(parsed[0], set()).add(parsed[1])
        elif name == LOST_OFFSETS_FILE:
            continue                       # read by scan_partition
        elif name == PARTITION_METADATA_FILE:
            continue                       # the topic id (storage/partition_metadata.py)
        elif name.endswith(files.LOG_SUFFIX + files.SWAP_SUFFIX) and \
                swap.log_end_offset_of(full) is not None:
            ctx.add(WARNING, "compaction-swap", "a committed compaction swap not yet "
                    "installed (a kill during cleaning): the next open, or --repair, "
                    "completes it (storage/swap.py); the offsets it holds are not lost",
                    name)
        elif name.endswith(TEMP_SUFFIXES):
            ctx.add(WARNING, "temp-file", "leftover temporary file (an interrupted "
                    "replace, delete or compaction); ignored by readers", name,
                    fix="quarantine")
        else:
            ctx.add(WARNING, "stray-file", "file that is not part of the log (left alone)",
                    name)
    return by_base


def scan_partition(data_dir: str, dir_name: str, topic: str, partition: int,
                   findings: list, *, deep: bool, clean: bool, live: bool,
                   interval: int, progress=None) -> PartitionScan:
    """Scan one partition directory; findings are appended to ``findings``."""
    ps = PartitionScan(topic, partition, dir_name, interval=interval)
    ctx = _Ctx(findings, topic, partition, dir_name)
    dir_path = os.path.join(data_dir, dir_name)
    by_base = _classify(dir_path, ctx)
    bases = []
    for base, kinds in sorted(by_base.items()):
        if files.LOG_SUFFIX in kinds or "!.log" in kinds:
            bases.append(base)
        else:
            for suffix in sorted(kinds):
                if not suffix.startswith("!"):
                    ctx.add(ERROR, "orphan-index", "index file without its .log",
                            files.filename_prefix(base) + suffix, fix="quarantine")
    for k, base in enumerate(bases):
        is_last = k == len(bases) - 1
        seg = SegmentScan(base, f"{dir_name}/{files.filename_prefix(base)}.log")
        log_path = os.path.join(dir_path, files.filename_prefix(base) + files.LOG_SUFFIX)
        ps.segments.append(seg)
        try:
            if "!.log" in by_base[base]:
                raise OSError(f"{log_path} is not a regular file")
            scan_segment_log(log_path, seg, ctx, deep=deep, is_last=is_last,
                             sealed=clean or not is_last, live=live)
        except (OSError, ValueError) as e:
            # ValueError: mmap of something that is not a plain file.
            seg.unreadable = True
            if "!.log" not in by_base[base]:
                ctx.add(ERROR, "unreadable", f"cannot read the segment: {e}",
                        os.path.basename(log_path))
            ps.unreadable = True
            break
        if progress is not None:
            progress(seg.file_size)
    if ps.unreadable:
        return ps
    lost = _lost_ranges(dir_path, ctx)
    _chain(ps, ctx, live, lost, _swap_ranges(dir_path))
    _check_indexes(ps, ctx, dir_path, clean=clean, live=live, interval=interval)
    try:
        check_transactions(dir_path, ps, ctx, clean=clean, live=live)
    except OSError as e:
        ctx.add(ERROR, "unreadable", f"cannot read the transaction files: {e}",
                files.TXN_SNAPSHOT_FILE)
    if ps.segments:
        ps.log_start_offset = ps.segments[0].base_offset
        k, pos = ps.cut if ps.cut else (len(ps.segments) - 1, None)
        if pos == 0 and k > 0:             # the whole segment k goes
            k -= 1
        ps.log_end_offset = ps.segments[k].next_offset
    return ps


def _lost_ranges(dir_path: str, ctx: _Ctx) -> LostOffsets:
    """Offsets recovery quarantined (storage/lost.py): shown until --clear-lost."""
    lost = LostOffsets(dir_path)
    if lost.problem:
        ctx.add(WARNING, "lost-offsets-unreadable", lost.problem, LOST_OFFSETS_FILE)
    for r in lost.ranges:
        cleared = "cleared_at" in r
        ctx.add(INFO if cleared else WARNING, "lost-offsets", describe(r) + (
                f"; cleared {r['cleared_at']}" if cleared else
                "; pylog-fsck --clear-lost marks it dealt with"), LOST_OFFSETS_FILE,
                offsets=(r["start"], r["end"] - 1) if r["end"] > r["start"] else None)
    return lost


def _swap_ranges(dir_path: str) -> list[dict]:
    """Offsets [B, E) of each committed ``B.log.swap``: the gap its uninstalled swap
    leaves between the old segments is no loss (the swap file holds them)."""
    out = []
    for name in os.listdir(dir_path):
        if name.endswith(files.LOG_SUFFIX + files.SWAP_SUFFIX):
            parsed = files.parse_base_offset(name[:-len(files.SWAP_SUFFIX)])
            end = swap.log_end_offset_of(os.path.join(dir_path, name)) if parsed else None
            if end is not None:
                out.append({"start": parsed[0], "end": end})
    return out


def _known_gap(lost: LostOffsets, start: int, end: int, swaps: list[dict]) -> bool:
    return any(r["start"] <= start and end <= r["end"] for r in lost.ranges + swaps)


def _chain(ps: PartitionScan, ctx: _Ctx, live: bool, lost: LostOffsets,
           swaps: list[dict]) -> None:
    """Find the cut: the first segment with a corrupt tail or a broken link (a gap
    that lost-offsets.json records is no break: recovery quarantined it; nor one a
    committed compaction swap covers)."""
    prev = None
    for k, seg in enumerate(ps.segments):
        name = os.path.basename(seg.log_path)
        if prev is not None and seg.base_offset != prev.next_offset and \
                not _known_gap(lost, prev.next_offset, seg.base_offset, swaps):
            kind = "gap" if seg.base_offset > prev.next_offset else "overlap"
            ctx.add(ERROR, kind, f"segment starts at offset {seg.base_offset} but the "
                    f"previous one ends before offset {prev.next_offset}; the log is "
                    f"kept up to there", name, 0, (prev.next_offset, seg.base_offset - 1)
                    if kind == "gap" else (seg.base_offset, prev.next_offset - 1),
                    fix="truncate")
            ps.cut = (k, 0)
            return
        if seg.file_size == 0 and k < len(ps.segments) - 1:
            ctx.add(WARNING, "empty-segment", "empty segment that is not the last one",
                    name, fix="remove-empty")
        if seg.corrupt_tail and not (live and k == len(ps.segments) - 1):
            ps.cut = (k, seg.valid_end)
            if k < len(ps.segments) - 1:
                later = ps.segments[k + 1:]
                ctx.add(ERROR, "after-corruption", f"{len(later)} later segment(s) "
                        f"follow a corrupt tail and are unreachable ("
                        f"{sum(s.file_size for s in later)} bytes, from offset "
                        f"{later[0].base_offset})", name, seg.valid_end,
                        (seg.next_offset, None), fix="truncate")
            return
        prev = seg


def _check_indexes(ps: PartitionScan, ctx: _Ctx, dir_path: str, *, clean: bool,
                   live: bool, interval: int) -> None:
    last_k = len(ps.segments) - 1 if ps.cut is None else ps.cut[0]
    for k, seg in enumerate(ps.segments[:last_k + 1]):
        if ps.cut is not None and k == ps.cut[0]:
            continue                       # rebuilt anyway when the cut is repaired
        active = k == len(ps.segments) - 1 and not clean
        prefix = os.path.join(dir_path, files.filename_prefix(seg.base_offset))
        try:
            seg.index_ok = check_index(prefix + files.INDEX_SUFFIX, seg, ctx, interval,
                                       active=active, live=live)
            seg.timeindex_ok = check_timeindex(prefix + files.TIMEINDEX_SUFFIX, seg, ctx,
                                               interval, active=active,
                                               sealed=not active, live=live)
        except OSError as e:
            ctx.add(ERROR, "unreadable", f"cannot read an index: {e}",
                    os.path.basename(prefix))
            ps.unreadable = True
