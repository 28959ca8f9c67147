"""Replacing segments with cleaned ones, crash-safe: Kafka's ``.cleaned`` / ``.swap``
protocol (``LogSegment`` / ``LocalLog.replaceSegments``, ``LogLoader``'s swap pass).

A cleaning pass over a group of segments with base offsets B = b0 < b1 < ... < bn
(offsets [B, E)) writes one segment holding the same offsets [B, E) (compact.c keeps
the chain of base offsets contiguous: the first batch is rebased to B, the last one
ends at E - 1):

    1. ``B.log.cleaned`` (+ ``B.index.cleaned``, ``B.timeindex.cleaned``, and
       ``B.txnindex.cleaned`` when the group's segments hold aborted transactions:
       their entries, concatenated), synced.
    2. rename the indexes to ``.swap``, then ``B.log.cleaned`` -> ``B.log.swap``,
       fsync(dir).  **The rename of the .log is the commit point.**
    3. unlink the old segments b1..bn (their .txnindex too), unlink B's old indexes,
       rename the index swaps to ``B.index`` / ``B.timeindex`` / ``B.txnindex`` (the
       last an atomic replace; without one, B's old .txnindex goes), then
       ``B.log.swap`` -> ``B.log`` (atomic replace of the old B.log), fsync(dir).

Recovery (``complete_swaps``, called by the loader's first pass) after a crash at
any point:
    - a ``.cleaned`` file: the pass never committed; delete it (the old segments are
      all still there).
    - ``X.log.swap``: committed.  Read the offsets it ends at (E), delete every
      ``.log`` (and its indexes) whose base offset is in (X, E), delete X's indexes
      (they may be the old segment's, or the new one's: either way a cache, rebuilt),
      put ``X.txnindex.swap`` in place if there is one (else ``X.txnindex`` is
      already the merged one, or the group had none), then rename ``X.log.swap`` ->
      ``X.log``.  The .txnindex is not a cache: once aborted data is cleaned away the
      log cannot say the transaction was aborted, so it travels with the swap.
    - an index ``.swap`` without its ``X.log.swap``: either step 2 stopped before the
      commit (its log is still ``.cleaned``) or step 3 already renamed the log: in
      both cases a cache; delete it.
So a reader of the directory sees the old segments or the new one for each offset,
never both (no record twice) and never neither (nothing lost).

Not thread-safe; the cleaner calls ``commit``/``install`` holding the partition lock.
"""
from __future__ import annotations

import os
from pathlib import Path

from pylog.storage import files

__all__ = ["cleaned_paths", "txnindex_cleaned_path", "discard_cleaned", "commit", "install",
           "complete_swaps", "log_end_offset_of"]

_SUFFIXES = (files.LOG_SUFFIX, files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX)
_CACHES = (files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX)
_ALL = _SUFFIXES + (files.TXNINDEX_SUFFIX,)


def _with(directory: Path, base: int, suffix: str, temp: str = "") -> Path:
    return directory / (files.filename_prefix(base) + suffix + temp)


def cleaned_paths(directory: Path, base: int) -> tuple[Path, Path, Path]:
    """``B.log.cleaned``, ``B.index.cleaned``, ``B.timeindex.cleaned``."""
    return tuple(_with(directory, base, s, files.CLEANED_SUFFIX) for s in _SUFFIXES)


def txnindex_cleaned_path(directory: Path, base: int) -> Path:
    """``B.txnindex.cleaned`` (written only when the group has aborted transactions)."""
    return _with(directory, base, files.TXNINDEX_SUFFIX, files.CLEANED_SUFFIX)


def discard_cleaned(directory: Path, base: int) -> None:
    """Remove what a pass that will not commit left (cleaned and uncommitted swaps)."""
    for s in _ALL:
        _with(directory, base, s, files.CLEANED_SUFFIX).unlink(missing_ok=True)
    for s in _CACHES + (files.TXNINDEX_SUFFIX,):
        _with(directory, base, s, files.SWAP_SUFFIX).unlink(missing_ok=True)


def commit(directory: Path, base: int) -> None:
    """Step 2: indexes to .swap, then the log (the commit point), fsync(dir)."""
    txn = txnindex_cleaned_path(directory, base)
    if txn.exists():
        os.replace(txn, _with(directory, base, files.TXNINDEX_SUFFIX, files.SWAP_SUFFIX))
    for s in (files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX, files.LOG_SUFFIX):
        os.replace(_with(directory, base, s, files.CLEANED_SUFFIX),
                   _with(directory, base, s, files.SWAP_SUFFIX))
    files.fsync_dir(directory)


