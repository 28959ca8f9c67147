"""Dedup ids: a record whose ``pylog-msg-id`` header was already stored is not stored again.

NATS JetStream's ``Nats-Msg-Id`` for pylog (issue 12): a produced record carrying the
header ``pylog-msg-id`` whose id was already stored in the same partition within the
topic's ``dedup.window.ms`` (default 2 minutes, JetStream's; 0 = off; applies live) is
acknowledged with the first copy's offset and not written.  Unlike the idempotent
producer (a producer id and sequence numbers, lost when the producer restarts) the id is
the application's, so a producer that restarts and re-sends is still stored once.

Why here, in storage, and not in the broker: every door (the embedded API, Kafka
Produce, the text PRODUCE / PRODUCEX commands) reaches a partition through
``PartitionLog.append_batch`` / ``append_raw``, so hooking those two gives every door
the same rule with no per-door code, and the table lives and dies with the partition
(a deleted and re-created topic starts empty).

The table, one per partition (``DedupTable``), made on the first record with an id:

* ``xxh64(id) -> [entry]``, an entry = (id bytes, offset, time ms); the id bytes are kept
  and compared on a hash hit, so a collision of two ids is never taken for a duplicate
  (a bucket holds every id of that hash);
* a deque of the entries in insertion order; an entry older than the window is dropped
  (from the left, lazily, on the next use) and is never matched even before that;
* times are the broker's wall clock at append; rebuilt entries take the record's
  timestamp (its CreateTime, or LogAppendTime), so a producer clock far off the
  broker's shifts the window after a restart;
* rebuilt on first use after open by scanning the records of the window (from
  ``offset_for_time(now - window)`` to the log end) with verified reads; a batch whose
  bytes do not contain the encoded header name is skipped without decoding.  The scan
  runs in the thread of that first append (for Kafka Produce, the event loop): about
  one bytes search per batch of the window, and a decode of those with ids.

Cost: a record without the header pays nothing on ``append`` / ``append_batch`` without
headers (the C fast paths); ``append_batch`` with headers pays one ``in`` over the
header names it encodes anyway (reader.build_records_in); ``append_raw`` (Kafka, text) pays nothing for uncompressed batches: the C
core's validation walk over the records (done anyway) compares header names too
(``PL_APPEND_MSG_IDS``) and answers ``PL_EMSGID``, nothing appended, when one is
``pylog-msg-id``; compressed batches are inflated and walked by ``check_compressed``
anyway, which then searches the inflated bytes for the encoded name only when some
record has headers.

Batches with some duplicates: the duplicates are dropped and the rest stored as one
batch (order, timestamps, key, value, headers kept; an idempotent producer's id and
epoch kept, its base sequence moved so the stored batch still ends at the sent last
sequence).  Kafka answers one base offset per partition and a client computes each
record's offset as base + index, so the answer is chosen to make that exact in the
case that matters, a producer re-sending what it sent before a restart (possibly
followed by new records): with k duplicates before the first stored record, the base
offset is the stored batch's base minus k, which makes the stored records before the
next duplicate exact, and the leading duplicates too when their first copies are the
k records before the log end (the re-send case).  When every record is a duplicate
nothing is stored and the base offset is the first record's first-copy offset (exact
for all of them when the first copies were stored consecutively).

Locking: ``DedupTable.lock`` is held across check -> append -> remember, so two
appends of the same id (any thread, any door) store it once; it is taken before the
partition lock, and only by appends of records carrying an id.  After a retention
delete within the window a duplicate is still answered with the first copy's offset,
now below the log start.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

import xxhash

from pylog.records import (ATTR_COMPRESSION_MASK, ATTR_TIMESTAMP_TYPE, encode_batch,
                           iter_headers)

__all__ = ["MSG_ID_HEADER", "MARKER", "DedupTable", "msg_id", "carries_ids", "table",
           "append_batch", "append_raw"]

MSG_ID_HEADER = "pylog-msg-id"
# The header name as a record encodes it: varint zigzag(12) = 24 = 0x18, then the name.
MARKER = b"\x18" + MSG_ID_HEADER.encode()
_KEY = MSG_ID_HEADER.encode()
_SCAN_BYTES = 4 << 20              # read_raw chunk of the rebuild scan
_make_lock = threading.Lock()      # creation of a partition's table


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def msg_id(headers) -> bytes | None:
    """The record's id: the last ``pylog-msg-id`` value; None when absent, null or empty."""
    found = None
    for k, v in headers or ():
        if k == MSG_ID_HEADER or k == _KEY:           # str, or bytes (append_batch)
            found = v
    return bytes(found) if found else None


def carries_ids(data) -> bool:
    """Whether client-built batch bytes may hold an id (the encoded header name)."""
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    return MARKER in data


class _Entry:
    __slots__ = ("id", "offset", "time_ms")

    def __init__(self, id_: bytes, offset: int, time_ms: int) -> None:
        self.id, self.offset, self.time_ms = id_, offset, time_ms


