"""The partition side of Kafka transactions (Kafka's ``ProducerStateManager`` for
what concerns transactions, ``TransactionIndex``, ``UnifiedLog.collectAbortedTransactions``).

State of one partition (``TxnState``, created with its first transactional batch):

    ongoing     producer id -> first offset of its open transaction on this partition
    first_unstable   min(ongoing first offsets), None when nothing is open; the last
                stable offset (LSO) is that, else the high watermark (the LEO)
    aborted     every aborted transaction of the log (txn_index.AbortedTxn: producer
                id, first offset, ABORT marker offset, LSO after it), by marker offset;
                on disk in the .txnindex of the segment holding the marker

Write path (``PartitionLog._append_raw``, under the partition lock, in the critical
section of the append): a transactional data batch whose producer has no open
transaction opens one at its base offset; a marker (``write_txn_marker``: a control
batch, C flag PL_APPEND_CONTROL) closes it; an ABORT also appends an entry to the
active segment's .txnindex (one write(2)) and to ``aborted``.  A partition without
a TxnState asks C for PL_APPEND_NO_TXN: its first transactional batch comes back
PL_ETXN with nothing appended, the state and ``txn-state.snapshot`` are created
(one fsync), and the append is retried.  So non-transactional partitions pay one
attribute test in C, and read paths test ``p._txn is None``.

Durability.  The .txnindex appends are not synced by the barriers: what a crash can
lose, recovery rebuilds.  The snapshot says "as of offset N the open transactions
were these, and each segment's index held this many entries below N"; it is written
before a partition's first transactional batch, at clean close (after syncing the
indexes) and after a start-up that scanned.

Recovery cost (``load``, called by PartitionLog at open):
    no snapshot file      nothing (one stat): the partition never held a transaction
    N == LEO (clean close) read the snapshot and the existing .txnindex files
    N < LEO (unclean stop) also walk the batch headers from N to the LEO in C
                          (pl_txn_scan: three loads a batch, records parsed only for
                          control batches) and rewrite the indexes of those segments
    doubt                 a bad snapshot, N beyond the LEO, a garbage .txnindex or a
                          count that does not match (a deleted file): the same walk from
                          the log start, every .txnindex rewritten
Transactions whose first batch retention deleted are kept open as the snapshot says
(Kafka keeps them too); a full walk cannot see those.  A walk keeps every entry on disk
that names an ABORT marker of its producer: after cleaning removed an aborted
transaction's data, only the .txnindex still says it was aborted.

Compaction: ``aborted_ranges`` feeds the cleaner (csrc/compact.c drops the data of
aborted transactions); control batches are kept, as is every .txnindex entry (the
cleaned segment's index is the concatenation of those it replaces).
"""
from __future__ import annotations

import bisect
import logging

from pylog._ffi import ffi, lib
from pylog.records import ATTR_CONTROL, ATTR_TRANSACTIONAL, encode_batch
from pylog.storage import txn_index
from pylog.storage.reader import _span_upto
from pylog.storage.txn_index import AbortedTxn, IndexFile, Snapshot

__all__ = ["TxnState", "TxnOps", "load", "start_locked", "control_batch", "scan"]

_log = logging.getLogger("pylog.recovery")
ABORT, COMMIT = 0, 1
_SCAN_CAP = 4096


def control_batch(producer_id: int, producer_epoch: int, commit: bool,
                  coordinator_epoch: int, timestamp: int | None = None) -> bytes:
    """Kafka's transaction marker: a control batch (attributes 0x30, baseSequence -1)
    holding one record, key = version 0 + type (0 ABORT, 1 COMMIT), value = version
    0 + coordinatorEpoch."""
    key = (0).to_bytes(2, "big") + (COMMIT if commit else ABORT).to_bytes(2, "big")
    value = (0).to_bytes(2, "big") + coordinator_epoch.to_bytes(4, "big", signed=True)
    return encode_batch([value], [key], timestamps=timestamp, producer_id=producer_id,
                        producer_epoch=producer_epoch, base_sequence=-1,
                        attributes=ATTR_TRANSACTIONAL | ATTR_CONTROL)


