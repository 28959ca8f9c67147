"""Offsets lost to media corruption: ``<topic>-<partition>/lost-offsets.json``.

When recovery finds a corrupt batch with intact data after it (``storage.salvage``), it
quarantines the bad bytes and keeps everything else; the offsets the bad bytes held are
then missing from the log.  This file remembers each such range until an operator clears
it (``pylog-fsck --clear-lost DATA_DIR``), so ``pylog-fsck``, ``/metrics`` and reads can
say what happened long after the recovery's log line scrolled away:

    {"version": 1, "ranges": [{"start": 5, "end": 6, "segment": "000...0004.log",
      "byte_range": [180, 360], "quarantine": "quarantine/t-0/...", "reason": "...",
      "detected_at": "2026-12-07T03:40:00Z"}]}

``start`` is inclusive, ``end`` exclusive; ``cleared_at`` is added when an operator
clears a range (it stays, so the gap in the log stays explained).  Written with the
atomic-replace protocol.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from pylog.errors import CorruptRecordError
from pylog.storage import files

__all__ = ["LOST_OFFSETS_FILE", "LostOffsets", "describe"]

LOST_OFFSETS_FILE = "lost-offsets.json"
VERSION = 1
_log = logging.getLogger("pylog.storage")


class LostOffsets:
    """The lost ranges of one partition directory (read at open, appended by recovery)."""

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / LOST_OFFSETS_FILE
        self.ranges: list[dict] = []
        self.problem: str | None = None       # why the file could not be read, if so
        self._warned: set[tuple[int, int]] = set()
        try:
            doc = json.loads(self.path.read_bytes())
            ranges = doc["ranges"]
            if doc.get("version") != VERSION or not isinstance(ranges, list) or not all(
                    isinstance(r, dict) and isinstance(r.get("start"), int)
                    and isinstance(r.get("end"), int) for r in ranges):
                raise ValueError("unexpected layout")
            self.ranges = sorted(ranges, key=lambda r: r["start"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.problem = f"{self.path}: unreadable ({e}); kept as it is"

    def add(self, start: int, end: int, **facts) -> dict:
        """Record [start, end) as lost (idempotent for the same range) and persist."""
        for r in self.ranges:
            if (r["start"], r["end"]) == (start, end):
                return r
        if self.problem is not None:          # never overwrite what we could not read
            os.replace(self.path, self.path.with_name(self.path.name + ".unreadable"))
            self.problem = None
        r = dict(facts, start=start, end=end,
                 detected_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.ranges.append(r)
        self.ranges.sort(key=lambda x: x["start"])
        self._save()
        return r

    def find(self, offset: int) -> dict | None:
        """The lost range holding ``offset``, or None."""
        for r in self.ranges:
            if r["start"] <= offset < r["end"]:
                return r
        return None

    def crossing(self, offset: int, policy: str, name: str) -> None:
        """A read at ``offset`` skips a gap between segments: raise CorruptRecordError
        under policy "raise" if the gap is a lost range, else log it (once per range)."""
        r = self.find(offset)
        if r is None or "cleared_at" in r:
            return
        if policy == "raise":
            raise CorruptRecordError(f"{name}: {describe(r)} (pylog.lost.offsets.policy="
                                     "raise; pylog-fsck --clear-lost forgets it)")
        key = (r["start"], r["end"])
        if key not in self._warned:
            self._warned.add(key)
            _log.warning("%s: read skips %s", name, describe(r))

    @property
    def open_ranges(self) -> list[dict]:
        """The ranges no operator has cleared yet."""
        return [r for r in self.ranges if "cleared_at" not in r]

    @property
    def count(self) -> int:
        """Offsets in the ranges not cleared yet (what /metrics shows)."""
        return sum(r["end"] - r["start"] for r in self.open_ranges)

    def clear(self) -> int:
        """Mark every open range as dealt with (pylog-fsck --clear-lost); returns how
        many.  The ranges stay in the file, so the gaps they explain stay explained:
        fsck shows them as info, reads skip them without a warning."""
        todo = self.open_ranges
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for r in todo:
            r["cleared_at"] = stamp
        if todo:
            self._save()
        return len(todo)

    def _save(self) -> None:
        doc = {"version": VERSION, "ranges": self.ranges}
        files.atomic_write(self.path, (json.dumps(doc, indent=1, sort_keys=True)
                                       + "\n").encode())


def describe(r: dict) -> str:
    """One line for a log message or a report."""
    first, last = r["start"], r["end"] - 1
    span = f"offset {first}" if first == last else f"offsets {first}..{last}"
    where = f" ({r['segment']} bytes {r['byte_range'][0]}..{r['byte_range'][1]})" \
        if r.get("segment") and r.get("byte_range") else ""
    q = f", quarantined as {r['quarantine']}" if r.get("quarantine") else ""
    return f"{span} lost to corruption{where}{q}: {r.get('reason', '?')}"
