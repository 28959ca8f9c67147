"""topic-metadata.json is no single point of failure (issue 18, defect 4): every write
keeps the previous generation as ``.prev`` and a crc32c detects damage that is still
valid JSON; a damaged main file falls back to ``.prev`` reconciled with the partition
directories, then to the directories alone, with a WARNING, and is rewritten.  Real
files throughout: the damage is done to the bytes on disk."""
from __future__ import annotations

import json
import logging
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pylog
from pylog.errors import StorageError
from pylog.storage import files, metadata

META = files.METADATA_FILE
PREV = metadata.PREV_FILE
CONFIGS = {"a": {"retention.ms": 1000, "index.interval.bytes": 512},
           "b": {"cleanup.policy": "compact,delete", "flush.ms": None}}
COUNTS = {"a": 2, "b": 1, "c": 3}


def build(d) -> dict:
    """a (2 partitions) and b (1) with configs, then c (3, created last: not in .prev).
    Returns {(topic, partition): [values]}."""
    values = {}
    with pylog.open(d) as log:
        for name in ("a", "b", "c"):
            t = log.create_topic(name, COUNTS[name], CONFIGS.get(name))
            for p in range(COUNTS[name]):
                vals = [b"%s-%d-%d" % (name.encode(), p, i) for i in range(5)]
                for v in vals:
                    t.append(v, partition=p)
                values[(name, p)] = vals
    return values


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("template") / "d")
    return d, build(d)


def copy_of(template, where) -> str:
    d = os.path.join(where, "d")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(template[0], d)
    return d


def check_opens_whole(d, values, *, configs_kept: bool, caplog=None) -> list[str]:
    """Open d: every topic, partition count and record; configs of a and b when .prev
    was usable (c, created after .prev, always has the defaults).  Returns warnings."""
    with pylog.open(d) as log:
        assert log.topics() == ["a", "b", "c"]
        for name, n in COUNTS.items():
            t = log.topic(name)
            assert t.num_partitions == n
            want = CONFIGS.get(name, {}) if configs_kept else {}
            assert t.config.to_dict(only_explicit=True) == want, name
            for p in range(n):
                got = [r.value for r in t.partition(p).iter(0)]
                assert got == values[(name, p)]
        warnings = list(log.warnings)
    assert metadata.read_generation(d).ok                  # rewritten, good again
    with pylog.open(d) as log:                              # and used as is next time
        assert not [w for w in log.warnings if "metadata" in w]
        assert log.topic("a").num_partitions == 2
    return warnings


def damage(path: str, how: str, pos: int = 0, bit: int = 0) -> None:
    raw = bytearray(open(path, "rb").read())
    pos %= len(raw)
    if how == "flip":
        raw[pos] ^= 1 << bit
    elif how == "zero":
        raw[pos] = 0
    elif how == "append":
        raw.append(pos & 0xFF)
    elif how == "truncate":
        del raw[pos:]
    elif how == "empty":
        raw = bytearray()
    with open(path, "wb") as fh:
        fh.write(raw)


def test_each_write_keeps_the_previous_generation(tmp_path):
    d = tmp_path / "d"
    with pylog.open(d) as log:
        log.create_topic("x")
        assert not (d / PREV).exists()                      # nothing before the first
        first = (d / META).read_bytes()
        log.create_topic("y", 2)
        assert (d / PREV).read_bytes() == first
        second = (d / META).read_bytes()
        log.alter_topic_config("x", {"retention.ms": 5})
        assert (d / PREV).read_bytes() == second
    doc = json.loads((d / META).read_text())
    stored = doc.pop("crc32c")
    assert stored == metadata.crc32c(json.dumps(doc, sort_keys=True, separators=(",", ":"))
                                     .encode())


def test_a_damaged_main_file_is_not_copied_over_a_good_prev(tmp_path):
    d = tmp_path / "d"
    with pylog.open(d) as log:
        log.create_topic("x")
        log.create_topic("y")
    good_prev = (d / PREV).read_bytes()
    (d / META).write_text("{broken")
    metadata.write(d, {"z": (1, pylog.config.TopicConfig())})
    assert (d / PREV).read_bytes() == good_prev


DAMAGES = [("flip", 0, 0), ("flip", 7, 3), ("flip", -2, 1), ("flip", 40, 6),
           ("zero", 0, 0), ("zero", 25, 0), ("zero", -3, 0),
           ("append", ord("x"), 0), ("append", 0, 0), ("append", ord("}"), 0),
           ("truncate", 1, 0), ("truncate", 60, 0), ("truncate", -2, 0),
           ("empty", 0, 0)]


@pytest.mark.parametrize("how,pos,bit", DAMAGES)
def test_damaged_main_falls_back_to_prev_and_keeps_everything(template, tmp_path, caplog,
                                                              how, pos, bit):
    d = copy_of(template, tmp_path)
    damage(os.path.join(d, META), how, pos, bit)
    with caplog.at_level(logging.WARNING, logger="pylog.manager"):
        warnings = check_opens_whole(d, template[1], configs_kept=True)
    assert any(PREV in w for w in warnings), warnings
    assert any("'c' recovered from its partition directories: 3 partitions" in w
               for w in warnings), warnings
    assert PREV in caplog.text                              # logged at WARNING
    kept = os.listdir(os.path.join(d, "quarantine", "metadata"))
    assert any(n.endswith(META) for n in kept)              # the damaged file is kept


