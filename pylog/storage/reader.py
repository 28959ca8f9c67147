"""Decoding a partition's batches into columns, Records, and numpy views.

The C core decodes uncompressed batches straight from the mapping into caller-owned
column arrays (``pl_record_cols``: offsets, timestamps, key/value/header positions and
lengths).  Positions index the *source*: the segment's mapping for plain batches, the
inflated bytes for a compressed batch (``PL_ECOMPRESSED`` hands it back to us; we
decompress with ``records.decompress`` and call ``pl_records_decode``).  A decode is
therefore a list of chunks ``(source, first_row, end_row)``.

From chunks we build either Records (one bytes copy of the chunk's span, then slices:
the cheapest way to make millions of small ``bytes``) or ``Columns`` (numpy, zero copy
when the whole read is one chunk of the mapping).

Also here, because log.py is long enough: the record-input builder for ``append_batch``
and the retention predicate.  Nothing in this module takes the partition lock except
through ``PartitionLog._locate_locked`` callers below, which hold it explicitly.
"""
from __future__ import annotations

import sys
import threading
import weakref
from dataclasses import dataclass

from pylog import _ffi
from pylog._ffi import ffi, lib
from pylog._speedups import join_lengths as _join_lengths
from pylog._speedups import records as _records
from pylog._speedups import value_spans as _value_spans
from pylog.errors import CorruptRecordError, OffsetOutOfRangeError
from pylog.storage.dedup import MARKER as _MSG_ID_MARKER
from pylog.storage.dedup import MSG_ID_HEADER
from pylog.records import ATTR_COMPRESSION_MASK, BATCH_HEADER_SIZE, Record, decompress

__all__ = ["ColumnReader", "Columns", "build_records_in", "retention_victims"]
_MSG_ID_KEY = MSG_ID_HEADER.encode()


class _Cols:
    """A ``pl_record_cols`` and the arrays it points to (cffi arrays, or numpy views of
    one block for read_columns)."""

    __slots__ = ("c", "addr", "offsets", "timestamps", "key_pos", "key_lens", "value_pos",
                 "value_lens", "headers_pos", "header_counts", "capacity")

    # (field, numpy dtype, cffi type, bytes per row); the 8-byte columns first, so
    # every view carved out of a block stays aligned
    _LAYOUT = (("offsets", "int64", "int64_t[]", 8), ("timestamps", "int64", "int64_t[]", 8),
               ("key_pos", "int64", "int64_t[]", 8), ("value_pos", "int64", "int64_t[]", 8),
               ("headers_pos", "int64", "int64_t[]", 8),
               ("key_lens", "int32", "int32_t[]", 4), ("value_lens", "int32", "int32_t[]", 4),
               ("header_counts", "int32", "int32_t[]", 4))
    ROW_BYTES = sum(f[3] for f in _LAYOUT)

    def __init__(self, capacity: int, block: np.ndarray | None = None):
        """Arrays of ``capacity`` rows: numpy views carved out of ``block`` (uint8, at
        least capacity * ROW_BYTES; read_columns) when given, else cffi arrays (the
        Records path, which needs no numpy: a server that never calls read_columns
        never imports it)."""
        self.capacity = capacity
        c = self.c = ffi.new("pl_record_cols *")
        self.addr = int(ffi.cast("uintptr_t", c))     # for _speedups.records
        c.capacity = capacity
        c.count = 0
        rows = max(capacity, 1)
        at = 0
        for name, dtype, ctype, width in self._LAYOUT:
            if block is None:
                arr = ffi.new(ctype, rows)
                setattr(c, name, arr)
            else:
                arr = block[at:at + rows * width].view(dtype)
                at += rows * width
                setattr(c, name, ffi.from_buffer(ctype, arr))
            setattr(self, name, arr)

    @property
    def count(self) -> int:
        return self.c.count

    def reuse(self, capacity: int) -> "_Cols":
        """Empty again, with a (smaller or equal) capacity: for per-thread scratch."""
        self.capacity = self.c.capacity = capacity
        self.c.count = 0
        return self

    def take_from(self, other: "_Cols", n: int) -> None:
        """Append the first n rows of ``other`` (used for a batch that does not fit)."""
        i = self.c.count
        for name, _, _, width in self._LAYOUT:
            ffi.memmove(getattr(self.c, name) + i, getattr(other.c, name), n * width)
        self.c.count = i + n


