"""The only door to the C core (``pylog._core``): status codes become exceptions,
mappings get Python owners.

Everything else in pylog imports ``ffi``, ``lib``, ``check`` and the helpers from
here, never ``pylog._core`` itself, so the error mapping lives in one function.

Status codes → exceptions (``check(code, what, client=False)``)
    0                                   → returns 0
    PL_ETRUNCATED, PL_EBADLEN, PL_EBADMAGIC, PL_EBADCRC, PL_EBADHEADER
                                        → CorruptRecordError      (Kafka 2)
    PL_EBADOFFSET, PL_EBADRECORD        → CorruptRecordError; with ``client=True``
                                          (a batch from a producer) InvalidRecordError (87)
    PL_ECONTROL                         → InvalidRecordError      (87)
    PL_ETOOLARGE                        → RecordTooLargeError     (10)
    PL_ERANGE                           → OffsetOutOfRangeError   (1)
    PL_EINVAL                           → CoreArgumentError: an InvalidRequestError (42)
                                          that is also a ValueError — a bad argument
                                          reached C, i.e. a bug on the Python side
    PL_EFULL                            → SegmentFullError  (roll; normally handled
                                          before check() by testing the code)
    PL_ENOTFOUND                        → CoreNotFoundError (also a LookupError)
    PL_ECLOSED                          → StorageError            (56)
    PL_ECOMPRESSED, PL_ENOSPACE_CAP,    → UnknownServerError: flow-control codes the
    PL_EMSGID, PL_ETXN                    caller must handle itself
    positive errno                      → StorageError (56), ``.os_errno`` set, message
                                          "<what>: <strerror> [errno N]"
``what`` names the thing (file path, position, offset); it starts the message.

Recipe for the storage layer (pylog/storage/segment.py)
    cfg = segment_config(segment_bytes=..., index_bytes=..., index_interval_bytes=...,
                         max_batch_bytes=..., grow_chunk=16 << 20)
    seg = ffi.new("pl_segment *")          # keep `seg` referenced as long as used
    paths = [os.fsencode(p) for p in (log, index, timeindex)]   # bytes → const char *
    check(lib.pl_segment_create(seg, *paths, base_offset, cfg), log)   # new active
      # or lib.pl_segment_open(seg, *paths, base, cfg, lib.PL_OPEN_ACTIVE/SEALED)
      # then lib.pl_segment_load_clean(seg) (0, or PL_EBADOFFSET → recover), or
      # rep = ffi.new("pl_recover_report *"); check(lib.pl_segment_recover(seg, rep))
      # (recover needs PL_OPEN_ACTIVE; reopen sealed segments ACTIVE to recover,
      #  then pl_segment_seal them).  fsync the directory after create:
      #  check(lib.pl_io_fsync_dir(dirpath_bytes), dirpath)
    maps = SegmentMaps(seg)                # RIGHT AFTER a successful create/open:
                                           # owns the 3 mappings (munmap at last ref)
    out = ffi.new("int64_t[2]")
    rc = lib.pl_segment_append(seg, ffi.from_buffer("uint8_t[]", data), len(data),
                               out, out + 1)
      # rc == lib.PL_EFULL → seal this segment, roll, retry on the new one;
      # else check(rc, f"{path}", client=True)
      # LogAppendTime topics: lib.pl_segment_append_at(seg, buf, n, now_ms, out, out+1)
    rb = RecordsIn(values, keys, headers, timestamps, timestamp=now_ms)
      # (LogAppendTime: attributes=lib.PL_ATTR_TIMESTAMP_TYPE, timestamps=None)
    rc = lib.pl_segment_append_records(seg, rb.ptr, out)    # base offset in out[0]
    pos = ffi.new("uint64_t *"); h = ffi.new("pl_batch_header *")
    check(lib.pl_segment_find(seg, offset, pos, h), f"offset {offset}")
    lib.pl_segment_span / pl_segment_batch_at / pl_segment_find_time likewise
    cols = Columns(capacity); rc = lib.pl_segment_decode(seg, p, end, min_off,
                                                         cols.ptr, pos)
      # PL_ECOMPRESSED at *pos: inflate the records section, call decode_records()
      # PL_ENOSPACE_CAP: columns full (grow if cols.count == 0)
      # positions in cols are relative to seg.log.map == maps.log (memoryview)
    check(lib.pl_mfile_sync(ffi.addressof(seg, "log")))  # hot barrier (.log only);
    check(lib.pl_segment_sync(seg))                    # all three (before a checkpoint)
    check(lib.pl_segment_seal(seg)); check(lib.pl_segment_close(seg))
    # the mappings go away when `maps` and every view taken from it are unreferenced

Only read a mapping below the matching ``pl_mfile.size`` read under the partition
lock: bytes past the allocated end of file are address space only and touching them
raises SIGBUS.  The memoryviews are read-only; the C core is the only writer.
"""
from __future__ import annotations

import os

