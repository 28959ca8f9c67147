"""PartitionLog: one partition of a topic, a list of segments with one active at the end.

    <data>/<topic>-<partition>/
        00000000000000000000.log .index .timeindex      sealed (read-only, trimmed, synced)
        00000000000000004711.log .index .timeindex      active (mapped for writing)

Offsets: ``log_start_offset`` <= every readable offset < ``log_end_offset`` (LEO, the next
offset to assign; also the high watermark: there are no replicas).  ``recovery_point`` is
the synced offset: every offset below it is behind a successful barrier.

Writes: one C call builds or copies the batch straight into the active mapping.  When the
segment (or one of its indexes) is full the C core says PL_EFULL and we roll: create the
next segment at the LEO; the old one is sealed (final time-index entry, trim, fsync) by the
flusher's next barrier, so the appender never waits for that fsync.  segment.ms rolls a
non-empty segment that old (counted from its first batch when it was loaded from disk).
Durability (DESIGN section 3) is the flusher's job: ``flush.messages=1`` makes appends wait
for a barrier shared with every concurrent append (group commit); ``flush.messages=N`` and
``flush.ms`` request barriers without waiting.  A failed barrier fences the partition: the
futures it covered fail with StorageError and every later append is refused.

Reads never hold the lock for more than a lookup: under the lock we pick the segment, find
the batch position and snapshot the end; the decode runs outside it over bytes below that
end, which nothing rewrites (retention unlinks files but the mapping stays valid).

Locking: one lock per partition (``_speedups.Lock``, used as a threading.Lock); methods
named ``*_locked`` expect it held.  ``append(value, key)`` first tries the C fast path
(``_speedups.Appender``): with the GIL held and the lock free it appends in one C call.
``_gate_locked`` points it at the active segment only while nothing else must happen on
an append (no flush policy, no listeners, not fenced or closed, already dirty); every
change of those, or of the active segment, calls it under the lock.
"""
from __future__ import annotations

import bisect
import threading
import time
from collections import deque, namedtuple
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, Iterator

from pylog import _speedups
from pylog._ffi import ffi, lib
from pylog.errors import InvalidRecordError, OffsetOutOfRangeError, StorageError
from pylog.records import Record
from pylog.storage import dedup, transactions
from pylog.storage.reader import (Columns, ColumnReader, build_records_in,
                                  check_compressed)
from pylog.storage.compaction import check_keys
from pylog.storage.flusher import GroupCommit
from pylog.storage.log_segments import SegmentOps, _addr
from pylog.storage.lost import LostOffsets
from pylog.storage.segment import GROW_CHUNK, Segment, segment_config
from pylog.storage.transactions import TxnOps

__all__ = ["PartitionLog", "AppendResult", "Columns"]

AppendResult = namedtuple("AppendResult",     # stored: records written, when not all
                          "base_offset last_offset log_append_time log_start_offset stored",
                          defaults=(None,))        # (dedup ids dropped duplicates)
_now_ns = time.time_ns
_monotonic = time.monotonic
_from_buffer = ffi.from_buffer
_NULL = ffi.NULL
_append_one = lib.pl_segment_append_one
_append_now = lib.pl_segment_append_now
PL_EROLL = lib.PL_EROLL
PL_EMSGID, _MSG_IDS = lib.PL_EMSGID, lib.PL_APPEND_MSG_IDS     # dedup ids (dedup.py)
PL_ETXN, _NO_TXN = lib.PL_ETXN, lib.PL_APPEND_NO_TXN     # first transaction (transactions.py)
_append_flags = lib.pl_segment_append_flags
PL_ATTR_TIMESTAMP_TYPE = 0x08                 # pylog.h: LogAppendTime attribute bit


