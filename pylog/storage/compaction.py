"""Cleaning one partition: Kafka's ``Cleaner`` (``storage/.../log/Cleaner.java``).

    clean section   [log start, first dirty)     cleaned by earlier passes
    dirty section   [first dirty, first uncleanable)   written since
    uncleanable     the active segment, segments not yet sealed, segments newer
                    than ``min.compaction.lag.ms`` (by their largest timestamp), and
                    every segment from the one holding the last stable offset on
                    (an open transaction's records are neither kept nor dropped yet)

A pass (``clean``):
    1. Under the partition lock, snapshot the sealed segments below the first
       uncleanable one, each with a view of its mapping (which keeps the mapping
       alive whatever the log does meanwhile).
    2. Build the offset map (key -> latest offset, csrc/compact.c) over the dirty
       section, oldest first.  If the map fills, the dirty section ends at the last
       segment indexed whole.
    3. Group the segments of [log start, end of dirty) into runs of at most
       ``segment.bytes`` (and 2^31 offsets), and for each group write one cleaned
       segment keeping a record when its key's latest offset is not later, dropping
       keyless records, and tombstones past their batch's delete horizon.  Every
       batch read is CRC-checked first: a bad batch stops the pass with
       ``CorruptSegmentError`` (recovery's quarantine deals with it; nothing is
       deleted).
    4. Swap each cleaned segment in (storage.swap: crash-safe), under the lock, only
       if the group's segments are still the log's (retention or a close may have
       changed it meanwhile: the pass then stops, losing nothing).
Returns the end of the dirty section: the cleaner checkpoint for this partition.

Compressed batches are inflated and written back recompressed when smaller.
Transactions (storage/transactions.py): the data batches of aborted transactions
neither enter the offset map nor survive (an aborted value must not supersede a
committed one); control batches are copied whole and kept for good (Kafka removes a
marker after delete.retention.ms once its transaction's data is gone: not done,
they cost ~70 bytes each); the cleaned segment's .txnindex is the concatenation of
those it replaces, carried by the swap.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from pylog import _ffi
from pylog._ffi import ffi, lib
from pylog.errors import CorruptRecordError, PylogError
from pylog.compression import compress
from pylog.records import ATTR_COMPRESSION_MASK, BATCH_HEADER_SIZE, decompress
from pylog.storage import files, swap, txn_index
from pylog.storage.segment import Segment

__all__ = ["OffsetMap", "CleanStats", "Cleanable", "CorruptSegmentError", "Aborted",
           "cleanable", "clean", "check_keys"]

_log = logging.getLogger("pylog.cleaner")
_UINT64_MAX = (1 << 64) - 1
_OUT_BUFFER = 4 << 20           # cleaned bytes gathered before a write(2)
MAX_MAP_KEYS = 2_000_000        # at most 2^22 slots x 24 bytes = 96 MiB (load <= 0.75);
                                # Kafka's log.cleaner.dedupe.buffer.size is 128 MiB


class CorruptSegmentError(PylogError):
    """A batch the cleaner read failed its checks; the pass stopped, nothing changed."""


@dataclass
class CleanStats:
    """What one pass did (the numbers Kafka's cleaner logs)."""
    topic: str
    partition: int
    first_dirty: int = 0
    end_dirty: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    dirty_bytes: int = 0
    records_kept: int = 0
    records_dropped: int = 0
    tombstones_dropped: int = 0
    groups: int = 0
    seconds: float = 0.0
    stopped: str | None = None          # why the pass ended early, or None
    min_horizon: int = -1               # earliest delete horizon left (-1: none)
    notes: list[str] = field(default_factory=list)


class OffsetMap:
    """``pl_offset_map``: key -> latest offset, slots owned here."""

    def __init__(self, keys: int):
        keys = max(16, keys)
        cap = 1 << max(4, (int(keys / 0.75) + 1).bit_length())
        self._slots = ffi.new("pl_offset_slot[]", cap)
        self.c = ffi.new("pl_offset_map *")
        self.c.slots = self._slots
        self.c.capacity = cap
        self.c.max_count = min(keys, cap - 1)
        self.c.max_offset = -1
        self.aborted = None               # keeps the pl_txn_range array alive

    def __len__(self) -> int:
        return self.c.count

    def get(self, key: bytes) -> int:
        return lib.pl_offset_map_get(self.c, key, len(key))

    def put(self, key: bytes, offset: int) -> None:
        _ffi.check(lib.pl_offset_map_put(self.c, key, len(key), offset), "offset map")


def check_keys(data, where: str) -> None:
    """Every record of the client batches in ``data`` has a key (Kafka's
    LogValidator on a compacted topic); InvalidRecordError (87) otherwise."""
    from pylog.errors import InvalidRecordError
    mv = memoryview(data).cast("B")
    pos, end = 0, len(mv)
    h = ffi.new("pl_batch_header *")
    keyless = ffi.new("int *")
    while end - pos >= BATCH_HEADER_SIZE:
        size = 12 + int.from_bytes(mv[pos + 8:pos + 12], "big", signed=True)
        if size < BATCH_HEADER_SIZE or size > end - pos:
            return                      # framing errors: the C core reports them
        lib.pl_batch_read_header(ffi.from_buffer("uint8_t[]", mv[pos:pos + 61]), 61, h)
        rec = mv[pos + BATCH_HEADER_SIZE:pos + size]
        if h.attributes & ATTR_COMPRESSION_MASK:
            rec = decompress(h.attributes & ATTR_COMPRESSION_MASK, rec)
        rc = lib.pl_compact_check_keys(ffi.from_buffer("uint8_t[]", rec), len(rec), h,
                                       keyless)
        if rc == 0 and keyless[0]:
            raise InvalidRecordError(
                f"compacted topic cannot accept message without key in topic partition "
                f"{where}")
        # a malformed record: the C core's checks of the append report it
        pos += size


# ---- what is cleanable ------------------------------------------------------------
@dataclass
class Cleanable:
    """A partition's sections (segment indexes into ``segments``) for one pass."""
    segments: list            # sealed segments below the first uncleanable one
    views: list               # each one's mapping view (keeps it alive) and size
    first_dirty_index: int
    first_dirty: int
    clean_bytes: int
    dirty_bytes: int
    must_clean: bool          # max.compaction.lag.ms passed for the oldest dirty data

    @property
    def ratio(self) -> float:
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0


def cleanable(p, checkpoint: int | None, now_ms: int) -> Cleanable | None:
    """Snapshot partition ``p``'s cleanable segments (step 1), or None if none."""
    cfg = p.config
    with p._lock:
        if p._closed:
            return None
        unsealed = set(map(id, p._unsealed))
        segs, views = [], []
        lso = None if p._txn is None else p._txn.first_unstable
        for seg in p._segments:
            if seg is p._active or seg.active or id(seg) in unsealed:
                break
            if lso is not None and seg.next_offset > lso:
                break                         # holds or follows the first unstable offset
            if (cfg.min_compaction_lag_ms > 0 and seg.max_timestamp >= 0
                    and seg.max_timestamp > now_ms - cfg.min_compaction_lag_ms):
                break
            segs.append(seg)
            views.append((seg._log_view, seg.size))
        log_start = p._log_start
    if not segs:
        return None
    first_dirty = checkpoint if checkpoint is not None else log_start
    if first_dirty < log_start or first_dirty > segs[-1].next_offset:
        first_dirty = log_start
    i = 0
    while i < len(segs) and segs[i].next_offset <= first_dirty:
        i += 1
    clean = sum(v[1] for v in views[:i])
    dirty = sum(v[1] for v in views[i:])
    must = False
    if i < len(segs) and cfg.max_compaction_lag_ms < (1 << 63) - 1:
        first_ts = segs[i].c.first_batch_timestamp
        must = 0 <= first_ts and now_ms - first_ts > cfg.max_compaction_lag_ms
    return Cleanable(segs, views, i, first_dirty, clean, dirty, must)


# ---- one pass ---------------------------------------------------------------------
class Aborted(PylogError):
    """The cleaner is stopping: the pass ended between two segments, nothing changed
    after the last swap."""


def clean(p, c: Cleanable, now_ms: int, max_map_keys: int = MAX_MAP_KEYS,
          crash_hook=None, should_stop=None) -> CleanStats:
    """Steps 2-4 over the snapshot ``c`` of partition ``p`` (module doc).

    Groups are cut by *output* size: a cleaned segment takes input segments while
    what it has written plus the next input stays within segment.bytes.  A group
    with no surviving record keeps absorbing the next ones, and an empty last group
    is merged into the one before it (its last batch extended to the end): cleaning
    never leaves a gap between segments.  Only when nothing at all survives do the
    segments go, and the log start offset moves up."""
    t0 = time.monotonic()
    st = CleanStats(p.topic, p.partition, first_dirty=c.first_dirty)
    where = f"{p.topic}-{p.partition}"
    dirty = list(range(c.first_dirty_index, len(c.segments)))
    estimate = sum(c.segments[i].next_offset - c.segments[i].base_offset for i in dirty)
    omap = OffsetMap(min(estimate, max_map_keys))
    if p._txn is not None:                # aborted transactions: dropped (compact.c)
        with p._lock:
            omap.aborted = p._txn.aborted_ranges(c.segments[0].base_offset,
                                                 c.segments[-1].next_offset)
        omap.c.aborted, omap.c.aborted_count = omap.aborted
    # no dirty section: a pass that only removes tombstones past their horizon
    end_index = _build_map(c, dirty, omap, st, where) if dirty else c.first_dirty_index
    if end_index == 0:
        st.end_dirty = c.first_dirty
        return st
    end_dirty = st.end_dirty = c.segments[end_index - 1].next_offset
    st.dirty_bytes = sum(c.views[i][1] for i in range(c.first_dirty_index, end_index))
    limit = p.config.segment_bytes
    prev = None
    cur = _Cleaned(p, c, 0, now_ms, where)
    try:
        for i in range(end_index):
            if should_stop is not None and should_stop():
                raise Aborted(f"{where}: cleaning stopped (shutting down)")
            seg = c.segments[i]
            if cur.size and (cur.size + c.views[i][1] > limit
                             or seg.next_offset - cur.base > (1 << 31) - 1):
                cur.finish(seg.base_offset)
                if prev is not None and not prev.install(st, crash_hook):
                    st.end_dirty = prev.base
                    return st
                prev, cur = cur, _Cleaned(p, c, i, now_ms, where)
            cur.add(i, omap)
            if crash_hook:
                crash_hook("segment")
        cur.finish(end_dirty)
        if cur.size == 0 and prev is not None:
            prev.extend(end_dirty, cur.indexes)
            cur.discard()
            cur = None
        for g in (prev, cur):
            if g is not None and not g.install(st, crash_hook):
                st.end_dirty = g.base
                return st
    finally:
        for g in (prev, cur):
            if g is not None:
                g.discard()
    st.seconds = time.monotonic() - t0
    return st


def _build_map(c: Cleanable, dirty: list[int], omap: OffsetMap, st: CleanStats,
               where: str) -> int:
    """Step 2; returns the index after the last segment indexed whole."""
    io_expect = ffi.new("int64_t *")
    out_pos = ffi.new("uint64_t *")
    h = ffi.new("pl_batch_header *")
    for i in dirty:
        seg = c.segments[i]
        view, size = c.views[i]
        buf = ffi.from_buffer("uint8_t[]", view)
        io_expect[0] = seg.base_offset
        pos = 0
        while True:
            rc = lib.pl_compact_index_segment(buf, pos, size, omap.c, io_expect, out_pos)
            if rc == 0:
                break
            pos = out_pos[0]
            if rc == lib.PL_ECOMPRESSED:
                rec, nxt = _inflate(seg, view, pos, size, h, where)
                rc = lib.pl_compact_index_records(ffi.from_buffer("uint8_t[]", rec),
                                                  len(rec), h, omap.c)
                if rc == 0:
                    io_expect[0] = h.base_offset + h.last_offset_delta + 1
                    pos = nxt
                    continue
            if rc == lib.PL_EFULL:
                if i == dirty[0]:
                    raise CorruptSegmentError(
                        f"{where}: the offset map ({omap.c.max_count} keys) cannot hold "
                        f"the keys of segment {seg.log_path.name}")
                st.stopped = f"offset map full at {seg.log_path.name}"
                return i
            _corrupt(seg, pos, rc, where)
        st.bytes_read += size
    return dirty[-1] + 1


def _inflate(seg, view, pos: int, size: int, h, where: str) -> tuple[bytes, int]:
    lib.pl_batch_read_header(ffi.from_buffer("uint8_t[]", view[pos:pos + 61]), 61, h)
    nxt = pos + 12 + h.batch_length
    try:
        return decompress(h.attributes & ATTR_COMPRESSION_MASK,
                          view[pos + BATCH_HEADER_SIZE:nxt]), nxt
    except CorruptRecordError as e:
        raise CorruptSegmentError(f"{where}: {seg.log_path} batch at byte {pos}: {e}; "
                                  "cleaning stopped") from None


def _corrupt(seg, pos: int, rc: int, where: str):
    msg = (f"{where}: {seg.log_path} batch at byte {pos}: {_ffi.strerror(rc)}; cleaning "
           "of this partition stopped, nothing changed (recovery quarantines it)")
    _log.error("%s", msg)
    raise CorruptSegmentError(msg)


class _Writer:
    """A ``pl_compact_writer`` and the file it drains into."""

    def __init__(self, fd: int, base: int, now_ms: int, retention_ms: int):
        self.fd = fd
        self.cap = _OUT_BUFFER
        self.buf = ffi.new("uint8_t[]", self.cap)
        self.c = ffi.new("pl_compact_writer *")
        self.c.out, self.c.cap, self.c.pending = self.buf, self.cap, _UINT64_MAX
        self.c.next_base, self.c.now_ms = base, now_ms
        self.c.delete_retention_ms = retention_ms
        self.c.min_horizon = -1
        self.written = 0

    def drain(self, final: bool = False) -> None:
        w = self.c
        n = w.len if w.pending == _UINT64_MAX else w.pending
        if n:
            data = ffi.buffer(self.buf, n)
            view = memoryview(data)
            while view:
                k = os.write(self.fd, view)
                view = view[k:]
            self.written += n
            lib.pl_compact_drain(w)
        elif not final:
            self._grow()                     # the pending batch and the next one

    def recompress(self, codec: int) -> None:
        """The batch just written (pending, uncompressed) back to the source's codec,
        when that is smaller (its CRC is set when it is closed)."""
        w, at = self.c, self.c.pending
        start, end = at + BATCH_HEADER_SIZE, w.len
        packed = compress(codec, ffi.buffer(self.buf + start, end - start))
        if len(packed) >= end - start:
            return
        ffi.memmove(self.buf + start, packed, len(packed))
        w.len = start + len(packed)
        hdr = ffi.buffer(self.buf + at, BATCH_HEADER_SIZE)
        hdr[8:12] = (w.len - at - 12).to_bytes(4, "big")
        attrs = int.from_bytes(hdr[21:23], "big") | codec
        hdr[21:23] = attrs.to_bytes(2, "big")

    def _grow(self) -> None:
        new = ffi.new("uint8_t[]", self.cap * 2)
        ffi.memmove(new, self.buf, self.c.len)
        self.buf, self.cap = new, self.cap * 2
        self.c.out, self.c.cap = new, self.cap


class _Cleaned:
    """One cleaned segment in the making: ``<base>.log.cleaned`` and the input
    segments (indexes into the snapshot) it replaces."""

    def __init__(self, p, c: Cleanable, first: int, now_ms: int, where: str):
        self.p, self.c, self.where = p, c, where
        self.base = c.segments[first].base_offset
        self.indexes: list[int] = []
        self.end = self.base
        self.directory = p.directory
        swap.discard_cleaned(self.directory, self.base)
        self.paths = swap.cleaned_paths(self.directory, self.base)
        self.fd = os.open(self.paths[0], os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                          0o644)
        self.w = _Writer(self.fd, self.base, now_ms, p.config.delete_retention_ms)
        self.last_batch = None               # file position of the last batch
        self.done = False

    @property
    def size(self) -> int:
        return self.w.written + self.w.c.len

    def add(self, i: int, omap: OffsetMap) -> None:
        self.indexes.append(i)
        _filter_segment(self.w, omap, self.c.segments[i], self.c.views[i], self.where)

    def finish(self, end: int) -> None:
        """End at offset ``end`` (the next input's base), write, fsync."""
        w = self.w
        if w.c.pending != _UINT64_MAX:
            self.last_batch = w.written + w.c.pending
        _ffi.check(lib.pl_compact_finish(w.c, end), f"{self.where}: finishing "
                   f"{self.paths[0]}")
        w.drain(final=True)
        os.fsync(self.fd)
        self.end = end

    def extend(self, end: int, indexes: list[int]) -> None:
        """Take over the (empty) group after this one: the last batch ends at end."""
        from pylog.crc import crc32c
        pos = self.last_batch
        head = os.pread(self.fd, 12, pos)
        size = 12 + int.from_bytes(head[8:12], "big", signed=True)
        batch = bytearray(os.pread(self.fd, size, pos))
        base = int.from_bytes(batch[0:8], "big", signed=True)
        batch[23:27] = (end - 1 - base).to_bytes(4, "big")
        batch[17:21] = crc32c(memoryview(batch)[21:]).to_bytes(4, "big")
        os.pwrite(self.fd, bytes(batch[:27]), pos)
        os.fsync(self.fd)
        self.indexes += indexes
        self.end = end

    def install(self, st: CleanStats, crash_hook) -> bool:
        """Index, then swap in (False: the log changed meanwhile, nothing done)."""
        os.close(self.fd)
        self.fd = -1
        p, c = self.p, self.c
        st.records_kept += self.w.c.kept
        st.records_dropped += self.w.c.dropped
        st.tombstones_dropped += self.w.c.tombstones_dropped
        st.bytes_written += self.w.written
        h = self.w.c.min_horizon
        if h >= 0 and (st.min_horizon < 0 or h < st.min_horizon):
            st.min_horizon = h
        st.groups += 1
        if crash_hook:
            crash_hook("cleaned")
        have_data = self.w.written > 0
        if self.w.written >= 1 << 31:         # .index positions are 32-bit
            st.stopped = f"{self.paths[0].name}: cleaned output over 2 GiB; left as it was"
            return False
        if have_data:
            _index_cleaned(p, self.base, self.end, *self.paths, self.where)
            _txnindex_cleaned(p, self.base, [c.segments[i].base_offset
                                             for i in self.indexes])
            if crash_hook:
                crash_hook("indexed")
        self.done = True
        return _swap_in(p, c, self.indexes, self.base, have_data, crash_hook)

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if not self.done:
            swap.discard_cleaned(self.directory, self.base)
            self.done = True


def _filter_segment(w: _Writer, omap: OffsetMap, seg, view_size, where: str) -> None:
    view, size = view_size
    buf = ffi.from_buffer("uint8_t[]", view)
    io_expect = ffi.new("int64_t *", seg.base_offset)
    out_pos = ffi.new("uint64_t *")
    h = ffi.new("pl_batch_header *")
    pos = 0
    while True:
        rc = lib.pl_compact_segment(w.c, omap.c, buf, pos, size, io_expect, out_pos)
        if rc == 0:
            return
        pos = out_pos[0]
        if rc == lib.PL_EFULL:
            w.drain()
            continue
        if rc == lib.PL_ECOMPRESSED:
            rec, nxt = _inflate(seg, view, pos, size, h, where)
            rbuf = ffi.from_buffer("uint8_t[]", rec)
            control = 1 if h.attributes & lib.PL_ATTR_CONTROL else 0
            batches = w.c.batches
            while (rc := lib.pl_compact_filter(w.c, omap.c, rbuf, len(rec), h,
                                               control)) == lib.PL_EFULL:
                w.drain()
            if rc == 0 and w.c.batches > batches:
                w.recompress(h.attributes & ATTR_COMPRESSION_MASK)
            if rc == 0:
                io_expect[0] = h.base_offset + h.last_offset_delta + 1
                pos = nxt
                continue
        _corrupt(seg, pos, rc, where)


def _index_cleaned(p, base: int, end: int, log_path, index_path, time_path,
                   where: str) -> None:
    """Build the cleaned segment's indexes the way recovery does (which also checks
    every batch written), then seal it (trim, fsync)."""
    seg = ffi.new("pl_segment *")
    cfg = ffi.new("pl_segment_config *", p._scfg[0])
    # re-encoding may grow a full segment by a few bytes a record: map what is there
    size = os.path.getsize(log_path)
    cfg.segment_bytes = max(cfg.segment_bytes, size + 4096)
    rc = lib.pl_segment_open(seg, os.fsencode(log_path), os.fsencode(index_path),
                             os.fsencode(time_path), base, cfg, lib.PL_OPEN_ACTIVE)
    _ffi.check(rc, f"{where}: opening {log_path}")
    owners = [_ffi.map_owner(mf)[0] for mf in (seg.log, seg.index, seg.timeindex)]
    try:
        rep = ffi.new("pl_recover_report *")
        _ffi.check(lib.pl_segment_recover_scan(seg, rep), f"{where}: indexing {log_path}")
        if rep.stop_reason != 0 or rep.next_offset != end:
            raise CorruptSegmentError(
                f"{where}: the cleaned segment {log_path} does not check "
                f"({_ffi.strerror(rep.stop_reason)}, ends at {rep.next_offset}, expected "
                f"{end}); nothing swapped")
        _ffi.check(lib.pl_segment_seal(seg), f"{where}: sealing {log_path}")
    finally:
        lib.pl_segment_close(seg)
        del owners


def _txnindex_cleaned(p, base: int, old_bases: list[int]) -> None:
    """``B.txnindex.cleaned``: the entries of the segments replaced (sealed, so
    nothing appends to them meanwhile), synced; none when they have none."""
    if p._txn is None:
        return
    with p._lock:
        entries = p._txn.entries_of(old_bases)
    if entries:
        path = swap.txnindex_cleaned_path(p.directory, base)
        with open(path, "wb") as f:
            f.write(txn_index.encode(entries))
            f.flush()
            os.fsync(f.fileno())


def _swap_in(p, c: Cleanable, g: list[int], base: int, have_data: bool,
             crash_hook) -> bool:
    """Step 4, under the partition lock."""
    directory = p.directory
    old = [c.segments[i] for i in g]
    with p._lock:
        segs = p._segments
        try:
            at = next(k for k, s in enumerate(segs) if s is old[0])
        except StopIteration:
            at = -1
        if p._closed or at < 0 or segs[at:at + len(old)] != old or any(
                s.deleted for s in old):
            swap.discard_cleaned(directory, base)
            return False
        if have_data:
            swap.commit(directory, base)
            if crash_hook:
                crash_hook("swap")
            swap.install(directory, base, [s.base_offset for s in old])
            new = Segment.open(directory, base, p._scfg, active=False)
            if not new.load_clean():
                new.recover()
                new.seal()
            new.close()
            replacement = [new]
        else:
            for s in old:                 # nothing survives: the segments go
                for path in s.paths():
                    path.unlink(missing_ok=True)
            files.fsync_dir(directory)
            replacement = []
        for s in old:                     # their files are gone or replaced; views
            s.deleted = True              # and mappings stay valid until released
            p._close_segment_locked(s)
        if p._txn is not None:
            p._txn.segments_replaced_locked([s.base_offset for s in old],
                                            base if have_data else None)
        segs[at:at + len(old)] = replacement
        p._bases[at:at + len(old)] = [s.base_offset for s in replacement]
        moved = at == 0 and not have_data and segs[0].base_offset > p._log_start
        if moved:
            p._log_start = segs[0].base_offset
    if moved and p._on_checkpoint is not None:
        p._on_checkpoint()
    if crash_hook:
        crash_hook("installed")
    return True