_scratch = threading.local()
_SLACK = 2048
_POOL_BLOCKS = 2                 # per thread
_POOL_MAX_BYTES = 64 << 20       # bigger blocks are not kept


def _refs(pool: list, i: int) -> int:
    return sys.getrefcount(pool[i])


_FREE_REFS = _refs([bytearray(1)], 0)   # the count of a block only the pool holds


def _column_block(rows: int) -> np.ndarray:
    """Memory for read_columns' arrays: a block an earlier call returned whose
    Columns the caller has since dropped (no array refers to it any more, so its
    pages are warm and ours to reuse), else a new one.  Fresh pages cost a fault and
    a zeroing each: about a quarter of a read_columns of 100,000 records."""
    import numpy as np
    nbytes = max(rows, 1) * _Cols.ROW_BYTES
    if nbytes > _POOL_MAX_BYTES:
        return np.empty(nbytes, np.uint8)
    pool = getattr(_scratch, "blocks", None)
    if pool is None:
        pool = _scratch.blocks = []
    for i in range(len(pool)):
        if len(pool[i]) >= nbytes and _refs(pool, i) == _FREE_REFS:
            return pool[i]
    blk = np.empty(max(nbytes, 1 << 20), np.uint8)
    pool.append(blk)
    if len(pool) > _POOL_BLOCKS:
        del pool[0]                  # still alive while its Columns are
    return blk


def _scratch_cols(n: int) -> _Cols:
    """A per-thread _Cols for read(): its rows become Python objects before the call
    returns, so the arrays can be reused (saves 8 allocations per read)."""
    cols = getattr(_scratch, "cols", None)
    if cols is None or len(cols.offsets) < n:
        if n > 65536 + _SLACK:
            return _Cols(n)                   # don't pin big arrays per thread
        cols = _scratch.cols = _Cols(max(n, 1024 + _SLACK))
    return cols.reuse(n)


def _decode(seg, pos: int, end: int, min_offset: int, cols: _Cols) -> list[tuple]:
    """Decode batches [pos, end) of ``seg`` into cols; returns the chunks."""
    chunks = []
    view = seg._log_view
    out = ffi.new("uint64_t *")
    h = ffi.new("pl_batch_header *")
    while pos < end and cols.c.count < cols.capacity:
        i0 = cols.c.count
        rc = lib.pl_segment_decode_upto(seg.c, pos, end, min_offset, cols.capacity,
                                        cols.c, out)
        if cols.c.count > i0:
            chunks.append((view, i0, cols.c.count))
        if rc == 0:
            break
        pos = out[0]
        if rc in _ffi.CORRUPT and chunks:
            break                         # serve what precedes it; the next read fails
        if rc == lib.PL_ECOMPRESSED:
            nxt = seg.batch_at(pos, h)
            data = _inflate(seg, view, pos, nxt, h)
            _decode_records(data, h, min_offset, cols, chunks, seg.log_path, pos)
            pos = nxt
        elif rc == lib.PL_ENOSPACE_CAP:
            if cols.c.count >= cols.capacity:
                break                             # full: the caller asked for no more
            nxt = seg.batch_at(pos, h)            # this batch alone is bigger than the room
            tmp = _Cols(h.records_count)
            rc = lib.pl_segment_decode(seg.c, pos, nxt, min_offset, tmp.c, out)
            if rc:
                _ffi.check(rc, seg.where(pos))
            i0 = cols.c.count
            cols.take_from(tmp, min(tmp.c.count, cols.capacity - i0))
            if cols.c.count > i0:
                chunks.append((view, i0, cols.c.count))
            break
        else:
            _ffi.check(rc, seg.where(pos))
    return chunks


