"""Checks of a whole data directory: the lock, ``topic-metadata.json``, the partition
directories (partition.py), the offset checkpoints and the files around them.

Read-only: nothing here writes, creates or locks for longer than a probe.  The lock
probe takes a *shared* flock on ``<data>/.lock`` and drops it at once, so a writer
that starts during the check is not blocked; when a writer holds the lock the check
still runs, and findings in the active segments' tails are marked as possibly a write
in progress.
"""
from __future__ import annotations

import fcntl
import os
import time

from pylog.config import TopicConfig
from pylog.errors import StorageError
from pylog.fsck.model import ERROR, INFO, WARNING, Finding, Report
from pylog.fsck.partition import TEMP_SUFFIXES, scan_partition
from pylog.storage import files, metadata
from pylog.storage.checkpoint import read_offset_checkpoint
from pylog.storage.quarantine import QUARANTINE_DIR

__all__ = [
    "QUARANTINE_DIR",
    "NotPylogDirError",
    "check_data_dir",
    "load_metadata",
    "lock_holder",
    "read_lock_pid",
]

_KNOWN_ROOT_FILES = {files.LOCK_FILE, files.CLEAN_SHUTDOWN_FILE, files.METADATA_FILE,
                     metadata.PREV_FILE,
                     files.RECOVERY_POINT_CHECKPOINT, files.LOG_START_CHECKPOINT,
                     "cleaner-offset-checkpoint",   # the log cleaner's (storage/cleaner.py)
                     "producer-id-high-water"}   # pylog.broker.producers.HIGH_WATER_FILE


class NotPylogDirError(Exception):
    """The directory holds nothing a pylog data directory would."""