from pylog import errors
from pylog._core import ffi, lib

__all__ = [
    "Columns",
    "CoreArgumentError",
    "CoreNotFoundError",
    "RecordsIn",
    "SegmentFullError",
    "SegmentMaps",
    "check",
    "decode_records",
    "ffi",
    "lib",
    "map_owner",
    "segment_config",
    "strerror",
]


class CoreArgumentError(errors.InvalidRequestError, ValueError):
    """PL_EINVAL: an invalid argument reached the C core (a bug on the Python side)."""


class SegmentFullError(errors.UnknownServerError):
    """PL_EFULL: the segment or one of its indexes is full; the caller should roll."""


class CoreNotFoundError(errors.UnknownServerError, LookupError):
    """PL_ENOTFOUND: a lookup (e.g. by timestamp) found nothing."""


_CORRUPT = {lib.PL_ETRUNCATED, lib.PL_EBADLEN, lib.PL_EBADMAGIC, lib.PL_EBADCRC,
            lib.PL_EBADHEADER}
_STRUCTURAL = {lib.PL_EBADOFFSET, lib.PL_EBADRECORD}
CORRUPT = _CORRUPT | _STRUCTURAL        # what a read of bytes on disk calls corruption
_SIMPLE: dict[int, type[errors.PylogError]] = {
    lib.PL_ECONTROL: errors.InvalidRecordError,
    lib.PL_ETOOLARGE: errors.RecordTooLargeError,
    lib.PL_ERANGE: errors.OffsetOutOfRangeError,
    lib.PL_EINVAL: CoreArgumentError,
    lib.PL_EFULL: SegmentFullError,
    lib.PL_ENOTFOUND: CoreNotFoundError,
    lib.PL_ECLOSED: errors.StorageError,
}


def strerror(code: int) -> str:
    """One line naming a status code (errno text for positive codes)."""
    if code > 0:
        return f"{os.strerror(code)} [errno {code}]"
    return ffi.string(lib.pl_strerror(code)).decode()


def check(code: int, what: object = "", *, client: bool = False) -> int:
    """Return 0 for PL_OK, else raise the exception for ``code`` (module doc).

    ``client=True`` marks bytes that came from a producer: structural problems
    (offsets vs count, malformed records) are then INVALID_RECORD as in Kafka's
    LogValidator, not CORRUPT_MESSAGE.
    """
    if code == 0:
        return 0
    msg = f"{what}: {strerror(code)}" if what != "" else strerror(code)
    if code > 0:
        exc = errors.StorageError(msg)
        exc.os_errno = code
        raise exc
    if code in _CORRUPT:
        raise errors.CorruptRecordError(msg)
    if code in _STRUCTURAL:
        cls = errors.InvalidRecordError if client else errors.CorruptRecordError
        raise cls(msg)
    raise _SIMPLE.get(code, errors.UnknownServerError)(msg)


# ---- mappings --------------------------------------------------------------------

def _unmapper(length: int):
    def release(ptr, n=length):
        lib.pl_io_unmap(ptr, n)
    return release


def map_owner(mfile) -> tuple[object, memoryview]:
    """Own the mapping of a freshly opened ``pl_mfile`` (cdata, e.g. ``seg.log``).

    Returns ``(owner, view)``: ``view`` is a read-only memoryview over the whole
    reservation; it, every slice of it and every ``numpy.frombuffer`` of it keep
    ``owner`` alive, and the mapping is unmapped only when the last of them is gone.
    Call exactly once per successful open/create, before anything can fail.
    """
    n = int(mfile.reserved)
    if n == 0 or mfile.map == ffi.NULL:
        return None, memoryview(b"")
    owner = ffi.gc(ffi.cast("uint8_t *", mfile.map), _unmapper(n), size=n)
    return owner, memoryview(ffi.buffer(owner, n)).toreadonly()


class SegmentMaps:
    """The three mappings of a ``pl_segment`` as read-only memoryviews.

    ``log``, ``index``, ``timeindex``: views over each reservation (read only below
    the matching ``seg.<file>.size``).  Dropping this object does not unmap while
    views taken from it are alive.
    """

    __slots__ = ("_owners", "index", "log", "timeindex")

    def __init__(self, seg):
        owners = []
        for name in ("log", "index", "timeindex"):
            owner, view = map_owner(getattr(seg, name))
            owners.append(owner)
            setattr(self, name, view)
        self._owners = tuple(owners)


def segment_config(*, segment_bytes: int = 1 << 30, index_bytes: int = 10 << 20,
                   index_interval_bytes: int = 4096, max_batch_bytes: int = 1048588,
                   grow_chunk: int = 16 << 20):
    """A ``pl_segment_config *`` (Kafka's defaults unless given)."""
    cfg = ffi.new("pl_segment_config *")
    cfg.segment_bytes = segment_bytes
    cfg.index_bytes = index_bytes
    cfg.index_interval_bytes = index_interval_bytes
    cfg.max_batch_bytes = max_batch_bytes
    cfg.grow_chunk = grow_chunk
    return cfg