def _inflate(seg, view, pos: int, nxt: int, h) -> bytes:
    try:
        return decompress(h.attributes & ATTR_COMPRESSION_MASK,
                          view[pos + BATCH_HEADER_SIZE:nxt])
    except CorruptRecordError as e:
        raise CorruptRecordError(f"{seg.log_path} batch at byte {pos}: {e}") from None


def _decode_records(data: bytes, h, min_offset: int, cols: _Cols, chunks: list,
                    path, pos: int) -> None:
    """Decode one inflated records section into cols (partially if it does not fit)."""
    buf = ffi.from_buffer("uint8_t[]", data)
    i0 = cols.c.count
    rc = lib.pl_records_decode(buf, len(data), h, min_offset, buf, cols.c)
    if rc == lib.PL_ENOSPACE_CAP:
        tmp = _Cols(h.records_count)
        rc = lib.pl_records_decode(buf, len(data), h, min_offset, buf, tmp.c)
        cols.take_from(tmp, min(tmp.c.count, cols.capacity - i0))
    if rc:
        _ffi.check(rc, f"decoding the compressed batch in {path} at byte {pos}")
    if cols.c.count > i0:
        chunks.append((data, i0, cols.c.count))


# ---- Records ------------------------------------------------------------------------
def chunk_records(src, cols: _Cols, i0: int, i1: int) -> list[Record]:
    """Records of rows i0..i1, built in C (_speedups.records: bytes copied out of
    ``src``, headers parsed, each position bounds-checked against ``src``)."""
    return _records(Record, src, cols.addr, i0, i1, CorruptRecordError)


# ---- Columns ------------------------------------------------------------------------
@dataclass
class Columns:
    """Records as columns.  ``values`` is a uint8 array that both ``key_starts`` and
    ``value_starts`` index; a length of -1 is a null key/value.  Zero-copy over the
    segment mapping when every batch read was uncompressed."""
    offsets: np.ndarray
    timestamps: np.ndarray
    key_starts: np.ndarray
    key_lengths: np.ndarray
    value_starts: np.ndarray
    value_lengths: np.ndarray
    values: np.ndarray
    header_counts: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets)

    def value(self, i: int) -> bytes | None:
        n = int(self.value_lengths[i])
        if n < 0:
            return None
        s = int(self.value_starts[i])
        return self.values[s:s + n].tobytes()

    def key(self, i: int) -> bytes | None:
        n = int(self.key_lengths[i])
        if n < 0:
            return None
        s = int(self.key_starts[i])
        return self.values[s:s + n].tobytes()


def _empty_columns() -> Columns:
    import numpy as np
    e64, e32 = np.zeros(0, np.int64), np.zeros(0, np.int32)
    return Columns(e64, e64, e64, e32, e64, e32, np.zeros(0, np.uint8), e32)


def _span(cols: _Cols, i0: int, i1: int) -> tuple[int, int]:
    """[lo, hi) of the key and value bytes of rows i0..i1 in their source."""
    lo, hi = None, 0
    for pos, lens in ((cols.key_pos[i0:i1], cols.key_lens[i0:i1]),
                      (cols.value_pos[i0:i1], cols.value_lens[i0:i1])):
        present = lens >= 0
        first = int(present.argmax())
        if present[first]:
            last = len(present) - 1 - int(present[::-1].argmax())
            lo = int(pos[first]) if lo is None else min(lo, int(pos[first]))
            hi = max(hi, int(pos[last]) + int(lens[last]))
    return (0, 0) if lo is None else (lo, hi)


