"""GroupCoordinator.delete_group / OffsetStore.delete_group (Kafka's DeleteGroups) over a
real Log on disk: refused while members are active, tombstones survive a reopen."""
from __future__ import annotations

import pylog
from pylog.broker import groups as G


def _commit(coord, group, *partitions):
    codes = coord.commit_offsets(group, -1, "", [("t", p, 5, -1, None) for p in partitions])
    assert codes == [G.NONE] * len(partitions)


def test_delete_group_removes_its_offsets_for_good(tmp_path):
    with pylog.open(tmp_path / "data") as log:
        log.create_topic("t", partitions=3)
        coord = log.groups
        assert coord.wait_loaded(10)
        _commit(coord, "gone", 0, 1, 2)
        _commit(coord, "kept", 1)
        assert coord.delete_group("gone") == (G.NONE, 3)
        assert coord.fetch_offsets("gone", None) == (G.NONE, {})
        assert [g for g, _ in coord.list_groups()[1]] == ["kept"]
        assert coord.describe_group("gone")[1].state == "Dead"
        assert coord.delete_group("gone") == (G.GROUP_ID_NOT_FOUND, 0)
    with pylog.open(tmp_path / "data") as log:
        coord = log.groups
        assert coord.wait_loaded(10)
        assert [g for g, _ in coord.list_groups()[1]] == ["kept"]
        assert coord.fetch_offsets("gone", [("t", 0)]) == (G.NONE, {("t", 0): None})
        assert coord.fetch_offsets("kept", [("t", 1)])[1][("t", 1)].offset == 5
        _commit(coord, "gone", 0)                  # the id can be used again
        assert coord.fetch_offsets("gone", [("t", 0)])[1][("t", 0)].offset == 5


def test_delete_group_is_refused_while_it_has_members():
    with pylog.open(None) as log:
        log.create_topic("t", partitions=1)
        coord = log.groups
        assert coord.wait_loaded(10)
        answers = []
        coord.join("busy", "", "consumer", [("range", b"")], answers.append,
                   session_timeout_ms=6000, rebalance_timeout_ms=10000)
        assert answers and answers[0].error == G.NONE
        assert coord.delete_group("busy") == (G.NON_EMPTY_GROUP, 0)
        coord.leave("busy", [answers[0].member_id])
        assert coord.delete_group("busy") == (G.NONE, 0)
        assert coord.delete_group("never-seen") == (G.GROUP_ID_NOT_FOUND, 0)
