"""Recovery, fsck and restart figures of DESIGN section 7.

- `pylog_recovery`: a child process appends `mib` MiB of 1 KiB records and dies with os._exit
  (no close, no clean-shutdown marker: what kill -9 leaves).  The recovery-point checkpoint is
  removed too, so `pylog.open` must scan and validate every batch -- the worst case of a crash
  before the first checkpoint.  Rate = bytes of .log scanned / seconds of `pylog.open`.
- `fsck_verify`: `pylog-fsck DATA --json` (read-only) over a cleanly closed log of `mib` MiB.
- `pylog_restart`: `pylog.open` after a clean close of a partition with `segments` segments
  (built once per run in a directory shared by the rounds: 1,000 rolls take ~15 s).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench._job import Timer
from bench.servers import NotAvailable

RECORD = 1024
BATCH = 1000


def _pylog():
    try:
        import pylog
        pylog.open
    except (ImportError, AttributeError) as e:
        raise NotAvailable(f"pylog storage engine not importable: {e}") from e
    return pylog


def _fill(data: Path, mib: int, config: dict | None = None, clean: bool = True,
          batch: int = BATCH) -> None:
    """Append `mib` MiB of 1 KiB records, `batch` per batch (a negative `mib` means that many
    batches); close cleanly or die without closing."""
    pylog = _pylog()
    log = pylog.open(str(data))
    p = log.create_topic("bench", partitions=1, config=config or {}).partition(0)
    values = [os.urandom(RECORD) for _ in range(batch)]
    for _ in range(mib * 1024 // batch if mib >= 0 else -mib):
        p.append_batch(values)
    if clean:
        log.close()
    else:
        os._exit(0)


def _fill_in_child(data: Path, mib: int, clean: bool, config: dict | None = None,
                   batch: int = BATCH) -> None:
    _pylog()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _fill(data, mib, config, clean, batch)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise NotAvailable("the writer process failed")


def _log_bytes(data: Path) -> int:
    return sum(f.stat().st_size for f in data.rglob("*.log"))


def pylog_recovery(dir: str, mib: int) -> dict:
    """Seconds of pylog.open after an unclean stop with no recovery-point checkpoint."""
    data = Path(dir) / "pylog"
    _fill_in_child(data, mib, clean=False)
    for cp in data.glob("recovery-point-offset-checkpoint*"):
        cp.unlink()
    size = _log_bytes(data)
    pylog = _pylog()
    with Timer() as t:
        log = pylog.open(str(data))
    reports = getattr(log, "recovery_reports", None)
    log.close()
    return dict(records=size / (1 << 20), bytes=size, seconds=t.seconds, cpu_client=t.cpu,
                note=f"{len(reports or [])} recovery report(s)")


def fsck_verify(dir: str, mib: int) -> dict:
    """Seconds of `pylog-fsck DATA --json` (verify only) over `mib` MiB."""
    exe = shutil.which("pylog-fsck") or str(Path(sys.executable).parent / "pylog-fsck")
    if not Path(exe).exists():
        raise NotAvailable("pylog-fsck not installed yet")
    data = Path(dir) / "pylog"
    _fill_in_child(data, mib, clean=True)
    size = _log_bytes(data)
    with Timer() as t:
        proc = subprocess.Popen([exe, str(data), "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        out = proc.stdout.read()
        _, status, ru = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        last = (proc.stderr.read().decode(errors="replace").strip().splitlines() or [""])[-1]
        raise NotAvailable(f"pylog-fsck exited {code} on a clean log: {last[:200]}")
    summary = json.loads(out).get("summary", {})
    scan_s = summary.get("seconds") or 0.0
    return dict(records=size / (1 << 20), bytes=size, seconds=t.seconds,
                cpu_client=ru.ru_utime + ru.ru_stime,
                scan_gib_s=size / scan_s / 2**30 if scan_s else None,
                startup_s=t.seconds - scan_s,
                note=f"scan {scan_s:.3f} s by its own --json summary; the rest is start-up")


def pylog_restart(dir: str, segments: int = 1000) -> dict:
    """Seconds of pylog.open after a clean close of one partition with `segments` segments."""
    data = Path(dir) / "pylog"
    if (data / ".kafka_cleanshutdown").exists():     # built in an earlier round: reuse it
        return _timed_open(data)
    # Batches of 24 records of 1 KiB (~25 KB): two fit in a 64 KiB segment, a third rolls it,
    # so 2 x `segments` batches make `segments` segments.  (A batch larger than segment.bytes
    # is refused, as in Kafka.)
    _fill_in_child(data, -2 * segments, clean=True, config={"segment.bytes": 64 * 1024},
                   batch=24)
    return _timed_open(data)


def _timed_open(data: Path) -> dict:
    found = len(list(data.rglob("*.log")))
    pylog = _pylog()
    with Timer() as t:
        log = pylog.open(str(data))
    log.close()
    return dict(records=found, bytes=_log_bytes(data), seconds=t.seconds, cpu_client=t.cpu,
                note=f"{found} segments")
