"""fsck agrees with the C core's own writer (no storage engine in between): logs
built segment by segment with pl_segment_append (rolling on PL_EFULL, client-built
compressed batches included) check clean, after a clean seal and after an unclean
stop, with and without --deep; and fsck's index rebuild gives exactly the indexes
the C core wrote."""
from __future__ import annotations

import pytest

from pylog.fsck import run
from rel_builder import build_data_dir


@pytest.mark.parametrize("clean", [True, False])
def test_c_core_logs_check_clean(scratch, clean):
    build_data_dir(scratch / "d", {"a": 2, "b.c": 1}, batches=120, clean=clean,
                   compressed_every=5, seed=3)
    for deep in (False, True):
        r = run(str(scratch / "d"), deep=deep)
        assert r.exit_code() == 0, [f.to_json() for f in r.findings]
        assert r.batches == 360 and r.segments >= 6


def test_rebuilt_indexes_equal_what_the_c_core_wrote(scratch):
    d = scratch / "d"
    build_data_dir(d, {"a": 1}, batches=150, clean=True, seed=4)
    pdir = d / "a-0"
    originals = {p.name: p.read_bytes() for p in pdir.iterdir()
                 if p.suffix in (".index", ".timeindex")}
    for name in originals:
        (pdir / name).write_bytes(b"  ")          # Kafka's testCorruptIndexRebuild
    assert run(str(d), repair=True).exit_code() == 1
    assert {n: (pdir / n).read_bytes() for n in originals} == originals
