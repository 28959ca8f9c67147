"""The recording and the crash-state model of tools/powerloss.py.

A *recording* is what the LD_PRELOAD shim (tools/powerloss_shim.c) let the recorder
see of a writer: at every barrier (fsync/fdatasync of a file or directory under the
data dir) a snapshot of every file's bytes, taken while the barrier's caller waits,
so it holds everything written before the barrier began; and, in the order they
happened, the directory operations (creates, found by listing the tree at each
report; renames and unlinks, reported by the shim after the real call).

File identity is the inode while it lives (a rename keeps it, an unlink ends it),
so a tmp -> fsync -> rename file is one identity under two names.

The crash state after barrier k (and before barrier k+1) -- ``build_state``:

* Durable file contents: each file identity holds the snapshot of its last
  fsync/fdatasync at or before k (nothing if never synced).  msync is counted but
  not treated as making anything durable (io.c always follows it with fdatasync or
  fsync, so this is only conservative).
* Durable names: directory operations form one ordered log, as a journaling file
  system (ext4, xfs) commits them.  The state applies a random prefix of the
  operations recorded before barrier k+1, plus every later one on a directory that
  was fsynced after it (up to k).  So a file created after the last fsync of its
  directory may or may not exist, and a rename is atomic: an atomic_write target is
  the old file or the new one, never a mix and never both names.
* Bytes: for each file present, its durable image B and its image C at barrier k+1.
  The length is B's or C's; each 4 KiB page where they differ is taken from B or
  from C at random (past a length: zero -- fallocated or unwritten blocks read as
  zero), and optionally one such page is torn: a random number of leading 512-byte
  sectors from C, the rest from B.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

PAGE, SECTOR = 4096, 512
ROOT = 0                                   # identity of the data directory itself


class Recording:
    """Everything recorded; plain data, pickled for the workers."""

    def __init__(self, seed: int):
        self.seed = seed
        self.kinds: list[str] = ["d"]      # identity -> "d" directory or "f" file
        self.pages: list[bytes] = []       # page id -> bytes (the last may be short)
        self.contents: list[tuple[int, tuple]] = []   # content id -> (size, page ids)
        # ("c", dir, name, ident) create, ("u", dir, name, ident) unlink,
        # ("r", src dir, src name, dst dir, dst name, ident) rename
        self.ops: list[tuple] = []
        # barrier b (1-based; barriers[0] is a placeholder): (ident, ops recorded)
        self.barriers: list[tuple[int, int]] = [(ROOT, 0)]
        self.snaps: list[dict[int, int]] = [{}]   # snapshot b: {file ident: content id}
        self.msyncs = 0
        self.acks: list[tuple] = []        # (barrier, topic, partition, base, seq, n)
        self.sessions: list[dict] = []

    @property
    def n_barriers(self) -> int:
        """Real barriers recorded (the final image, once taken, is not one)."""
        return len(self.barriers) - 1 - (self.barriers[-1][0] == -1)


class Recorder:
    """Builds a Recording from the shim's reports on a live data directory."""

    def __init__(self, root: Path, rec: Recording):
        self.root = Path(root)
        self.rec = rec
        self.live: dict[str, tuple[int, int]] = {"": (self.root.stat().st_ino, ROOT)}
        self._page_ids: dict[bytes, int] = {}
        self._content_ids: dict[tuple, int] = {}

    def rel(self, path: str) -> str | None:
        """Path relative to the data dir, None outside it."""
        root = str(self.root)
        if path == root:
            return ""
        if path.startswith(root + "/"):
            return path[len(root) + 1:]
        return None

    # ---- names ---------------------------------------------------------------------
    def _listing(self) -> dict[str, tuple[int, bool]]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                except FileNotFoundError:
                    continue
                out[os.path.relpath(full, self.root)] = (st.st_ino, name in dirnames)
        return out

    def _split(self, rel: str) -> tuple[int, str]:
        parent, _, name = rel.rpartition("/")
        return self.live[parent][1], name

    def reconcile(self, skip: tuple[str, ...] = ()) -> list[str]:
        """Record creates for new names (parents first), then return the names gone
        (children first) after recording their unlinks -- except under ``skip``."""
        now = self._listing()

        def skipped(p):
            return any(p == s or p.startswith(s + "/") for s in skip)

        for p in sorted(now):
            ino, is_dir = now[p]
            old = self.live.get(p)
            if skipped(p) or (old and old[0] == ino):
                continue
            if old:                                   # replaced unseen: unlink first
                self._unlink(p)
            parent = p.rpartition("/")[0]
            if parent not in self.live:
                continue                              # parent vanished meanwhile
            ident = len(self.rec.kinds)
            self.rec.kinds.append("d" if is_dir else "f")
            d, name = self._split(p)
            self.rec.ops.append(("c", d, name, ident))
            self.live[p] = (ino, ident)
        for p in sorted((p for p in self.live if p and p not in now and not skipped(p)),
                        reverse=True):
            self._unlink(p)
        return []

    def _unlink(self, rel: str) -> None:
        for p in sorted((q for q in self.live if q == rel or q.startswith(rel + "/")),
                        reverse=True):
            d, name = self._split(p)
            self.rec.ops.append(("u", d, name, self.live.pop(p)[1]))

    def renamed(self, src: str, dst: str) -> None:
        if src not in self.live or dst.rpartition("/")[0] not in self.live:
            self.reconcile()
            return
        self.reconcile(skip=(src, dst))
        ident = self.live[src][1]
        sd, sn = self._split(src)
        if dst in self.live:                          # replaced by the rename
            for p in sorted((q for q in self.live if q.startswith(dst + "/")), reverse=True):
                self._unlink(p)
            self.live.pop(dst)
        dd, dn = self._split(dst)
        self.rec.ops.append(("r", sd, sn, dd, dn, ident))
        for p in sorted(q for q in self.live if q == src or q.startswith(src + "/")):
            self.live[dst + p[len(src):]] = self.live.pop(p)
        self.reconcile()

    def unlinked(self, rel: str) -> None:
        self.reconcile()                              # records the unlink, in order

    # ---- bytes ---------------------------------------------------------------------
    def _content(self, data: bytes) -> int:
        ids = []
        for at in range(0, len(data), PAGE):
            page = data[at:at + PAGE]
            pid = self._page_ids.get(page)
            if pid is None:
                pid = self._page_ids[page] = len(self.rec.pages)
                self.rec.pages.append(page)
            ids.append(pid)
        key = (len(data), tuple(ids))
        cid = self._content_ids.get(key)
        if cid is None:
            cid = self._content_ids[key] = len(self.rec.contents)
            self.rec.contents.append(key)
        return cid

    def snapshot(self) -> dict[int, int]:
        snap = {}
        for p, (ino, ident) in list(self.live.items()):
            if self.rec.kinds[ident] != "f":
                continue
            try:
                with open(self.root / p, "rb") as f:
                    if os.fstat(f.fileno()).st_ino != ino:
                        continue
                    snap[ident] = self._content(f.read())
            except FileNotFoundError:
                continue
        return snap

    def barrier(self, path: str) -> bool:
        """A fsync/fdatasync of ``path`` is about to run: record it (False: not ours)."""
        rel = self.rel(path)
        if rel is None:
            return False
        self.reconcile()
        if rel not in self.live:
            return False
        self.rec.barriers.append((self.live[rel][1], len(self.rec.ops)))
        self.rec.snaps.append(self.snapshot())
        return True

    def final(self) -> None:
        """The image after the last writer exited (the 'next barrier' of the last)."""
        self.reconcile()
        self.rec.barriers.append((-1, len(self.rec.ops)))
        self.rec.snaps.append(self.snapshot())