def scan(seg, start: int = 0, end: int | None = None):
    """Yield the pl_txn_batch entries (copied to tuples: position, base, last, pid,
    marker offset, coordinator epoch, epoch, type) of seg's mapping [start, end)."""
    end = seg.size if end is None else end
    if end <= start:
        return
    buf = ffi.from_buffer("uint8_t[]", seg._log_view)
    out = ffi.new("pl_txn_batch[]", _SCAN_CAP)
    n, pos = ffi.new("uint32_t *"), ffi.new("uint64_t *")
    while True:
        rc = lib.pl_txn_scan(buf, start, end, out, _SCAN_CAP, n, pos)
        for i in range(n[0]):
            e = out[i]
            yield (e.position, e.base_offset, e.last_offset, e.producer_id,
                   e.marker_offset, e.coordinator_epoch, e.producer_epoch, e.type)
        if rc != lib.PL_ENOSPACE_CAP:
            return                  # 0, or PL_EBADLEN: framing was checked at load
        start = pos[0]


class TxnState:
    """One partition's transactions (module doc).  Callers hold the partition lock."""

    def __init__(self, directory):
        self.directory = directory
        self.ongoing: dict[int, int] = {}
        self.first_unstable: int | None = None
        self.aborted: list[AbortedTxn] = []
        self._lasts: list[int] = []              # aborted[i].last_offset, for bisect
        self.by_segment: dict[int, list[AbortedTxn]] = {}
        self._file: IndexFile | None = None      # the active segment's, for appends

    # ---- the write path ---------------------------------------------------------------
    def on_data_locked(self, pid: int, offset: int) -> None:
        if pid not in self.ongoing:
            self.ongoing[pid] = offset
            if self.first_unstable is None:
                self.first_unstable = offset     # later batches have larger offsets

    def on_marker_locked(self, pid: int, commit: bool, offset: int, seg_base: int,
                         write: bool = True) -> AbortedTxn | None:
        first = self.ongoing.pop(pid, None)
        if first is None:
            return None                          # a re-sent marker: nothing open
        if first == self.first_unstable:
            self.first_unstable = min(self.ongoing.values(), default=None)
        if commit:
            return None
        lso = offset + 1 if self.first_unstable is None else self.first_unstable
        entry = AbortedTxn(pid, first, offset, lso)
        self.aborted.append(entry)
        self._lasts.append(offset)
        self.by_segment.setdefault(seg_base, []).append(entry)
        if write:
            if self._file is None or self._file.path != txn_index.index_path(
                    self.directory, seg_base):
                self.close_file()
                self._file = IndexFile(self.directory, seg_base)
            self._file.append(entry)
        return entry

    def appended_locked(self, seg, start: int, end: int) -> None:
        """Track the transactional batches just stored at seg[start, end)."""
        for _, base, _, pid, marker, _, _, kind in scan(seg, start, end):
            if kind == lib.PL_TXN_DATA:
                self.on_data_locked(pid, base)
            elif kind in (ABORT, COMMIT):
                self.on_marker_locked(pid, kind == COMMIT, marker, seg.base_offset)

    # ---- reads --------------------------------------------------------------------------
    def aborted_between(self, start: int, end: int, log_start: int) -> list[tuple]:
        """(producer id, first offset) of the aborted transactions with lastOffset >=
        max(start, log start) and firstOffset < end."""
        i = bisect.bisect_left(self._lasts, max(start, log_start))
        return [(e.producer_id, e.first_offset) for e in self.aborted[i:]
                if e.first_offset < end]

    def aborted_ranges(self, start: int, end: int):
        """A sorted pl_txn_range[] of the aborted transactions overlapping [start,
        end), for the cleaner (kept alive by the caller), and its length."""
        i = bisect.bisect_left(self._lasts, start)
        rs = sorted((e.producer_id, e.first_offset, e.last_offset)
                    for e in self.aborted[i:] if e.first_offset < end)
        arr = ffi.new("pl_txn_range[]", max(1, len(rs)))
        for k, r in enumerate(rs):
            arr[k].producer_id, arr[k].first_offset, arr[k].last_offset = r
        return arr, len(rs)

    def entries_of(self, bases) -> list[AbortedTxn]:
        return [e for b in bases for e in self.by_segment.get(b, ())]

    # ---- segments coming and going ---------------------------------------------------
    def segments_replaced_locked(self, old_bases, new_base: int | None) -> None:
        """Retention deleted (new_base None) or the cleaner merged ``old_bases``."""
        merged = self.entries_of(old_bases)
        for b in old_bases:
            self.by_segment.pop(b, None)
        if new_base is not None and merged:
            self.by_segment[new_base] = merged
        if new_base is None and merged:
            gone = {id(e) for e in merged}
            keep = [e for e in self.aborted if id(e) not in gone]
            self.aborted, self._lasts = keep, [e.last_offset for e in keep]
        if self._file is not None and any(
                self._file.path == txn_index.index_path(self.directory, b)
                for b in old_bases):
            self.close_file()

    def close_file(self) -> None:
        if self._file is not None:
            self._file.sync()
            self._file.close()
            self._file = None

    def snapshot(self, as_of: int, segments) -> Snapshot:
        counts = {s.base_offset: sum(1 for e in self.by_segment.get(s.base_offset, ())
                                     if e.last_offset < as_of) for s in segments}
        return Snapshot(as_of, dict(self.ongoing), {b: n for b, n in counts.items() if n})

    def checkpoint(self, as_of: int, segments) -> None:
        """Sync the index being appended to, then write the snapshot as of ``as_of``."""
        if self._file is not None:
            self._file.sync()
        txn_index.write_snapshot(self.directory, self.snapshot(as_of, segments))


