#!/usr/bin/env python3
"""Power-loss harness: crash states built from the data files at every barrier.

    python tools/powerloss.py --states 10000 --seed 1          # long tier
    python tools/powerloss.py --states 500 --seed 1 --json     # what CI runs
    python tools/powerloss.py --replay WORK/rec-1.pickle --state 1:417 --dump /tmp/s

1. Record.  Writers run ``pylog.open`` embedded, in a sequence of sessions (the
   odd ones stop with os._exit mid-write, as kill -9 does -- the page cache
   survives -- the even ones close cleanly; each open recovers what the last left),
   with the LD_PRELOAD shim tools/powerloss_shim.c (built here with cc).  Two
   threads append to ``durable`` (3 partitions, created in session 0) and ``late``
   (2, created in session 1), both flush.messages=1, segment.bytes 16-32 KiB so
   segments roll.  At every fsync/fdatasync under the data dir the shim blocks the
   caller and the recorder (this process) snapshots every file
   (tools/powerloss_model.py).  After each append returns, the writer journals the
   ack with ``plshim_last_barrier()``: an ack journaled with c came after barrier c
   began, so a correct engine has made it durable by barrier c.
2. Build states.  State (recording r, index i) takes k uniform in 0..barriers and
   builds the crash state after barrier k (powerloss_model.py): synced images, a
   random subset of the pages written since, maybe one torn page, a prefix of the
   directory operations.
3. Check each state (tools/powerloss_check.py) in a worker process (one state at a time, killed after
   --timeout s: a *hang*; a worker that dies is a *crash*): ``pylog.open``
   (recovery; an exception is a *recovery failure*), read every partition from the
   log start, close, ``pylog-fsck``.  Every record acknowledged by barrier k must be
   at its offset with its bytes (else *lost* / *inconsistent*); every record read
   must be one the writer wrote, in its partition, with its timestamp (else
   *corrupt served*); offsets are contiguous (else *gaps*); a record appears once.
   A read may raise CorruptRecordError instead (counted; never wrong bytes).
   pylog-fsck after recovery should exit 0; exit 4 (errors left) is not a data
   violation but is reported with the finding kinds, and the state is then
   repaired (``--repair``, exit 1 expected) and the acknowledged records checked
   again: repair must not lose them either.

Values are crashloop.value_for(seed, seq, i); seq's low 6 bits name the partition.
On any violation the recording is kept (with --keep, always) and the failing
states are listed as ``r:i``; ``--replay REC --state r:i`` rebuilds and checks one,
``--dump DIR`` keeps its directory.  Exit 1 on any violation.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import random
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crashloop import value_for  # noqa: E402
from powerloss_check import (COUNTS, VIOLATIONS, check_state, seq_partition,  # noqa: E402
                             timestamp_for)
from powerloss_model import Recorder, Recording, StateBuilder  # noqa: E402

HERE = Path(__file__).resolve().parent
TOPICS = {"durable": (3, 0), "late": (2, 1)}   # name: (partitions, session creating it)


def topic_config(rng: random.Random, unsafe: bool) -> dict:
    cfg = {"segment.bytes": rng.choice((16, 24, 32)) << 10, "segment.index.bytes": 4096,
           "index.interval.bytes": rng.choice((512, 1024, 4096))}
    if not unsafe:
        cfg["flush.messages"] = 1
    return cfg


# ---- the writer (a session; runs with the shim preloaded) ---------------------------

def writer_main(spec: dict) -> None:
    import ctypes

    import pylog
    last = ctypes.CDLL(None).plshim_last_barrier
    last.restype = ctypes.c_long
    rng = random.Random(spec["seed"])
    log = pylog.open(spec["data"])
    for name, (parts, session) in TOPICS.items():
        if session == spec["session"] and not log.has_topic(name):
            log.create_topic(name, parts, topic_config(rng, spec["unsafe"]))
    targets = [(n, p) for n in TOPICS if log.has_topic(n)
               for p in range(log.topic(n).num_partitions)]
    ack = os.open(spec["acks"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    counter = itertools.count(spec["session"] * 10**6)
    lock = threading.Lock()
    done = [0]
    errors = []

    def work(t: int) -> None:
        r = random.Random(spec["seed"] * 31 + t)
        try:
            for _ in range(spec["appends"]):
                topic, part = r.choice(targets)
                with lock:
                    seq = next(counter) << 6 | seq_partition(topic, part)
                n = r.choice((1, 1, 1, 2, 5))
                vals = [value_for(spec["vseed"], seq, i) for i in range(n)]
                p = log.topic(topic).partition(part)
                ts = timestamp_for(seq)
                base = (p.append(vals[0], timestamp=ts) if n == 1
                        else p.append_batch(vals, timestamps=[ts] * n))
                c = last()                          # after the append returned
                os.write(ack, f"{c} {topic} {part} {base} {seq} {n}\n".encode())
                with lock:
                    done[0] += 1
        except BaseException as e:                  # noqa: BLE001 -- report, then fail
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(2)]
    for t in threads:
        t.start()
    if spec["hard_exit_after"] is not None:
        while done[0] < spec["hard_exit_after"] and any(t.is_alive() for t in threads):
            time.sleep(0.0005)
        os._exit(3 if errors else 0)                # mid-write, like kill -9
    for t in threads:
        t.join()
    log.close()
    if errors:
        print(errors, file=sys.stderr)
        os._exit(3)


# ---- recording -----------------------------------------------------------------------

def build_shim(workdir: Path) -> Path:
    so = workdir / "powerloss_shim.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-o", str(so),
                    str(HERE / "powerloss_shim.c"), "-ldl", "-lpthread"], check=True)
    return so


def _serve(sock: socket.socket, recorder: Recorder) -> None:
    """Answer the shim's reports until the writer closes its end."""
    rec = recorder.rec
    buf = b""
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            f = line.decode().split("\t")
            if f[0] in ("S", "D"):
                recorder.barrier(f[1])
            elif f[0] == "M":
                rec.msyncs += recorder.rel(f[1]) is not None
            elif f[0] == "R" and f[3] == "0":
                src, dst = recorder.rel(f[1]), recorder.rel(f[2])
                if src is not None and dst is not None:
                    recorder.renamed(src, dst)
                elif src is not None or dst is not None:
                    recorder.reconcile()
            elif f[0] == "U" and f[2] == "0" and recorder.rel(f[1]) is not None:
                recorder.unlinked(recorder.rel(f[1]))
            try:
                sock.sendall(b"%d\n" % rec.n_barriers)
            except (BrokenPipeError, ConnectionResetError):
                if f[0] in ("S", "D") and rec.barriers[-1:] and len(rec.barriers) > 1:
                    rec.barriers.pop()              # the caller died before the real
                    rec.snaps.pop()                 # barrier ran: it never happened
                return


