"""The group-commit thread: one per ``Log``, it runs every barrier (fdatasync).

Why a thread: a barrier takes milliseconds on a real disk, and the appending thread (the
server's event loop, or a user's producer threads) must only ever pay for a memcpy.  So an
append that needs durability registers a future and asks the flusher for a barrier; the
flusher runs one barrier per partition that covers *every* append made before it started,
and resolves all their futures at once (group commit: N concurrent durable appends share
one fdatasync, DESIGN section 3).

Two triggers:
  * ``request(p)``: a barrier is wanted now (``flush.messages`` reached, a durable ack
    waiting, ``flush()``).  Requests arriving while a barrier runs are served by the next.
  * periodic: every partition whose ``flush_ms`` is set and that has unsynced data older
    than ``flush_ms`` gets a barrier (Kafka's ``flush.ms``).

The flusher never touches a partition's data itself: it calls ``p.barrier()``, which
snapshots what to sync under the partition lock, syncs outside it, then resolves or fails
the waiting futures (see ``PartitionLog.barrier``).  Exceptions there are the partition's
business (it fences itself); the flusher only logs and goes on with the others.
"""
from __future__ import annotations

import bisect
import logging
import threading
import time
from concurrent.futures import Future
from typing import Protocol

from pylog import _ffi
from pylog._ffi import ffi, lib
from pylog.errors import StorageError

__all__ = ["Flusher", "Flushable", "GroupCommit"]

_log = logging.getLogger("pylog.flusher")
_TICK = object()          # marker in the work list: run the periodic tick


class Flushable(Protocol):
    """What the flusher needs from a partition."""

    def barrier(self) -> None: ...
    def flush_due_in(self, now: float) -> float | None: ...