def start_locked(p) -> TxnState:
    """The partition's first transactional batch is about to be appended: the
    snapshot "as of the LEO, nothing open" goes first, so a crash after the append
    leaves a partition that is known to hold transactions."""
    st = TxnState(p.directory)
    txn_index.write_snapshot(p.directory, Snapshot(p._active.next_offset, {}, {}))
    return st


# ---- loading ------------------------------------------------------------------------
def load(p) -> TxnState | None:
    """The partition's TxnState at open (module doc, "Recovery cost"), or None."""
    snap, problem = txn_index.read_snapshot(p.directory)
    if snap is None and problem is None:
        return None                              # never held a transaction
    segs = p._segments
    leo = segs[-1].next_offset
    st = TxnState(p.directory)
    kept: dict[int, list[AbortedTxn]] = {}
    if snap is not None and snap.as_of > leo:
        problem = f"snapshot as of {snap.as_of} is beyond the log end {leo}"
    if problem is None:
        for s in segs:
            entries, bad = txn_index.read_index(p.directory, s.base_offset,
                                                max(s.next_offset, s.base_offset + 1))
            below = [e for e in entries if e.last_offset < snap.as_of]
            if bad is not None and s.next_offset <= snap.as_of:
                problem = f"{txn_index.index_path(p.directory, s.base_offset).name}: {bad}"
                break
            want = sum(n for b, n in snap.counts.items() if s.base_offset <= b < max(
                s.next_offset, s.base_offset + 1))
            if len(below) != want:
                problem = (f"{txn_index.index_path(p.directory, s.base_offset).name}: "
                           f"{len(below)} entries below {snap.as_of}, the snapshot "
                           f"counted {want}")
                break
            kept[s.base_offset] = below
    if problem is None:
        st.ongoing = {pid: f for pid, f in snap.ongoing.items()}
        st.first_unstable = min(st.ongoing.values(), default=None)
        for base, entries in kept.items():
            if entries:
                st.by_segment[base] = list(entries)
                st.aborted += entries
        st.aborted.sort(key=lambda e: e.last_offset)
        st._lasts = [e.last_offset for e in st.aborted]
        start = snap.as_of
    else:
        _log.warning("%s-%d: %s; transaction state rebuilt from the whole log",
                     p.topic, p.partition, problem)
        start = segs[0].base_offset
    if start < leo or problem is not None:
        _replay(st, p, start)
        st.checkpoint(leo, segs)
    return st


def _replay(st: TxnState, p, start: int) -> None:
    """Walk the batches at or after ``start`` and rewrite the indexes they touch.  An
    entry already on disk that names an ABORT marker of its producer is kept even if
    the walk cannot derive it (the cleaner removed that transaction's data)."""
    for s in p._segments:
        if s.next_offset <= start:
            continue
        aborts = set()
        for _, base, last, pid, marker, _, _, kind in scan(s):
            if kind == ABORT:
                aborts.add((pid, marker))
            if last < start:
                continue
            if kind == lib.PL_TXN_DATA:
                st.on_data_locked(pid, base)
            elif kind in (ABORT, COMMIT):
                st.on_marker_locked(pid, kind == COMMIT, marker, s.base_offset,
                                    write=False)
        after = st.by_segment.get(s.base_offset, [])
        known = {(e.producer_id, e.last_offset) for e in after}
        on_disk, _ = txn_index.read_index(p.directory, s.base_offset)
        extra = [e for e in on_disk if (e.producer_id, e.last_offset) in aborts
                 and (e.producer_id, e.last_offset) not in known]
        if extra:
            after = st.by_segment[s.base_offset] = sorted(
                after + extra, key=lambda e: e.last_offset)
            st.aborted += extra
        if txn_index.read_bytes(p.directory, s.base_offset) != txn_index.encode(after):
            txn_index.write_index(p.directory, s.base_offset, after)
    st.aborted.sort(key=lambda e: e.last_offset)
    st._lasts = [e.last_offset for e in st.aborted]


