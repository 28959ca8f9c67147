"""An interrupted topic creation (issue 18, defect 9) never leaves a directory that
fsck flags forever: the metadata is written first, so a crash leaves a topic whose
missing partition directories the next open creates; directories without metadata and
without records (an older pylog's interrupted creation) are removed by the next open
and are only a warning for pylog-fsck."""
from __future__ import annotations

import contextlib
import io
import json

import pylog
from pylog.fsck import main as fsck_main
from pylog.storage import files


def fsck(d) -> tuple[int, list]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = fsck_main([str(d), "--json"])
    return code, json.loads(out.getvalue())["findings"]


def test_metadata_is_on_disk_before_the_partition_directories(tmp_path, monkeypatch):
    d = tmp_path / "d"
    log = pylog.open(d)
    seen = []
    real = log._load_partition

    def spy(name, i, *a):
        seen.append((i, json.loads((d / files.METADATA_FILE).read_text())["topics"]))
        return real(name, i, *a)

    monkeypatch.setattr(log, "_load_partition", spy)
    log.create_topic("t", 3)
    assert [i for i, _ in seen] == [0, 1, 2]
    assert all(topics["t"]["partitions"] == 3 for _, topics in seen)
    log.close()


def test_a_crash_after_the_metadata_leaves_a_topic_the_next_open_completes(tmp_path):
    d = tmp_path / "d"
    log = pylog.open(d)
    log.create_topic("t", 3)
    log._simulate_crash()
    import shutil
    shutil.rmtree(d / "t-1")                       # never created
    shutil.rmtree(d / "t-2")
    code, found = fsck(d)
    assert code == 0, found
    with pylog.open(d) as log:
        assert log.topic("t").num_partitions == 3
        assert log.partition("t", 2).append(b"x") == 0
    code, found = fsck(d)
    assert code == 0 and not [f for f in found if f["severity"] != "info"], found


def test_directories_without_metadata_and_records_are_removed_on_open(tmp_path):
    d = tmp_path / "d"
    log = pylog.open(d)
    log.create_topic("t", 2)
    log._simulate_crash()
    (d / files.METADATA_FILE).unlink()             # as if its write never landed
    code, found = fsck(d)
    assert code == 0 and [f["kind"] for f in found if f["severity"] != "info"] == \
        ["orphan-partition-dirs"], found
    with pylog.open(d) as log:
        assert log.topics() == []
        assert any("interrupted creation" in w for w in log.warnings)
    assert not (d / "t-0").exists() and not (d / "t-1").exists()
    code, found = fsck(d)
    assert code == 0 and not [f for f in found if f["severity"] != "info"], found


def test_a_directory_with_records_is_never_removed(tmp_path):
    d = tmp_path / "d"
    log = pylog.open(d)
    log.create_topic("t", 1).partition(0).append(b"keep me")
    log.close()
    (d / files.METADATA_FILE).unlink()
    assert fsck(d)[0] == 4                          # metadata missing, data present
    with pylog.open(d) as log:                      # rebuilt from the directories
        assert any("recovered from its partition directories" in w for w in log.warnings)
        assert log.partition("t", 0).read(0)[0].value == b"keep me"
    assert list((d / "t-0").glob("*.log"))
    assert fsck(d)[0] == 0                          # and the metadata is good again


def test_a_directory_named_like_a_partition_holding_other_files_is_left_alone(tmp_path):
    with pylog.open(tmp_path) as log:
        log.create_topic("kept")
    notes = tmp_path / "backup-1"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    with pylog.open(tmp_path) as log:
        assert any("backup-1" in w for w in log.warnings)
    assert (notes / "notes.txt").read_text() == "mine"


def test_creating_a_topic_over_leftover_records_quarantines_them(tmp_path):
    with pylog.open(tmp_path) as log:
        log.create_topic("other")
    meta = tmp_path / "topic-metadata.json"
    # a partition directory with records that the metadata does not list (copied in by
    # hand, or left by another tool)
    (tmp_path / "old-0").mkdir()
    src = pylog.open(None)
    try:
        src.create_topic("x").append(b"precious")
        for f in src.topic("x").partition(0).directory.iterdir():
            if f.suffix == ".log":
                (tmp_path / "old-0" / f.name).write_bytes(f.read_bytes())
    finally:
        src.close()
    assert meta.exists()
    with pylog.open(tmp_path) as log:
        log.create_topic("old")
        assert log.topic("old").partition(0).high_watermark == 0
    moved = list((tmp_path / "quarantine" / "old-0").glob("*-old-0"))
    assert len(moved) == 1 and any(p.suffix == ".log" for p in moved[0].iterdir())
