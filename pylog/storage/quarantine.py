"""Where bytes that are not part of the log any more go: ``<data>/quarantine/``.

Neither automatic recovery (``storage.salvage``) nor ``pylog-fsck --repair`` deletes
data it cannot use: a corrupt batch's bytes, a file that is not part of the log, are
copied or moved under ``<data>/quarantine/<topic>-<partition>/`` (synced) with a JSON
note beside each saying where they came from and why, before anything is cut.  An
operator inspects them with ``tools/dumplog.py`` and deletes them when done.
"""
from __future__ import annotations

import json
import os
import time

from pylog.storage import files

__all__ = ["QUARANTINE_DIR", "Quarantine"]

QUARANTINE_DIR = "quarantine"


class Quarantine:
    """Copies byte ranges and moves files under <data>/quarantine/<sub>/ with a note each."""

    def __init__(self, data_dir: str | os.PathLike, by: str):
        self.root = os.path.join(data_dir, QUARANTINE_DIR)
        self.by = by
        self.stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.seq = 0
        self.touched: set[str] = set()

    def _target(self, sub: str, name: str) -> str:
        d = os.path.join(self.root, sub)
        os.makedirs(d, exist_ok=True)
        self.touched.update({self.root, d})
        self.seq += 1
        return os.path.join(d, f"{self.stamp}-{os.getpid()}-{self.seq}-{name}")

    def _note(self, target: str, note: dict) -> None:
        note = dict(note, quarantined_at=self.stamp, by=self.by)
        files.atomic_write(target + ".note.json",
                           (json.dumps(note, indent=1, sort_keys=True) + "\n").encode())

    def save_range(self, sub: str, path: str | os.PathLike, start: int, end: int,
                   note: dict) -> str:
        """Copy path[start:end] into the quarantine (synced) before it is cut; returns
        the copy's path."""
        path = os.fspath(path)
        target = self._target(sub, f"{os.path.basename(path)}.{start}-{end}")
        with open(path, "rb") as src, open(target, "wb") as dst:
            src.seek(start)
            left = end - start
            while left > 0:
                chunk = src.read(min(left, 8 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                left -= len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        self._note(target, dict(note, origin=path, byte_range=[start, end]))
        return target

    def move_file(self, sub: str, path: str | os.PathLike, note: dict) -> str:
        path = os.fspath(path)
        target = self._target(sub, os.path.basename(path))
        os.replace(path, target)
        self._note(target, dict(note, origin=path))
        return target

    def sync(self) -> None:
        for d in sorted(self.touched, key=len, reverse=True):
            files.fsync_dir(d)
