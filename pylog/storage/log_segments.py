"""Rolling (and the append errors that lead to it) and retention of a PartitionLog's
segments, a mixin of ``log.PartitionLog`` (which provides ``_lock``, ``_segments``,
``_bases``, ``_active``, ``_cseg``, ``_flusher``, ``_barriers``, ``_deferred_close``, ``_unsealed``, ``_log_start``, ...).

Rolling starts a new active segment at the log end; the old one is sealed by the next
barrier in the flusher thread.  Retention deletes whole oldest segments (Kafka's
deleteOldSegments), never the active one; DeleteRecords moves the log start first.
"""
from __future__ import annotations

import time

from pylog import _ffi
from pylog._ffi import ffi, lib
from pylog.errors import OffsetOutOfRangeError, RecordListTooLargeError
from pylog.storage import files
from pylog.storage.reader import retention_victims
from pylog.storage.segment import Segment

__all__ = ["SegmentOps"]


def _addr(cdata) -> int:
    """A cffi pointer as the integer _speedups takes."""
    return int(ffi.cast("uintptr_t", cdata))


def _largest_batch(data) -> int:
    """Size of the largest batch in ``data`` (12 + batchLength each; error path only)."""
    mv, pos, largest = memoryview(data), 0, 0
    while pos + 12 <= len(mv):
        size = 12 + int.from_bytes(mv[pos + 8:pos + 12], "big", signed=True)
        if size <= 12:
            break
        largest, pos = max(largest, size), pos + size
    return largest


class SegmentOps:
    # ---- rolling -------------------------------------------------------------------
    def _maybe_time_roll_locked(self, now_ms: int) -> None:
        if self._active.is_empty:
            self._set_roll_deadline_locked(now_ms + self._segment_ms)
        else:
            self._roll_locked()

    def roll(self) -> None:
        """Seal the active segment and start a new one (no-op if it is empty)."""
        with self._lock:
            if not self._active.is_empty:
                self._roll_locked()

    def _roll_locked(self) -> None:
        """Start a new active segment at the LEO.  The old one is sealed (final time
        entry, trim, fsync) by the next barrier, in the flusher thread, so an appender
        never waits for that fsync; without a flusher (in memory) it is sealed here."""
        old = self._active
        self._new_active_locked()
        if self._flusher is None:
            old.seal()
            self._close_segment_locked(old)
        else:
            self._unsealed.append(old)
            self._flusher.request(self)

    def _roll_for_retry_locked(self, rc: int, size: int, client: bool = False,
                               data=None) -> int:
        if rc == lib.PL_EFULL and not self._active.is_empty:
            self._roll_locked()
            return 0
        if rc == lib.PL_ECLOSED and not self._active.active:
            self._new_active_locked()      # an earlier roll sealed but could not create
            return 0
        self._append_error_locked(rc, size, client, data)
        return rc

    def _append_error_locked(self, rc: int, size: int, client: bool = False,
                             data=None) -> None:
        """Raise the error for ``rc``.  PL_ETOOLARGE means a batch over max.message.bytes
        (MESSAGE_TOO_LARGE, 10) or, when every batch of ``data`` is within it, batches
        that an empty segment cannot hold: Kafka's RECORD_LIST_TOO_LARGE (18), which
        clients do not retry (a 10 made librdkafka bump its idempotent epoch and re-send
        messages already written under the old one)."""
        where = f"appending to {self.topic}-{self.partition}"
        if (rc == lib.PL_ETOOLARGE and data is not None
                and _largest_batch(data) <= self.config.max_message_bytes):
            raise RecordListTooLargeError(
                f"{where}: {size} batch bytes do not fit in an empty segment "
                f"(segment.bytes={self.config.segment_bytes})")
        if rc == lib.PL_EFULL:
            raise RecordListTooLargeError(
                f"{where}: {size or 'the'} batch bytes do not fit in an empty segment "
                f"(segment.bytes={self.config.segment_bytes})")
        _ffi.check(rc, where, client=client)

    def _new_active_locked(self) -> None:
        base = self._active.next_offset
        seg = Segment.create(self.directory, base, self._scfg)
        files.fsync_dir(self.directory)
        self._segments.append(seg)
        self._bases.append(base)
        self._active = seg
        self._cseg = seg.c
        self._cseg_addr = _addr(seg.c)
        self._set_roll_deadline_locked(seg.created_ms + self._segment_ms)
        self._gate_locked()

    def _close_segment_locked(self, seg: Segment) -> None:
        """Close a sealed segment's fds now, or after the barrier that may use them."""
        if self._barriers:
            self._deferred_close.append(seg)
        else:
            seg.close()

    # ---- retention -----------------------------------------------------------------
    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete whole oldest segments past retention.ms / retention.bytes (Kafka's
        deleteOldSegments); advances the log start offset.  Returns segments deleted."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            if self._closed:
                return 0
            n = retention_victims(self._segments, self.config, now_ms, self._log_start)
            if n == 0:
                return 0
            if n == len(self._segments):
                self._roll_locked()               # never delete the active segment
            doomed = self._segments[:n]
            del self._segments[:n]
            del self._bases[:n]
            self._log_start = max(self._log_start, self._segments[0].base_offset)
            self._unsealed = [s for s in self._unsealed if s not in doomed]  # no seal
            for seg in doomed:
                if self._barriers:
                    self._deferred_close.append(seg)
                    seg.deleted = True
                    for p in seg.paths():
                        p.unlink(missing_ok=True)
                else:
                    seg.delete()
            if self._txn is not None:
                self._txn.segments_replaced_locked([s.base_offset for s in doomed], None)
            files.fsync_dir(self.directory)
        if self._on_checkpoint is not None:
            self._on_checkpoint()
        return n

    def delete_records(self, offset: int) -> int:
        """Kafka's DeleteRecords: move the log start offset up to ``offset`` (records
        below it become unreadable at once) and delete the segments wholly below it.
        Returns the new log start offset."""
        with self._lock:
            leo = self._active.c.next_offset
            if not self._log_start <= offset <= leo:
                if offset < self._log_start:
                    return self._log_start
                raise OffsetOutOfRangeError(
                    f"cannot delete records of {self.topic}-{self.partition} up to "
                    f"{offset}: the log ends at {leo}")
            self._log_start = offset
        self.enforce_retention()
        if self._on_checkpoint is not None:
            self._on_checkpoint()
        return self._log_start
