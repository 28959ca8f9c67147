"""A thin test driver over the C segment API (pylog._ffi), shared by test_core_*.py.

Deliberately not the storage layer: these tests pin the C core's behaviour on its
own, with real files.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from pylog._ffi import (Columns, RecordsIn, SegmentMaps, check, ffi, lib,
                        segment_config)

SUFFIXES = ("log", "index", "timeindex")


def seg_paths(directory, base: int = 0) -> list[pathlib.Path]:
    return [pathlib.Path(directory) / f"{base:020d}.{s}" for s in SUFFIXES]


class CoreSegment:
    """One pl_segment with its mappings owned; methods raise via check()."""

    def __init__(self, directory, base: int = 0, *, create: bool = True,
                 mode: int | None = None, **cfg):
        cfg.setdefault("segment_bytes", 1 << 20)
        cfg.setdefault("index_bytes", 4096)
        cfg.setdefault("index_interval_bytes", 256)
        cfg.setdefault("grow_chunk", 64 << 10)
        self.paths = seg_paths(directory, base)
        self.cfg = segment_config(**cfg)
        self.seg = ffi.new("pl_segment *")
        cpaths = [os.fsencode(p) for p in self.paths]
        if create:
            check(lib.pl_segment_create(self.seg, *cpaths, base, self.cfg), self.paths[0])
        else:
            mode = lib.PL_OPEN_ACTIVE if mode is None else mode
            check(lib.pl_segment_open(self.seg, *cpaths, base, self.cfg, mode), self.paths[0])
        self.maps = SegmentMaps(self.seg)
        self._out = ffi.new("int64_t[2]")

    # -- appends ---------------------------------------------------------------
    def append_values(self, values, *, timestamp=1000, timestamps=None, keys=None,
                      headers=None) -> int:
        rb = RecordsIn(values, keys, headers, timestamps, timestamp=timestamp)
        check(lib.pl_segment_append_records(self.seg, rb.ptr, self._out), "append")
        return int(self._out[0])

    def append_rc(self, data: bytes) -> int:
        return lib.pl_segment_append(self.seg, ffi.from_buffer("uint8_t[]", data),
                                     len(data), self._out, self._out + 1)

    def append_raw(self, data: bytes) -> tuple[int, int]:
        check(self.append_rc(data), "append_raw", client=True)
        return int(self._out[0]), int(self._out[1])

    # -- reads -----------------------------------------------------------------
    @property
    def size(self) -> int:
        return int(self.seg.log.size)

    @property
    def next_offset(self) -> int:
        return int(self.seg.next_offset)

    def log_bytes(self) -> bytes:
        return bytes(self.maps.log[: self.size])

    def find(self, offset: int) -> tuple[int, int]:
        pos = ffi.new("uint64_t *")
        h = ffi.new("pl_batch_header *")
        check(lib.pl_segment_find(self.seg, offset, pos, h), f"offset {offset}")
        return int(pos[0]), int(h.base_offset)

    def find_time_rc(self, ts: int) -> tuple[int, int | None]:
        pos = ffi.new("uint64_t *")
        h = ffi.new("pl_batch_header *")
        rc = lib.pl_segment_find_time(self.seg, ts, pos, h)
        return rc, (int(pos[0]) if rc == 0 else None)

    def batches(self) -> list[tuple[int, int, int, int]]:
        """(position, base offset, last offset, max timestamp) of every batch."""
        out, pos = [], 0
        h = ffi.new("pl_batch_header *")
        nxt = ffi.new("uint64_t *")
        while pos < self.size:
            check(lib.pl_segment_batch_at(self.seg, pos, h, nxt), f"position {pos}")
            out.append((pos, h.base_offset, h.base_offset + h.last_offset_delta,
                        h.max_timestamp))
            pos = int(nxt[0])
        return out

    def decode(self, min_offset: int = 0, capacity: int = 1 << 16) -> Columns:
        cols = Columns(capacity)
        pos = ffi.new("uint64_t *")
        check(lib.pl_segment_decode(self.seg, 0, self.size, min_offset, cols.ptr, pos))
        return cols

    def values(self, cols: Columns) -> list[bytes | None]:
        log = np.frombuffer(self.maps.log, dtype=np.uint8)
        return [None if n < 0 else bytes(log[p:p + n])
                for p, n in zip(cols.value_pos[: cols.count], cols.value_lens[: cols.count])]

    def index_entries(self) -> list[tuple[int, int]]:
        raw = bytes(self.maps.index[: self.seg.index.size])
        return [(int.from_bytes(raw[i:i + 4], "big"), int.from_bytes(raw[i + 4:i + 8], "big"))
                for i in range(0, len(raw), 8)]

    def timeindex_entries(self) -> list[tuple[int, int]]:
        raw = bytes(self.maps.timeindex[: self.seg.timeindex.size])
        return [(int.from_bytes(raw[i:i + 8], "big", signed=True),
                 int.from_bytes(raw[i + 8:i + 12], "big")) for i in range(0, len(raw), 12)]

    # -- lifecycle -------------------------------------------------------------
    def recover(self) -> dict:
        rep = ffi.new("pl_recover_report *")
        check(lib.pl_segment_recover(self.seg, rep), self.paths[0])
        return {k: int(getattr(rep, k)) for k in (
            "valid_bytes", "truncated_bytes", "batches", "next_offset", "stop_reason",
            "stop_position", "dropped_data_bytes")}

    def load_clean(self) -> int:
        return lib.pl_segment_load_clean(self.seg)

    def seal(self) -> None:
        check(lib.pl_segment_seal(self.seg), self.paths[0])

    def close(self, seal: bool = True) -> None:
        if seal:
            self.seal()
        check(lib.pl_segment_close(self.seg), self.paths[0])