# ---- crash states ------------------------------------------------------------------

class StateBuilder:
    """Builds crash states of one Recording; keeps the durable images per barrier."""

    def __init__(self, rec: Recording):
        self.rec = rec
        self._durable = [({}, {})]                # per k: ({file: cid}, {dir: ops})
        files, dirs = {}, {}
        assert rec.barriers[-1][0] == -1, "the recording has no final image"
        for b in range(1, rec.n_barriers + 1):
            ident, ops = rec.barriers[b]
            if rec.kinds[ident] == "d":
                dirs = dict(dirs)
                dirs[ident] = ops
            elif ident in rec.snaps[b]:
                files = dict(files)
                files[ident] = rec.snaps[b][ident]
            self._durable.append((files, dirs))

    @property
    def intervals(self) -> int:
        """States can be built after barrier 0 .. n_barriers."""
        return self.rec.n_barriers + 1

    def _current(self, ident: int, b: int) -> int | None:
        """Content of ident at snapshot b, or the last one before it."""
        for s in range(b, -1, -1):
            cid = self.rec.snaps[s].get(ident)
            if cid is not None:
                return cid
        return None

    def _bytes(self, cid: int | None) -> bytes:
        if cid is None:
            return b""
        size, pids = self.rec.contents[cid]
        return b"".join(self.rec.pages[p] for p in pids)[:size]

    def layout(self, k: int, rng: random.Random) -> tuple[dict, int, int]:
        """({relative path: ident} present after the cut, cut, ops available)."""
        rec = self.rec
        files, dirs = self._durable[k]
        avail = rec.barriers[k + 1][1]
        c = rng.random()
        cut = avail if c < 0.5 else rng.randint(rec.barriers[k][1] if c < 0.8 else 0, avail)
        entries: dict[tuple[int, str], int] = {}
        for i in range(avail):
            op = rec.ops[i]
            if i >= cut:
                touched = (op[1],) if op[0] != "r" else (op[1], op[3])
                if not any(i < dirs.get(d, 0) for d in touched):
                    continue
            if op[0] == "c":
                entries[(op[1], op[2])] = op[3]
            elif op[0] == "u":
                if entries.get((op[1], op[2])) == op[3]:
                    del entries[(op[1], op[2])]
            elif entries.get((op[1], op[2])) == op[5]:
                del entries[(op[1], op[2])]
                entries[(op[3], op[4])] = op[5]
        children: dict[int, list] = {}
        for (d, name), ident in entries.items():
            children.setdefault(d, []).append((name, ident))
        out, todo = {}, [("", ROOT)]
        while todo:
            path, d = todo.pop()
            for name, ident in children.get(d, ()):
                p = f"{path}/{name}" if path else name
                out[p] = ident
                if rec.kinds[ident] == "d":
                    todo.append((p, ident))
        return out, cut, avail

    def file_bytes(self, ident: int, k: int, rng: random.Random, p_new: float,
                   tear: bool) -> tuple[bytes, dict]:
        files, _ = self._durable[k]
        old = self._bytes(files.get(ident))
        new = self._bytes(self._current(ident, k + 1))
        if old == new:
            return old, {}
        size = len(new) if rng.random() < p_new else len(old)
        out = bytearray(size)
        diff = []
        for at in range(0, size, PAGE):
            width = min(PAGE, size - at)
            o, n = old[at:at + width], new[at:at + width]
            o += bytes(width - len(o))
            n += bytes(width - len(n))
            if o == n:
                out[at:at + len(o)] = o
                continue
            diff.append(at)
            out[at:at + len(o)] = n if rng.random() < p_new else o
        torn = None
        if tear and diff:
            at = rng.choice(diff)
            o = old[at:at + PAGE].ljust(PAGE, b"\0")
            n = new[at:at + PAGE].ljust(PAGE, b"\0")
            cut = rng.randrange(1, PAGE // SECTOR) * SECTOR
            page = n[:cut] + o[cut:]
            out[at:at + PAGE] = page[:max(0, min(PAGE, size - at))]
            torn = (at, cut)
        return bytes(out), {"changed_pages": len(diff), "torn": torn,
                            "size": (len(old), len(new), size)}

    def build(self, k: int, state_seed: int, out: Path) -> dict:
        """Write crash state (k, state_seed) into the empty directory ``out``."""
        rng = random.Random(state_seed)
        p_new = rng.choice((0.0, 0.1, 0.5, 0.9, 1.0, rng.random()))
        tear = rng.random() < 0.5
        layout, cut, avail = self.layout(k, rng)
        info = {"k": k, "seed": state_seed, "p_new": round(p_new, 3), "ops_cut": cut,
                "ops_avail": avail, "files": {}}
        for p in sorted(layout):
            ident = layout[p]
            if self.rec.kinds[ident] == "d":
                (out / p).mkdir(parents=True, exist_ok=True)
                continue
            data, finfo = self.file_bytes(ident, k, rng, p_new, tear)
            (out / p).parent.mkdir(parents=True, exist_ok=True)
            (out / p).write_bytes(data)
            if finfo:
                info["files"][p] = finfo
        return info

    def acked(self, k: int) -> dict[tuple[str, int], dict[int, tuple[int, int]]]:
        """{(topic, partition): {offset: (seq, index)}} acknowledged by barrier k."""
        out: dict = {}
        for b, topic, part, base, seq, n in self.rec.acks:
            if b <= k:
                d = out.setdefault((topic, part), {})
                for i in range(n):
                    d[base + i] = (seq, i)
        return out
