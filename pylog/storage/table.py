"""``log.table(topic)``: a read-only latest-per-key view of a topic, a ``Mapping``.

    t = log.table("config")          # key bytes -> value bytes of its latest record
    t[b"k"]; t.get(b"k"); b"k" in t; len(t); dict(t.items())
    t.offset(b"k")                   # offset of that latest record
    t.close()                        # (also a context manager)

Built by reading every partition from its log start, then kept up to date: a
listener on each partition (``PartitionLog.add_listener``) marks the view stale
when records arrive, and the next access reads them (from where the view stopped;
the appender never waits for the view).  A tombstone (null value) deletes its key;
keyless records are skipped.  On a compacted topic the read at open costs one
record per live key (plus what the cleaner has not reached yet); on any other topic
it is the same view, over every record.  If retention moves a partition's log
start past where the view stopped, that partition is read again from its start.
Reads are read_committed (``PartitionLog.read_stable``): the view stops at the last
stable offset and never shows a record of an aborted transaction.

Thread-safe (one lock per view).  Note: a partition with a listener takes the
Python append path (the C fast path of ``append`` runs only without listeners).
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping

from pylog.errors import OffsetOutOfRangeError

__all__ = ["Table"]


class Table(Mapping):
    """Latest value per key of one topic (see module doc)."""

    def __init__(self, topic):
        self.topic = topic.name
        self._parts = list(topic._partitions)
        self._lock = threading.Lock()
        self._data: dict[bytes, tuple[int, int, bytes]] = {}   # key -> (part, off, value)
        self._next = [None] * len(self._parts)         # next offset to read, per partition
        self._stale = [True] * len(self._parts)
        ref = weakref.ref(self)
        self._listeners = []
        for i, p in enumerate(self._parts):
            def fn(i=i, ref=ref):
                t = ref()
                if t is not None:
                    t._stale[i] = True
            p.add_listener(fn)
            self._listeners.append((p, fn))
        self._catch_up()

    # ---- keeping up -------------------------------------------------------------------
    def _catch_up(self) -> None:
        with self._lock:
            for i, p in enumerate(self._parts):
                if self._stale[i]:
                    self._stale[i] = False     # before reading: a later append re-marks
                    self._read_locked(i, p)

    def _read_locked(self, i: int, p) -> None:
        start = self._next[i]
        if start is None or start < p.log_start_offset:
            self._reset_locked(i)
            start = p.log_start_offset
        data = self._data
        while True:
            try:
                recs, nxt = p.read_stable(start, 10_000, 1 << 24)   # read_committed
            except OffsetOutOfRangeError:
                self._reset_locked(i)
                start = p.log_start_offset
                continue
            if nxt == start:
                break
            for r in recs:
                if r.key is None:
                    continue
                if r.value is None:
                    data.pop(r.key, None)
                else:
                    data[r.key] = (i, r.offset, r.value)
            start = nxt
        self._next[i] = start

    def _reset_locked(self, i: int) -> None:
        if self._next[i] is not None:
            self._data = {k: v for k, v in self._data.items() if v[0] != i}
        self._next[i] = None

    # ---- Mapping ----------------------------------------------------------------------
    def __getitem__(self, key: bytes) -> bytes:
        if True in self._stale:
            self._catch_up()
        return self._data[key][2]

    def __iter__(self):
        if True in self._stale:
            self._catch_up()
        return iter(list(self._data))

    def __len__(self) -> int:
        if True in self._stale:
            self._catch_up()
        return len(self._data)

    def __contains__(self, key) -> bool:
        if True in self._stale:
            self._catch_up()
        return key in self._data

    def offset(self, key: bytes) -> int:
        """Offset of the record ``self[key]`` came from (KeyError if absent)."""
        if True in self._stale:
            self._catch_up()
        return self._data[key][1]

    # ---- life cycle -------------------------------------------------------------------
    def close(self) -> None:
        """Stop following the topic (removes the listeners)."""
        for p, fn in self._listeners:
            p.remove_listener(fn)
        self._listeners = []

    def __enter__(self) -> "Table":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Table({self.topic}, keys={len(self)})"
