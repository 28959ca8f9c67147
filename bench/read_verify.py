"""What read-side verification costs (issue 18): read and fetch-path throughput of a log
reopened after a clean close, first pass (every batch's CRC-32C checked once) and second
pass (the verified-chunk bitmap says the bytes were checked).

    python -m bench.read_verify [--records 2000000] [--rounds 5]

Only public API, so the same script measures an older checkout for the before/after
row: ``PYTHONPATH=<old checkout> python bench/read_verify.py``.  Prints medians over the
rounds (each round a fresh ``pylog.open`` of the same data, page cache warm).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import pylog


def build(d: str, records: int, size: int) -> None:
    log = pylog.open(d)
    p = log.create_topic("b", config={"segment.bytes": 64 << 20}).partition(0)
    value = b"x" * size
    for _ in range(records // 1000):
        p.append_batch([value] * 1000)
    log.close()


def read_all(p) -> int:
    n, off = 0, 0
    while True:
        recs = p.read(off, 10_000, 1 << 22)
        if not recs:
            return n
        n += len(recs)
        off = recs[-1].offset + 1


def fetch_all(p) -> int:
    """The Fetch path: read_raw (zero-copy batches) in 1 MiB requests."""
    nbytes, off, end = 0, 0, p.log_end_offset
    while off < end:
        view = p.read_raw(off, 1 << 20)
        nbytes += view.nbytes
        off = _next_offset(view)
    return nbytes


def _next_offset(view) -> int:
    """Offset after the last batch in ``view`` (walks the batch headers)."""
    pos, last, b = 0, 0, view
    while pos < b.nbytes:
        base = int.from_bytes(b[pos:pos + 8], "big")
        length = int.from_bytes(b[pos + 8:pos + 12], "big")
        delta = int.from_bytes(b[pos + 23:pos + 27], "big")
        last = base + delta
        pos += 12 + length
    return last + 1


def timed(fn, p) -> tuple[float, int]:
    t = time.perf_counter()
    n = fn(p)
    return time.perf_counter() - t, n


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pylog-readverify-") as d:
        build(d, a.records, a.size)
        rows: dict[str, list[float]] = {}
        for _ in range(a.rounds):
            for name, fn, unit in (("read", read_all, "rec"), ("fetch", fetch_all, "B")):
                log = pylog.open(d)
                p = log.partition("b", 0)
                for pas in ("first", "second"):
                    secs, n = timed(fn, p)
                    rows.setdefault(f"{name} {pas} pass ({unit}/s)", []).append(n / secs)
                log.close()
        print(f"pylog {pylog.__file__}  records={a.records} size={a.size} rounds={a.rounds}")
        for k, v in rows.items():
            print(f"  {k:28s} median {statistics.median(v):14,.0f}  "
                  f"spread {(max(v) - min(v)) / 2 / statistics.median(v):.1%}")


if __name__ == "__main__":
    main()
