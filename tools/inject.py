#!/usr/bin/env python3
"""Corruption injector for pylog data directories (research/reliability.md §7, T5).

    python tools/inject.py DATA_DIR KIND [--seed N] [--topic T] [--partition P]
    python tools/inject.py DATA_DIR random --seed N      # one random kind

Each kind damages the files the way a real failure does, and returns (prints, with
--json) a ``Mutation`` saying exactly what changed: the file (relative to DATA_DIR),
the byte position fsck must name, and ``first_lost_offset``: the first offset a
repair is allowed to drop (None when no record may be lost: index and metadata
damage).  Kinds:

  flip-<field>      flip 1-64 random bits in one header field of a random batch
                    (base_offset batch_length leader_epoch magic crc attributes
                    last_offset_delta base_timestamp max_timestamp producer_id
                    producer_epoch base_sequence records_count) or in its records
  truncate          cut a .log at a random byte strictly inside a batch
  tear              overwrite the end of the partition's last batch with zeros or
                    garbage (a torn write), file length unchanged
  zero-range        zero a random run of bytes inside a batch (a lost page/sector)
  stale-batch       copy an earlier, valid batch after a segment's last batch
  index-garbage     overwrite bytes of a .index with garbage (Kafka writes "  ")
  index-delete      delete a .index;  timeindex-delete: delete a .timeindex
  timeindex-garbage overwrite bytes of a .timeindex
  timeindex-zero-pad  append zero entries to a sealed .timeindex (KAFKA-10207)
  orphan-index      an .index/.timeindex whose .log does not exist
  temp-file         a leftover .deleted / .cleaned / .swap file in a partition dir
  checkpoint-ahead  recovery-point checkpoint beyond the log end
  checkpoint-garbage  garbage in a checkpoint file
  metadata-garbage  garbage in topic-metadata.json (fsck reports; --repair rebuilds it
                    from .prev and the partition directories)

Every kind here is detectable in principle: truncation is never at a batch
boundary, garbage always differs from what it replaces, a stale batch keeps its old
offsets.  (A truncation exactly at a batch boundary of an unclean log, or a stale
batch restamped with the right next offset, look exactly like a shorter or longer
log and are not injected.)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pylog.records import valid_headers  # noqa: E402
from pylog.storage import files  # noqa: E402

FIELDS = {  # name: (offset, size)  -- FORMAT.md section 3.1
    "base_offset": (0, 8), "batch_length": (8, 4), "leader_epoch": (12, 4),
    "magic": (16, 1), "crc": (17, 4), "attributes": (21, 2),
    "last_offset_delta": (23, 4), "base_timestamp": (27, 8), "max_timestamp": (35, 8),
    "producer_id": (43, 8), "producer_epoch": (51, 2), "base_sequence": (53, 4),
    "records_count": (57, 4), "records": (61, None),
}
LOG_KINDS = [f"flip-{f}" for f in FIELDS] + ["truncate", "tear", "zero-range",
                                             "stale-batch"]
INDEX_KINDS = ["index-garbage", "index-delete", "timeindex-delete", "timeindex-garbage",
               "timeindex-zero-pad", "orphan-index", "temp-file"]
META_KINDS = ["checkpoint-ahead", "checkpoint-garbage", "metadata-garbage"]
KINDS = LOG_KINDS + INDEX_KINDS + META_KINDS
#: kinds after which --repair must leave a log that opens (all, since issue 18 defect 4)
REPAIRABLE = list(KINDS)


@dataclass
class Mutation:
    kind: str
    file: str                        # relative to the data dir
    position: int | None             # byte position fsck must report (None: any)
    first_lost_offset: int | None    # repair may drop offsets >= this (None: none)
    detail: str
    topic: str | None = None
    partition: int | None = None


class NotApplicable(Exception):
    """This kind cannot be applied to this directory (e.g. no sealed segment)."""


def _batches(path: Path) -> list[tuple[int, object]]:
    """(position, header) of each valid batch of a .log, in order."""
    return valid_headers(path.read_bytes())


def _partitions(data: Path, topic=None, partition=None) -> list[tuple[str, int, Path]]:
    out = []
    for d in sorted(data.iterdir()):
        parsed = files.parse_partition_dir(d.name)
        if parsed and d.is_dir() and (topic is None or parsed[0] == topic) and \
                (partition is None or parsed[1] == partition):
            out.append((parsed[0], parsed[1], d))
    if not out:
        raise NotApplicable("no partition directories")
    return out


def _segments(pdir: Path) -> list[int]:
    return sorted(b for b, s in filter(None, (files.parse_base_offset(p.name)
                                              for p in pdir.iterdir())) if s == ".log")


def _rel(data: Path, p: Path) -> str:
    return str(p.relative_to(data))


def _pick_batch(rng, data, topic, partition, *, last_segment=False, sealed=False):
    """(topic, partition, pdir, base, log path, batches, k) with a non-empty segment."""
    choices = []
    for t, p, pdir in _partitions(data, topic, partition):
        bases = _segments(pdir)
        for i, base in enumerate(bases):
            if last_segment and i != len(bases) - 1:
                continue
            if sealed and i == len(bases) - 1 and not (data / files.CLEAN_SHUTDOWN_FILE
                                                        ).exists():
                continue
            choices.append((t, p, pdir, base, files.log_file(pdir, base)))
    rng.shuffle(choices)
    for t, p, pdir, base, log in choices:
        batches = _batches(log)
        if batches:
            return t, p, pdir, base, log, batches
    raise NotApplicable("no non-empty segment")


def _flip_bits(buf: bytearray, start: int, size: int, rng) -> int:
    nbits = rng.randint(1, min(64, size * 8))
    for bit in rng.sample(range(size * 8), nbits):
        buf[start + bit // 8] ^= 1 << (bit % 8)
    return nbits


def _write_at(path: Path, pos: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(pos)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _log_kind(data, kind, rng, topic, partition) -> Mutation:
    last = kind == "tear"
    t, p, pdir, base, log, batches = _pick_batch(rng, data, topic, partition,
                                                 last_segment=last)
    j = len(batches) - 1 if kind == "tear" else rng.randrange(len(batches))
    pos, h = batches[j]
    rel = _rel(data, log)
    if kind.startswith("flip-"):
        field = kind[5:]
        off, size = FIELDS[field]
        if size is None:
            if h.size <= 61:
                raise NotApplicable("batch has no record bytes")
            off, size = 61 + rng.randrange(h.size - 61), 0
            size = min(rng.randint(1, 8), h.size - off)
        buf = bytearray(log.read_bytes()[pos + off:pos + off + size])
        n = _flip_bits(buf, 0, size, rng)
        _write_at(log, pos + off, bytes(buf))
        lost = None if field == "leader_epoch" else h.base_offset
        return Mutation(kind, rel, pos, lost, f"flipped {n} bits of {field} of the batch "
                        f"at byte {pos} (offsets {h.base_offset}..{h.last_offset})", t, p)
    if kind == "truncate":
        cut = pos + rng.randint(1, h.size - 1)
        os.truncate(log, cut)
        return Mutation(kind, rel, pos, h.base_offset, f"truncated at byte {cut}, inside "
                        f"the batch at {pos}", t, p)
    if kind == "tear":
        n = rng.randint(1, h.size - 12)
        junk = bytes(n) if rng.random() < 0.5 else rng.randbytes(n)
        old = log.read_bytes()[pos + h.size - n:pos + h.size]
        if junk == old:
            junk = bytes(b ^ 0xFF for b in old)
        _write_at(log, pos + h.size - n, junk)
        return Mutation(kind, rel, pos, h.base_offset, f"tore the last {n} bytes of the "
                        f"last batch at byte {pos}", t, p)
    if kind == "zero-range":
        raw = log.read_bytes()[pos:pos + h.size]
        nz = [i for i in range(h.size) if raw[i]]
        start = rng.choice(nz)
        n = rng.randint(1, min(512, h.size - start))
        _write_at(log, pos + start, bytes(n))
        return Mutation(kind, rel, pos, h.base_offset, f"zeroed {n} bytes at byte "
                        f"{pos + start} inside the batch at {pos}", t, p)
    if kind == "stale-batch":
        end = batches[-1][0] + batches[-1][1].size
        stale = log.read_bytes()[pos:pos + h.size]
        _write_at(log, end, stale)
        nxt = batches[-1][1].next_offset
        return Mutation(kind, rel, end, nxt, f"copied the batch at byte {pos} (offsets "
                        f"{h.base_offset}..{h.last_offset}) to the end, byte {end}", t, p)
    raise ValueError(kind)


def _index_kind(data, kind, rng, topic, partition) -> Mutation:
    clean = (data / files.CLEAN_SHUTDOWN_FILE).exists()
    t, p, pdir, base, log, batches = _pick_batch(rng, data, topic, partition,
                                                 sealed=kind == "timeindex-zero-pad")
    suffix = files.TIMEINDEX_SUFFIX if kind.startswith("timeindex") else files.INDEX_SUFFIX
    path = pdir / (files.filename_prefix(base) + suffix)
    rel = _rel(data, path)
    if kind.endswith("-delete"):
        path.unlink()
        return Mutation(kind, rel, None, None, f"deleted {rel}", t, p)
    if kind.endswith("-garbage"):
        old = path.read_bytes()
        entry = 12 if suffix == files.TIMEINDEX_SUFFIX else 8
        used = len(old) if clean else len(old.rstrip(b"\0"))
        used = -(-used // entry) * entry
        pos = rng.randrange(max(used, 1))
        n = rng.randint(1, 16)
        junk = b"  " if rng.random() < 0.2 else rng.randbytes(n)
        if old[pos:pos + len(junk)] == junk or not junk.strip(b"\0"):
            junk = b"\xff" + junk[1:]
        _write_at(path, pos, junk)
        return Mutation(kind, rel, None, None, f"wrote {len(junk)} garbage bytes at byte "
                        f"{pos} of {rel}", t, p)
    if kind == "timeindex-zero-pad":
        n = rng.randint(1, 4) * 12
        with open(path, "ab") as fh:
            fh.write(bytes(n))
        return Mutation(kind, rel, None, None, f"appended {n} zero bytes to {rel}", t, p)
    if kind == "orphan-index":
        orphan = pdir / (files.filename_prefix(10**12 + rng.randrange(10**6)) + suffix)
        orphan.write_bytes(rng.randbytes(16))
        return Mutation(kind, _rel(data, orphan), None, None, "index without a .log", t, p)
    if kind == "temp-file":
        tmp = pdir / (files.filename_prefix(base) + ".log" +
                      rng.choice([files.DELETED_SUFFIX, files.CLEANED_SUFFIX,
                                  files.SWAP_SUFFIX]))
        tmp.write_bytes(rng.randbytes(100))
        return Mutation(kind, _rel(data, tmp), None, None, "leftover temporary file", t, p)
    raise ValueError(kind)


def _meta_kind(data, kind, rng) -> Mutation:
    if kind == "metadata-garbage":
        path = data / files.METADATA_FILE
        old = path.read_bytes()
        new = old
        while new == old:
            pos = rng.randrange(len(old))
            junk = rng.choice([b"}", b"\x00\xff", b"{{", b"\"version\": 7"])
            new = old[:pos] + junk + old[pos + len(junk):]
        path.write_bytes(new)
        return Mutation(kind, files.METADATA_FILE, None, None, f"garbage at byte {pos}")
    path = data / files.RECOVERY_POINT_CHECKPOINT
    if not path.exists():
        raise NotApplicable("no recovery-point checkpoint")
    if kind == "checkpoint-garbage":
        old = path.read_bytes()
        pos = rng.randrange(len(old) - 1)
        path.write_bytes(old[:pos] + b"x!" + old[pos + 2:])
        return Mutation(kind, path.name, None, None, f"garbage at byte {pos}")
    lines = path.read_text().split("\n")
    if len(lines) < 4:
        raise NotApplicable("empty checkpoint")
    i = rng.randrange(2, len(lines) - 1)
    t, p, off = lines[i].split(" ")
    pdir = files.partition_dir(data, t, int(p))
    bases = _segments(pdir)
    batches = _batches(files.log_file(pdir, bases[-1])) if bases else []
    leo = batches[-1][1].next_offset if batches else (bases[-1] if bases else 0)
    lines[i] = f"{t} {p} {leo + rng.randint(1, 1000)}"
    path.write_text("\n".join(lines))
    return Mutation(kind, path.name, None, None, f"recovery point of {t}-{p} moved past "
                    f"the log end", t, int(p))


def mutate(data_dir, kind: str, rng: random.Random, topic=None,
           partition=None) -> Mutation:
    """Apply one mutation of ``kind`` (or a random kind for "random")."""
    data = Path(data_dir)
    if kind == "random":
        kind = rng.choice(KINDS)
    if kind in LOG_KINDS:
        return _log_kind(data, kind, rng, topic, partition)
    if kind in INDEX_KINDS:
        return _index_kind(data, kind, rng, topic, partition)
    if kind in META_KINDS:
        return _meta_kind(data, kind, rng)
    raise ValueError(f"unknown kind {kind!r}; one of: {', '.join(KINDS)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("kind", help="a kind, 'random', or 'list'")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--topic")
    ap.add_argument("--partition", type=int)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.kind == "list":
        print("\n".join(KINDS))
        return 0
    try:
        m = mutate(args.data_dir, args.kind, random.Random(args.seed), args.topic,
                   args.partition)
    except NotApplicable as e:
        print(f"inject: not applicable: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"inject: {e}", file=sys.stderr)
        return 16
    print(json.dumps(asdict(m)) if args.json else f"{m.kind}: {m.file}: {m.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