def chunks_to_columns(cols: _Cols, chunks: list) -> Columns:
    import numpy as np
    n = cols.c.count
    if n == 0:
        return _empty_columns()
    key_pos = cols.key_pos[:n]                  # fresh arrays: adjusted in place
    value_pos = cols.value_pos[:n]
    pieces, base = [], 0
    for src, i0, i1 in chunks:
        lo, hi = _span(cols, i0, i1)
        key_pos[i0:i1] += base - lo
        value_pos[i0:i1] += base - lo
        pieces.append((src, lo, hi))
        base += hi - lo
    if len(pieces) == 1:
        src, lo, hi = pieces[0]
        values = np.frombuffer(src[lo:hi], dtype=np.uint8) if hi > lo else \
            np.zeros(0, np.uint8)
    else:
        values = np.frombuffer(b"".join(bytes(s[lo:hi]) for s, lo, hi in pieces),
                               dtype=np.uint8)
    key_pos[cols.key_lens[:n] < 0] = 0
    value_pos[cols.value_lens[:n] < 0] = 0
    return Columns(cols.offsets[:n], cols.timestamps[:n], key_pos, cols.key_lens[:n],
                   value_pos, cols.value_lens[:n], values, cols.header_counts[:n])


# ---- the reader bound to a partition -----------------------------------------------
def _span_upto(seg, pos: int, max_bytes: int, last_offset: int) -> tuple[int, int]:
    """Segment.span that stops after the batch holding last_offset (no header walk
    beyond what the read wants): (end, offset after the run)."""
    end = ffi.new("uint64_t *")
    nxt = ffi.new("int64_t *")
    rc = lib.pl_segment_span_upto(seg.c, pos, max_bytes, last_offset, end, nxt)
    if rc:
        _ffi.check(rc, seg.where(pos))
    return end[0], nxt[0]


class ColumnReader:
    """Read paths of one PartitionLog (holds its lock only to locate)."""

    def __init__(self, plog):
        # A proxy, not a reference: no cycle, so a dropped PartitionLog (and its
        # mappings, and the disk space of deleted files) goes at once, without gc.
        self._p = weakref.proxy(plog)

    def _locate(self, offset: int):
        p = self._p
        with p._lock:
            loc = p._locate_locked(offset)
            if loc is None:
                return None
            seg = loc[0]
            return loc + (seg.c.next_offset,)

    def read(self, offset: int, max_records: int, max_bytes: int) -> list[Record]:
        out: list[Record] = []
        budget = max(0, max_bytes)
        first = True
        while len(out) < max_records:
            try:
                loc = self._locate(offset)
                if loc is not None:
                    seg, pos, seg_end, seg_next = loc
                    want = min(max_records - len(out), seg_next - offset)
                    # clamp to the end seen under the lock: seg_next describes [pos, end)
                    end, after = _span_upto(seg, pos, budget, offset + want - 1)
                    end = min(end, seg_end)
            except OffsetOutOfRangeError:
                if first:
                    raise
                break                       # retention moved the start under us
            except CorruptRecordError:
                if not out:
                    raise
                break                       # serve the good records; the next read fails
            first = False
            if loc is None:
                break
            # The C decode stops at `want` rows, inside a batch if need be.
            cols = _scratch_cols(want)
            for src, i0, i1 in _decode(seg, pos, end, offset, cols):
                i1 = min(i1, want)
                if i0 >= i1:
                    break
                out.extend(chunk_records(src, cols, i0, i1))
            budget -= end - pos
            if budget <= 0 or len(out) >= max_records:
                break
            offset = seg_next if end >= seg_end else after
        return out

    def read_columns(self, offset: int, max_records: int) -> Columns:
        loc = self._locate(offset)
        if loc is None or max_records <= 0:
            return _empty_columns()
        seg, pos, seg_end, seg_next = loc
        n = min(max_records, seg_next - offset)              # at most that many records
        cols = _Cols(n, _column_block(n))
        chunks = _decode(seg, pos, seg_end, offset, cols)
        return chunks_to_columns(cols, chunks)

    def max_timestamp(self) -> int:
        """The largest timestamp of any batch (segment headers; -1 for an empty log)."""
        p = self._p
        with p._lock:
            return max((s.max_timestamp for s in p._segments if s.size), default=-1)

    def offset_for_time(self, ts: int) -> int | None:
        p = self._p
        h = ffi.new("pl_batch_header *")
        with p._lock:
            segs = [(s, s.size) for s in p._segments if s.max_timestamp >= ts]
            start = p._log_start
        for seg, end in segs:
            with p._lock:
                pos = seg.find_time(ts, h)
            while pos is not None and pos < end:
                nxt = seg.batch_at(pos, h)
                if h.max_timestamp >= ts:
                    cols = _Cols(h.records_count)
                    _decode(seg, pos, nxt, start, cols)
                    n = cols.c.count
                    for o, t in zip(ffi.unpack(cols.c.offsets, n),
                                    ffi.unpack(cols.c.timestamps, n)):
                        if t >= ts:
                            return o
                pos = nxt
        return None


