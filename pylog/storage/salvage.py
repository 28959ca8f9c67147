"""Recovery of one segment that tells a torn tail from media corruption (DESIGN §2).

``pl_segment_recover_scan`` finds the valid prefix of a segment.  What follows it is:

* nothing but zeros: preallocated space, nothing lost;
* the torn or invalid *tail* of the active segment after an unclean stop, with no valid
  batch after it: cut, as Kafka does (those batches were never synced, so never
  acknowledged under ``flush.messages=1``);
* anything else -- a bad batch in a sealed segment, or one followed by valid batches --
  is corruption of data that was once good.  Nothing after it is deleted: the bad bytes
  are copied to ``<data>/quarantine/<topic>-<partition>/`` (synced, with a note), the
  offsets they held are recorded in ``lost-offsets.json``, and the valid batches after
  them become a segment of their own (the *split*), named by its first batch's base
  offset, so every offset keeps its place and the log end is unchanged.

The order makes a crash at any point harmless: quarantine copy (synced), the split-off
segment written as ``.cleaned`` (fsync) and renamed into place (fsync of the directory),
the lost range recorded, and only then the cut.  A crash before the cut redoes the
same steps on the next open (``.cleaned`` leftovers are deleted by the loader's first
pass; a split-off segment already in place is moved to the quarantine first, it is a
copy of bytes the cut segment still holds).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from pylog._ffi import ffi, lib
from pylog.storage import files
from pylog.storage.lost import LostOffsets, describe
from pylog.storage.quarantine import Quarantine
from pylog.storage.segment import Segment

__all__ = ["recover_segment"]

_log = logging.getLogger("pylog.storage")


def recover_segment(directory: Path, base: int, cfg, *, last: bool, next_base: int | None,
                    clean: bool, report, lost: LostOffsets) -> tuple[Segment, int | None]:
    """Recover the segment at ``base``; returns (segment, base offset of a segment split
    off its tail, or None).  ``next_base`` is the next existing segment's base offset;
    ``clean``: the last stop was clean, so even an active segment's tail was synced."""
    seg = Segment.open(directory, base, cfg, active=True)
    rep = seg.recover_scan()
    split = None
    if rep["stop_reason"] is not None:
        stop = rep["valid_bytes"]
        data_end = stop + rep["dropped_data_bytes"]
        expect = rep["next_offset"]
        at = seg.resync(stop + 1, data_end, expect)
        new_base = None if at is None else int.from_bytes(seg.view(at, at + 8), "big")
        if new_base is not None and next_base is not None and new_base >= next_base:
            at = new_base = None              # stale bytes, not this segment's offsets
        if at is None and last:
            # The active segment's invalid tail cannot be told from a torn write: cut,
            # as Kafka does.  After a clean stop it was synced, so keep a copy.
            report.bytes_dropped += rep["dropped_data_bytes"]
            if clean:
                _quarantine(directory, seg, rep, stop, data_end, expect, None, report, lost)
        else:
            end_lost = new_base if at is not None else next_base
            # a sealed file is exactly its batches: keep its whole tail (the last
            # batch may end in zero bytes, which data_end does not count)
            q_end = at if at is not None else data_end if last else \
                int(seg.c.log.allocated)
            _quarantine(directory, seg, rep, stop, q_end, expect, end_lost, report, lost)
            if at is not None:
                _split_off(directory, seg, at, _split_end(seg, at, data_end), new_base)
                split = new_base
    elif not last and next_base is not None and next_base > rep["next_offset"]:
        # Only zeros after the valid prefix, yet the next segment starts later: the
        # tail was never synced (a power cut after a roll).  Nothing acknowledged
        # under flush.messages=1 is lost, but the hole is recorded so reads, fsck and
        # /metrics can explain it.
        r = lost.add(rep["next_offset"], next_base, segment=seg.log_path.name,
                     byte_range=[rep["valid_bytes"], rep["valid_bytes"]], quarantine=None,
                     reason="the segment ends before the next one starts (its tail was "
                            "never synced)")
        report.quarantined.append(r)
        _log.warning("%s-%d: %s", report.topic, report.partition, describe(r))
    if rep["restamped_epochs"]:
        report.warnings.append(f"{seg.log_path.name}: {rep['restamped_epochs']} batch(es) "
                               "had a partitionLeaderEpoch other than 0/-1 (outside the "
                               "CRC); restamped 0")
        _log.warning("%s-%d: %s", report.topic, report.partition, report.warnings[-1])
    seg.recover_cut(rep)
    report.recovered.append(rep)
    return seg, split


def _quarantine(directory: Path, seg: Segment, rep: dict, start: int, end: int,
                first_lost: int, end_lost: int | None, report, lost: LostOffsets) -> None:
    sub = directory.name
    reason = f"{rep['stop_reason']} at byte {start}"
    note = {"topic": report.topic, "partition": report.partition, "reason": reason,
            "first_offset_lost": first_lost, "end_offset_lost": end_lost}
    q = Quarantine(directory.parent, by="pylog recovery")
    copy = q.save_range(sub, seg.log_path, start, end, note)
    q.sync()
    entry = {"segment": seg.log_path.name, "byte_range": [start, end],
             "quarantine": os.path.relpath(copy, directory.parent), "reason": reason}
    if end_lost is not None and end_lost > first_lost:
        r = lost.add(first_lost, end_lost, **entry)
    else:                                     # bytes but no offsets (e.g. a torn header)
        r = dict(entry, start=first_lost, end=first_lost)
    report.quarantined.append(r)
    _log.warning("%s-%d: %s", report.topic, report.partition, describe(r)
                 if r["end"] > r["start"] else f"{entry['segment']} bytes {start}..{end} "
                 f"quarantined as {entry['quarantine']}: {reason}")


def _split_end(seg: Segment, at: int, data_end: int) -> int:
    """Where the split-off bytes end: the end of the valid run from ``at`` if it reaches
    the last non-zero byte (a batch may end in zero bytes), else the whole mapping (a
    second corruption: the split-off segment's own recovery deals with it)."""
    allocated = int(seg.c.log.allocated)
    cap = 4096
    positions = ffi.new("int64_t[]", cap)
    count, out = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    pos = at
    while True:
        rc = lib.pl_batch_scan(seg.c.log.map, allocated, pos, positions, ffi.NULL, cap,
                               count, out)
        pos = out[0]
        if rc != lib.PL_ENOSPACE_CAP:
            break
    return pos if pos >= data_end else allocated


def _split_off(directory: Path, seg: Segment, start: int, end: int, base: int) -> None:
    """Write .log bytes [start, end) of ``seg`` as the segment file for ``base``."""
    target = files.log_file(directory, base)
    if target.exists():                       # from an interrupted earlier recovery
        Quarantine(directory.parent, by="pylog recovery").move_file(
            directory.name, target, {"reason": "split-off segment rewritten by recovery"})
        for idx in (files.index_file(directory, base), files.timeindex_file(directory, base)):
            idx.unlink(missing_ok=True)
    tmp = target.with_name(target.name + files.CLEANED_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = seg.view(start, end)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    files.fsync_dir(directory)