def test_deleted_main_with_prev_present(template, tmp_path):
    d = copy_of(template, tmp_path)
    os.unlink(os.path.join(d, META))
    warnings = check_opens_whole(d, template[1], configs_kept=True)
    assert any(f"{META} is missing" in w and PREV in w for w in warnings), warnings


@pytest.mark.parametrize("prev_damage", ["flip", "truncate", "empty", "deleted"])
def test_both_damaged_rebuilds_from_directories_and_says_configs_were_reset(
        template, tmp_path, caplog, prev_damage):
    d = copy_of(template, tmp_path)
    damage(os.path.join(d, META), "flip", 11, 2)
    if prev_damage == "deleted":
        os.unlink(os.path.join(d, PREV))
    else:
        damage(os.path.join(d, PREV), prev_damage, 30, 4)
    with caplog.at_level(logging.WARNING, logger="pylog.manager"):
        warnings = check_opens_whole(d, template[1], configs_kept=False)
    assert any("configs were reset to the defaults" in w for w in warnings), warnings
    assert "configs were reset" in caplog.text


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=st.sampled_from(["flip", "zero", "append", "truncate"]),
       pos=st.integers(0, 4095), bit=st.integers(0, 7), both=st.booleans())
def test_any_single_byte_damage_loses_no_topic_or_record(template, tmp_path, how, pos,
                                                         bit, both):
    d = copy_of(template, tmp_path)
    size = os.path.getsize(os.path.join(d, META))
    if how == "truncate":
        pos %= size - 1                  # the trailing newline alone is not damage
    damage(os.path.join(d, META), how, pos, bit)
    if both:
        damage(os.path.join(d, PREV), how, pos, bit)
    detected = not metadata.read_generation(d).ok
    if how in ("flip", "zero", "truncate"):
        assert detected, (how, pos, bit)  # the checksum or the parser catches each one
    prev_ok = metadata.read_generation(d, PREV).ok
    warnings = check_opens_whole(d, template[1], configs_kept=not detected or prev_ok)
    assert detected == any("metadata" in w for w in warnings)


def test_partitions_added_after_prev_are_kept(tmp_path):
    d = tmp_path / "d"
    with pylog.open(d) as log:
        t = log.create_topic("t", 1, {"retention.ms": 7})
        log.create_partitions("t", 3)                       # the last write
        t.append(b"late", partition=2)
    (d / META).write_text("")
    with pylog.open(d) as log:
        t = log.topic("t")
        assert t.num_partitions == 3 and t.config.retention_ms == 7
        assert t.partition(2).read(0)[0].value == b"late"
        assert any("3 partitions from its directories" in w for w in log.warnings)


def test_a_topic_deleted_after_prev_is_not_restored(tmp_path):
    d = tmp_path / "d"
    with pylog.open(d) as log:
        log.create_topic("keep").append(b"k")
        log.create_topic("gone").append(b"g")
        log.delete_topic("gone")                            # the last write
    (d / META).write_bytes(b"\0" * 10)
    with pylog.open(d) as log:
        assert log.topics() == ["keep"]
        assert any("'gone'" in w and "not restored" in w for w in log.warnings)


def test_a_file_written_before_the_checksum_is_still_read(tmp_path):
    d = tmp_path / "d"
    with pylog.open(d) as log:
        log.create_topic("old", 2, {"retention.ms": 99})
    (d / PREV).unlink(missing_ok=True)
    (d / META).write_text(json.dumps({"version": 1, "topics": {
        "old": {"partitions": 2, "config": {"retention.ms": 99}}}}))
    with pylog.open(d) as log:
        assert log.topic("old").num_partitions == 2 and not log.warnings
        assert log.topic("old").config.retention_ms == 99
        log.create_topic("new")
    assert "crc32c" in json.loads((d / META).read_text())


def test_a_damaged_old_file_without_checksum_falls_back(tmp_path):
    d = tmp_path / "d"
    with pylog.open(d) as log:
        log.create_topic("old").append(b"v")
    (d / PREV).unlink(missing_ok=True)
    (d / META).write_text('{"version": 1, "topics": {"old": {"partitions": -1}}}')
    with pylog.open(d) as log:
        assert log.topic("old").partition(0).read(0)[0].value == b"v"
        assert any("configs were reset" in w for w in log.warnings)


def test_a_good_file_is_authoritative_over_the_directories(tmp_path):
    # Reconciliation is only for a fallback: with a good main file a stray directory
    # with records is reported and left alone, as before.
    d = tmp_path / "d"
    with pylog.open(d) as log:
        log.create_topic("t").append(b"x")
    with pylog.open(tmp_path / "other") as log:
        log.create_topic("stray").append(b"s")
    shutil.copytree(tmp_path / "other" / "stray-0", d / "stray-0")
    with pylog.open(d) as log:
        assert log.topics() == ["t"]
        assert any("stray-0" in w and "left untouched" in w for w in log.warnings)


def test_an_unreadable_prev_with_a_newer_version_is_refused(tmp_path):
    d = tmp_path / "d"
    with pylog.open(d) as log:
        log.create_topic("t")
        log.create_topic("u")
    doc = {"version": 9, "topics": {}}
    doc["crc32c"] = metadata.crc32c(metadata._canonical(doc))
    (d / PREV).write_text(json.dumps(doc))
    (d / META).write_text("{")
    with pytest.raises(StorageError, match="refusing to guess"):
        pylog.open(d)
    assert (d / META).read_text() == "{"                   # nothing rewritten
