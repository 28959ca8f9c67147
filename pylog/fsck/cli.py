"""pylog-fsck's command line: arguments, the lock for --repair, output, exit codes.

Nothing a user can pass or a disk can hold ends in a traceback: bad arguments exit 16,
a path fsck cannot work on (missing, not a directory, unreadable, not a pylog data
directory, locked for --repair) exits 8 with one line naming it.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
from pathlib import Path
import sys

from pylog.fsck.datadir import NotPylogDirError, check_data_dir, read_lock_pid
from pylog.fsck.model import (ERROR, EXIT_OPERATIONAL, EXIT_USAGE, INFO, Report)
from pylog.fsck.repair import repair as _repair
from pylog.storage import files

__all__ = ["main", "run", "clear_lost", "FsckError"]


class FsckError(Exception):
    """fsck cannot work on this path at all (exit 8); the message says why."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):                      # argparse exits 2; fsck(8) says 16
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("pylog")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pylog-fsck", description="Verify (and with --repair, fix) a pylog "
                "data directory.  Exit codes: 0 clean, 1 errors corrected, 4 errors left, "
                "8 operational error, 16 usage error.")
    p.add_argument("--version", action="version", version=f"pylog-fsck {_version()}")
    p.add_argument("data_dir", help="the data directory (what pylog.open was given)")
    p.add_argument("--topic", help="check only this topic's partitions")
    p.add_argument("--repair", action="store_true", help="truncate corrupt tails into "
                   "quarantine/, rebuild indexes and damaged topic metadata, rewrite "
                   "checkpoints")
    p.add_argument("--clear-lost", action="store_true", help="mark the offset ranges "
                   "recovery recorded as lost to corruption as dealt with (lost-offsets."
                   "json; the bytes stay in quarantine/), then check")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--deep", action="store_true", help="also decode every record")
    p.add_argument("-v", "--verbose", action="store_true", help="also print info findings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _validate_path(data_dir: str) -> str:
    if not os.path.exists(data_dir):
        raise FsckError(f"{data_dir}: no such file or directory")
    if not os.path.isdir(data_dir):
        raise FsckError(f"{data_dir}: not a directory (give the data directory, not a file)")
    try:
        os.listdir(data_dir)
    except OSError as e:
        raise FsckError(f"{data_dir}: cannot list the directory: {e.strerror}") from None
    return data_dir


def _take_lock(data_dir: str) -> int:
    """Exclusive flock on <data>/.lock for --repair, or FsckError naming the holder."""
    path = os.path.join(data_dir, files.LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise FsckError(f"{path}: cannot open the lock file: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = read_lock_pid(data_dir)
        who = f"pid {pid}" if pid is not None else "another process"
        raise FsckError(f"refusing to repair {data_dir}: it is in use by {who} (which "
                        f"holds {path}); stop it first, or run without --repair for a "
                        f"read-only check") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def clear_lost(data_dir: str, topic: str | None = None) -> list[str]:
    """Mark every recorded lost range cleared (under the lock); a line per partition."""
    from pylog.storage.lost import LostOffsets
    data_dir = _validate_path(os.fspath(data_dir))
    lock_fd = _take_lock(data_dir)
    try:
        done = []
        for entry in sorted(os.listdir(data_dir)):
            tp = files.parse_partition_dir(entry)
            if tp is None or (topic is not None and tp[0] != topic):
                continue
            lost = LostOffsets(os.path.join(data_dir, entry))
            n = lost.count
            if lost.clear():
                done.append(f"{entry}: {n} lost offset(s) marked dealt with")
        return done
    finally:
        os.close(lock_fd)


def _complete_swaps(data_dir: str, topic: str | None) -> None:
    """--repair first finishes interrupted compaction swaps exactly as recovery's first
    pass does (storage/swap.py): a committed ``.log.swap`` replaces the segments it
    covers; before that, the gap it leaves must not be mistaken for lost offsets."""
    from pylog.storage import files, swap
    for name in sorted(os.listdir(data_dir)):
        parsed = files.parse_partition_dir(name)
        path = os.path.join(data_dir, name)
        if parsed is None or (topic is not None and parsed[0] != topic) \
                or not os.path.isdir(path):
            continue
        # Only committed swaps (holding batches); a garbage ``.log.swap`` is a leftover
        # file the scan below quarantines like any other.
        if any(n.endswith(files.LOG_SUFFIX + files.SWAP_SUFFIX) and
               swap.log_end_offset_of(os.path.join(path, n)) is not None
               for n in os.listdir(path)):
            swap.complete_swaps(Path(path))


def run(data_dir: str, *, topic: str | None = None, repair: bool = False,
        deep: bool = False, progress=None) -> Report:
    """Check (and repair) ``data_dir``; FsckError if it cannot be worked on at all."""
    data_dir = _validate_path(os.fspath(data_dir))
    lock_fd = _take_lock(data_dir) if repair else None
    try:
        if repair:
            _complete_swaps(data_dir, topic)
        try:
            report = check_data_dir(data_dir, topic=topic, deep=deep, progress=progress,
                                    probe_lock=lock_fd is None)
        except NotPylogDirError as e:
            raise FsckError(str(e)) from None
        if repair and not report.operational and any(f.fix for f in report.findings):
            _repair(data_dir, report)
            after = check_data_dir(data_dir, topic=topic, deep=deep, probe_lock=False)
            for f in after.findings:
                if f.severity == ERROR:
                    f.message = f"still wrong after repair: {f.message}"
                    report.add(f)
            report.operational.extend(after.operational)
        report.repaired = repair
        return report
    finally:
        if lock_fd is not None:
            os.close(lock_fd)


def _progress_bar(data_dir: str, enabled: bool):
    if not enabled or not sys.stderr.isatty():
        return None, None
    try:
        from tqdm import tqdm
    except ImportError:
        return None, None
    total = 0
    for root, _, names in os.walk(data_dir):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in names
                     if n.endswith(files.LOG_SUFFIX))
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
               desc="pylog-fsck", file=sys.stderr, leave=False)
    return bar, bar.update


def _print_text(report: Report, verbose: bool, out) -> None:
    mode = "repair" if report.repaired else "read-only check"
    print(f"pylog-fsck: {report.data_dir} ({mode})", file=out)
    for f in report.findings:
        if f.severity == INFO and not verbose:
            continue
        tag = ""
        if f.fix:
            tag = f"  [fixed: {f.fix}]" if f.fixed else f"  [--repair: {f.fix}]"
        print(f"{f.severity.upper():7} {f.kind}: {f.where()}: {f.message}{tag}", file=out)
    for msg in report.operational:
        print(f"OPERATIONAL {msg}", file=out)
    s = report.summary()
    rate = f", {s['gib_per_s']:.2f} GiB/s" if s["gib_per_s"] else ""
    print(f"summary: {s['partitions']} partitions, {s['segments']} segments, "
          f"{s['batches']} batches, {s['records']} records, {s['bytes_checked']} bytes in "
          f"{s['seconds']:.3f} s{rate}; {s['errors']} errors ({s['fixed']} fixed, "
          f"{s['errors_left']} left), {s['warnings']} warnings; exit {s['exit_code']}",
          file=out)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    bar, update = _progress_bar(args.data_dir, not (args.no_progress or args.json)) \
        if os.path.isdir(args.data_dir) else (None, None)
    try:
        if args.clear_lost:
            for line in clear_lost(args.data_dir, args.topic):
                print(f"pylog-fsck: {line}", file=sys.stderr)
        report = run(args.data_dir, topic=args.topic, repair=args.repair,
                     deep=args.deep, progress=update)
    except FsckError as e:
        return _fail(str(e), args.json)
    except OSError as e:
        return _fail(f"{e.filename or args.data_dir}: {e.strerror or e}", args.json)
    except Exception as e:                 # a bug in fsck: still no traceback
        if os.environ.get("PYLOG_FSCK_DEBUG"):
            raise
        return _fail(f"internal error: {type(e).__name__}: {e}", args.json)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_text(report, args.verbose, sys.stdout)
    return report.exit_code()


def _fail(msg: str, as_json: bool) -> int:
    if as_json:
        json.dump({"error": msg, "summary": {"exit_code": EXIT_OPERATIONAL}}, sys.stdout)
        sys.stdout.write("\n")
    print(f"pylog-fsck: {msg}", file=sys.stderr)
    return EXIT_OPERATIONAL
