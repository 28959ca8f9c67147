"""pylog-fsck and a damaged topic-metadata.json (issue 18, defect 4): an error (exit 4)
that --repair rebuilds as pylog.open would — from .prev reconciled with the partition
directories, else from the directories with default configs — so the repair exits 1
and the next check 0; the damaged file is kept in quarantine/."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pylog
from pylog.fsck import main as fsck_main
from pylog.storage import files, metadata

META = files.METADATA_FILE
PREV = metadata.PREV_FILE
CONFIG = {"retention.ms": 1234, "index.interval.bytes": 256, "segment.bytes": 4096}


def fsck(d, *args) -> tuple[int, list]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = fsck_main([str(d), "--json", *args])
    return code, json.loads(out.getvalue())["findings"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """orders (2 partitions, several segments, explicit configs), then audit (created
    last: in the main file but not in .prev)."""
    d = tmp_path_factory.mktemp("fsck-meta") / "d"
    with pylog.open(d) as log:
        t = log.create_topic("orders", 2, CONFIG)
        for i in range(200):
            t.append(b"order-%03d" % i + b"." * 40, partition=i % 2)
        log.create_topic("audit").append(b"audit-0")
    return d


def copy_of(template, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(template, d)
    return d


def damage(d, name, how):
    path = d / name
    raw = bytearray(path.read_bytes())
    if how == "flip":
        raw[len(raw) // 2] ^= 0x10
    elif how == "zero":
        raw[5] = 0
    elif how == "append":
        raw += b"x"
    elif how == "truncate":
        del raw[len(raw) // 3:]
    elif how == "empty":
        raw = bytearray()
    elif how == "deleted":
        path.unlink()
        return
    path.write_bytes(raw)


def check_log(d, *, configs_kept: bool):
    with pylog.open(d) as log:
        assert log.topics() == ["audit", "orders"]
        assert not [w for w in log.warnings if "metadata" in w]    # nothing left to do
        orders = log.topic("orders")
        assert orders.num_partitions == 2 and log.topic("audit").num_partitions == 1
        assert orders.config.to_dict(only_explicit=True) == (CONFIG if configs_kept
                                                             else {})
        got = sorted(r.value for p in orders.partitions for r in p.iter(0))
        assert got == sorted(b"order-%03d" % i + b"." * 40 for i in range(200))
        assert log.partition("audit", 0).read(0)[0].value == b"audit-0"


@pytest.mark.parametrize("how", ["flip", "zero", "append", "truncate", "empty",
                                 "deleted"])
def test_damaged_metadata_is_an_error_repair_rebuilds_it_from_prev(template, tmp_path,
                                                                   how):
    d = copy_of(template, tmp_path)
    damage(d, META, how)
    code, found = fsck(d)
    meta = [f for f in found if f["kind"] in ("metadata", "metadata-missing")]
    assert code == 4 and meta and meta[0]["severity"] == "error", found
    assert meta[0]["fix"] == "rebuild-metadata" and PREV in meta[0]["message"]
    assert any(f["kind"] == "metadata-rebuild" and "'audit'" in f["message"]
               for f in found), found
    code, found = fsck(d, "--repair")
    assert code == 1, found
    assert all(f["fixed"] for f in found if f["severity"] == "error"), found
    assert fsck(d)[0] == 0
    if how != "deleted":
        assert any(n.endswith(META) for n in os.listdir(d / "quarantine" / "metadata"))
    check_log(d, configs_kept=True)
    assert fsck(d)[0] == 0


@pytest.mark.parametrize("prev", ["flip", "deleted"])
def test_both_damaged_repair_rebuilds_from_directories_with_default_configs(
        template, tmp_path, prev):
    d = copy_of(template, tmp_path)
    damage(d, META, "truncate")
    damage(d, PREV, prev)
    code, found = fsck(d)
    assert code == 4 and any("default configs" in f["message"] for f in found), found
    code, found = fsck(d, "--repair")
    assert code == 1, found
    code, found = fsck(d)
    assert code == 0, found
    check_log(d, configs_kept=False)


def test_a_damaged_prev_alone_is_a_warning_repair_rewrites_it(template, tmp_path):
    d = copy_of(template, tmp_path)
    damage(d, PREV, "zero")
    code, found = fsck(d)
    assert code == 0 and [f["kind"] for f in found if f["severity"] == "warning"] == \
        ["metadata-prev"], found
    assert fsck(d, "--repair")[0] == 1
    assert (d / PREV).read_bytes() == (d / META).read_bytes()
    assert fsck(d)[0] == 0
    check_log(d, configs_kept=True)


def test_metadata_from_a_newer_pylog_is_reported_and_not_rewritten(template, tmp_path):
    d = copy_of(template, tmp_path)
    doc = {"version": 2, "topics": {}}
    doc["crc32c"] = metadata.crc32c(metadata._canonical(doc))
    (d / META).write_text(json.dumps(doc))
    code, found = fsck(d)
    assert code == 4 and any(f["kind"] == "metadata" and f["fix"] is None
                             for f in found), found
    assert fsck(d, "--repair")[0] == 4
    assert json.loads((d / META).read_text()) == doc              # left alone


def test_the_text_report_says_what_repair_did(template, tmp_path):
    d = copy_of(template, tmp_path)
    damage(d, META, "flip")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert fsck_main([str(d), "--repair", "--no-progress"]) == 1
    text = out.getvalue()
    assert "[fixed: rebuild-metadata]" in text and "exit 1" in text


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=st.sampled_from(["flip", "zero", "truncate"]), pos=st.integers(0, 1 << 16),
       bit=st.integers(0, 7))
def test_damage_anywhere_is_found_and_repaired(template, tmp_path_factory, how, pos, bit):
    d = tmp_path_factory.mktemp("any") / "d"
    shutil.copytree(template, d)
    raw = bytearray((d / META).read_bytes())
    pos %= len(raw) - 1                      # (the trailing newline alone carries nothing)
    if how == "flip":
        raw[pos] ^= 1 << bit
    elif how == "zero":
        raw[pos] = 0 if raw[pos] else 1
    else:
        del raw[pos:]
    (d / META).write_bytes(bytes(raw))
    code, found = fsck(d)
    assert code == 4 and any(f["fix"] == "rebuild-metadata" for f in found), found
    assert fsck(d, "--repair")[0] == 1
    assert fsck(d)[0] == 0
    check_log(d, configs_kept=True)