class Flusher:
    """One daemon thread serving barrier requests for many partitions.  Thread-safe."""

    def __init__(self, name: str = "pylog-flusher", idle_wake_s: float = 1.0,
                 tick=None, tick_interval_s: float = 30.0):
        """``tick``: an optional callable run in this thread every ``tick_interval_s``
        (the Log uses it for retention and checkpoints)."""
        self._cond = threading.Condition(threading.Lock())
        self._tick = tick
        self._tick_interval_s = tick_interval_s
        self._next_tick = time.monotonic() + tick_interval_s
        self._pending: dict[int, Flushable] = {}     # id -> partition, insertion ordered
        self._registered: dict[int, Flushable] = {}
        self._stopping = False
        self._idle_wake_s = idle_wake_s
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ---- called by partitions --------------------------------------------------------
    def register(self, p: Flushable) -> None:
        """Include ``p`` in the periodic (``flush.ms``) scan."""
        with self._cond:
            self._registered[id(p)] = p
            self._cond.notify()

    def unregister(self, p: Flushable) -> None:
        with self._cond:
            self._registered.pop(id(p), None)
            self._pending.pop(id(p), None)

    def request(self, p: Flushable) -> None:
        """Ask for a barrier on ``p`` as soon as possible (never blocks on I/O)."""
        with self._cond:
            if id(p) not in self._pending:
                self._pending[id(p)] = p
                self._cond.notify()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def stop(self) -> None:
        """Serve what is pending, then end the thread.  Idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()

    # ---- the thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                todo = self._wait_for_work_locked()
                if todo is None:
                    return
            self._serve(todo)
            del todo                # hold no partition between wake-ups (mappings!)

    def _serve(self, todo: list) -> None:
        if todo and todo[-1] is _TICK:
            todo.pop()
            self._run_tick()
        for p in todo:
            try:
                p.barrier()
            except Exception:  # the partition has fenced itself; keep serving others
                _log.exception("barrier failed for %r", p)

    def _run_tick(self) -> None:
        try:
            self._tick()
        except Exception:
            _log.exception("periodic maintenance failed")

    def _wait_for_work_locked(self) -> list[Flushable] | None:
        """Block until some partition needs a barrier; None once stopping and idle."""
        while True:
            now = time.monotonic()
            todo, timeout = self._due_locked(now)
            if self._tick is not None and not self._stopping:
                if now >= self._next_tick:
                    self._next_tick = now + self._tick_interval_s
                    todo.append(_TICK)
                else:
                    timeout = min(timeout, self._next_tick - now)
            if todo:
                return todo
            if self._stopping:
                return None
            del todo        # this frame waits below: it must not keep any partition alive
            self._cond.wait(timeout)

    def _due_locked(self, now: float) -> tuple[list, float]:
        """Partitions needing a barrier now (requested or flush.ms due), and how long
        until the next one is due."""
        todo = list(self._pending.values())
        requested = set(self._pending)
        self._pending.clear()
        timeout = self._idle_wake_s
        for key, p in self._registered.items():
            if key in requested:
                continue
            due = p.flush_due_in(now)
            if due is None:
                continue
            if due <= 0:
                todo.append(p)
            else:
                timeout = min(timeout, due)
        return todo, timeout


class GroupCommit:
    """The partition side of group commit, mixed into PartitionLog (which provides
    ``_lock``, ``_active``, ``_synced``, ``_waiters``, ``_barriers``, ``_fenced``, ...).

    Waiters are (offset, future) pairs sorted by offset; a barrier resolves every
    waiter whose offset is below the synced offset, or fails them all and fences the
    partition (``_blocked``: no further appends, so no further acks) when it fails.
    """

    def _policy_locked(self, last_offset: int, want_future: bool = True) -> Future | None:
        if self._wait_durable:
            if not want_future:
                return None          # append_raw(wait=False): durable_future() follows
            fut = Future()
            self._add_waiter_locked(last_offset, fut)
            return fut
        if self._flush_every:
            self._unflushed_msgs += 1
            if self._unflushed_msgs >= self._flush_every:
                self._unflushed_msgs = 0
                self._flusher.request(self)
        return None

    def _await_durable(self, fut: Future) -> None:
        self._flusher.request(self)
        fut.result()

    # ---- durability ----------------------------------------------------------------
    def durable_future(self, offset: int) -> Future:
        """A future resolved once every offset <= ``offset`` is behind a barrier."""
        fut: Future = Future()
        with self._lock:
            if not self._wait_durable or offset < self._synced:
                fut.set_result(None)
                return fut
            if self._fenced is not None:
                fut.set_exception(StorageError(str(self._fenced)))
                return fut
            self._add_waiter_locked(offset, fut)
        self._flusher.request(self)
        return fut

    def _add_waiter_locked(self, offset: int, fut: Future) -> None:
        """Keep waiters sorted by offset (appends come in order: the fast path)."""
        waiters = self._waiters
        if not waiters or waiters[-1][0] <= offset:
            waiters.append((offset, fut))
        else:
            keys = [w[0] for w in waiters]
            waiters.insert(bisect.bisect_right(keys, offset), (offset, fut))

    def flush_due_in(self, now: float) -> float | None:
        """Seconds until flush.ms asks for a barrier (<= 0: now); None if nothing due."""
        since = self._dirty_since
        if since is None or self._flush_s is None:
            return None
        return since + self._flush_s - now

    def barrier(self) -> None:
        """Seal rolled segments, fdatasync the active one, resolve the waiters.

        Called by the flusher thread (and by flush()).  The I/O runs outside the
        partition lock (on segments no appender touches, and on a private copy of the
        active ``pl_mfile``), so appends continue meanwhile.  Barriers of one partition
        are serialized (``_barrier_lock``): the synced offset may only advance past a
        rolled segment once that segment is sealed.
        """
        with self._barrier_lock:
            if self._linger_s and self._waiters:
                # Group commit's commit_delay: the previous barrier served several
                # producers; give the ones it just woke a moment to append again (until
                # as many are waiting as it served, at most one sync time), so this
                # barrier serves them all instead of alternating half batches.
                deadline = time.monotonic() + self._linger_s
                while (len(self._waiters) < self._expect_waiters
                       and time.monotonic() < deadline):
                    time.sleep(0.0001)
            with self._lock:
                if self._fenced is not None:
                    self._fail_waiters_locked(self._fenced)
                    return
                target = self._active.c.next_offset
                self._dirty_since = None
                self._gate_locked()
                to_seal, self._unsealed = self._unsealed, []
                if (target <= self._synced or self._closed) and not to_seal:
                    self._resolve_waiters_locked()
                    return
                seg = self._active
                snap = ffi.new("pl_mfile *")
                snap[0] = seg.c.log
                self._barriers += 1
            err = None
            t0 = time.monotonic()
            try:
                for old in to_seal:
                    old.seal()                    # final time entry, trim, fsync
                rc = lib.pl_mfile_sync(snap)
                if rc:
                    _ffi.check(rc, f"barrier on {seg.log_path}")
            except Exception as e:                # noqa: BLE001 - any failure fences
                err = e if isinstance(e, StorageError) else StorageError(str(e))
            took = time.monotonic() - t0
            with self._lock:
                self._barriers -= 1
                if err is not None:
                    self._fence_locked(err)
                else:
                    if seg.c.log.synced < snap.synced:
                        seg.c.log.synced = snap.synced
                    served = len(self._waiters)
                    self._advance_synced_locked(target)
                    served -= len(self._waiters)
                    # linger next time only if this barrier served several producers:
                    # until as many wait again, at most the sync time or 2 ms
                    # (PostgreSQL's commit_delay with commit_siblings, in spirit)
                    self._linger_s = min(0.002, took) if served > 1 else 0.0
                    self._expect_waiters = served
                self._deferred_close.extend(to_seal)
                if not self._barriers:
                    for s in self._deferred_close:
                        s.close()
                    self._deferred_close.clear()
        if err is not None:
            raise err

    def _advance_synced_locked(self, offset: int) -> None:
        if offset > self._synced:
            self._synced = offset
        self._resolve_waiters_locked()

    def _resolve_waiters_locked(self) -> None:
        waiters, synced = self._waiters, self._synced
        while waiters and waiters[0][0] < synced:
            waiters.popleft()[1].set_result(None)

    def _fence_locked(self, err: Exception) -> None:
        if self._fenced is None:
            self._fenced = err if isinstance(err, StorageError) else StorageError(str(err))
        self._blocked = True
        self._gate_locked()
        self._fail_waiters_locked(self._fenced)

    def _fail_waiters_locked(self, err: Exception) -> None:
        while self._waiters:
            self._waiters.popleft()[1].set_exception(StorageError(str(err)))

    def flush(self) -> None:
        """Barrier now, in this thread (no-op for an in-memory log)."""
        if self._flusher is not None:
            self.barrier()

