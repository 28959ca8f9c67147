"""Checking one crash state for tools/powerloss.py: open (recovery), read every
partition from its start, close, pylog-fsck (and --repair on exit 4).

What counts (tools/powerloss.py describes the run): VIOLATIONS must all be 0;
COUNTS are figures.  Values are crashloop.value_for(seed, seq, i) with the
partition in seq's low 6 bits and the timestamp derived from seq, so any wrong
byte of a record served is seen.
"""
from __future__ import annotations

import struct
from pathlib import Path

from crashloop import value_for

TOPIC_NO = {"durable": 0, "late": 1}         # a partition is seq & 63 == 8 * no + p

COUNTS = ("records", "acked_checked", "corrupt_raised", "dropped_data_bytes",
          "changed_pages", "torn_pages", "lost_ranges_crossed")
VIOLATIONS = ("lost", "inconsistent", "corrupt_served", "gaps", "duplicates",
              "recovery_failures", "read_errors", "fsck_failures", "crashes", "hangs",
              "lost_after_repair")


def seq_partition(topic: str, part: int) -> int:
    return TOPIC_NO[topic] * 8 + part


def timestamp_for(seq: int) -> int:
    return 1_700_000_000_000 + (seq >> 6)


def check_partition(p, acked: dict, vseed: int, res: dict) -> None:
    """Read the partition from its start; count what violates the contract."""
    import pylog
    g = seq_partition(p.topic, p.partition)
    got, seen = {}, set()
    expect = p.log_start_offset
    try:
        for r in p.iter(expect):
            if r.offset != expect:
                if _explained(p, expect, r.offset):
                    res["lost_ranges_crossed"] += 1
                else:
                    res["gaps"] += 1
                    res["problems"].append(f"{p.topic}-{p.partition}: {r.offset} after "
                                           f"{expect - 1} (no lost range says why)")
            expect = r.offset + 1
            v = r.value or b""
            seq, i = struct.unpack(">QI", v[:12]) if len(v) >= 12 else (-1, -1)
            if (seq < 0 or seq & 63 != g or v != value_for(vseed, seq, i)
                    or r.timestamp != timestamp_for(seq) or r.key is not None):
                res["corrupt_served"] += 1
                res["problems"].append(f"{p.topic}-{p.partition}@{r.offset}: wrong "
                                       f"bytes served ({v[:24]!r})")
                continue
            if (seq, i) in seen:
                res["duplicates"] += 1
                res["problems"].append(f"{p.topic}-{p.partition}@{r.offset}: "
                                       f"duplicate of seq {seq}/{i}")
            seen.add((seq, i))
            got[r.offset] = (seq, i)
    except pylog.CorruptRecordError as e:
        res["corrupt_raised"] += 1
        res["problems"].append(f"{p.topic}-{p.partition}: CorruptRecordError: {e}")
    except Exception as e:                          # noqa: BLE001 -- a read must not
        res["read_errors"] += 1                     # fail any other way
        res["problems"].append(f"{p.topic}-{p.partition}: read from {expect} raised "
                               f"{_where(e)}")
        _probe_acked(p, acked, got, expect, vseed)
    res["records"] += len(got)
    check_acked(f"{p.topic}-{p.partition}", got, acked, res)


def _explained(p, start: int, end: int) -> bool:
    """Is [start, end) inside the lost ranges recovery recorded (lost-offsets.json)?"""
    at = start
    for r in sorted(getattr(getattr(p, "lost", None), "ranges", None) or (),
                    key=lambda r: r["start"]):
        if r["start"] <= at < r["end"]:
            at = r["end"]
    return at >= end


def _probe_acked(p, acked: dict, got: dict, start: int, vseed: int) -> None:
    """After a failed scan: read each acknowledged offset from ``start`` on by
    itself, so *lost* counts only records that are not there."""
    for off in sorted(o for o in acked if o >= start and o not in got):
        try:
            recs = p.read(off, max_records=1)
        except Exception:                           # noqa: BLE001 -- counted above
            continue
        if recs and recs[0].offset == off and len(recs[0].value or b"") >= 12:
            v = recs[0].value
            seq, i = struct.unpack(">QI", v[:12])
            if v == value_for(vseed, seq, i):
                got[off] = (seq, i)


