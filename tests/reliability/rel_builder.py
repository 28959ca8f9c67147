"""Build pylog data directories for fsck and fault-injection tests with the C core.

Why not ``pylog.open``: these tests pin fsck against the on-disk format itself, and
the C segment API (``pl_segment_create/append/seal``) is the writer every pylog log
is made by.  ``build_data_dir`` lays out FORMAT.md section 1: partition directories,
segments rolled on PL_EFULL, ``topic-metadata.json``, both checkpoints and, for a
clean stop, the ``.kafka_cleanshutdown`` marker.  ``clean=False`` leaves the last
segment unsealed (preallocated, untrimmed), as a kill -9 does.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

from pylog._ffi import RecordsIn, SegmentMaps, check, ffi, lib, segment_config
from pylog.records import encode_batch
from pylog.storage import files
from pylog.storage.checkpoint import write_offset_checkpoint

__all__ = ["build_data_dir", "payload", "PartitionWriter"]


def payload(topic: str, partition: int, offset_hint: int, rng: random.Random) -> bytes:
    n = rng.choice((0, 1, 10, 50, 200, 900))
    return f"{topic}/{partition}/{offset_hint}:".encode() + rng.randbytes(n)


class PartitionWriter:
    """Appends batches to one partition directory, rolling segments like the engine."""

    def __init__(self, directory: Path, *, segment_bytes=64 << 10, index_interval=512,
                 grow_chunk=16 << 10, index_bytes=64 << 10):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cfg = segment_config(segment_bytes=segment_bytes, index_bytes=index_bytes,
                                  index_interval_bytes=index_interval,
                                  grow_chunk=grow_chunk)
        self.next_offset = 0
        self.seg = None
        self._keep = []
        self._out = ffi.new("int64_t[2]")
        self._roll()

    def _paths(self, base):
        return [os.fsencode(f) for f in (files.log_file(self.dir, base),
                                         files.index_file(self.dir, base),
                                         files.timeindex_file(self.dir, base))]

    def _roll(self):
        if self.seg is not None:
            check(lib.pl_segment_seal(self.seg))
            check(lib.pl_segment_close(self.seg))
        seg = ffi.new("pl_segment *")
        check(lib.pl_segment_create(seg, *self._paths(self.next_offset), self.next_offset,
                                    self.cfg))
        self._keep.append((seg, SegmentMaps(seg)))
        self.seg = seg

    def append(self, values, timestamps=None, timestamp=1_700_000_000_000, raw=None):
        """Append one batch (built by the C core, or ``raw`` client bytes)."""
        for _ in range(2):
            if raw is not None:
                rc = lib.pl_segment_append(self.seg, ffi.from_buffer("uint8_t[]", raw),
                                           len(raw), self._out, self._out + 1)
            else:
                rin = RecordsIn(values, timestamps=timestamps, timestamp=timestamp)
                rc = lib.pl_segment_append_records(self.seg, rin.ptr, self._out)
            if rc == lib.PL_EFULL:
                self._roll()
                continue
            check(rc, "append")
            self.next_offset = int(self.seg.next_offset)
            return int(self._out[0])
        raise AssertionError("batch does not fit an empty segment")

    def close(self, clean: bool):
        if clean:
            check(lib.pl_segment_seal(self.seg))
        else:
            check(lib.pl_segment_sync(self.seg))
        check(lib.pl_segment_close(self.seg))


def build_data_dir(data: Path, topics: dict[str, int] | None = None, *, batches=40,
                   clean=True, seed=0, compressed_every=0, config=None,
                   **writer_kw) -> dict:
    """Write a data dir; returns {(topic, partition): [(offset, ts, value), ...]}."""
    rng = random.Random(seed)
    topics = topics or {"orders": 2}
    data = Path(data)
    data.mkdir(parents=True, exist_ok=True)
    config = dict(config or {})
    config.setdefault("index.interval.bytes", writer_kw.get("index_interval", 512))
    meta = {"version": 1, "topics": {t: {"partitions": n, "config": config}
                                     for t, n in topics.items()}}
    files.atomic_write(data / files.METADATA_FILE, json.dumps(meta).encode())
    written, ckpt = {}, {}
    for t, n in topics.items():
        for p in range(n):
            w = PartitionWriter(files.partition_dir(data, t, p), **writer_kw)
            recs = written.setdefault((t, p), [])
            ts = 1_700_000_000_000 + rng.randrange(1000)
            for b in range(batches):
                count = rng.choice((1, 1, 2, 5, 17))
                vals = [payload(t, p, w.next_offset + i, rng) for i in range(count)]
                tss = [ts + rng.randrange(-50, 200) for _ in vals]
                ts = max(tss)
                if compressed_every and b % compressed_every == compressed_every - 1:
                    raw = encode_batch(vals, timestamps=tss, compression=1 + b % 4)
                    base = w.append(None, raw=raw)
                else:
                    base = w.append(vals, timestamps=tss)
                recs.extend((base + i, tss[i], v) for i, v in enumerate(vals))
            w.close(clean)
            ckpt[(t, p)] = w.next_offset
    write_offset_checkpoint(data / files.RECOVERY_POINT_CHECKPOINT, ckpt)
    write_offset_checkpoint(data / files.LOG_START_CHECKPOINT, {k: 0 for k in ckpt})
    if clean:
        files.atomic_write(data / files.CLEAN_SHUTDOWN_FILE, b"")
    return written