class PartitionLog(SegmentOps, TxnOps, GroupCommit):
    """One partition's log.  Thread-safe (one lock); see the module doc."""

    def __init__(self, topic: str, partition: int, directory: Path, config,
                 segments: list[Segment], log_start_offset: int, recovery_point: int,
                 flusher=None, durable: bool = True,
                 on_checkpoint: Callable[[], None] | None = None,
                 grow_chunk: int = GROW_CHUNK):
        self.topic = topic
        self.partition = partition
        self.directory = Path(directory)
        self._grow_chunk = grow_chunk
        self._lock = _speedups.Lock()
        self._appender = _speedups.Appender(self._lock)
        self._fast_append = self._appender.append
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self._active = segments[-1]
        self._log_start = log_start_offset
        self._synced = recovery_point
        self._flusher = flusher if durable else None
        self._on_checkpoint = on_checkpoint
        self._waiters: deque[tuple[int, Future]] = deque()
        self._fenced: StorageError | None = None
        self._closed = False
        self._blocked = False                  # fenced or closed: appends refused
        self._cseg = self._active.c
        self._cseg_addr = _addr(self._cseg)
        self._listeners: tuple = ()
        self._dirty_since: float | None = None
        self._unflushed_msgs = 0
        self._barriers = 0                     # barriers running outside the lock
        self._deferred_close: list[Segment] = []
        self._unsealed: list[Segment] = []     # rolled, to be sealed by the next barrier
        self.lost = LostOffsets(self.directory)   # offsets recovery quarantined
        self._dedup = None                     # dedup.DedupTable, on the first msg id
        self._barrier_lock = threading.Lock()  # one barrier at a time per partition
        self._linger_s = 0.0                   # group-commit delay (flusher.GroupCommit)
        self._expect_waiters = 0               # ... until this many wait
        self._reader = ColumnReader(self)
        self._out = ffi.new("int64_t[2]")      # OUT of the append calls (under the lock)
        self._now_io = ffi.new("pl_append_now *")  # IN/OUT of append()'s C call (ditto)
        self._now_io_addr = _addr(self._now_io)
        self._apply_config_locked(config)
        self._txn = transactions.load(self)    # None: never held a transaction
        if self._flusher is not None:
            self._flusher.register(self)

    # ---- configuration -------------------------------------------------------------
    def _apply_config_locked(self, config) -> None:
        self.config = config
        self._compacted = "compact" in config.cleanup_policy    # keyless refused
        self._scfg = segment_config(config, self._grow_chunk)
        self._segment_ms = config.segment_ms
        fm = config.flush_messages
        self._wait_durable = self._flusher is not None and fm == 1
        self._flush_every = fm if (self._flusher is not None and fm and fm > 1) else 0
        self._flush_s = (None if self._flusher is None or config.flush_ms is None
                         else config.flush_ms / 1000.0)
        self._policy = bool(self._wait_durable or self._flush_every)
        self._set_roll_deadline_locked(self._active.created_ms + self._segment_ms)
        # message.timestamp.type=LogAppendTime: the broker's clock stamps every batch.
        self._log_append_time = config.message_timestamp_type == "LogAppendTime"
        self._attributes = PL_ATTR_TIMESTAMP_TYPE if self._log_append_time else 0
        self._now_io.attributes = self._attributes
        self._gate_locked()

    def _gate_locked(self) -> None:
        """Point append()'s C fast path at the active segment, or at none while the
        Python path must run: fenced or closed, a flush policy that counts or waits,
        listeners to call, or not yet dirty (the Python path sets _dirty_since)."""
        if (self._blocked or self._policy or self._listeners
                or self._dirty_since is None):
            self._appender.set(0, 0)
        else:
            self._appender.set(self._cseg_addr, self._now_io_addr)

    def _set_roll_deadline_locked(self, deadline_ms: int) -> None:
        """segment.ms: appends at a wall-clock time past this roll first (the C
        fast path of append() checks its own copy)."""
        self._roll_deadline = deadline_ms
        self._now_io.roll_deadline_ms = min(deadline_ms, (1 << 63) - 1)

    def update_config(self, config) -> None:
        """Apply a new TopicConfig.  Limits apply to the active segment at once (the C
        core reads them per append; a larger segment.bytes is capped by the active
        segment's mapping, which then fills up and rolls); index sizes at the next roll."""
        with self._lock:
            self._apply_config_locked(config)
            cfg = self._active.c.cfg
            cfg.max_batch_bytes = self._scfg.max_batch_bytes
            cfg.index_interval_bytes = self._scfg.index_interval_bytes
            cfg.segment_bytes = self._scfg.segment_bytes

    # ---- properties ----------------------------------------------------------------
    @property
    def log_start_offset(self) -> int:
        return self._log_start

    @property
    def log_end_offset(self) -> int:
        return self._active.c.next_offset

    high_watermark = log_end_offset

    @property
    def recovery_point(self) -> int:
        return self._synced

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return sum(s.size for s in self._segments)

    @property
    def segments(self) -> list[Segment]:
        """A snapshot of the segment list (oldest first)."""
        with self._lock:
            return list(self._segments)

    @property
    def closed(self) -> bool:
        return self._closed

    def active_first_timestamp(self) -> int:
        """maxTimestamp of the active segment's first batch, -1 while it is empty
        (max.compaction.lag.ms rolls it past that age: storage/cleaner.py)."""
        with self._lock:
            return -1 if self._active.is_empty else self._active.c.first_batch_timestamp

    @property
    def fenced(self) -> bool:
        return self._fenced is not None

    # ---- appends -------------------------------------------------------------------
    def append(self, value, key=None, headers=None, timestamp=None) -> int:
        """Append one record; returns its offset (waits for a barrier if flush.messages=1)."""
        if key is None and self._compacted:
            self._refuse_keyless()
        if headers is None and timestamp is None:
            offset = self._fast_append(value, key)     # C, or None: nothing appended
            if offset is not None:
                return offset
        return self._append_slow(value, key, headers, timestamp)

    def _refuse_keyless(self):
        raise InvalidRecordError(
            f"compacted topic cannot accept message without key in topic partition "
            f"{self.topic}-{self.partition}")

    def _append_slow(self, value, key, headers, timestamp) -> int:
        if headers or timestamp is not None:
            return self._append_given(value, key, headers, timestamp)
        # What the C fast path declined (a flush policy, listeners, not bytes, the first
        # append after a barrier, a roll due): one C call still stamps the record with
        # the C clock and checks the segment.ms deadline (PL_EROLL).
        vlen = -1 if value is None else len(value)
        klen = -1 if key is None else len(key)
        with self._lock:
            if self._blocked:
                self._raise_unwritable_locked()
            io = self._now_io
            try:
                rc = _append_now(self._cseg, _NULL if key is None else key, klen,
                                 _NULL if value is None else value, vlen, io)
            except TypeError:                     # not bytes: a buffer, or not bytes-like
                key = _NULL if key is None else _from_buffer("uint8_t[]", key)
                value = _NULL if value is None else _from_buffer("uint8_t[]", value)
                rc = _append_now(self._cseg, key, klen, value, vlen, io)
            if rc:
                self._retry_one_locked(rc, key, klen, value, vlen)
            offset = io.offset
            fut = self._after_append_locked(offset)
        for fn in self._listeners:
            fn()
        if fut is not None:
            self._await_durable(fut)
        return offset

    def _retry_one_locked(self, rc: int, key, klen: int, value, vlen: int) -> None:
        """append_now appended nothing: roll (segment.ms passed, or the segment is
        full) and append once more with the time that first call read."""
        io = self._now_io
        now = io.timestamp
        key = _NULL if key is None else key
        value = _NULL if value is None else value
        if rc == PL_EROLL:
            self._maybe_time_roll_locked(now)
            rc = _append_one(self._cseg, key, klen, value, vlen, now, self._attributes,
                             self._out)
        if rc:
            self._roll_for_retry_locked(rc, 0)
            rc = _append_one(self._cseg, key, klen, value, vlen, now, self._attributes,
                             self._out)
            if rc:
                self._append_error_locked(rc, 0)
        io.offset = self._out[0]

    def _append_given(self, value, key, headers, timestamp) -> int:
        """append() with headers or an explicit timestamp (the Python clock path)."""
        if headers:
            return self.append_batch([value], None if key is None else [key], [headers],
                                     None if timestamp is None else [timestamp])
        now = _now_ns() // 1_000_000
        if self._log_append_time:
            timestamp = now
        if value is None:
            value, vlen = _NULL, -1
        else:
            vlen = len(value)
        if key is None:
            key, klen = _NULL, -1
        else:
            klen = len(key)
        with self._lock:
            if self._blocked:
                self._raise_unwritable_locked()
            if now > self._roll_deadline:
                self._maybe_time_roll_locked(now)
            out = self._out
            try:
                rc = _append_one(self._cseg, key, klen, value, vlen, timestamp,
                                 self._attributes, out)
            except TypeError:                     # not bytes: a buffer, or not bytes-like
                key = key if key is _NULL else _from_buffer("uint8_t[]", key)
                value = value if value is _NULL else _from_buffer("uint8_t[]", value)
                rc = _append_one(self._cseg, key, klen, value, vlen, timestamp,
                                 self._attributes, out)
            if rc:
                self._roll_for_retry_locked(rc, 0)
                rc = _append_one(self._cseg, key, klen, value, vlen, timestamp,
                                 self._attributes, out)
                if rc:
                    self._append_error_locked(rc, 0)
            offset = out[0]
            fut = self._after_append_locked(offset)
        for fn in self._listeners:
            fn()
        if fut is not None:
            self._await_durable(fut)
        return offset

    def append_batch(self, values, keys=None, headers=None, timestamps=None) -> int:
        """Append ``values`` as one batch (one CRC); returns the base offset.  Records
        with a ``pylog-msg-id`` already stored within dedup.window.ms are dropped
        (storage/dedup.py says what the base offset is then)."""
        return self._append_batch(values, keys, headers, timestamps,
                                  self.config.dedup_window_ms)

    def _append_batch(self, values, keys, headers, timestamps, dedup_ms: int = 0) -> int:
        n = len(values)
        if self._compacted and (keys is None or any(k is None for k in keys)):
            self._refuse_keyless()
        keep, rin, ids = build_records_in(values, keys, headers, timestamps,
                                          _now_ns() // 1_000_000, self._log_append_time)
        if ids and dedup_ms:                 # a header is named pylog-msg-id
            return dedup.append_batch(self, values, keys, headers, timestamps,
                                      (keep, rin))[0]
        return self._append_records(keep, rin, n)

    def _append_records(self, keep, rin, n: int) -> int:
        """Append the batch build_records_in made (``keep`` holds its memory)."""
        with self._lock:
            if self._blocked:
                self._raise_unwritable_locked()
            if rin.timestamp > self._roll_deadline:
                self._maybe_time_roll_locked(rin.timestamp)
            out = self._out
            rc = lib.pl_segment_append_records(self._cseg, rin, out)
            if rc:
                self._retry_records_locked(rc, rin)
            base = out[0]
            fut = self._after_append_locked(base + n - 1)
        del keep
        for fn in self._listeners:
            fn()
        if fut is not None:
            self._await_durable(fut)
        return base

    def append_raw(self, data, *, wait: bool = True) -> AppendResult:
        """Append whole client-built RecordBatch v2 batches, all or nothing; records
        with a known ``pylog-msg-id`` are dropped (storage/dedup.py)."""
        # C checks only the CRC of a compressed batch; this inflates and walks it
        ids = check_compressed(data, self.config.max_message_bytes)
        if self._compacted:
            check_keys(data, f"{self.topic}-{self.partition}")
        if not self.config.dedup_window_ms:
            return self._append_raw(data, wait=wait)
        # C's validation walk reports (PL_EMSGID, nothing appended) an uncompressed
        # record carrying the header: records without it cost nothing more
        result = None if ids else self._append_raw(data, wait=wait, flags=_MSG_IDS)
        return dedup.append_raw(self, data, wait) if result is None else result

    def _append_raw(self, data, *, wait: bool = True, flags: int = 0
                    ) -> AppendResult | None:
        """append_raw without dedup; None (nothing appended) for PL_EMSGID."""
        size = len(data)
        buf = _from_buffer("uint8_t[]", data)
        now = _now_ns() // 1_000_000
        lat = now if self._log_append_time else -1
        with self._lock:
            if self._blocked:
                self._raise_unwritable_locked()
            if now > self._roll_deadline:
                self._maybe_time_roll_locked(now)
            out = self._out
            rc = _append_flags(self._cseg, buf, size, lat,
                               flags if self._txn is not None else flags | _NO_TXN,
                               out, out + 1)
            if rc == PL_ETXN:                 # validated, nothing appended: the first
                self._txn = transactions.start_locked(self)   # transactional batch
                rc = _append_flags(self._cseg, buf, size, lat, flags, out, out + 1)
            if rc == PL_EMSGID:               # validated first: nothing was appended
                return None
            if rc:
                rc = self._roll_for_retry_locked(rc, size, client=True, data=data)
                rc = _append_flags(self._cseg, buf, size, lat, flags, out, out + 1)
                if rc:
                    self._append_error_locked(rc, size, client=True, data=data)
            base, last = out[0], out[1]
            if self._txn is not None and self._cseg.append_attributes & 0x10:
                end = self._active.size       # PL_ATTR_TRANSACTIONAL: open or close
                self._txn.appended_locked(self._active, end - size, end)
            fut = self._after_append_locked(last, want_future=wait)
            log_start = self._log_start
        for fn in self._listeners:
            fn()
        if fut is not None and wait:
            self._await_durable(fut)
        return AppendResult(base, last, lat, log_start)

    def _retry_records_locked(self, rc: int, rin) -> None:
        """The first attempt failed: roll if the segment is full and try once more."""
        self._roll_for_retry_locked(rc, 0)
        rc = lib.pl_segment_append_records(self._cseg, rin, self._out)
        if rc:
            self._append_error_locked(rc, 0)

    def _after_append_locked(self, last_offset: int, want_future: bool = True
                             ) -> Future | None:
        """Flush-policy bookkeeping; returns a future to wait on for durable acks."""
        if self._dirty_since is None:
            self._dirty_since = _monotonic()
            self._gate_locked()
        return self._policy_locked(last_offset, want_future) if self._policy else None

    def _raise_unwritable_locked(self):
        if self._fenced is not None:
            raise StorageError(f"{self.topic}-{self.partition} is fenced after a failed "
                               f"barrier: {self._fenced}")
        raise StorageError(f"{self.topic}-{self.partition} is closed")

    # ---- reads ---------------------------------------------------------------------
    def _locate_locked(self, offset: int) -> tuple[Segment, int, int] | None:
        """(segment, batch position, end) for a read at offset; None at the LEO."""
        if self._closed:
            raise StorageError(f"{self.topic}-{self.partition} is closed")
        leo = self._active.c.next_offset
        if offset < self._log_start or offset > leo:
            raise OffsetOutOfRangeError(
                f"offset {offset} is out of range for {self.topic}-{self.partition} "
                f"(log start {self._log_start}, log end {leo})")
        if offset == leo:
            return None
        i = bisect.bisect_right(self._bases, offset) - 1
        while True:
            seg = self._segments[i]
            if offset < seg.c.next_offset:
                break
            i += 1                            # a gap (lost, or compacted): next segment
            if offset < self._bases[i] and self.lost.ranges:
                self.lost.crossing(offset, self.config.lost_offsets_policy,
                                   f"{self.topic}-{self.partition}")
            offset = max(offset, self._bases[i])
            if offset >= leo:
                return None                   # the gap runs up to an empty last segment
        h = ffi.new("pl_batch_header *")
        return seg, seg.find(offset, h), seg.size

    def read(self, offset: int, max_records: int = 500, max_bytes: int = 1 << 20, *,
             committed: bool = False) -> list[Record]:
        """Records from ``offset`` on (at most max_records, whole batches within
        max_bytes but at least one batch).  OffsetOutOfRangeError outside the log.
        committed=True: read_committed (TxnOps.read_stable)."""
        if committed:
            return self.read_stable(offset, max_records, max_bytes)[0]
        return self._reader.read(offset, max_records, max_bytes)

    def iter(self, offset: int | None = None, batch_records: int = 1000, *,
             committed: bool = False) -> Iterator[Record]:
        """Every record from ``offset`` (default: log start) to the LEO seen at each
        step (committed=True: to the LSO, without aborted transactions)."""
        offset = self._log_start if offset is None else offset
        while True:
            if committed:
                recs, nxt = self.read_stable(offset, batch_records, 1 << 24)
                if nxt == offset:
                    return
            else:
                recs = self._reader.read(offset, batch_records, 1 << 24)
                if not recs:
                    return
                nxt = recs[-1].offset + 1
            yield from recs
            offset = nxt

    def read_columns(self, offset: int, max_records: int = 1_000_000) -> Columns:
        """Records from ``offset`` as numpy columns, values zero-copy over the mapping
        when the batches are uncompressed.  Stops at the end of one segment."""
        return self._reader.read_columns(offset, max_records)

    def read_raw(self, offset: int, max_bytes: int = 1 << 20, *,
                 committed: bool = False) -> memoryview:
        """Whole batches from the one containing ``offset`` (at least one, one segment),
        as a zero-copy view of the mapping; empty at the LEO.  committed=True: only
        batches whose base offset is below the LSO (empty at or past it)."""
        with self._lock:
            loc = self._locate_locked(offset)
            if loc is None:
                return memoryview(b"")
            seg, pos, _ = loc
            if committed and self._txn is not None and self._txn.first_unstable is not None:
                end = self._stable_end_locked(seg, pos, offset, max_bytes)
            else:
                end = seg.span(pos, max(0, max_bytes))
        return seg.view(pos, end)

    def offset_for_time(self, ts_ms: int) -> int | None:
        """First offset whose timestamp >= ts_ms (ListOffsets by time), or None."""
        return self._reader.offset_for_time(ts_ms)

    def max_timestamp(self) -> int:
        """The largest record timestamp in the log, -1 if it is empty."""
        return self._reader.max_timestamp()

    def iter_batch_headers(self, start_offset: int | None = None):
        """BatchHeader of each batch from the one holding start_offset (default: all)."""
        with self._lock:
            segs = [(s, s.size) for s in self._segments]
            first_pos = 0
            if start_offset is not None:
                loc = self._locate_locked(max(start_offset, self._log_start))
                if loc is None:
                    return
                segs = [(s, n) for s, n in segs if s.base_offset >= loc[0].base_offset]
                first_pos = loc[1]
        for i, (seg, end) in enumerate(segs):
            for _, h in seg.iter_headers(first_pos if i == 0 else 0, end):
                yield h

    def index_arrays(self):
        """(offset index, time index) numpy views of the active segment (zero copy)."""
        with self._lock:
            return self._active.index_arrays()

    # ---- listeners -----------------------------------------------------------------
    def add_listener(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._listeners = self._listeners + (fn,)
            self._gate_locked()

    def remove_listener(self, fn: Callable[[], None]) -> None:
        with self._lock:
            ls = list(self._listeners)
            if fn in ls:
                ls.remove(fn)
            self._listeners = tuple(ls)
            self._gate_locked()

    # ---- shutdown ------------------------------------------------------------------
    def close(self) -> None:
        """Barrier, seal the active segment, close every fd.  Idempotent."""
        if self._flusher is not None:
            self._flusher.unregister(self)
            try:
                self.barrier()
            except StorageError:
                pass                            # fenced: the waiters already failed
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._blocked = True
            self._gate_locked()
            try:
                if self._fenced is None:
                    self._active.seal()
                    self._advance_synced_locked(self._active.next_offset)
                    self._txn_checkpoint_locked()
            finally:
                self._fail_waiters_locked(StorageError("partition closed"))
                self._release_locked()

    def _release_locked(self) -> None:
        # Close the fds and drop the mappings (unmapped once no caller's view is left,
        # so a closed log leaves nothing mapped: a tmpfs under it can be unmounted).
        for seg in self._segments + self._deferred_close + self._unsealed:
            seg.release()
        self._on_checkpoint = None          # breaks the Log <-> partition cycle
        self._listeners = ()

    def _abandon(self) -> None:
        """For tests (Log._simulate_crash): close the fds without sealing or syncing."""
        with self._lock:
            self._closed = self._blocked = True
            self._gate_locked()
            self._fail_waiters_locked(StorageError("partition abandoned"))
            self._release_locked()

    def discard(self) -> None:
        """For topic deletion: close without barrier or seal (a full disk must not stop
        a delete) and unlink every segment file; the caller removes the directory."""
        if self._flusher is not None:
            self._flusher.unregister(self)
        with self._lock:
            self._closed = self._blocked = True
            self._gate_locked()
            self._fail_waiters_locked(StorageError(f"{self.topic} was deleted"))
            for seg in self._segments:
                seg.delete()

    def __repr__(self) -> str:
        return (f"PartitionLog({self.topic}-{self.partition}, start={self._log_start}, "
                f"end={self.log_end_offset}, segments={len(self._segments)})")
