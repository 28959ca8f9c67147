"""The log cleaner: one thread per data directory (Kafka's ``LogCleaner`` and
``LogCleanerManager``, one cleaner thread).

Each round: for every partition of a topic with ``compact`` in ``cleanup.policy``,
snapshot its cleanable section (storage.compaction.cleanable) and compute its dirty
ratio, dirty bytes / (clean + dirty bytes) of the sealed segments below the first
uncleanable one.  Clean the dirtiest partition whose ratio is at least
``min.cleanable.dirty.ratio`` -- or whose oldest dirty data is older than
``max.compaction.lag.ms``, whatever its ratio -- then record where its dirty
section ended in ``<data>/cleaner-offset-checkpoint`` (Kafka's file and text format,
storage/checkpoint.py) and look again; with nothing to clean, sleep
``log.cleaner.backoff.ms`` (15 s).  ``compact,delete`` topics also get retention
(the flusher's tick, as any topic).  A partition whose cleaning fails (a corrupt
batch: CorruptSegmentError) is logged once and skipped until the log is reopened,
as Kafka marks it uncleanable; nothing is deleted.

``max.compaction.lag.ms`` also rolls an active segment older than it (Kafka does the
same through its roll condition), so its records become cleanable.

``clean_once(now_ms)`` runs one round in the caller's thread: tests drive the
cleaner with their own clock.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from pylog.errors import PylogError
from pylog.storage import checkpoint, compaction

__all__ = ["LogCleaner", "CLEANER_CHECKPOINT", "DEFAULT_BACKOFF_MS"]

_log = logging.getLogger("pylog.cleaner")
CLEANER_CHECKPOINT = "cleaner-offset-checkpoint"
DEFAULT_BACKOFF_MS = 15_000               # Kafka's log.cleaner.backoff.ms


def _compacted(p) -> bool:
    return "compact" in p.config.cleanup_policy


class LogCleaner:
    """Cleans the compacted partitions ``partitions()`` returns (see module doc)."""

    def __init__(self, data_dir, partitions: Callable[[], list], *,
                 backoff_ms: int = DEFAULT_BACKOFF_MS, enabled: bool = True,
                 clock: Callable[[], float] = time.time,
                 max_map_keys: int = compaction.MAX_MAP_KEYS):
        self._path = data_dir / CLEANER_CHECKPOINT
        self._partitions = partitions
        self._backoff_s = backoff_ms / 1000.0
        self._clock = clock
        self._max_map_keys = max_map_keys
        self._lock = threading.Lock()         # one round at a time
        self._wake = threading.Event()
        self._stop = False
        self._uncleanable: set = set()
        self._horizons: dict = {}             # tp -> earliest delete horizon, -1 none
        self.last_stats: compaction.CleanStats | None = None
        self.crash_hook = None                # tests: called at the swap's steps
        self.checkpoints, warning = checkpoint.read_offset_checkpoint(self._path)
        if warning:
            _log.warning("%s", warning)
        self._thread = None
        if enabled:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"pylog-cleaner:{data_dir.name}")
            self._thread.start()

    # ---- thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            try:
                cleaned = self.clean_once()
            except Exception:                  # noqa: BLE001 - the thread must live on
                _log.exception("log cleaner round failed")
                cleaned = None
            if cleaned is None and not self._stop:
                self._wake.wait(self._backoff_s)
                self._wake.clear()

    def wake(self) -> None:
        """Look for work now (e.g. after a config change)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread after the pass it is in (a pass is crash-safe anyway)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    # ---- one round ------------------------------------------------------------------
    def clean_once(self, now_ms: int | None = None) -> compaction.CleanStats | None:
        """Clean the dirtiest cleanable partition once; its stats, or None."""
        with self._lock:
            now_ms = int(self._clock() * 1000) if now_ms is None else now_ms
            best = None
            for p in self._partitions():
                if self._stop:
                    return None
                if not _compacted(p) or (p.topic, p.partition) in self._uncleanable:
                    continue
                self._roll_for_max_lag(p, now_ms)
                c = compaction.cleanable(p, self.checkpoints.get((p.topic, p.partition)),
                                         now_ms)
                if c is None:
                    continue
                if not c.dirty_bytes or (c.ratio < p.config.min_cleanable_dirty_ratio
                                         and not c.must_clean):
                    # Kafka also cleans a log whose tombstones' delete horizon passed
                    if not 0 <= self._horizon(p, c) < now_ms:
                        continue
                    c.must_clean = True
                    ratio = 0.0
                else:
                    ratio = c.ratio
                if best is None or ratio > best[2]:
                    best = (p, c, ratio)
            if best is None:
                return None
            return self._clean(best[0], best[1], now_ms)

    def _clean(self, p, c, now_ms: int):
        tp = (p.topic, p.partition)
        try:
            st = compaction.clean(p, c, now_ms, self._max_map_keys, self.crash_hook,
                                  should_stop=lambda: self._stop)
        except compaction.Aborted:
            return None
        except compaction.CorruptSegmentError as e:
            self._uncleanable.add(tp)
            _log.error("%s; %s-%d is not cleaned again until it is reopened", e, *tp)
            return None
        except (PylogError, OSError) as e:
            if p.closed:
                return None
            self._uncleanable.add(tp)
            _log.error("cleaning %s-%d failed: %s", *tp, e)
            return None
        self.checkpoints[tp] = st.end_dirty
        if st.end_dirty >= c.segments[-1].next_offset or st.min_horizon >= 0:
            self._horizons[tp] = st.min_horizon
        self._write_checkpoint()
        self.last_stats = st
        _log.info("cleaned %s-%d offsets [%d, %d): %d bytes read, %d written, %d records "
                  "kept, %d dropped, %d tombstones removed, %.3f s%s", *tp,
                  st.first_dirty, st.end_dirty, st.bytes_read, st.bytes_written,
                  st.records_kept, st.records_dropped, st.tombstones_dropped,
                  st.seconds, f" ({st.stopped})" if st.stopped else "")
        return st

    def _horizon(self, p, c) -> int:
        """Earliest delete horizon in the cleaned section (-1: none), from the last
        pass, or after a restart from the batch headers (attribute bit 0x40)."""
        tp = (p.topic, p.partition)
        if tp not in self._horizons:
            found = -1
            for seg in c.segments[:c.first_dirty_index]:
                for _, h in seg.iter_headers(0, seg.size):
                    if h.attributes & 0x40 and (found < 0 or h.base_timestamp < found):
                        found = h.base_timestamp
            self._horizons[tp] = found
        return self._horizons[tp]

    def _roll_for_max_lag(self, p, now_ms: int) -> None:
        lag = p.config.max_compaction_lag_ms
        if lag >= (1 << 63) - 1:
            return
        first = p.active_first_timestamp()
        if first >= 0 and now_ms - first > lag:
            p.roll()

    def _write_checkpoint(self) -> None:
        live = {(p.topic, p.partition) for p in self._partitions()}
        self.checkpoints = {tp: o for tp, o in self.checkpoints.items() if tp in live}
        try:
            checkpoint.write_offset_checkpoint(self._path, self.checkpoints)
        except OSError as e:
            _log.warning("writing %s: %s (cleaning restarts from the log start)",
                         self._path, e)

    def forget(self, topic: str) -> None:
        """A topic was deleted: drop its checkpoints."""
        self.checkpoints = {tp: o for tp, o in self.checkpoints.items() if tp[0] != topic}
