"""Log and Topic (broker/manager.py): the data directory, its lock and metadata."""
from __future__ import annotations

import json
import os

import pytest

import pylog
from pylog.errors import (InvalidPartitionsError, StorageError, UnknownTopicError)
from pylog.storage import files


def test_metadata_file_is_versioned_json_with_explicit_configs(tmp_path):
    with pylog.open(tmp_path) as log:
        log.create_topic("a", partitions=2, config={"retention.ms": 1000})
        log.create_topic("b")
    doc = json.loads((tmp_path / files.METADATA_FILE).read_text())
    assert isinstance(doc.pop("crc32c"), int)        # FORMAT.md section 9
    assert doc == {"version": 1, "topics": {
        "a": {"partitions": 2, "config": {"retention.ms": 1000}},
        "b": {"partitions": 1, "config": {}}}}
    with pylog.open(tmp_path) as log:
        assert log.topics() == ["a", "b"]
        assert log.topic("a").config.retention_ms == 1000
        assert log.topic("a").num_partitions == 2


def test_lock_file_holds_the_pid_and_is_released_on_close(tmp_path):
    log = pylog.open(tmp_path)
    assert (tmp_path / files.LOCK_FILE).read_text().strip() == str(os.getpid())
    log.close()
    log.close()                                       # idempotent
    pylog.open(tmp_path).close()


def test_delete_topic_removes_directories_metadata_and_checkpoint_entries(tmp_path):
    with pylog.open(tmp_path) as log:
        t = log.create_topic("gone", partitions=3)
        t.append(b"x")
        log.create_topic("stays").partition(0).append(b"y")
        log.delete_topic("gone")
        assert not any(n.startswith("gone-") for n in os.listdir(tmp_path))
        with pytest.raises(UnknownTopicError):
            log.topic("gone")
        with pytest.raises(UnknownTopicError):
            t.partition(0)
        log.create_topic("gone").partition(0).append(b"new")   # a fresh topic
    cp = (tmp_path / files.RECOVERY_POINT_CHECKPOINT).read_text()
    assert "stays 0 1" in cp and "gone 1" not in cp
    with pylog.open(tmp_path) as log:
        assert [r.value for r in log.topic("gone").partition(0).read(0)] == [b"new"]


def test_alter_config_and_create_partitions_persist(tmp_path):
    with pylog.open(tmp_path) as log:
        log.create_topic("t")
        log.alter_topic_config("t", {"flush.messages": 1, "segment.bytes": 65536})
        log.create_partitions("t", 3)
        with pytest.raises(InvalidPartitionsError):
            log.create_partitions("t", 2)
        log.topic("t").partition(2).append(b"z")
    with pylog.open(tmp_path) as log:
        t = log.topic("t")
        assert t.num_partitions == 3 and t.config.flush_messages == 1
        assert t.partition(2).read(0)[0].value == b"z"


def test_stray_partition_directories_are_reported_and_left_alone(tmp_path):
    with pylog.open(tmp_path) as log:
        log.create_topic("t")
    (tmp_path / "orphan-0").mkdir()
    (tmp_path / "orphan-0" / "00000000000000000000.log").write_bytes(b"data")  # not empty
    with pylog.open(tmp_path) as log:
        assert any("orphan-0" in w for w in log.warnings)
        assert log.topics() == ["t"]
    assert (tmp_path / "orphan-0").exists()


def test_unreadable_metadata_falls_back_to_the_previous_generation(tmp_path, caplog):
    # Issue 18, defect 4: the whole directory used to be refused.  Now the previous
    # generation (or the partition directories) is used, with a WARNING naming it.
    with pylog.open(tmp_path) as log:
        log.create_topic("t", partitions=2, config={"retention.ms": 1000})
        log.create_topic("u").partition(0).append(b"x")
    (tmp_path / files.METADATA_FILE).write_text("{not json")
    with caplog.at_level("WARNING", logger="pylog.manager"):
        with pylog.open(tmp_path) as log:
            assert log.topics() == ["t", "u"]
            assert log.topic("t").num_partitions == 2
            assert log.topic("t").config.retention_ms == 1000
            assert log.partition("u", 0).read(0)[0].value == b"x"
    assert "topic-metadata.json.prev" in caplog.text and "'u' recovered" in caplog.text
    json.loads((tmp_path / files.METADATA_FILE).read_text())     # rewritten, good


def test_metadata_from_a_newer_pylog_is_refused_not_guessed(tmp_path):
    # A checksum-valid file this pylog cannot read is not damage: refuse, name it.
    from pylog.storage import metadata
    with pylog.open(tmp_path) as log:
        log.create_topic("t")
    doc = {"version": 2, "topics": {}}
    doc["crc32c"] = metadata.crc32c(metadata._canonical(doc))
    (tmp_path / files.METADATA_FILE).write_text(json.dumps(doc))
    with pytest.raises(StorageError, match="newer pylog"):
        pylog.open(tmp_path)
    assert list((tmp_path / "t-0").glob("*.log"))   # nothing touched
    pylog.open(tmp_path / "other").close()          # the lock was released


def test_operations_after_close_are_refused(tmp_path):
    log = pylog.open(tmp_path)
    p = log.create_topic("t").partition(0)
    log.close()
    with pytest.raises(StorageError):
        log.create_topic("u")
    with pytest.raises(StorageError):
        p.append(b"late")
    assert (tmp_path / files.CLEAN_SHUTDOWN_FILE).exists()


def test_many_partitions_reopen_cleanly(tmp_path):
    with pylog.open(tmp_path) as log:
        t = log.create_topic("wide", partitions=16)
        for i in range(64):
            t.append(b"%d" % i, key=b"%d" % i)
        ends = [p.log_end_offset for p in t.partitions]
    with pylog.open(tmp_path) as log:
        t = log.topic("wide")
        assert [p.log_end_offset for p in t.partitions] == ends and sum(ends) == 64
        assert all(r.mode == "clean" for r in log.recovery_reports)
        assert len(log.recovery_reports) == 16


def test_altered_limits_apply_to_the_active_segment_at_once(tmp_path):
    from pylog.errors import RecordTooLargeError
    with pylog.open(tmp_path) as log:
        p = log.create_topic("t").partition(0)
        p.append(b"x" * 5000)
        log.alter_topic_config("t", {"max.message.bytes": 2000})
        with pytest.raises(RecordTooLargeError):
            p.append(b"x" * 5000)
        log.alter_topic_config("t", {"segment.bytes": 1 << 14})
        for _ in range(30):
            p.append(b"y" * 1000)
        assert len(p.segments) > 1 and all(s.size <= 1 << 14 for s in p.segments[1:])


def test_a_data_dir_that_is_a_file_is_a_storage_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StorageError, match="data directory"):
        pylog.open(tmp_path / "f")