class DedupTable:
    """The ids of one partition stored within the window; see the module doc.
    Methods ending in ``_locked`` expect ``self.lock`` held."""

    def __init__(self, partition_log, clock: Callable[[], int] = _wall_ms,
                 hasher: Callable[[bytes], int] = xxhash.xxh64_intdigest) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self._p = partition_log
        self._hash = hasher
        self._by_hash: dict[int, list[_Entry]] = {}
        self._order: deque[_Entry] = deque()
        self._loaded = False

    def __len__(self) -> int:
        return len(self._order)

    def prepare_locked(self, window_ms: int) -> int:
        """Rebuild on first use, drop expired entries; returns the cutoff time."""
        now = self.clock()
        cutoff = now - window_ms
        if not self._loaded:
            self._loaded = True
            self._rebuild_locked(cutoff)
        order = self._order
        while order and order[0].time_ms < cutoff:
            self._drop_locked(order.popleft())
        return cutoff

    def lookup_locked(self, id_: bytes, cutoff: int) -> int | None:
        """The first copy's offset of ``id_`` if stored at or after ``cutoff``."""
        for e in self._by_hash.get(self._hash(id_), ()):
            if e.id == id_ and e.time_ms >= cutoff:
                return e.offset
        return None

    def remember_locked(self, id_: bytes, offset: int, time_ms: int) -> None:
        e = _Entry(id_, offset, time_ms)
        self._by_hash.setdefault(self._hash(id_), []).append(e)
        self._order.append(e)

    def _drop_locked(self, e: _Entry) -> None:
        h = self._hash(e.id)
        bucket = self._by_hash.get(h)
        if bucket is None:
            return
        for i, x in enumerate(bucket):
            if x is e:
                del bucket[i]
                break
        if not bucket:
            del self._by_hash[h]

    def _rebuild_locked(self, cutoff: int) -> None:
        """First pass after open: every id stored in the window, from the log."""
        p = self._p
        offset = p.offset_for_time(cutoff)
        if offset is None:
            return
        end = p.log_end_offset
        while offset < end:
            raw = p.read_raw(offset, _SCAN_BYTES)
            if not len(raw):
                break
            nxt = offset
            for pos, h in iter_headers(raw, verify=False):
                nxt = h.base_offset + h.last_offset_delta + 1
                batch = raw[pos:pos + 12 + h.batch_length]
                if not (h.attributes & ATTR_COMPRESSION_MASK or MARKER in bytes(batch)):
                    continue
                n = h.last_offset_delta + 1
                for r in p.read(max(offset, h.base_offset), max_records=n,
                                max_bytes=12 + h.batch_length):
                    if h.base_offset <= r.offset < nxt and r.offset >= offset:
                        rid = msg_id(r.headers)
                        if rid is not None and r.timestamp >= cutoff:
                            self.remember_locked(rid, r.offset, r.timestamp)
            if nxt <= offset:
                break
            offset = nxt


def table(p) -> DedupTable:
    """The partition's table, made on first use."""
    t = p._dedup
    if t is None:
        with _make_lock:
            t = p._dedup
            if t is None:
                t = p._dedup = DedupTable(p)
    return t


# ---- the two append doors -------------------------------------------------------------
def append_batch(p, values, keys, headers, timestamps, built=None
                 ) -> tuple[int, list[int]]:
    """``PartitionLog.append_batch`` for records of which some carry an id: (the base
    offset as the module doc defines it, each record's offset).  ``built``: the
    (keep, records_in) append_batch already made, used when nothing is dropped."""
    t = table(p)
    n = len(values)
    if len(headers) != n:
        raise ValueError(f"{len(headers)} header lists for {n} values")
    ids = [msg_id(h) for h in headers]
    with t.lock:
        cutoff = t.prepare_locked(p.config.dedup_window_ms)
        offsets: list[int | None] = [None] * n
        seen: dict[bytes, int] = {}                  # ids twice in this one batch
        keep = []
        for i, rid in enumerate(ids):
            if rid is not None:
                first = t.lookup_locked(rid, cutoff)
                if first is None and rid in seen:
                    offsets[i] = -1 - seen[rid]       # resolved after the append
                    continue
                if first is not None:
                    offsets[i] = first
                    continue
                seen[rid] = i
            keep.append(i)
        if not keep:
            _wait_for(p, max(offsets), True)
            return offsets[0], offsets
        if len(keep) == n:
            base = (p._append_batch(values, keys, headers, timestamps) if built is None
                    else p._append_records(*built, n))
            stored_base = base
        else:
            base = p._append_batch([values[i] for i in keep],
                                   None if keys is None else [keys[i] for i in keep],
                                   [headers[i] for i in keep],
                                   None if timestamps is None
                                   else [timestamps[i] for i in keep])
            stored_base, base = base, base - keep[0]
        now = t.clock()
        for j, i in enumerate(keep):
            offsets[i] = stored_base + j
            if ids[i] is not None:
                t.remember_locked(ids[i], stored_base + j, now)
        for i, o in enumerate(offsets):
            if o < 0:
                offsets[i] = offsets[-1 - o]
    return base, offsets


