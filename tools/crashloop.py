#!/usr/bin/env python3
"""kill -9 crash loop with acknowledged-record journaling, and simulated power loss.

    python tools/crashloop.py --cycles 1000                 # T1: hard bounce loop
    python tools/crashloop.py --cycles 100 --power-loss --states 4   # T2: 400 states

Each cycle forks a *writer* that opens the data directory (running recovery),
appends batches to three topics -- ``durable`` (flush.messages=1), ``interval``
(flush.ms=50) and ``lazy`` (no flush) -- and appends one line per acknowledged
batch to a journal *after* the append call returned (for ``durable`` that is after
the group-commit barrier succeeded).  The parent SIGKILLs it at a random moment
(also during recovery or a roll), then a forked *verifier* opens the directory
and checks, per partition: every journaled record is there with identical bytes
(else *lost* / *inconsistent*), every record read is one the writer could have
written (else *corrupt served*), offsets are contiguous; it closes the log and runs
pylog-fsck, which must exit 0.  A failed open is a *failed restart*.

Power loss (--power-loss; only ``durable`` is written): after the kill, each of
--states copies of the directory is damaged the way a power cut can damage it
(research/reliability.md §4 and §7 T2) *outside what is known durable*.  What is
known durable comes from the C core, not from the acks: after each acknowledged
append the writer journals the active segment's ``pl_mfile.synced`` (which
pl_mfile_sync advances only after msync and fdatasync both returned 0) *before*
the ack line; the mark is the largest value journaled for the last segment (0 if
none), and segments before the last were fsynced when sealed.  So an engine that
acked before its barrier leaves acked batches above the mark, the cut destroys
them, and the run fails: ``--unsafe-acks`` is that negative control (the durable
topic without flush.messages=1) and must report losses.  Past the mark, per 4 KiB
page: keep, zero, garble 512-byte sectors, or cut the file short; a last segment
with nothing synced may vanish (created after the last directory fsync); the
active segment's indexes (synced only at seal) may be garbage, short or zero;
checkpoints may roll back.  Every state must recover with
0 acknowledged records lost and 0 corrupt records served.  The loop continues
from the last state.

Records are self-describing: value = seq (8 bytes) | index (4) | bytes derived
from (seed, seq, index), so the verifier regenerates what any record must hold.
Output: one JSON summary line (--json) or a short table; exit 1 on any violation.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pylog
from pylog.fsck import run as fsck_run
from pylog.records import valid_headers
from pylog.storage import files

TOPICS = {"durable": {"flush.messages": 1}, "interval": {"flush.ms": 50},
          "lazy": {}}
COMMON = {"segment.bytes": 48 << 10, "index.interval.bytes": 1024}
PAGE, SECTOR = 4096, 512


_POOLS: dict[int, bytes] = {}


def value_for(seed: int, seq: int, i: int) -> bytes:
    """The value record i of batch seq must hold: 12 bytes naming it, then 0..163
    bytes cut from a per-seed random pool at a place that depends on (seq, i)."""
    pool = _POOLS.get(seed)
    if pool is None:
        pool = _POOLS[seed] = random.Random(seed).randbytes(1 << 16)
    h = (seq * 0x9E3779B97F4A7C15 + i * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFF
    n = h % 164
    at = (h >> 8) % ((1 << 16) - 164)
    return struct.pack(">QI", seq, i) + pool[at:at + n]


# ---- the writer (runs in a forked child until SIGKILL) ----------------------------

def writer_main(data: str, journal: str, seed: int, topics: list[str], seq0: int,
                max_batches: int, unsafe: bool = False, pace: float = 0.002) -> None:
    log = pylog.open(data)
    for name in topics:
        if not log.has_topic(name):
            # unsafe: the negative control -- "durable" without any flush policy, so
            # acks come before barriers; the power-loss check must catch it.
            cfg = {} if unsafe else TOPICS[name]
            log.create_topic(name, 2, dict(COMMON, **cfg))
    jfd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    jlock = threading.Lock()
    seqs = iter(range(seq0, 1 << 62, 1))
    seq_lock = threading.Lock()

    def work(thread_no: int):
        rng = random.Random(seed * 1000 + thread_no + seq0)
        for _ in range(max_batches):
            name = rng.choice(topics)
            part = rng.randrange(2)
            with seq_lock:
                seq = next(seqs)
            n = rng.choice((1, 1, 2, 5, 12))
            vals = [value_for(seed, seq, i) for i in range(n)]
            p = log.topic(name).partition(part)
            base = p.append(vals[0]) if n == 1 else p.append_batch(vals)
            # After the ack: what the C core has recorded as synced (pl_mfile.synced
            # moves only after msync + fdatasync returned 0), then the ack itself.
            line = _synced_line(p) + f"{name} {part} {base} {seq} {n}\n".encode()
            with jlock:
                os.write(jfd, line)
            time.sleep(rng.random() * pace)        # spread the appends over the window
    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.write(jfd, b"# done\n")                   # killed while idle, not mid-write
    time.sleep(3600)                              # wait to be killed, still open


def _synced_line(p) -> bytes:
    """``S topic partition segment-base synced-bytes`` of the active segment, read
    from the C struct (test-only peek into the storage engine; b"" if it moved)."""
    try:
        seg = p._active
        return f"S {p.topic} {p.partition} {seg.base_offset} {int(seg.c.log.synced)}\n" \
            .encode()
    except AttributeError:
        return b""


def _fork(fn, *args) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn(*args)
        except BaseException:                     # noqa: BLE001 -- report, then die
            import traceback
            traceback.print_exc()
            code = 3
        os._exit(code)
    return pid


# ---- the journal and the verifier -------------------------------------------------

def read_journal(path: str) -> dict[tuple[str, int], dict[int, tuple[int, int]]]:
    """{(topic, partition): {offset: (seq, index)}} of every acknowledged record."""
    acked: dict = {}
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return acked
    for line in text.splitlines():
        if line.startswith(("#", "S ")):
            continue
        t, p, base, seq, n = line.split()
        d = acked.setdefault((t, int(p)), {})
        for i in range(int(n)):
            d[int(base) + i] = (int(seq), i)
    return acked


def verify(data: str, journal: str, seed: int, check_lost: set[str],
           since: dict | None = None) -> dict:
    """Open (recovery), check every partition against the journal, close, fsck.

    ``since`` {"topic partition": offset}: check record contents only from there
    (records below were checked by an earlier full verify; pylog-fsck still checks
    every batch's CRC and the offset chain, and an acknowledged offset at or past
    the log end still counts as lost).  None: check everything."""
    res = {"lost": 0, "inconsistent": 0, "corrupt_served": 0, "gaps": 0,
           "failed_restart": 0, "fsck_exit": None, "records": 0, "acked": 0,
           "recovery_dropped_bytes": 0, "problems": [], "leo": {}}
    acked = read_journal(journal)
    try:
        log = pylog.open(data)
    except Exception as e:                        # noqa: BLE001
        res["failed_restart"] = 1
        res["problems"].append(f"open failed: {type(e).__name__}: {e}")
        return res
    try:
        for rep in log.recovery_reports:
            res["recovery_dropped_bytes"] += getattr(rep, "bytes_dropped", 0) or 0
        for name in log.topics():
            t = log.topic(name)
            for part in range(t.num_partitions):
                p = t.partition(part)
                start = (since or {}).get(f"{name} {part}", 0)
                _verify_partition(p, acked.get((name, part), {}), seed,
                                  name in check_lost, res, start)
                res["leo"][f"{name} {part}"] = p.log_end_offset
    finally:
        log.close()
    rep = fsck_run(data)
    res["fsck_exit"] = rep.exit_code()
    if res["fsck_exit"] != 0:
        res["problems"].extend(f"fsck: {f.kind} {f.where()} {f.message}"
                               for f in rep.findings if f.severity != "info")
    return res


def _explained(p, start: int, end: int) -> bool:
    """True when lost-offsets.json covers [start, end) (storage/lost.py)."""
    lost = getattr(p, "lost", None)
    pos = start
    while lost is not None and pos < end:
        r = lost.find(pos)
        if r is None:
            return False
        pos = r["end"]
    return pos >= end


def _verify_partition(p, acked: dict, seed: int, check_lost: bool, res: dict,
                      since: int = 0) -> None:
    got = {}
    since = min(max(since, p.log_start_offset), p.log_end_offset)
    expect = since
    for r in p.iter(since):
        if r.offset != expect and _explained(p, expect, r.offset):
            # recovery recorded these offsets as lost (lost-offsets.json): a power cut
            # kept later, never-acked pages but not these; an acked one among them
            # still counts as lost below
            res["explained_gaps"] = res.get("explained_gaps", 0) + 1
        elif r.offset != expect:
            res["gaps"] += 1
            res["problems"].append(f"{p.topic}-{p.partition}: offset {r.offset} after "
                                   f"{expect - 1}")
        expect = r.offset + 1
        v = r.value or b""
        seq, i = struct.unpack(">QI", v[:12]) if len(v) >= 12 else (None, None)
        if seq is None or v != value_for(seed, seq, i):
            res["corrupt_served"] += 1
            res["problems"].append(f"{p.topic}-{p.partition}@{r.offset}: bad value")
            continue
        got[r.offset] = (seq, i)
    res["records"] += len(got)
    if expect != p.log_end_offset:
        res["gaps"] += 1
        res["problems"].append(f"{p.topic}-{p.partition}: read to {expect}, LEO "
                               f"{p.log_end_offset}")
    res["acked"] += len(acked)
    if not check_lost:
        return
    leo = p.log_end_offset
    for off, want in acked.items():
        if off < since and off < leo:
            continue                         # checked by an earlier full verify
        have = got.get(off)
        if have is None:
            res["lost"] += 1
            if res["lost"] <= 5:
                res["problems"].append(f"{p.topic}-{p.partition}@{off}: acked, lost")
        elif have != want:
            res["inconsistent"] += 1
            res["problems"].append(f"{p.topic}-{p.partition}@{off}: holds {have}, "
                                   f"acked {want}")


def _verify_in_child(data: str, journal: str, seed: int, check_lost: set[str],
                     since: dict | None = None) -> dict:
    """Run verify() in a forked child (the loop process never opens a log itself, so
    it never has threads to fork with)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        import logging
        logging.getLogger("pylog").setLevel(logging.ERROR)   # recovery reports: expected
        try:
            out = verify(data, journal, seed, check_lost, since)
        except BaseException as e:                # noqa: BLE001
            out = {"failed_restart": 1, "problems": [f"verifier: {type(e).__name__}: {e}"]}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b'{"failed_restart": 1, "problems": '
                      b'["verifier died"]}')