# ---- appends ------------------------------------------------------------------------
def _blob(items, what: str):
    """(concatenated bytes, int32 lengths with -1 for None) of a list of bytes-likes."""
    joined = _join_lengths(items)         # all bytes or None: one C pass
    if joined is not None:
        blob, lens = joined
        return blob, ffi.from_buffer("int32_t[]", lens)
    lens = []
    parts = []
    for it in items:
        if it is None:
            lens.append(-1)
        else:
            if isinstance(it, str):
                raise TypeError(f"{what} must be bytes-like, not str")
            parts.append(it)
            lens.append(len(it))
    return b"".join(parts), ffi.new("int32_t[]", lens)


def build_records_in(values, keys, headers, timestamps, now_ms: int,
                     log_append_time: bool = False):
    """A ``pl_records_in`` for one batch; returns (objects to keep alive, cdata,
    whether a header is named ``pylog-msg-id``: storage/dedup.py).
    With ``log_append_time`` the batch is stamped with now_ms (timestamps ignored)."""
    n = len(values)
    if n == 0:
        raise ValueError("append_batch needs at least one value")
    rin = ffi.new("pl_records_in *")
    keep = [rin]
    rin.count = n
    rin.producer_id, rin.producer_epoch, rin.base_sequence, rin.attributes = -1, -1, -1, 0
    if log_append_time:
        rin.attributes = 0x08                 # PL_ATTR_TIMESTAMP_TYPE
        timestamps = None
    spans = _value_spans(values)          # all bytes or None: pointers, no copy
    if spans is not None:
        items, ptrs, lens = spans
        rin.value_ptrs = vptrs = ffi.from_buffer("uint8_t *[]", ptrs)
        rin.value_lens = vlens = ffi.from_buffer("int32_t[]", lens)
        keep.extend((items, vptrs, vlens))
    else:
        vblob, vlens = _blob(values, "value")
        rin.values, rin.value_lens = _keep(keep, vblob), vlens
        keep.append(vlens)
    if keys is not None:
        if len(keys) != n:
            raise ValueError(f"{len(keys)} keys for {n} values")
        kblob, klens = _blob(keys, "key")
        rin.keys, rin.key_lens = _keep(keep, kblob), klens
        keep.append(klens)
    if timestamps is None:
        rin.timestamp = now_ms
    else:
        if len(timestamps) != n:
            raise ValueError(f"{len(timestamps)} timestamps for {n} values")
        tarr = ffi.new("int64_t[]", [now_ms if t is None else t for t in timestamps])
        rin.timestamps = tarr
        rin.timestamp = int(tarr[0])
        keep.append(tarr)
    ids = False
    if headers is not None and any(headers):
        ids = _headers_in(rin, keep, headers, n)
    return keep, rin, ids


def _keep(keep: list, blob: bytes):
    buf = ffi.from_buffer("uint8_t[]", blob)
    keep.append(buf)
    keep.append(blob)
    return buf