def append_raw(p, data, wait: bool):
    """``PartitionLog.append_raw`` for batches whose bytes may carry ids."""
    t = table(p)
    batches = _decode_all(data)
    with t.lock:
        cutoff = t.prepare_locked(p.config.dedup_window_ms)
        seen: set[bytes] = set()
        plan, dups, stored = [], [], 0              # plan: (header, kept records, whole)
        leading = 0                                 # duplicates before the first kept
        for h, recs in batches:
            kept = []
            for r in recs:
                rid = msg_id(r.headers)
                first = None if rid is None else t.lookup_locked(rid, cutoff)
                if rid is not None and first is None and rid in seen:
                    first = -1                         # same id twice in one request
                if first is not None:
                    dups.append(first)
                    leading += stored == 0 and not kept
                    continue
                if rid is not None:
                    seen.add(rid)
                kept.append(r)
            plan.append((h, kept, len(kept) == len(recs)))
            stored += len(kept)
        if stored == 0:
            from pylog.storage.log import AppendResult
            firsts = [o for o in dups if o >= 0]
            _wait_for(p, max(firsts), wait)
            return AppendResult(firsts[0], max(firsts), -1, p.log_start_offset, 0)
        if all(whole for _, _, whole in plan):
            result = p._append_raw(data, wait=wait)
        else:
            result = p._append_raw(b"".join(_reencode(h, kept) for h, kept, _ in plan
                                            if kept), wait=wait)
        now = t.clock()
        base = result.base_offset
        for h, kept, whole in plan:
            for j, r in enumerate(kept):
                rid = msg_id(r.headers)
                if rid is not None:
                    off = base + (r.offset - h.base_offset if whole else j)
                    t.remember_locked(rid, off, now)
            base += h.last_offset_delta + 1 if whole else len(kept)
    return result._replace(base_offset=result.base_offset - leading, stored=stored)


def _wait_for(p, last_offset: int, wait: bool) -> None:
    """A duplicate is answered once its first copy is as durable as an append's."""
    if wait:
        fut = p.durable_future(last_offset)
        if not fut.done():
            p._await_durable(fut)
        fut.result()


def _decode_all(data) -> list:
    """(BatchHeader, [Record]) of each batch: validated (CRC, records) and decoded by
    the C core, as a read would (CorruptRecord / InvalidRecord for what it refuses)."""
    from pylog import _ffi
    from pylog._ffi import ffi, lib
    from pylog.records import decompress, read_header
    from pylog.storage.reader import _Cols, chunk_records
    raw = data if type(data) is bytes else bytes(data)
    buf = ffi.from_buffer("uint8_t[]", raw)
    ch = ffi.new("pl_batch_header *")
    out, pos = [], 0
    while pos < len(raw):
        rc = lib.pl_batch_validate(buf + pos, len(raw) - pos, 0, 1, ch)
        if rc:
            _ffi.check(rc, f"batch at byte {pos}", client=True)
        h = read_header(raw, pos)
        size = 12 + h.batch_length
        codec = h.attributes & ATTR_COMPRESSION_MASK
        if codec:
            src = bytes(decompress(codec, raw[pos + 61:pos + size]))
            sbuf = ffi.from_buffer("uint8_t[]", src)
            rec, rec_len, origin = sbuf, len(src), sbuf
        else:
            src, rec, rec_len, origin = raw, buf + pos + 61, size - 61, buf
        cols = _Cols(max(1, h.records_count))
        rc = lib.pl_records_decode(rec, rec_len, ch, -(1 << 63), origin, cols.c)
        if rc == 0 and cols.c.count != h.records_count:
            rc = lib.PL_EBADRECORD
        if rc:
            _ffi.check(rc, f"batch at byte {pos}", client=True)
        out.append((h, chunk_records(src, cols, 0, cols.c.count)))
        pos += size
    return out


def _reencode(h, kept) -> bytes:
    """A batch of ``kept`` records with ``h``'s codec, attributes and producer; record
    offsets become consecutive (the dropped duplicates leave no gap)."""
    codec = h.attributes & ATTR_COMPRESSION_MASK
    base_seq = h.base_sequence
    if h.producer_id >= 0 and base_seq >= 0:
        # still end at the sent last sequence (int32 wrap, as next_sequence)
        last = (base_seq + h.last_offset_delta) % (1 << 31)
        base_seq = (last - (len(kept) - 1)) % (1 << 31)
    return encode_batch([r.value for r in kept], keys=[r.key for r in kept],
                        headers=[list(r.headers) for r in kept],
                        timestamps=[r.timestamp for r in kept],
                        producer_id=h.producer_id, producer_epoch=h.producer_epoch,
                        base_sequence=base_seq, compression=codec,
                        attributes=h.attributes & ATTR_TIMESTAMP_TYPE)