def _install_txnindex(directory: Path, base: int) -> bool:
    """B.txnindex.swap -> B.txnindex (atomic replace); False if there is none."""
    swapped = _with(directory, base, files.TXNINDEX_SUFFIX, files.SWAP_SUFFIX)
    if not swapped.exists():
        return False
    os.replace(swapped, _with(directory, base, files.TXNINDEX_SUFFIX))
    return True


def install(directory: Path, base: int, replaced: list[int]) -> None:
    """Step 3: unlink the replaced segments after the first, B's old indexes, then put
    the swap files in place (the log last), fsync(dir)."""
    for b in replaced:
        if b != base:                 # indexes first: a kill leaves no orphan index
            for s in _CACHES + (files.TXNINDEX_SUFFIX, files.LOG_SUFFIX):
                _with(directory, b, s).unlink(missing_ok=True)
    for s in _CACHES:
        _with(directory, base, s).unlink(missing_ok=True)
    if not _install_txnindex(directory, base):
        _with(directory, base, files.TXNINDEX_SUFFIX).unlink(missing_ok=True)
    for s in (files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX, files.LOG_SUFFIX):
        os.replace(_with(directory, base, s, files.SWAP_SUFFIX), _with(directory, base, s))
    files.fsync_dir(directory)


def log_end_offset_of(path: Path) -> int | None:
    """The offset after the last batch of a .log file, walking the batch headers
    (baseOffset + lastOffsetDelta + 1); None if it holds no whole batch."""
    end = None
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = 0
        while pos + 27 <= size:
            head = os.pread(f.fileno(), 27, pos)
            length = int.from_bytes(head[8:12], "big", signed=True)
            if length < 49 or pos + 12 + length > size:
                break
            end = (int.from_bytes(head[0:8], "big", signed=True)
                   + int.from_bytes(head[23:27], "big", signed=True) + 1)
            pos += 12 + length
    return end


def complete_swaps(directory: Path) -> tuple[list[str], list[str]]:
    """Recovery's swap rules (module doc); returns (removed files, notes)."""
    removed, notes = [], []
    names = sorted(os.listdir(directory))
    log_swaps = [n for n in names if n.endswith(files.LOG_SUFFIX + files.SWAP_SUFFIX)]
    for name in names:
        if name.endswith(files.SWAP_SUFFIX) and name not in log_swaps:
            stem = name[:-len(files.SWAP_SUFFIX)]
            parsed = files.parse_base_offset(stem)
            if parsed is None or (files.filename_prefix(parsed[0]) + files.LOG_SUFFIX
                                  + files.SWAP_SUFFIX) not in log_swaps:
                (directory / name).unlink(missing_ok=True)
                removed.append(name)
    for name in log_swaps:
        parsed = files.parse_base_offset(name[:-len(files.SWAP_SUFFIX)])
        if parsed is None:
            continue
        base = parsed[0]
        end = log_end_offset_of(directory / name)
        if end is None:                 # cannot happen (synced before the rename)
            (directory / name).unlink(missing_ok=True)
            removed.append(name)
            notes.append(f"{name}: holds no batch; removed, the old segments kept")
            continue
        doomed = set()
        for entry in os.listdir(directory):
            p = files.parse_base_offset(entry)
            if p is not None and base < p[0] < end:
                doomed.add(p[0])
        for b in sorted(doomed):
            for s in _CACHES + (files.TXNINDEX_SUFFIX, files.LOG_SUFFIX):
                path = _with(directory, b, s)
                if path.exists():
                    path.unlink()
                    removed.append(path.name)
        for s in (files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX):
            for path in (_with(directory, base, s), _with(directory, base, s,
                                                          files.SWAP_SUFFIX)):
                if path.exists():
                    path.unlink()
                    removed.append(path.name)
        _install_txnindex(directory, base)
        os.replace(directory / name, _with(directory, base, files.LOG_SUFFIX))
        notes.append(f"completed the compaction swap of {files.filename_prefix(base)} "
                     f"(offsets {base}..{end - 1}; {len(doomed)} old segment(s) replaced)")
    if removed or notes:
        files.fsync_dir(directory)
    return removed, notes
