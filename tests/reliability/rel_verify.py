"""Independent checks of a data directory after damage and repair: what the log
holds must be a prefix of what was written, read back through ``pylog.open``, and
every offset and timestamp lookup must agree with a brute-force scan."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pylog


def snapshot(data: Path) -> dict[str, str]:
    """{relative path: sha1} of every file: 'a repair changed nothing' means equal."""
    out = {}
    for root, _, names in os.walk(data):
        for n in names:
            p = Path(root) / n
            if n == ".lock":
                continue
            out[str(p.relative_to(data))] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def read_all(data: Path) -> dict[tuple[str, int], list]:
    """Every record of every partition, read through the storage engine."""
    out = {}
    with pylog.open(str(data)) as log:
        for name in log.topics():
            t = log.topic(name)
            for i in range(t.num_partitions):
                p = t.partition(i)
                out[(name, i)] = list(p.iter(p.log_start_offset))
    return out


def check_lookups(data: Path, expected: dict, lost: dict, full: set | None = None,
                  sample: int = 40, rng=None) -> dict:
    """Open the log; each partition must hold exactly the expected records below its
    lost point (lost[(t, p)] = first offset allowed to be gone, or absent for none),
    and past it those below the log end that no recorded lost range covers,
    and read(offset) / offset_for_time(ts) must match brute force: for every offset
    and timestamp in the partitions of ``full`` (None: all), for ``sample`` random
    ones elsewhere.  Returns counts."""
    import random
    rng = rng or random.Random(0)
    n_off = n_ts = 0
    with pylog.open(str(data)) as log:
        for (topic, part), recs in expected.items():
            p = log.topic(topic).partition(part)
            cut = lost.get((topic, part))
            # past the damage point: what a salvage kept (below the log end and in no
            # range lost-offsets.json records) must be there too (storage/salvage.py)
            gone = [(g["start"], g["end"]) for g in p.lost.ranges]
            want = [r for r in recs if cut is None or r.offset < cut or (
                r.offset < p.log_end_offset and not any(a <= r.offset < b for a, b in gone))]
            got = list(p.iter(p.log_start_offset))
            assert [tuple(r[:4]) for r in got] == [tuple(r[:4]) for r in want], \
                f"{topic}-{part}: records differ from the undamaged prefix"
            assert p.log_end_offset == (want[-1].offset + 1 if want else p.log_start_offset)
            every = full is None or (topic, part) in full
            probe = want if every or len(want) <= sample else rng.sample(want, sample)
            for r in probe:
                one = p.read(r.offset, max_records=1)
                assert one and one[0].offset == r.offset and one[0].value == r.value
                n_off += 1
            stamps = sorted({r.timestamp for r in want} |
                            {r.timestamp + 1 for r in want[::7]} | {0})
            if not every and len(stamps) > sample:
                stamps = sorted(rng.sample(stamps, sample))
            for ts in stamps:
                brute = next((r.offset for r in want if r.timestamp >= ts), None)
                assert p.offset_for_time(ts) == brute, (topic, part, ts)
                n_ts += 1
    return {"offsets": n_off, "timestamps": n_ts}