def _headers_in(rin, keep: list, headers, n: int) -> bool:
    if len(headers) != n:
        raise ValueError(f"{len(headers)} header lists for {n} values")
    counts, hkeys, hvals = [], [], []
    for hs in headers:
        hs = hs or ()
        counts.append(len(hs))
        for k, v in hs:
            hkeys.append(k.encode("utf-8") if isinstance(k, str) else bytes(k))
            hvals.append(v)
    carr = ffi.new("int32_t[]", counts)
    kblob, klens = _blob(hkeys, "header key")
    vblob, vlens = _blob(hvals, "header value")
    rin.header_counts = carr
    rin.header_keys, rin.header_key_lens = _keep(keep, kblob), klens
    rin.header_values, rin.header_value_lens = _keep(keep, vblob), vlens
    keep.extend((carr, klens, vlens))
    return _MSG_ID_KEY in hkeys             # a C-speed scan of the names built anyway


# ---- retention ----------------------------------------------------------------------
def retention_victims(segments, config, now_ms: int, log_start: int) -> int:
    """How many of the oldest segments Kafka's deleteOldSegments would delete.

    Predicates, oldest first, stopping at the first segment none holds: the next
    segment starts at or below the log start offset (DeleteRecords); the segment's
    largest timestamp is older than retention.ms; the log minus this segment is still
    at least retention.bytes.  The empty active segment is never a victim.
    """
    deleting = "delete" in config.cleanup_policy
    rms, rbytes = config.retention_ms, config.retention_bytes
    total = sum(s.size for s in segments)
    n = 0
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg.is_empty and last:
            break
        breach = not last and segments[i + 1].base_offset <= log_start
        old = (deleting and rms >= 0 and seg.max_timestamp >= 0
               and now_ms - seg.max_timestamp > rms)
        big = deleting and rbytes >= 0 and total - seg.size >= rbytes
        if not (breach or old or big):
            break
        total -= seg.size
        n += 1
    return n


# ---- produce-side check of compressed batches ---------------------------------------
def check_compressed(data, max_batch_bytes: int) -> bool:
    """Inflate and walk the records of every compressed batch in ``data`` (Kafka's
    LogValidator does the same): the C core checks their CRC but cannot look inside,
    and a malformed compressed batch stored would fail every later read.  Raises
    CorruptRecordError / InvalidRecordError; anything structurally odd in the batch
    framing is left for the C core to report.  Returns whether the inflated records
    hold the encoded ``pylog-msg-id`` header name (storage/dedup.py)."""
    mv = memoryview(data).cast("B")
    pos, end = 0, len(mv)
    h = None
    ids = False
    while end - pos >= BATCH_HEADER_SIZE:
        length = int.from_bytes(mv[pos + 8:pos + 12], "big", signed=True)
        size = 12 + length
        if length < BATCH_HEADER_SIZE - 12 or size > end - pos:
            return ids
        if mv[pos + 22] & ATTR_COMPRESSION_MASK and mv[pos + 16] == 2:
            if h is None:
                h = ffi.new("pl_batch_header *")
            lib.pl_batch_read_header(ffi.from_buffer("uint8_t[]", mv[pos:pos + 61]), 61, h)
            if max_batch_bytes and size > max_batch_bytes:
                return ids                    # the C core says RecordTooLarge
            try:
                records = decompress(h.attributes & ATTR_COMPRESSION_MASK,
                                     mv[pos + BATCH_HEADER_SIZE:pos + size])
            except CorruptRecordError as e:
                raise CorruptRecordError(f"compressed batch at byte {pos}: {e}") from None
            # a record takes at least 7 bytes: bounds the arrays whatever the count says
            cols = _Cols(max(0, min(h.records_count, len(records) // 7 + 1)))
            buf = ffi.from_buffer("uint8_t[]", records)
            rc = lib.pl_records_decode(buf, len(records), h, h.base_offset, buf, cols.c)
            if rc == lib.PL_ENOSPACE_CAP or (rc == 0 and cols.c.count != h.records_count):
                rc = lib.PL_EBADRECORD
            if rc:
                _ffi.check(rc, f"compressed batch at byte {pos}", client=True)
            # the bytes search only when some record has headers at all
            n = cols.c.count
            if not ids and n and ffi.buffer(cols.header_counts, 4 * n)[:] != bytes(4 * n):
                ids = _MSG_ID_MARKER in records
        pos += size
    return ids
