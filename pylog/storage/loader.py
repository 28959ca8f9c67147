"""Loading a partition's segments at open: recovery written as numbered passes, the way
Kafka's ``LogLoader`` does it (DESIGN section 2, research/kafka-protocol.md 1.7).

    First pass   resolve temporary files: delete ``.deleted`` and ``.cleaned`` leftovers,
                 rename ``.swap`` files back into place (interrupted compaction/split).
    Second pass  delete index files that have no ``.log`` (orphans).
    Third pass   open every segment, oldest first; the last one is the active segment.
                 After a clean shutdown: trust the files (``load_clean``), recovering
                 only a segment whose sanity check fails or whose index is missing.
                 After an unclean one: trust segments below the one holding the
                 recovery point the same way, and recover that one and every later one:
                 validate each batch, rebuild the indexes, stop at the first invalid
                 batch, truncate there (the tail is zeroed and synced by the C core).
    Fourth pass  if a segment was truncated (or does not continue its predecessor),
                 delete every later segment: a corrupt tail ends the log.
    Fifth pass   no segment left: create an empty one at the log start offset.

Invalid data on disk is a normal outcome: the report says what was dropped.  Only an
I/O failure (a file we cannot open or map) raises, as StorageError.

The clean-shutdown marker itself is handled by ``broker.manager`` (it is per data dir):
deleted before any partition loads, written last on close.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pylog.storage import files
from pylog.storage.segment import Segment

__all__ = ["RecoveryReport", "load_segments"]


@dataclass
class RecoveryReport:
    """What loading one partition found and did."""
    topic: str
    partition: int
    mode: str                                   # "clean", "unclean" or "new"
    segments: int = 0                           # segments loaded
    recovered: list[dict] = field(default_factory=list)   # per recovered segment
    deleted_segments: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    bytes_dropped: int = 0                      # non-zero bytes cut from torn tails
    bytes_deleted: int = 0                      # sizes of deleted later segments
    offsets_lost_at_least: int = 0              # offsets in deleted later segments
    log_start_offset: int = 0
    log_end_offset: int = 0
    recovery_point: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def lost_data(self) -> bool:
        return bool(self.bytes_dropped or self.deleted_segments)


def _resolve_temp_files(directory: Path, report: RecoveryReport) -> None:
    """First pass."""
    for entry in sorted(os.listdir(directory)):
        if entry.endswith((files.DELETED_SUFFIX, files.CLEANED_SUFFIX)):
            (directory / entry).unlink(missing_ok=True)
            report.removed_files.append(entry)
        elif entry.endswith(files.SWAP_SUFFIX):
            os.replace(directory / entry, directory / entry[:-len(files.SWAP_SUFFIX)])
            report.warnings.append(f"renamed {entry} back into place")


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
                  report: RecoveryReport, index_names: set) -> Segment:
    """Open a segment we expect to be intact; recover it if a sanity check fails."""
    if _indexes_present(index_names, base):
        seg = Segment.open(directory, base, cfg, active=last)
        if seg.load_clean():
            return seg
        seg.close()
        report.warnings.append(f"{files.filename_prefix(base)}: index sanity check "
                               "failed; segment recovered")
    else:
        report.warnings.append(f"{files.filename_prefix(base)}: index missing; rebuilt")
    return _open_recovered(directory, base, cfg, last, report)


def _open_recovered(directory: Path, base: int, cfg, last: bool,
                    report: RecoveryReport) -> Segment:
    """Recover a segment (it must be opened writable to truncate and rebuild)."""
    seg = Segment.open(directory, base, cfg, active=True)
    rep = seg.recover()
    report.recovered.append(rep)
    report.bytes_dropped += rep["dropped_data_bytes"]
    if not last:
        seg.seal()
    return seg


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
    if report.deleted_segments:
        last_deleted = max(files.parse_base_offset(n)[0] for n in report.deleted_segments)
        report.offsets_lost_at_least = max(0, last_deleted - leo)
    report.segments = len(segments)
    report.log_start_offset, report.log_end_offset = start, leo
    report.recovery_point = leo        # trusted or recovered-and-synced up to the end
    return segments, start, leo, report


def _load(directory: Path, bases: list[int], cfg, clean: bool,
          recovery_point: int | None, report: RecoveryReport,
          index_names: set) -> list[Segment]:
    """Third and fourth passes."""
    if clean or recovery_point is None:
        first_unsafe = len(bases) if clean else 0
    else:
        # the segment holding the recovery point, and everything after it
        first_unsafe = max(0, sum(1 for b in bases if b <= recovery_point) - 1)
    segments: list[Segment] = []
    for i, base in enumerate(bases):
        last = i == len(bases) - 1
        expected = segments[-1].next_offset if segments else None
        if expected is not None and base < expected:
            _delete_from(directory, bases[i:], report,
                         f"{files.filename_prefix(base)} overlaps offsets before "
                         f"{expected}")
            break
        if i < first_unsafe:
            seg = _open_trusted(directory, base, cfg, last, report, index_names)
        else:
            seg = _open_recovered(directory, base, cfg, last, report)
        segments.append(seg)
        rep = report.recovered[-1] if report.recovered else None
        if (rep is not None and rep["segment"] == seg.log_path.name
                and rep["stop_reason"] is not None and not last):
            _delete_from(directory, bases[i + 1:], report,
                         f"{seg.log_path.name} truncated at byte {rep['stop_position']}")
            break
    if segments and not segments[-1].active:
        # The last surviving segment was opened sealed (later ones deleted): reopen it
        # writable so appends can continue in it.
        seg = segments.pop()
        seg.close()
        seg = Segment.open(directory, seg.base_offset, cfg, active=True)
        if not seg.load_clean():
            rep = seg.recover()
            report.recovered.append(rep)
            report.bytes_dropped += rep["dropped_data_bytes"]
        segments.append(seg)
    # Recovery truncates with pl_mfile_truncate, which fdatasyncs the kept prefix, so
    # everything loaded is durable and the recovery point can be the log end.
    return segments


def _delete_from(directory: Path, bases: list[int], report: RecoveryReport,
                 why: str) -> None:
    """Fourth pass: delete every segment from ``bases`` on (a corrupt tail ends the log)."""
    if not bases:
        return
    report.warnings.append(f"{why}: deleting {len(bases)} later segment(s)")
    for base in bases:
        for path in (files.log_file(directory, base), files.index_file(directory, base),
                     files.timeindex_file(directory, base)):
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            if path.suffix == files.LOG_SUFFIX:
                report.deleted_segments.append(path.name)
                report.bytes_deleted += size
    files.fsync_dir(directory)