def _where(e: BaseException) -> str:
    """``Type: message at file:line`` of the innermost frame."""
    import traceback
    tb = traceback.extract_tb(e.__traceback__)[-1:] or [None]
    at = f" at {Path(tb[0].filename).name}:{tb[0].lineno}" if tb[0] else ""
    return f"{type(e).__name__}: {e}{at}"


def check_acked(where: str, got: dict, acked: dict, res: dict, key: str = "lost") -> None:
    res["acked_checked"] += len(acked)
    for off, want in sorted(acked.items()):
        have = got.get(off)
        if have == want:
            continue
        kind = key if have is None else "inconsistent"
        res[kind] += 1
        if res[kind] <= 3:
            res["problems"].append(f"{where}@{off}: acked {want}, "
                                   f"{'missing' if have is None else f'holds {have}'}")


def check_state(data: Path, acked: dict, vseed: int) -> dict:
    """Open (recovery), read everything, close, fsck (and repair on exit 4)."""
    import pylog
    from pylog.fsck import run as fsck_run
    res = {k: 0 for k in VIOLATIONS + COUNTS}
    res.update(problems=[], fsck_exit=None, fsck_kinds=[], repair_exit=None)
    try:
        log = pylog.open(str(data))
    except Exception as e:                          # noqa: BLE001
        res["recovery_failures"] = 1
        res["problems"].append(f"open failed: {_where(e)}")
        return res
    for rep in log.recovery_reports:
        dropped = sum(r.get("dropped_data_bytes", 0) or 0 for r in rep.recovered or ())
        res["dropped_data_bytes"] += dropped
    try:
        present = set()
        for name in log.topics():
            t = log.topic(name)
            for part in range(t.num_partitions):
                present.add((name, part))
                check_partition(t.partition(part), acked.get((name, part), {}), vseed, res)
        for key in sorted(set(acked) - present):
            check_acked(f"{key[0]}-{key[1]} (no such partition)", {}, acked[key], res)
    finally:
        try:
            log.close()
        except Exception as e:                      # noqa: BLE001
            res["read_errors"] += 1
            res["problems"].append(f"close raised {_where(e)}")
    try:
        rep = fsck_run(str(data))
    except Exception as e:                          # noqa: BLE001
        res["fsck_failures"] = 1
        res["problems"].append(f"pylog-fsck raised {_where(e)}")
        return res
    res["fsck_exit"] = rep.exit_code()
    if res["fsck_exit"] not in (0, 4):
        res["fsck_failures"] = 1
        res["problems"].append(f"pylog-fsck exit {res['fsck_exit']}")
    res["fsck_kinds"] = sorted({f.kind for f in rep.findings if f.severity == "error"})
    if res["fsck_exit"] == 4:
        try:
            _repair_and_recheck(data, acked, res)
        except Exception as e:                      # noqa: BLE001
            res["fsck_failures"] = 1
            res["problems"].append(f"pylog-fsck --repair, then open: {_where(e)}")
    return res


def _repair_and_recheck(data: Path, acked: dict, res: dict) -> None:
    """fsck --repair, then every acknowledged record must still be there."""
    import pylog
    from pylog.fsck import run as fsck_run
    res["repair_exit"] = fsck_run(str(data), repair=True).exit_code()
    after = {"lost_after_repair": 0, "inconsistent": 0, "acked_checked": 0, "problems": []}
    with pylog.open(str(data)) as log:
        for (name, part), want in acked.items():
            got = {}
            if log.has_topic(name) and part < log.topic(name).num_partitions:
                p = log.topic(name).partition(part)
                got = {r.offset: struct.unpack(">QI", (r.value or b"")[:12])
                       for r in p.iter(p.log_start_offset)}
            check_acked(f"{name}-{part} after repair", got, want, after,
                        "lost_after_repair")
    res["lost_after_repair"] = after["lost_after_repair"] + after["inconsistent"]
    res["problems"] += after["problems"]