# ---- building batches from Python values -----------------------------------------

def _blob(items) -> tuple[bytes, object]:
    """Concatenate bytes-like items (None = null) into a blob and int32 lengths."""
    import numpy as np
    lens = np.fromiter((-1 if x is None else len(x) for x in items), dtype=np.int32)
    return b"".join(x for x in items if x), lens


class RecordsIn:
    """A filled ``pl_records_in`` plus the Python objects it points into.

    Keep the RecordsIn referenced until the C call returns (``.ptr`` is only valid
    while it lives).  ``headers``: per record a list of (str, bytes | None).
    """

    def __init__(self, values, keys=None, headers=None, timestamps=None, *,
                 timestamp: int = -1, producer_id: int = -1, producer_epoch: int = -1,
                 base_sequence: int = -1, attributes: int = 0):
        import numpy as np
        n = len(values)
        keep = []
        r = ffi.new("pl_records_in *")
        r.count = n
        r.timestamp = timestamp
        r.producer_id, r.producer_epoch = producer_id, producer_epoch
        r.base_sequence, r.attributes = base_sequence, attributes
        r.values, r.value_lens = self._spans(values, keep)
        if keys is not None:
            r.keys, r.key_lens = self._spans(keys, keep)
        if timestamps is not None:
            ts = np.ascontiguousarray(timestamps, dtype=np.int64)
            r.timestamps = self._array(ts, "int64_t[]", keep)
        if headers is not None and any(headers):
            counts = np.fromiter((len(h or ()) for h in headers), dtype=np.int32, count=n)
            flat = [kv for h in headers for kv in (h or ())]
            hkeys = [k.encode() if isinstance(k, str) else k for k, _ in flat]
            r.header_counts = self._array(counts, "int32_t[]", keep)
            r.header_keys, r.header_key_lens = self._spans(hkeys, keep)
            r.header_values, r.header_value_lens = self._spans([v for _, v in flat], keep)
        self._keep = keep
        self.ptr = r

    @staticmethod
    def _array(arr, ctype, keep):
        if not len(arr):
            return ffi.NULL
        c = ffi.from_buffer(ctype, arr)
        keep.append((arr, c))
        return c

    @classmethod
    def _spans(cls, items, keep):
        blob, lens = _blob(items)
        return cls._array(blob, "uint8_t[]", keep), cls._array(lens, "int32_t[]", keep)


def build_batch(records: RecordsIn, base_offset: int = 0) -> bytes:
    """Encode one uncompressed RecordBatch v2 (CRC computed, epoch 0)."""
    bound = lib.pl_batch_size_bound(records.ptr)
    if bound == 0:
        raise CoreArgumentError("invalid records for a batch")
    out = bytearray(bound)
    n = ffi.new("size_t *")
    buf = ffi.from_buffer("uint8_t[]", out)
    check(lib.pl_batch_build(buf, bound, base_offset, records.ptr, n))
    return bytes(out[: n[0]])


# ---- decoding into columns -------------------------------------------------------

class Columns:
    """numpy arrays behind a ``pl_record_cols`` (``.ptr``), capacity fixed.

    After a decode, the first ``count`` entries of ``offsets``, ``timestamps``,
    ``key_pos``/``key_lens``, ``value_pos``/``value_lens``, ``headers_pos``/
    ``header_counts`` are filled; positions are relative to the origin given to
    the decode call (the segment's .log mapping for pl_segment_decode).
    """

    FIELDS = (("offsets", "int64"), ("timestamps", "int64"), ("key_pos", "int64"),
              ("key_lens", "int32"), ("value_pos", "int64"), ("value_lens", "int32"),
              ("headers_pos", "int64"), ("header_counts", "int32"))

    def __init__(self, capacity: int):
        import numpy as np
        self.ptr = ffi.new("pl_record_cols *")
        self.ptr.capacity = capacity
        self.ptr.count = 0
        for name, dtype in self.FIELDS:
            arr = np.empty(max(capacity, 1), dtype=dtype)
            setattr(self, name, arr)
            ctype = "int64_t[]" if dtype == "int64" else "int32_t[]"
            setattr(self.ptr, name, ffi.from_buffer(ctype, arr))

    @property
    def count(self) -> int:
        return int(self.ptr.count)

    def reset(self) -> None:
        self.ptr.count = 0


def decode_records(records: bytes | memoryview, header, min_offset: int,
                   cols: Columns, origin=None) -> int:
    """pl_records_decode over an (uncompressed) records section; returns the status
    code (0, PL_ENOSPACE_CAP or PL_EBADRECORD) for the caller to act on.  ``origin``
    defaults to the start of ``records``."""
    buf = ffi.from_buffer("uint8_t[]", records)
    return lib.pl_records_decode(buf, len(records), header, min_offset,
                                 buf if origin is None else origin, cols.ptr)
