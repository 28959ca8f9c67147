"""One log segment: ``<baseOffset>.log`` + ``.index`` + ``.timeindex``, a ``pl_segment``.

    .log        RecordBatch v2 batches back to back, authoritative (FORMAT.md)
    .index      8-byte entries (relativeOffset u32, physicalPosition u32), sparse, a cache
    .timeindex  12-byte entries (timestamp i64, relativeOffset u32), sparse, a cache

The C core does the work (csrc/segment.c); this class owns the ``pl_segment`` struct and,
separately, the three *mappings*.  Why separately: a read hands out memoryviews and numpy
arrays that point straight into the mapping (zero copy), and those may outlive the
segment (retention deletes it, the log closes).  So each mapping gets an owner object
(an ``ffi.gc`` pointer whose destructor calls ``pl_io_unmap``); every view is a slice of
a buffer over that owner, so the mapping is released only when the segment *and* every
view are gone.  Closing a segment closes its fds only; deleting its files unlinks them
(a mapped, unlinked file stays readable).

Not thread-safe: the owning ``PartitionLog`` holds its lock around every call that mutates
the segment (append, seal, truncate) and around reads of its size.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from pylog import _ffi
from pylog._ffi import ffi, lib
from pylog.records import BatchHeader
from pylog.storage import files

__all__ = ["Segment", "segment_config", "header_tuple", "GROW_CHUNK", "MEMORY_GROW_CHUNK"]

# fallocate step for .log files: large enough that growth is rare, small enough that an
# idle partition does not pin a whole segment.bytes of disk (DESIGN section 2, rule 2).
GROW_CHUNK = 16 << 20
# In-memory logs (tmpfs): RAM, not disk, so grow in small steps.
MEMORY_GROW_CHUNK = 1 << 20


def segment_config(cfg, grow_chunk: int = GROW_CHUNK) -> "ffi.CData":
    """A ``pl_segment_config`` from a TopicConfig."""
    c = ffi.new("pl_segment_config *")
    c.segment_bytes = cfg.segment_bytes
    c.index_bytes = cfg.segment_index_bytes
    c.index_interval_bytes = cfg.index_interval_bytes
    c.max_batch_bytes = cfg.max_message_bytes
    c.grow_chunk = min(grow_chunk, max(cfg.segment_bytes, 4096))
    return c


def header_tuple(h) -> BatchHeader:
    """A ``pl_batch_header`` cdata as a ``BatchHeader`` namedtuple."""
    return BatchHeader(h.base_offset, h.batch_length, h.partition_leader_epoch, h.magic,
                       h.crc, h.attributes, h.last_offset_delta, h.base_timestamp,
                       h.max_timestamp, h.producer_id, h.producer_epoch, h.base_sequence,
                       h.records_count)


class Segment:
    """A segment of one partition's log.  See the module doc for ownership rules."""

    __slots__ = ("directory", "base_offset", "c", "created_ms", "_log_view",
                 "_owners", "_verified", "closed", "deleted")

    def __init__(self, directory: Path, base_offset: int):
        self.directory = directory
        self.base_offset = base_offset
        self.c = ffi.new("pl_segment *")
        self.created_ms = int(time.time() * 1000)
        self._log_view = None
        self._owners = (None, None, None)
        self._verified = None
        self.closed = False
        self.deleted = False

    # ---- paths ---------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return files.log_file(self.directory, self.base_offset)

    @property
    def index_path(self) -> Path:
        return files.index_file(self.directory, self.base_offset)

    @property
    def timeindex_path(self) -> Path:
        return files.timeindex_file(self.directory, self.base_offset)

    def paths(self) -> tuple[Path, Path, Path, Path]:
        """.log, .index, .timeindex and .txnindex (which may not exist)."""
        return (self.log_path, self.index_path, self.timeindex_path,
                files.txnindex_file(self.directory, self.base_offset))

    def _paths(self) -> tuple[bytes, bytes, bytes]:
        # plain string joins: pathlib costs ~50 us a segment, 0.15 s of a 1,000-segment open
        stem = os.path.join(os.fsencode(self.directory),
                            files.filename_prefix(self.base_offset).encode())
        return (stem + files.LOG_SUFFIX.encode(), stem + files.INDEX_SUFFIX.encode(),
                stem + files.TIMEINDEX_SUFFIX.encode())

    # ---- life cycle ----------------------------------------------------------------
    @classmethod
    def create(cls, directory: Path, base_offset: int, cfg) -> "Segment":
        """A new empty active segment (the caller fsyncs the directory)."""
        seg = cls(directory, base_offset)
        rc = lib.pl_segment_create(seg.c, *seg._paths(), base_offset, cfg)
        if rc:          # (the message is only built on failure: opens are per segment)
            _ffi.check(rc, f"creating segment {seg.log_path}")
        seg._take_mappings()
        return seg

    @classmethod
    def open(cls, directory: Path, base_offset: int, cfg, active: bool) -> "Segment":
        """Existing files, nothing trusted yet: call load_clean() or recover() next."""
        seg = cls(directory, base_offset)
        mode = lib.PL_OPEN_ACTIVE if active else lib.PL_OPEN_SEALED
        rc = lib.pl_segment_open(seg.c, *seg._paths(), base_offset, cfg, mode)
        if rc:
            _ffi.check(rc, f"opening segment {seg.log_path}")
        seg._take_mappings()
        return seg

    def _take_mappings(self) -> None:
        # Right after a successful create/open, before anything can fail (_ffi doc).
        c = self.c
        owners = []
        for mf in (c.log, c.index, c.timeindex):
            owners.append(_ffi.map_owner(mf)[0])
        self._owners = tuple(owners)
        self._log_view = (memoryview(ffi.buffer(owners[0], int(c.log.reserved)))
                          .toreadonly() if owners[0] is not None else memoryview(b""))
        # read-side verification (csrc/verify.c): per 64 KiB chunk of the mapping,
        # how far from its start checked batches reach (zeroed); lives as long as this
        # object, like the struct
        chunks = int(c.log.reserved) // lib.PL_VERIFY_CHUNK + 1
        self._verified = ffi.new("uint32_t[]", chunks)
        c.verified = self._verified
        c.verified_chunks = chunks

    def load_clean(self) -> bool:
        """Trust the files after a clean shutdown; False if a sanity check failed."""
        rc = lib.pl_segment_load_clean(self.c)
        if rc == lib.PL_EBADOFFSET:
            return False
        if rc:
            _ffi.check(rc, f"loading segment {self.log_path}")
        self._refresh_created()
        return True

    def recover(self) -> dict:
        """Scan, rebuild indexes, truncate (zeroed) at the first invalid batch."""
        rep = self.recover_scan()
        self.recover_cut(rep)
        return rep

    def recover_scan(self) -> dict:
        """The first step of recover(): validate, rebuild the indexes, report; the bytes
        after the valid prefix are still there (storage.salvage saves them)."""
        rep = ffi.new("pl_recover_report *")
        rc = lib.pl_segment_recover_scan(self.c, rep)
        _ffi.check(rc, f"recovering segment {self.log_path}")
        return {
            "segment": self.log_path.name,
            "valid_bytes": rep.valid_bytes,
            "truncated_bytes": rep.truncated_bytes,
            "dropped_data_bytes": rep.dropped_data_bytes,
            "batches": rep.batches,
            "next_offset": rep.next_offset,
            "stop_reason": (None if rep.stop_reason == 0
                            else _ffi.strerror(rep.stop_reason)),
            "stop_position": rep.stop_position,
            "restamped_epochs": rep.restamped_epochs,
        }

    def recover_cut(self, rep: dict) -> None:
        """The second step: cut at the valid prefix (zeroed tail, synced)."""
        c_rep = ffi.new("pl_recover_report *")
        c_rep.valid_bytes = rep["valid_bytes"]
        rc = lib.pl_segment_recover_cut(self.c, c_rep)
        _ffi.check(rc, f"truncating segment {self.log_path}")
        self._refresh_created()

    def resync(self, start: int, stop: int, min_base: int) -> int | None:
        """Position of the first valid batch starting in [start, stop) with baseOffset
        >= min_base (csrc/scan.c; it may end anywhere in the mapping), or None."""
        out = ffi.new("uint64_t *")
        rc = lib.pl_batch_resync(self.c.log.map, int(self.c.log.allocated), start, stop,
                                 min_base, out)
        if rc == lib.PL_ENOTFOUND:
            return None
        _ffi.check(rc, f"resynchronising {self.log_path}")
        return out[0]

    def _refresh_created(self) -> None:
        # segment.ms counts from the first batch (Kafka's rollingBasedTimestamp), but never
        # from the future, so a client's clock cannot keep a segment open forever.
        first = self.c.first_batch_timestamp
        if 0 <= first < self.created_ms:
            self.created_ms = first

    def seal(self) -> None:
        """Final time-index entry, trim the files to size, fsync, read-only."""
        if self.c.active:
            rc = lib.pl_segment_seal(self.c)
            if rc:
                _ffi.check(rc, f"sealing segment {self.log_path}")

    def close(self) -> None:
        """Close the fds; the mappings stay until the last view is gone."""
        if not self.closed:
            self.closed = True
            rc = lib.pl_segment_close(self.c)
            if rc:
                _ffi.check(rc, f"closing segment {self.log_path}")

    def release(self) -> None:
        """After close, for good (the partition closed): forget the mappings, so they
        are unmapped as soon as no view a caller still holds refers to them.  The C
        struct is left with no mapping (size 0), so a stray call fails cleanly."""
        self.close()
        for mf in (self.c.log, self.c.index, self.c.timeindex):
            mf.map = ffi.NULL
            mf.size = mf.reserved = mf.allocated = mf.synced = mf.limit = 0
        self.c.verified = ffi.NULL
        self.c.verified_chunks = 0
        self._owners = ()
        self._log_view = memoryview(b"")
        self._verified = None

    def delete(self) -> None:
        """Close and unlink the files, .txnindex too (views of the mapping stay readable)."""
        self.close()
        self.deleted = True
        for path in self.paths():
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    # ---- state ---------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self.c.log.size

    @property
    def next_offset(self) -> int:
        return self.c.next_offset

    @property
    def max_timestamp(self) -> int:
        return self.c.max_timestamp

    @property
    def is_empty(self) -> bool:
        return self.c.log.size == 0

    @property
    def active(self) -> bool:
        return bool(self.c.active)

    # ---- reads (caller holds the partition lock, or reads below a size it saw) -------
    def view(self, start: int, end: int) -> memoryview:
        """Zero-copy view of .log bytes [start, end); keeps the mapping alive."""
        return self._log_view[start:end]

    def find(self, offset: int, h) -> int:
        """Position of the batch containing ``offset``; fills the header cdata ``h``."""
        pos = ffi.new("uint64_t *")
        rc = lib.pl_segment_find(self.c, offset, pos, h)
        if rc in _ffi.CORRUPT:
            _ffi.check(rc, f"finding offset {offset}: {self.where(pos[0])}")
        elif rc:
            _ffi.check(rc, f"finding offset {offset} in {self.log_path}")
        return pos[0]

    def find_time(self, ts: int, h) -> int | None:
        """Position of the first batch whose maxTimestamp >= ts, or None."""
        pos = ffi.new("uint64_t *")
        rc = lib.pl_segment_find_time(self.c, ts, pos, h)
        if rc == lib.PL_ENOTFOUND:
            return None
        if rc:
            _ffi.check(rc, f"finding timestamp {ts} in {self.log_path}")
        return pos[0]

    def span(self, pos: int, max_bytes: int) -> int:
        """End of the whole batches from ``pos`` within max_bytes (at least one), each
        verified (CorruptRecordError for a bad first batch; a later one ends it)."""
        end = ffi.new("uint64_t *")
        rc = lib.pl_segment_span(self.c, pos, max_bytes, end)
        if rc:
            _ffi.check(rc, self.where(pos))
        return end[0]

    def where(self, pos: int) -> str:
        """Names the batch at ``pos`` for an error: file, byte, offsets its header
        claims (a corrupt header may claim nonsense; the position is exact)."""
        h = ffi.new("pl_batch_header *")
        nxt = ffi.new("uint64_t *")
        what = f"{self.log_path}: batch at byte {pos}"
        if lib.pl_segment_batch_at(self.c, pos, h, nxt) == 0:
            what += f" (offsets {h.base_offset}..{h.base_offset + h.last_offset_delta})"
        return what

    def batch_at(self, pos: int, h) -> int:
        """Fill ``h`` with the header at ``pos``; returns the next batch's position."""
        nxt = ffi.new("uint64_t *")
        rc = lib.pl_segment_batch_at(self.c, pos, h, nxt)
        if rc:
            _ffi.check(rc, f"reading batch header in {self.log_path} at byte {pos}")
        return nxt[0]

    def iter_headers(self, start_pos: int = 0, end: int | None = None):
        """Yield (position, BatchHeader) for each batch from start_pos to end."""
        h = ffi.new("pl_batch_header *")
        end = self.size if end is None else end
        pos = start_pos
        while pos < end:
            nxt = self.batch_at(pos, h)
            yield pos, header_tuple(h)
            pos = nxt

    def index_arrays(self):
        """numpy views of the offset and time index entries (big-endian, zero copy)."""
        import numpy as np
        c = self.c
        out = []
        for owner, mf, dtype in (
                (self._owners[1], c.index, np.dtype([("relative_offset", ">u4"),
                                                      ("position", ">u4")])),
                (self._owners[2], c.timeindex, np.dtype([("timestamp", ">i8"),
                                                          ("relative_offset", ">u4")]))):
            n = int(mf.size) // dtype.itemsize
            if owner is None or n == 0:
                out.append(np.zeros(0, dtype=dtype))
            else:
                buf = ffi.buffer(owner, n * dtype.itemsize)
                out.append(np.frombuffer(buf, dtype=dtype, count=n))
        return tuple(out)

    def __repr__(self) -> str:
        return (f"Segment({self.log_path}, base={self.base_offset}, "
                f"next={self.next_offset if not self.closed else '?'}, size={self.size})")
