"""Loading a partition's segments at open: recovery written as numbered passes, the way
Kafka's ``LogLoader`` does it (DESIGN section 2, research/kafka-protocol.md 1.7).

    First pass   resolve temporary files: delete ``.deleted`` and ``.cleaned`` leftovers,
                 complete an interrupted compaction swap (``.swap``: storage.swap).
    Second pass  delete index files that have no ``.log`` (orphans).
    Third pass   open every segment, oldest first; the last one is the active segment.
                 After a clean shutdown: trust the files (``load_clean``), recovering
                 only a segment whose sanity check fails or whose index is missing.
                 After an unclean one: trust segments below the one holding the
                 recovery point the same way, and recover that one and every later one:
                 validate each batch, rebuild the indexes, stop at the first invalid
                 batch.  A torn tail of the active segment is cut there (zeroed and
                 synced by the C core); corruption anywhere else is quarantined, its
                 offsets recorded as lost and the valid batches after it split off
                 into a segment of their own (``storage.salvage``).
    Fourth pass  a segment that overlaps offsets of the one before it is moved to the
                 quarantine (never deleted); gaps between segments are allowed (lost
                 ranges, later compaction).
    Fifth pass   no segment left: create an empty one at the log start offset.

Invalid data on disk is a normal outcome: the report says what was dropped.  Only an
I/O failure (a file we cannot open or map) raises, as StorageError.

The clean-shutdown marker itself is handled by ``broker.manager`` (it is per data dir):
deleted before any partition loads, written last on close.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pylog.storage import files, swap
from pylog.storage.lost import LostOffsets
from pylog.storage.quarantine import Quarantine
from pylog.storage.salvage import recover_segment
from pylog.storage.segment import Segment

__all__ = ["RecoveryReport", "load_segments"]

_log = logging.getLogger("pylog.recovery")


@dataclass
class RecoveryReport:
    """What loading one partition found and did."""
    topic: str
    partition: int
    mode: str                                   # "clean", "unclean" or "new"
    segments: int = 0                           # segments loaded
    recovered: list[dict] = field(default_factory=list)   # per recovered segment
    deleted_segments: list[str] = field(default_factory=list)   # empty ones, after a split
    quarantined: list[dict] = field(default_factory=list)  # lost ranges found (lost.py)
    removed_files: list[str] = field(default_factory=list)
    bytes_dropped: int = 0                      # non-zero bytes cut from torn tails
    log_start_offset: int = 0
    log_end_offset: int = 0
    recovery_point: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def lost_data(self) -> bool:
        return bool(self.bytes_dropped or self.quarantined)


def _resolve_temp_files(directory: Path, report: RecoveryReport) -> None:
    """First pass.  ``.deleted`` and ``.cleaned`` files never committed: deleted.
    ``.swap`` files are an interrupted compaction swap: storage.swap completes it
    (a ``.log.swap`` is committed: the segments it replaces are deleted and it takes
    their place; an index ``.swap`` alone is a cache, deleted)."""
    for entry in sorted(os.listdir(directory)):
        if entry.endswith((files.DELETED_SUFFIX, files.CLEANED_SUFFIX)):
            (directory / entry).unlink(missing_ok=True)
            report.removed_files.append(entry)
    removed, notes = swap.complete_swaps(directory)
    report.removed_files += removed
    report.warnings += notes


def _segment_bases(directory: Path, report: RecoveryReport) -> tuple[list[int], set]:
    """Second pass: base offsets of the .log files (orphan index files deleted), and
    the names of the index files that remain."""
    logs, indexes = set(), []
    for entry in os.listdir(directory):
        parsed = files.parse_base_offset(entry)
        if parsed is None:
            continue
        base, suffix = parsed
        if suffix == files.LOG_SUFFIX:
            logs.add(base)
        else:
            indexes.append((base, entry))
    names = set()
    for base, entry in indexes:
        if base not in logs:
            (directory / entry).unlink(missing_ok=True)
            report.removed_files.append(entry)
        else:
            names.add(entry)
    return sorted(logs), names


def _indexes_present(index_names: set, base: int) -> bool:
    prefix = files.filename_prefix(base)
    return (prefix + files.INDEX_SUFFIX in index_names
            and prefix + files.TIMEINDEX_SUFFIX in index_names)


def _open_trusted(directory: Path, base: int, cfg, last: bool,
                  report: RecoveryReport, index_names: set) -> Segment | None:
    """Open a segment we expect to be intact; None if it must be recovered."""
    if _indexes_present(index_names, base):
        seg = Segment.open(directory, base, cfg, active=last)
        if seg.load_clean():
            return seg
        seg.close()
        report.warnings.append(f"{files.filename_prefix(base)}: index sanity check "
                               "failed; segment recovered")
    else:
        report.warnings.append(f"{files.filename_prefix(base)}: index missing; rebuilt")
    return None


def load_segments(directory: Path, topic: str, partition: int, cfg, *, clean: bool,
                  recovery_point: int | None, log_start_offset: int | None
                  ) -> tuple[list[Segment], int, int, RecoveryReport]:
    """Run the passes; returns (segments, log start offset, recovery point, report)."""
    directory.mkdir(parents=True, exist_ok=True)
    report = RecoveryReport(topic, partition, "clean" if clean else "unclean")
    _resolve_temp_files(directory, report)
    bases, index_names = _segment_bases(directory, report)
    if not bases:
        report.mode = "new"
    segments = _load(directory, bases, cfg, clean, recovery_point, report, index_names)
    if not segments:                                         # fifth pass
        base = log_start_offset or 0
        segments = [Segment.create(directory, base, cfg)]
        files.fsync_dir(directory)
    leo = segments[-1].next_offset
    start = max(log_start_offset or 0, segments[0].base_offset)
    if start > leo:
        report.warnings.append(f"log start checkpoint {start} beyond log end {leo}; "
                               f"using {segments[0].base_offset}")
        start = segments[0].base_offset
    # Segments wholly below the log start offset are garbage from an interrupted delete.
    while len(segments) > 1 and segments[1].base_offset <= start:
        doomed = segments.pop(0)
        report.removed_files.append(doomed.log_path.name)
        doomed.delete()
    for seg in segments[:-1]:
        seg.close()                     # sealed: reads use the mapping, not the fd
    report.segments = len(segments)
    report.log_start_offset, report.log_end_offset = start, leo
    report.recovery_point = leo        # trusted or recovered-and-synced up to the end
    if report.mode == "unclean":
        _log.info("%s", summary(report))
    return segments, start, leo, report


def summary(report: RecoveryReport) -> str:
    """One line: what recovery of a partition after an unclean stop scanned and dropped."""
    scanned = report.recovered
    nbytes = sum(r.get("valid_bytes", 0) for r in scanned)
    batches = sum(r.get("batches", 0) for r in scanned)
    trusted = report.segments - len(scanned)
    dropped = []
    if report.bytes_dropped:
        dropped.append(f"{report.bytes_dropped} bytes of torn tail cut")
    for q in report.quarantined:
        dropped.append(f"offsets [{q.get('start')}, {q.get('end')}) lost "
                       f"({q.get('reason', 'corrupt')})")
    if report.deleted_segments or report.removed_files:
        dropped.append(f"{len(report.deleted_segments) + len(report.removed_files)} "
                       f"file(s) removed")
    return (f"recovery of {report.topic}-{report.partition} after an unclean stop: "
            f"scanned {len(scanned)} segment(s) from the recovery point ({batches} "
            f"batches, {nbytes} valid bytes), trusted {max(trusted, 0)} below it; "
            f"offsets {report.log_start_offset}..{report.log_end_offset}; dropped: "
            f"{', '.join(dropped) if dropped else 'nothing'}")


def _load(directory: Path, bases: list[int], cfg, clean: bool,
          recovery_point: int | None, report: RecoveryReport,
          index_names: set) -> list[Segment]:
    """Third and fourth passes."""
    if clean or recovery_point is None:
        first_unsafe = len(bases) if clean else 0
    else:
        # the segment holding the recovery point, and everything after it
        first_unsafe = max(0, sum(1 for b in bases if b <= recovery_point) - 1)
    lost = LostOffsets(directory)
    if lost.problem:
        report.warnings.append(lost.problem)
    segments: list[Segment] = []
    trusted = set(bases[:first_unsafe])
    bases = list(bases)
    i = 0
    while i < len(bases):
        base = bases[i]
        last = i == len(bases) - 1
        expected = segments[-1].next_offset if segments else None
        if expected is not None and base < expected:
            _quarantine_overlap(directory, base, expected, report)
            del bases[i]
            continue
        seg = _open_trusted(directory, base, cfg, last, report, index_names) \
            if base in trusted else None
        split = None
        if seg is None:
            seg, split = recover_segment(directory, base, cfg, last=last,
                                         next_base=None if last else bases[i + 1],
                                         clean=clean, report=report, lost=lost)
            if split is not None:
                bases.insert(i + 1, split)     # not trusted: recovered next
            elif not last:
                seg.seal()
        if split is not None and seg.size == 0:
            report.deleted_segments.append(seg.log_path.name)   # emptied by the split
            seg.delete()
        else:
            if split is not None:
                seg.seal()
            segments.append(seg)
        i += 1
    if segments and not segments[-1].active:
        # The last surviving segment was opened sealed: reopen it writable so appends
        # can continue in it.
        seg = segments.pop()
        seg.close()
        seg = Segment.open(directory, seg.base_offset, cfg, active=True)
        if not seg.load_clean():
            seg, _ = recover_segment(directory, seg.base_offset, cfg, last=True,
                                     next_base=None, clean=clean, report=report,
                                     lost=lost)
        segments.append(seg)
    # Recovery truncates with pl_mfile_truncate, which fdatasyncs the kept prefix, so
    # everything loaded is durable and the recovery point can be the log end.
    return segments


def _quarantine_overlap(directory: Path, base: int, expected: int,
                        report: RecoveryReport) -> None:
    """Fourth pass: a segment whose offsets overlap the previous one's is not part of
    the log; its files go to the quarantine (never deleted)."""
    why = (f"{files.filename_prefix(base)} overlaps offsets before {expected}")
    q = Quarantine(directory.parent, by="pylog recovery")
    for path in (files.log_file(directory, base), files.index_file(directory, base),
                 files.timeindex_file(directory, base)):
        if path.exists():
            q.move_file(directory.name, path, {"topic": report.topic,
                                               "partition": report.partition,
                                               "reason": why})
    q.sync()
    files.fsync_dir(directory)
    report.warnings.append(f"{why}: moved to {q.root}")