class TxnOps:
    """PartitionLog's transaction API (a mixin; the lead's coordinator, Fetch and the
    embedded API code against exactly these names)."""

    def write_txn_marker(self, producer_id: int, producer_epoch: int, commit: bool,
                         coordinator_epoch: int = 0, *, wait: bool = True):
        """Append Kafka's COMMIT or ABORT marker for ``producer_id``; completes its
        open transaction on this partition (a marker for none is written anyway and
        changes nothing).  Durability as any append (wait=False: durable_future)."""
        data = control_batch(producer_id, producer_epoch, commit, coordinator_epoch)
        return self._append_raw(data, wait=wait, flags=lib.PL_APPEND_CONTROL)

    @property
    def last_stable_offset(self) -> int:
        """The first offset of the oldest open transaction, else the high watermark."""
        leo = self._active.c.next_offset         # read before the state (module doc)
        if self._txn is None:
            return leo
        with self._lock:
            fu = self._txn.first_unstable
            return self._active.c.next_offset if fu is None else fu

    def ongoing_transactions(self) -> dict[int, int]:
        """Producer id -> first offset of each open transaction."""
        if self._txn is None:
            return {}
        with self._lock:
            return dict(self._txn.ongoing)

    def aborted_transactions(self, start: int, end: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of every aborted transaction with lastOffset >=
        start and firstOffset < end (Fetch's aborted_transactions)."""
        if self._txn is None:
            return []
        with self._lock:
            return self._txn.aborted_between(start, end, self._log_start)

    def _txn_checkpoint_locked(self) -> None:
        if self._txn is not None:
            self._txn.checkpoint(self._active.next_offset, self._segments)
            self._txn.close_file()

    def read_stable(self, offset: int, max_records: int = 500, max_bytes: int = 1 << 20
                    ) -> tuple[list, int]:
        """read_committed: the records from ``offset`` below the LSO, without those of
        aborted transactions, and the offset to read next (past what was skipped:
        aborted records, control batches).  ([], offset) at or beyond the LSO."""
        lso = self.last_stable_offset
        if offset >= lso:
            if offset > self.log_end_offset or offset < self._log_start:
                self._reader.read(offset, 1, 1)          # raises OffsetOutOfRange
            return [], offset
        recs = self._reader.read(offset, max_records, max_bytes)
        recs = recs[:bisect.bisect_left([r.offset for r in recs], lso)]
        nxt = recs[-1].offset + 1 if recs else offset
        if recs and self.aborted_transactions(offset, nxt):
            spans = self._aborted_spans(offset, nxt)
            bases = [b for b, _ in spans]
            recs = [r for r in recs if not _inside(spans, bases, r.offset)]
        if not recs and nxt < lso:                # nothing to show: step over the
            for h in self.iter_batch_headers(nxt):    # control batches that follow
                if h.base_offset >= lso or not h.is_control:
                    break
                nxt = max(nxt, h.last_offset + 1)
        return recs, nxt

    def _aborted_spans(self, start: int, end: int) -> list[tuple[int, int]]:
        """[base, last] of the aborted data batches overlapping [start, end), in order:
        a transactional batch of producer P is aborted when an aborted transaction of
        P has first offset <= its base and its ABORT marker after its last offset."""
        with self._lock:
            ranges: dict[int, list] = {}
            for e in self._txn.aborted:
                if e.last_offset >= start and e.first_offset < end:
                    ranges.setdefault(e.producer_id, []).append(e)
        spans = []
        for h in self.iter_batch_headers(start):
            if h.base_offset >= end:
                break
            if h.attributes & (ATTR_TRANSACTIONAL | ATTR_CONTROL) != ATTR_TRANSACTIONAL:
                continue
            for e in ranges.get(h.producer_id, ()):
                if e.first_offset <= h.base_offset and h.last_offset < e.last_offset:
                    spans.append((h.base_offset, h.last_offset))
                    break
        return spans

    def _stable_end_locked(self, seg, pos: int, offset: int, max_bytes: int) -> int:
        """read_raw(committed=True): the end of the whole batches from ``pos`` whose
        base offset is below the LSO (``pos`` when ``offset`` is at or past it)."""
        lso = self._txn.first_unstable
        if offset >= lso:
            return pos
        end, _ = _span_upto(seg, pos, max(0, max_bytes), lso - 1)
        return end


def _inside(spans, bases, offset: int) -> bool:
    i = bisect.bisect_right(bases, offset) - 1
    return i >= 0 and offset <= spans[i][1]
