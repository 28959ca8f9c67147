#!/usr/bin/env python3
"""Dump pylog segment files, like Kafka's ``kafka-dump-log.sh`` (DumpLogSegments).

    python tools/dumplog.py FILE_OR_PARTITION_DIR... [--deep-iteration]
                            [--print-data-log] [--max-bytes N] [--json]

``.log``: one line per batch (baseOffset, lastOffset, count, position, timestamps,
size, magic, codec, crc, isvalid); with --deep-iteration (implied by
--print-data-log) one line per record below it, with key and value when
--print-data-log.  The dump stops at the first invalid batch, saying why and what
follows it (zero fill or non-zero bytes), as recovery would.
``.index``: "offset: O position: P" per entry; ``.timeindex``: "timestamp: T offset:
O".  Entries of an index whose ``.log`` sits beside it are marked when they do not
name a batch start (``.index``) or lie past the log end.  All-zero trailing entries
(an active segment's preallocated space) are summarized, not listed.
Uses only pylog.records (the pure-Python reference decoder), not the C core, so it
is an independent view of the bytes.
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pylog.errors import CorruptRecordError  # noqa: E402
from pylog.records import decode_batch, validate_batch  # noqa: E402
from pylog.storage import files  # noqa: E402

CODECS = {0: "NONE", 1: "GZIP", 2: "SNAPPY", 3: "LZ4", 4: "ZSTD"}


def _emit(out, obj: dict, as_json: bool, text: str) -> None:
    print(json.dumps(obj) if as_json else text, file=out)


def dump_log(path: Path, *, deep=False, data=False, as_json=False, out=sys.stdout,
             max_bytes: int | None = None) -> dict:
    buf = path.read_bytes()
    end = len(buf) if max_bytes is None else min(len(buf), max_bytes)
    parsed = files.parse_base_offset(path.name)
    expected = parsed[0] if parsed else None
    pos = batches = 0
    print(f"Dumping {path}", file=out)
    while pos < end:
        try:
            h = validate_batch(buf, pos)
            if expected is not None and h.base_offset != expected:
                raise CorruptRecordError(f"baseOffset {h.base_offset}, expected {expected}")
        except CorruptRecordError as e:
            rest = buf[pos:end]
            tail = "zero fill" if not any(rest) else "non-zero bytes"
            _emit(out, {"invalid_at": pos, "reason": str(e), "remaining": end - pos,
                        "tail": tail}, as_json,
                  f"Found invalid batch at position {pos}: {e}; {end - pos} bytes remain "
                  f"({tail})")
            break
        ts_type = "LogAppendTime" if h.is_log_append_time else "CreateTime"
        _emit(out, {"baseOffset": h.base_offset, "lastOffset": h.last_offset,
                    "count": h.records_count, "position": pos,
                    "baseTimestamp": h.base_timestamp, "maxTimestamp": h.max_timestamp,
                    "size": h.size, "magic": h.magic, "codec": CODECS.get(h.compression),
                    "crc": h.crc, "producerId": h.producer_id,
                    "producerEpoch": h.producer_epoch, "baseSequence": h.base_sequence,
                    "partitionLeaderEpoch": h.partition_leader_epoch,
                    "isTransactional": h.is_transactional, "isControl": h.is_control,
                    "isvalid": True}, as_json,
              f"baseOffset: {h.base_offset} lastOffset: {h.last_offset} count: "
              f"{h.records_count} baseSequence: {h.base_sequence} lastSequence: "
              f"{h.base_sequence + h.last_offset_delta if h.base_sequence >= 0 else -1} "
              f"producerId: {h.producer_id} producerEpoch: {h.producer_epoch} "
              f"partitionLeaderEpoch: {h.partition_leader_epoch} isTransactional: "
              f"{str(h.is_transactional).lower()} isControl: {str(h.is_control).lower()} "
              f"position: {pos} {ts_type}: {h.max_timestamp} size: {h.size} magic: "
              f"{h.magic} compresscodec: {CODECS.get(h.compression, h.compression)} crc: "
              f"{h.crc} isvalid: true")
        if deep or data:
            _dump_records(buf, pos, h, data, as_json, out, ts_type)
        expected = h.next_offset
        batches += 1
        pos += h.size
    return {"batches": batches, "valid_bytes": pos, "file_bytes": len(buf)}


def _dump_records(buf, pos, h, data, as_json, out, ts_type) -> None:
    try:
        _, recs = decode_batch(buf, pos)
    except CorruptRecordError as e:
        _emit(out, {"records_error": str(e)}, as_json, f"| records do not decode: {e}")
        return
    for r in recs:
        obj = {"offset": r.offset, "timestamp": r.timestamp,
               "keySize": -1 if r.key is None else len(r.key),
               "valueSize": -1 if r.value is None else len(r.value),
               "headerKeys": [k for k, _ in r.headers]}
        text = (f"| offset: {r.offset} {ts_type}: {r.timestamp} keySize: {obj['keySize']} "
                f"valueSize: {obj['valueSize']} headerKeys: {obj['headerKeys']}")
        if data:
            key = None if r.key is None else r.key.decode("utf-8", "backslashreplace")
            val = None if r.value is None else r.value.decode("utf-8", "backslashreplace")
            obj.update(key=key, payload=val)
            text += f" key: {key} payload: {val}"
        _emit(out, obj, as_json, text)


def _log_batches(log: Path) -> tuple[dict, int]:
    """{position: last offset} of the valid batches of a .log, and its next offset."""
    buf = log.read_bytes()
    starts, pos, nxt = {}, 0, files.parse_base_offset(log.name)[0]
    while pos < len(buf):
        try:
            h = validate_batch(buf, pos)
        except CorruptRecordError:
            break
        starts[pos] = h.last_offset
        nxt = h.next_offset
        pos += h.size
    return starts, nxt


def dump_index(path: Path, *, as_json=False, out=sys.stdout) -> dict:
    base, suffix = files.parse_base_offset(path.name) or (0, path.suffix)
    raw = path.read_bytes()
    size = 12 if suffix == files.TIMEINDEX_SUFFIX else 8
    n = len(raw) // size
    used = n
    while used and not any(raw[(used - 1) * size:used * size]):
        used -= 1
    log = path.with_suffix(files.LOG_SUFFIX)
    starts, nxt = _log_batches(log) if log.exists() else (None, None)
    print(f"Dumping {path}", file=out)
    bad = 0
    for i in range(used):
        e = raw[i * size:(i + 1) * size]
        if size == 8:
            rel, pos = struct.unpack(">II", e)
            ok = starts is None or starts.get(pos) == base + rel
            _emit(out, {"offset": base + rel, "position": pos, "ok": ok}, as_json,
                  f"offset: {base + rel} position: {pos}" + ("" if ok else
                                                              "  <-- not a batch of the log"))
        else:
            ts, rel = struct.unpack(">qI", e)
            ok = nxt is None or base + rel < nxt
            _emit(out, {"timestamp": ts, "offset": base + rel, "ok": ok}, as_json,
                  f"timestamp: {ts} offset: {base + rel}" + ("" if ok else
                                                             "  <-- past the log end"))
        bad += not ok
    if used < n:
        print(f"({n - used} trailing all-zero entries: preallocated space)", file=out)
    if len(raw) % size:
        print(f"({len(raw) % size} trailing bytes: not a whole entry)", file=out)
    return {"entries": used, "bad": bad}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--deep-iteration", action="store_true")
    ap.add_argument("--print-data-log", action="store_true")
    ap.add_argument("--max-bytes", type=int)
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    args = ap.parse_args(argv)
    targets = []
    for p in args.paths:
        if p.is_dir():
            targets += sorted(q for q in p.iterdir() if files.parse_base_offset(q.name))
        elif p.exists():
            targets.append(p)
        else:
            print(f"dumplog: {p}: no such file", file=sys.stderr)
            return 2
    for p in targets:
        if p.suffix == files.LOG_SUFFIX:
            dump_log(p, deep=args.deep_iteration, data=args.print_data_log,
                     as_json=args.json, max_bytes=args.max_bytes)
        elif p.suffix in (files.INDEX_SUFFIX, files.TIMEINDEX_SUFFIX):
            dump_index(p, as_json=args.json)
        else:
            print(f"dumplog: {p}: not a segment file (.log, .index, .timeindex)",
                  file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