def record(workdir: Path, seed: int, *, sessions: int = 4, appends: int = 100,
           unsafe: bool = False, shim: Path, vseed: int) -> Recording:
    """Run the writer sessions on workdir/data under the shim; return the recording."""
    rng = random.Random(seed)
    data = workdir / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    acks = workdir / "acks"
    acks.unlink(missing_ok=True)
    rec = Recording(seed)
    rec.vseed = vseed
    recorder = Recorder(data, rec)
    for s in range(sessions):
        hard = None if s % 2 else rng.randint(appends // 3, 2 * appends - 10)
        spec = {"data": str(data), "acks": str(acks), "seed": seed * 100 + s, "session": s,
                "appends": appends, "hard_exit_after": hard, "unsafe": unsafe,
                "vseed": vseed}
        ours, theirs = socket.socketpair()
        err = tempfile.TemporaryFile()
        env = dict(os.environ, LD_PRELOAD=str(shim), PYLOG_POWERLOSS_FD=str(theirs.fileno()),
                   PYLOG_POWERLOSS_BASE=str(rec.n_barriers),
                   PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.Popen([sys.executable, str(HERE / "powerloss.py"), "--writer",
                                 json.dumps(spec)], env=env, pass_fds=(theirs.fileno(),),
                                stderr=err)
        theirs.close()
        _serve(ours, recorder)
        ours.close()
        code = proc.wait(timeout=120)
        err.seek(0)
        tail = err.read()[-3000:].decode(errors="replace")
        err.close()
        if code != 0:
            raise RuntimeError(f"writer session {s} exited {code}: {tail}")
        rec.sessions.append({"session": s, "hard_exit_after": hard,
                             "barriers": rec.n_barriers})
    recorder.final()
    for line in acks.read_text().splitlines():
        c, topic, part, base, seq, n = line.split()
        rec.acks.append((int(c), topic, int(part), int(base), int(seq), int(n)))
    return rec


def worker_main(scratch: str) -> None:
    """Serve states from stdin ({"r", "i", "k", "seed"} lines), one JSON line each."""
    import logging
    logging.getLogger("pylog").setLevel(logging.CRITICAL)   # recovery reports: expected
    recs: dict[int, tuple] = {}
    for line in sys.stdin:
        job = json.loads(line)
        if job["rec"] not in recs:
            with open(job["rec"], "rb") as f:
                rec = pickle.load(f)
            recs = {job["rec"]: (rec, StateBuilder(rec))}
        rec, builder = recs[job["rec"]]
        d = Path(scratch) / f"state-{os.getpid()}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        info = builder.build(job["k"], job["seed"], d)
        res = check_state(d, builder.acked(job["k"]), rec.vseed)
        res["changed_pages"] = sum(f["changed_pages"] for f in info["files"].values())
        res["torn_pages"] = sum(f["torn"] is not None for f in info["files"].values())
        res["info"] = info if any(res[k] for k in VIOLATIONS) or job.get("verbose") else None
        if job.get("dump"):
            shutil.rmtree(job["dump"], ignore_errors=True)
            builder.build(job["k"], job["seed"], Path(job["dump"]))
        shutil.rmtree(d, ignore_errors=True)
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()


# ---- the worker pool ---------------------------------------------------------------------

class Pool:
    """``jobs`` worker processes, one state each at a time, killed after ``timeout``."""

    def __init__(self, jobs: int, scratch: Path, timeout: float):
        self.scratch, self.timeout = scratch, timeout
        self.sel = selectors.DefaultSelector()
        self.workers = [self._spawn() for _ in range(jobs)]

    def _spawn(self) -> dict:
        err = tempfile.TemporaryFile()
        proc = subprocess.Popen([sys.executable, str(HERE / "powerloss.py"), "--worker",
                                 "--dir", str(self.scratch)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err,
                                env=dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep
                                         + os.environ.get("PYTHONPATH", "")))
        w = {"proc": proc, "err": err, "job": None, "buf": b"", "deadline": None}
        self.sel.register(proc.stdout, selectors.EVENT_READ, w)
        return w

    def _replace(self, w: dict) -> None:
        self.sel.unregister(w["proc"].stdout)
        if w["proc"].poll() is None:
            w["proc"].kill()
        w["proc"].wait()
        w["err"].seek(0)
        tail = w["err"].read()[-1500:].decode(errors="replace")
        w["err"].close()
        self.workers[self.workers.index(w)] = self._spawn()
        return tail

    def run(self, jobs):
        """Yield (job, result) for every job."""
        jobs = iter(jobs)
        pending = True
        while True:
            for w in self.workers:
                if w["job"] is None and pending:
                    job = next(jobs, None)
                    if job is None:
                        pending = False
                        break
                    w["job"], w["deadline"] = job, time.monotonic() + self.timeout
                    w["proc"].stdin.write((json.dumps(job) + "\n").encode())
                    w["proc"].stdin.flush()
            busy = [w for w in self.workers if w["job"] is not None]
            if not busy:
                return
            wait = max(0.0, min(w["deadline"] for w in busy) - time.monotonic())
            for key, _ in self.sel.select(wait):
                w = key.data
                chunk = os.read(key.fileobj.fileno(), 1 << 16)
                if not chunk:
                    job, w["job"] = w["job"], None
                    code = w["proc"].wait()
                    tail = self._replace(w)
                    yield job, _failed("crashes", f"worker died (status {code}) on "
                                                  f"this state: {tail}")
                    continue
                w["buf"] += chunk
                if b"\n" in w["buf"]:
                    line, w["buf"] = w["buf"].split(b"\n", 1)
                    job, w["job"] = w["job"], None
                    yield job, json.loads(line)
            now = time.monotonic()
            for w in list(self.workers):
                if w["job"] is not None and now > w["deadline"]:
                    job, w["job"] = w["job"], None
                    self._replace(w)
                    yield job, _failed("hangs", f"no answer in {self.timeout} s "
                                                f"(open, read, close, fsck)")

    def close(self) -> None:
        for w in self.workers:
            w["proc"].stdin.close()
            w["proc"].wait(timeout=30)
            w["err"].close()


def _failed(kind: str, why: str) -> dict:
    res = {k: 0 for k in VIOLATIONS}
    res[kind] = 1
    res.update(problems=[why], fsck_exit=kind, fsck_kinds=[], repair_exit=None, info=None)
    return res


# ---- the run ---------------------------------------------------------------------------

def state_job(rec_path: Path, r: int, i: int, rec_seed: int, intervals: int) -> dict:
    seed = rec_seed * 1_000_003 + i
    return {"rec": str(rec_path), "r": r, "i": i, "seed": seed,
            "k": random.Random(seed).randrange(intervals)}


class Totals:
    def __init__(self):
        self.t = {k: 0 for k in VIOLATIONS + COUNTS}
        self.t.update(states=0, recordings=0, barriers=0, msyncs=0, acks=0, dir_ops=0,
                      states_dropping_data=0, fsck_exit={}, fsck_error_kinds={},
                      repair_exit={}, fsck4_examples={})
        self.failures: list[dict] = []

    def add(self, job: dict, res: dict) -> None:
        t = self.t
        t["states"] += 1
        for k in VIOLATIONS + COUNTS:
            t[k] += res.get(k, 0) or 0
        t["states_dropping_data"] += bool(res.get("dropped_data_bytes"))
        ex = str(res.get("fsck_exit"))
        t["fsck_exit"][ex] = t["fsck_exit"].get(ex, 0) + 1
        for kind in res.get("fsck_kinds") or ():
            t["fsck_error_kinds"][kind] = t["fsck_error_kinds"].get(kind, 0) + 1
            ex = t["fsck4_examples"].setdefault(kind, [])
            if len(ex) < 3:
                ex.append(f"{job['r']}:{job['i']}")
        if res.get("repair_exit") is not None:
            rx = str(res["repair_exit"])
            t["repair_exit"][rx] = t["repair_exit"].get(rx, 0) + 1
        if any(res.get(k) for k in VIOLATIONS) and len(self.failures) < 20:
            self.failures.append({"state": f"{job['r']}:{job['i']}", "k": job["k"],
                                  "rec": job["rec"], "problems": res["problems"][:5],
                                  "info": res.get("info")})

    @property
    def bad(self) -> int:
        return sum(self.t[k] for k in VIOLATIONS)


def run(args) -> dict:
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(
        prefix="pylog-powerloss-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tot = Totals()
    shim = build_shim(base)
    n_rec = max(1, -(-args.states // args.states_per_recording))
    pool = Pool(args.jobs, base, args.timeout)
    rec_paths = []
    try:
        for r in range(n_rec):
            rec_seed = args.seed * 1000 + r
            t1 = time.time()
            rec = record(base / f"rec-{r}", rec_seed, sessions=args.sessions,
                         appends=args.appends, unsafe=args.unsafe_acks, shim=shim,
                         vseed=rec_seed)
            shutil.rmtree(base / f"rec-{r}", ignore_errors=True)
            rec_path = base / f"rec-{r}.pickle"
            with open(rec_path, "wb") as f:
                pickle.dump(rec, f, protocol=pickle.HIGHEST_PROTOCOL)
            rec_paths.append(rec_path)
            tot.t["recordings"] += 1
            tot.t["barriers"] += rec.n_barriers
            tot.t["msyncs"] += rec.msyncs
            tot.t["acks"] += len(rec.acks)
            tot.t["dir_ops"] += len(rec.ops)
            tot.t["record_seconds"] = round(tot.t.get("record_seconds", 0)
                                            + time.time() - t1, 1)
            count = min(args.states_per_recording, args.states - r * args.states_per_recording)
            jobs = (state_job(rec_path, r, i, rec_seed, rec.n_barriers + 1)
                    for i in range(count))
            for job, res in pool.run(jobs):
                tot.add(job, res)
                if args.progress and tot.t["states"] % args.progress == 0:
                    print(f"{tot.t['states']} states, {time.time() - t0:.0f} s: "
                          + ", ".join(f"{k}={tot.t[k]}" for k in VIOLATIONS),
                          file=sys.stderr, flush=True)
    finally:
        pool.close()
        keep = args.keep or args.dir or tot.bad
        for p in rec_paths if not keep else ():
            p.unlink(missing_ok=True)
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    out = dict(tot.t, seconds=round(time.time() - t0, 1), failures=tot.failures,
               work_dir=str(base) if keep else None,
               mode="unsafe-acks" if args.unsafe_acks else "flush.messages=1")
    return out


def replay(args) -> int:
    """Rebuild one state of a kept recording and check it, verbosely."""
    with open(args.replay, "rb") as f:
        rec = pickle.load(f)
    r, i = (int(x) for x in args.state.split(":"))
    job = state_job(Path(args.replay), r, i, rec.seed, rec.n_barriers + 1)
    builder = StateBuilder(rec)
    scratch = Path(tempfile.mkdtemp(prefix="pylog-powerloss-replay-"))
    try:
        d = Path(args.dump) if args.dump else scratch / "state"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        info = builder.build(job["k"], job["seed"], d)
        res = check_state(d, builder.acked(job["k"]), rec.vseed)
        if args.dump:                         # the state as built, not as recovered
            shutil.rmtree(d)
            d.mkdir()
            builder.build(job["k"], job["seed"], d)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps({"state": args.state, "k": job["k"], "barriers": rec.n_barriers,
                      "info": info, "result": res}, indent=1))
    return 1 if any(res[k] for k in VIOLATIONS) else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--states", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--sessions", type=int, default=4, help="writer sessions per recording")
    ap.add_argument("--appends", type=int, default=100,
                    help="appends per writer thread per session")
    ap.add_argument("--states-per-recording", type=int, default=1000,
                    help="states built from one recording (more recordings: more workloads)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds one state may take before it counts as a hang")
    ap.add_argument("--dir", help="work directory (kept)")
    ap.add_argument("--keep", action="store_true", help="keep the recordings")
    ap.add_argument("--unsafe-acks", action="store_true", help="negative control: "
                    "topics without flush.messages=1, so acks precede barriers; the run "
                    "must report lost records")
    ap.add_argument("--progress", type=int, default=0, help="print totals every N states")
    ap.add_argument("--json", action="store_true", help="one JSON line")
    ap.add_argument("--replay", help="a kept recording (rec-R.pickle)")
    ap.add_argument("--state", help="R:I, the state to rebuild with --replay")
    ap.add_argument("--dump", help="with --replay: write the crash state here")
    ap.add_argument("--writer", help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.writer:
        writer_main(json.loads(args.writer))
        return 0
    if args.worker:
        worker_main(args.dir)
        return 0
    if args.replay:
        return replay(args)
    out = run(args)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            if k != "failures":
                print(f"{k:>18}: {v}")
        for f in out["failures"]:
            print(f"  state {f['state']} (k={f['k']}): {'; '.join(f['problems'])}")
    return 1 if any(out[k] for k in VIOLATIONS) else 0


if __name__ == "__main__":
    sys.exit(main())