# ---- power loss ------------------------------------------------------------------

def _valid_batches(path: Path) -> list[tuple[int, object]]:
    """(position, header) of each valid batch of a .log, in order."""
    return valid_headers(path.read_bytes())


def read_synced(path: str) -> dict[tuple[str, int, int], int]:
    """{(topic, partition, segment base): most bytes the C core reported synced}."""
    out: dict = {}
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        if line.startswith("S "):
            _, t, p, base, n = line.split()
            key = (t, int(p), int(base))
            out[key] = max(out.get(key, 0), int(n))
    return out


def durable_mark(pdir: Path, max_acked: int | None,
                 synced: dict | None = None) -> tuple[int, int, str]:
    """(base of the last segment, byte position, source) below which bytes are known
    durable.  Source "c-synced": the largest ``pl_mfile.synced`` the writer journaled
    for that segment (0 if none) -- an engine that acked before its barrier would
    leave acked batches above it, and the cut would destroy them.  Fallback
    "acked": the end of the batch holding the highest acknowledged offset.  Segments
    before the last one were fsynced when they were sealed."""
    bases = sorted(b for b, s in filter(None, (files.parse_base_offset(p.name)
                                              for p in pdir.iterdir())) if s == ".log")
    last = bases[-1]
    topic, part = files.parse_partition_dir(pdir.name)
    if synced is not None and any(k[:2] == (topic, part) for k in synced):
        return last, synced.get((topic, part, last), 0), "c-synced"
    if max_acked is None:
        return last, 0, "nothing-acked"
    if max_acked < last:
        return last, 0, "acked"
    for pos, h in _valid_batches(files.log_file(pdir, last)):
        if h.base_offset <= max_acked <= h.last_offset:
            return last, pos + h.size, "acked"
    raise AssertionError(f"{pdir}: acked offset {max_acked} is not in the last segment")