def read_lock_pid(data_dir: str) -> int | None:
    try:
        with open(os.path.join(data_dir, files.LOCK_FILE), "rb") as fh:
            text = fh.read(64).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def lock_holder(data_dir: str) -> tuple[bool, int | None]:
    """(held, pid): whether a process holds ``<data>/.lock`` now, and the pid it wrote."""
    path = os.path.join(data_dir, files.LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False, None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True, read_lock_pid(data_dir)
    finally:
        os.close(fd)                 # closing drops our shared lock, if we got it
    return False, None


def load_metadata(data_dir: str, report: Report | None):
    """{topic: (partitions, TopicConfig)} as ``pylog.open`` would read them
    (storage/metadata.py: the main file, else ``.prev`` reconciled with the partition
    directories, else the directories), or None when no metadata was ever written or
    it cannot be used at all.  A damaged or missing main file is an error that
    --repair fixes by writing what was recovered (``rebuild-metadata``)."""
    def add(severity, kind, msg, file=files.METADATA_FILE, fix=None):
        if report is not None:
            report.add(Finding(severity, kind, msg, file=file, fix=fix))
    try:
        rec = metadata.load(data_dir)
    except StorageError as e:                      # intact but unusable: reported only
        return add(ERROR, "metadata", str(e))
    if rec.source == "none":
        return None
    if rec.damaged:
        kind = "metadata-missing" if rec.damaged == "missing" else "metadata"
        frm = (f"{metadata.PREV_FILE} and the partition directories"
               if rec.source == "prev" else "the partition directories (default configs)")
        add(ERROR, kind, f"{files.METADATA_FILE} is {rec.damaged}; --repair rebuilds it "
            f"from {frm}, as opening the log would", fix="rebuild-metadata")
        for note in rec.notes[1:]:
            add(WARNING, "metadata-rebuild", note)
        return rec.topics
    prev = metadata.read_generation(data_dir, metadata.PREV_FILE)
    if prev.problem or prev.refuse:
        add(WARNING, "metadata-prev", f"the previous generation is unusable "
            f"({prev.problem or prev.refuse}); --repair copies the current file over it",
            file=metadata.PREV_FILE, fix="rewrite-metadata-prev")
    return rec.topics


def _looks_like_pylog(data_dir: str, names: list[str]) -> bool:
    if _KNOWN_ROOT_FILES.intersection(names):
        return True
    for name in names:
        full = os.path.join(data_dir, name)
        if files.parse_partition_dir(name) and os.path.isdir(full):
            try:
                if any(files.parse_base_offset(n) for n in os.listdir(full)):
                    return True
            except OSError:
                return True
    return False


def check_data_dir(data_dir: str, *, topic: str | None = None, deep: bool = False,
                   progress=None, probe_lock: bool = True) -> Report:
    """Check everything under ``data_dir``; raises NotPylogDirError or OSError only
    for a directory fsck cannot work on at all."""
    t0 = time.perf_counter()
    report = Report(data_dir, topic_filter=topic)
    names = sorted(os.listdir(data_dir))
    if not _looks_like_pylog(data_dir, names):
        raise NotPylogDirError(f"{data_dir} is not a pylog data directory (no "
                               f"{files.METADATA_FILE}, checkpoints, {files.LOCK_FILE} or "
                               f"partition directories with segments)")
    held, pid = lock_holder(data_dir) if probe_lock else (False, None)
    if held:
        report.live_pid = pid if pid is not None else -1
        report.add(Finding(INFO, "live", f"the directory is in use by pid {pid}; checking "
                           f"a snapshot of files that may be changing", file=files.LOCK_FILE))
    clean = files.CLEAN_SHUTDOWN_FILE in names
    meta = load_metadata(data_dir, report)
    part_dirs = _root_entries(data_dir, names, report, topic)
    # No metadata file is normal until the first topic is created (FORMAT.md §9); a
    # missing one with records in the directories is reported by load_metadata.
    dirs = [n for n in names if files.parse_partition_dir(n)
            and os.path.isdir(os.path.join(data_dir, n))]
    if meta is None and files.METADATA_FILE not in names and dirs:
        # a first topic creation interrupted before its metadata was written (older
        # pylog wrote directories first): no directory holds a record, nothing to lose
        report.add(Finding(WARNING, "orphan-partition-dirs", f"{len(dirs)} partition "
                           f"directories hold no records and no {files.METADATA_FILE} "
                           f"lists them (an interrupted topic creation); opening the "
                           f"log removes them", file=files.METADATA_FILE))
        part_dirs = []
    if topic is not None and not part_dirs and (meta is None or topic not in meta):
        raise NotPylogDirError(f"topic {topic!r} is not in {data_dir}")
    for dir_name, t, p in part_dirs:
        if meta is not None and t not in meta:
            report.add(Finding(WARNING, "unknown-topic", f"partition directory of topic "
                               f"{t!r}, which {files.METADATA_FILE} does not list (not "
                               f"loaded; left alone)", t, p, dir_name))
            continue
        if meta is not None and p >= meta[t][0]:
            report.add(Finding(WARNING, "unknown-partition", f"partition {p} but topic "
                               f"{t!r} has {meta[t][0]} partitions", t, p, dir_name))
        cfg = meta[t][1] if meta is not None else TopicConfig()
        ps = scan_partition(data_dir, dir_name, t, p, report.findings, deep=deep,
                            clean=clean, live=held, interval=cfg.index_interval_bytes,
                            progress=progress)
        report.partitions.append(ps)
    if meta is not None:
        have = {(ps.topic, ps.partition) for ps in report.partitions}
        for t, (n, _) in sorted(meta.items()):
            if topic is not None and t != topic:
                continue
            for p in range(n):
                if (t, p) not in have:
                    report.add(Finding(INFO, "partition-dir-missing", "no partition "
                                       "directory yet (opening the log creates it)", t, p))
    _check_checkpoints(data_dir, report, topic, names)
    _totals(report)
    report.seconds = time.perf_counter() - t0
    return report


def _root_entries(data_dir: str, names: list[str], report: Report,
                  topic: str | None) -> list[tuple[str, str, int]]:
    """Partition directories to scan; root-level temp and stray files as findings."""
    out = []
    for name in names:
        full = os.path.join(data_dir, name)
        if name in _KNOWN_ROOT_FILES or name == QUARANTINE_DIR:
            continue
        parsed = files.parse_partition_dir(name)
        if parsed is not None and os.path.isdir(full):
            if topic is None or parsed[0] == topic:
                out.append((name, parsed[0], parsed[1]))
        elif name.endswith(TEMP_SUFFIXES) and os.path.isfile(full):
            report.add(Finding(WARNING, "temp-file", "leftover temporary file of an "
                               "interrupted atomic replace", file=name, fix="quarantine"))
        else:
            report.add(Finding(WARNING, "stray-file", "not part of a pylog data "
                               "directory (left alone)", file=name))
    return sorted(out, key=lambda e: (e[1], e[2]))


def _check_checkpoints(data_dir: str, report: Report, topic: str | None,
                       names: list[str]) -> None:
    parts = {(ps.topic, ps.partition): ps for ps in report.partitions
             if ps.segments and not ps.unreadable}
    for fname, kind in ((files.RECOVERY_POINT_CHECKPOINT, "recovery-point"),
                        (files.LOG_START_CHECKPOINT, "log-start")):
        if fname not in names:
            continue
        entries, warning = read_offset_checkpoint(os.path.join(data_dir, fname))
        if warning:
            report.add(Finding(ERROR, "checkpoint-malformed", warning, file=fname,
                               fix="rewrite-checkpoints"))
            continue
        for (t, p), off in sorted(entries.items()):
            if topic is not None and t != topic:
                continue
            ps = parts.get((t, p))
            if ps is None:
                if not any(x.topic == t and x.partition == p for x in report.partitions):
                    report.add(Finding(WARNING, "checkpoint-unknown", f"{kind} entry for a "
                                       f"partition with no log", t, p, fname,
                                       fix="rewrite-checkpoints"))
                continue
            first = ps.segments[0].base_offset
            if off > ps.log_end_offset and report.live_pid is not None:
                report.add(Finding(INFO, f"{kind}-ahead-of-snapshot", f"{kind} {off} is "
                                   f"past the end seen ({ps.log_end_offset}); the writer "
                                   f"is live", t, p, fname))
            elif off > ps.log_end_offset:
                last = ps.segments[-1] if ps.cut is None else None
                if kind == "recovery-point" and last is not None:
                    report.add(Finding(ERROR, "log-truncated", f"the log ends at offset "
                                       f"{ps.log_end_offset} but the recovery point says "
                                       f"offsets below {off} were synced: bytes of the log "
                                       f"were lost", t, p, last.log_path, last.valid_end,
                                       (ps.log_end_offset, off - 1),
                                       fix="rewrite-checkpoints"))
                report.add(Finding(ERROR, f"{kind}-beyond-end", f"{kind} checkpoint says "
                                   f"{off} but the valid log ends at {ps.log_end_offset}",
                                   t, p, fname, offsets=(ps.log_end_offset, off - 1),
                                   fix="rewrite-checkpoints"))
            elif kind == "log-start" and off < first:
                report.add(Finding(ERROR, "log-start-before-first", f"log start offset "
                                   f"{off} is below the first segment's base {first}",
                                   t, p, fname, fix="rewrite-checkpoints"))
            elif kind == "log-start":
                ps.log_start_offset = off


def _totals(report: Report) -> None:
    for ps in report.partitions:
        for seg in ps.segments:
            report.segments += 1
            report.bytes_checked += seg.valid_end
            report.batches += seg.batches
            report.records += seg.records
    if any(f.kind == "unreadable" for f in report.findings):
        report.operational.extend(f"{f.file}: {f.message}" for f in report.findings
                                  if f.kind == "unreadable")