def _garble_from(buf: bytearray, mark: int, rng: random.Random) -> bytearray:
    """Per 4 KiB page past ``mark``: keep, zero, or per-sector keep/zero/garbage;
    maybe cut the file short.  Bytes below ``mark`` are never touched."""
    page = mark // PAGE * PAGE
    while page < len(buf):
        lo, hi = max(page, mark), min(page + PAGE, len(buf))
        mode = rng.random()
        if mode < 0.25:
            buf[lo:hi] = bytes(hi - lo)
        elif mode < 0.45:
            for s in range(lo, hi, SECTOR):
                e = min(hi, (s // SECTOR + 1) * SECTOR)
                c = rng.random()
                if c < 1 / 3:
                    buf[s:e] = bytes(e - s)
                elif c < 2 / 3:
                    buf[s:e] = rng.randbytes(e - s)
        page += PAGE
    if rng.random() < 0.2 and len(buf) > mark:
        del buf[rng.randint(mark, len(buf)):]
    return buf


def _garble_index(path: Path, rng: random.Random) -> None:
    if not path.exists():
        return
    buf = bytearray(path.read_bytes())
    c = rng.random()
    if c < 0.3:
        return
    if c < 0.5:
        del buf[rng.randint(0, len(buf)):]
    elif c < 0.7:
        buf[:] = bytes(len(buf))
    elif buf:
        at = rng.randrange(len(buf))
        buf[at:at + 64] = rng.randbytes(min(64, len(buf) - at))
    path.write_bytes(bytes(buf))


def power_cut(data: Path, acked: dict, rng: random.Random, topic: str = "durable",
              synced: dict | None = None) -> dict:
    """Damage ``data`` as a power cut may, past what is known durable."""
    info = {}
    for d in sorted(data.iterdir()):
        parsed = files.parse_partition_dir(d.name)
        if not parsed or parsed[0] != topic or not d.is_dir():
            continue
        offs = acked.get(parsed, {})
        base, mark, source = durable_mark(d, max(offs) if offs else None, synced)
        info.setdefault("_sources", set()).add(source)
        log = files.log_file(d, base)
        if mark == 0 and base > 0 and rng.random() < 0.15:
            for f in (log, files.index_file(d, base), files.timeindex_file(d, base)):
                f.unlink(missing_ok=True)            # created after the last dir fsync
            info[d.name] = {"deleted_segment": base}
            continue
        buf = _garble_from(bytearray(log.read_bytes()), mark, rng)
        log.write_bytes(bytes(buf))
        _garble_index(files.index_file(d, base), rng)
        _garble_index(files.timeindex_file(d, base), rng)
        info[d.name] = {"segment": base, "durable_bytes": mark, "size_after": len(buf)}
    ck = data / files.RECOVERY_POINT_CHECKPOINT
    if ck.exists() and rng.random() < 0.3:
        if rng.random() < 0.5:
            ck.unlink()                              # never written before the cut
        else:                                        # an older version of it
            lines = ck.read_text().split("\n")
            for i in range(2, len(lines)):
                if lines[i]:
                    t, p, off = lines[i].split(" ")
                    lines[i] = f"{t} {p} {rng.randint(0, int(off))}"
            ck.write_text("\n".join(lines))
    return info


# ---- the loop --------------------------------------------------------------------

VIOLATIONS = ("lost", "inconsistent", "corrupt_served", "gaps", "failed_restart",
              "fsck_failures", "writer_errors")


def crash_loop(data: Path, *, cycles: int, power_loss: bool = False, states: int = 1,
               seed: int = 1, kill_ms=(30, 250), max_batches: int = 400,
               unsafe_acks: bool = False, pace_ms: float = 2.0, full_every: int = 1,
               log=print) -> dict:
    """Run the loop; returns totals (VIOLATIONS must all be 0)."""
    rng = random.Random(seed)
    data = Path(data)
    journal = str(data.parent / (data.name + ".journal"))
    topics = ["durable"] if power_loss else list(TOPICS)
    check_lost = {"durable"} if power_loss else set(TOPICS)
    tot = {k: 0 for k in VIOLATIONS}
    tot.update(cycles=0, states=0, records=0, acked=0, recovery_dropped_bytes=0,
               idle_kills=0, startup_kills=0)
    problems: list[str] = []
    verified: dict = {}                   # log end offsets after the last clean verify
    for cycle in range(cycles):
        since = None if cycle % full_every == 0 else verified
        jsize = os.path.getsize(journal) if os.path.exists(journal) else 0
        pid = _fork(writer_main, str(data), journal, seed, topics, (cycle + 1) * 10**7,
                    max_batches, unsafe_acks, pace_ms / 1000)
        time.sleep(rng.uniform(*kill_ms) / 1000)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            tot["writer_errors"] += 1
            problems.append(f"cycle {cycle}: writer exited with status {status}")
        tot["cycles"] += 1
        jnow = os.path.getsize(journal) if os.path.exists(journal) else 0
        tot["startup_kills"] += jnow == jsize     # killed in open/recovery: no ack yet
        if jnow > jsize:                          # this writer acked something, and
            with open(journal, "rb") as jf:       # its last line says it had finished
                jf.seek(max(0, os.path.getsize(journal) - 7))
                tot["idle_kills"] += jf.read() == b"# done\n"
        if power_loss:
            acked = read_journal(journal)
            synced = read_synced(journal)
            base_copy = data.parent / (data.name + ".crashed")
            shutil.rmtree(base_copy, ignore_errors=True)
            shutil.copytree(data, base_copy)
            for s in range(states):
                shutil.rmtree(data, ignore_errors=True)
                shutil.copytree(base_copy, data)
                info = power_cut(data, acked, rng, synced=synced)
                for src in info.get("_sources", ()):
                    tot[f"mark_{src}"] = tot.get(f"mark_{src}", 0) + 1
                _add(tot, problems, _verify_in_child(str(data), journal, seed, check_lost),
                     f"cycle {cycle} state {s}")
            shutil.rmtree(base_copy, ignore_errors=True)
        else:
            res = _verify_in_child(str(data), journal, seed, check_lost, since)
            _add(tot, problems, res, f"cycle {cycle}")
            verified = res.get("leo") or verified
        if problems and log:
            for p in problems[-5:]:
                log(f"  {p}")
        if log and (cycle + 1) % 10 == 0:
            log(f"cycle {cycle + 1}/{cycles}: " + ", ".join(f"{k}={tot[k]}" for k in
                                                            ("states", "acked", "records")
                                                            + VIOLATIONS))
    tot["problems"] = problems[:50]
    tot["full_every"] = full_every
    return tot


def _add(tot: dict, problems: list, res: dict, where: str) -> None:
    tot["states"] += 1
    for k in ("lost", "inconsistent", "corrupt_served", "gaps", "failed_restart"):
        tot[k] += res.get(k, 0) or 0
    for k in ("records", "acked", "recovery_dropped_bytes", "explained_gaps"):
        tot[k] = tot.get(k, 0) + (res.get(k, 0) or 0)
    if res.get("fsck_exit") not in (0, None) or (res.get("fsck_exit") is None
                                                 and not res.get("failed_restart")):
        tot["fsck_failures"] += 1
    problems.extend(f"{where}: {p}" for p in res.get("problems", [])[:5])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--power-loss", action="store_true")
    ap.add_argument("--states", type=int, default=4, help="crash states per kill "
                    "(--power-loss)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", help="work directory (default: a temporary one, removed)")
    ap.add_argument("--kill-ms", default="30:250", help="kill after MIN:MAX ms")
    ap.add_argument("--max-batches", type=int, default=400, help="batches per writer "
                    "thread per cycle (bounds the log the verifier re-reads each cycle)")
    ap.add_argument("--full-every", type=int, default=1, help="check every record's "
                    "bytes every N cycles, only the new ones in between (kill -9 mode; "
                    "fsck still checks every batch's CRC every cycle)")
    ap.add_argument("--pace-ms", type=float, default=2.0, help="each writer thread "
                    "sleeps up to this long between appends, so kills land mid-write")
    ap.add_argument("--unsafe-acks", action="store_true", help="negative control for "
                    "--power-loss: write 'durable' without flush.messages=1; the run "
                    "must then report lost acknowledged records")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    lo, hi = (int(x) for x in args.kill_ms.split(":"))
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(
        prefix="pylog-crashloop-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        tot = crash_loop(base / "data", cycles=args.cycles, power_loss=args.power_loss,
                         states=args.states if args.power_loss else 1, seed=args.seed,
                         kill_ms=(lo, hi), max_batches=args.max_batches,
                         unsafe_acks=args.unsafe_acks, pace_ms=args.pace_ms,
                         full_every=args.full_every,
                         log=None if args.json else print)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    tot["seconds"] = round(time.time() - t0, 1)
    tot["mode"] = "power-loss" if args.power_loss else "kill-9"
    bad = sum(tot[k] for k in VIOLATIONS)
    if args.json:
        print(json.dumps(tot))
    else:
        print(json.dumps({k: v for k, v in tot.items() if k != "problems"}))
        for p in tot["problems"]:
            print("  ", p)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
