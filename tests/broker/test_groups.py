"""The group coordinator and the offset store, driven through their Python API over a
real Log (pylog.open on a temporary directory or in memory); no network here."""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pylog
from pylog.broker import groups as G
from pylog.broker.offsets import (OFFSETS_TOPIC, Committed, decode_key, decode_value,
                                  encode_key, encode_value)

PROTO = [("range", b"meta-range"), ("roundrobin", b"meta-rr")]


class Answer:
    """A join/sync callback that records what it was called with."""

    def __init__(self):
        self.results = []

    def __call__(self, result):
        self.results.append(result)

    @property
    def result(self):
        assert len(self.results) == 1, self.results
        return self.results[0]

    @property
    def pending(self):
        return not self.results


@pytest.fixture
def log():
    with pylog.open(None) as lg:
        lg.create_topic("t", partitions=4)
        yield lg


@pytest.fixture
def coord(log):
    c = log.groups
    assert c.wait_loaded(10)
    return c


def join(coord, group="g", member="", protocols=PROTO, session_ms=6000, rebalance_ms=10000,
         ptype="consumer"):
    a = Answer()
    coord.join(group, member, ptype, protocols, a, session_timeout_ms=session_ms,
               rebalance_timeout_ms=rebalance_ms, client_id="c", client_host="/127.0.0.1")
    return a


def sync(coord, r, assignments=None, group="g"):
    a = Answer()
    coord.sync(group, r.generation, r.member_id, assignments, a)
    return a


def stable_group_of_one(coord):
    r = join(coord).result
    assert sync(coord, r, {r.member_id: b"all"}).result == G.SyncResult(0, b"all")
    return r


# -- join / sync ----------------------------------------------------------------------------
def test_first_member_is_leader_and_receives_its_own_metadata(coord):
    r = join(coord).result
    assert r.error == 0 and r.generation == 1 and r.leader == r.member_id
    assert r.member_id.startswith("c-") and r.protocol_name == "range"
    assert r.members == ((r.member_id, None, b"meta-range"),)


def test_new_member_parks_until_existing_member_rejoins(coord):
    a = stable_group_of_one(coord)
    b = join(coord, protocols=[("roundrobin", b"b-rr"), ("range", b"b-range")])
    assert b.pending
    assert coord.heartbeat("g", a.generation, a.member_id) == G.REBALANCE_IN_PROGRESS
    a2 = join(coord, member=a.member_id).result
    b2 = b.result
    assert a2.generation == b2.generation == 2
    assert a2.leader == b2.leader == a.member_id          # the leader stays the leader
    # one vote each: the first maximum (a's first choice) wins
    assert a2.protocol_name == "range"
    assert dict((m, meta) for m, _, meta in a2.members) == {
        a.member_id: b"meta-range", b2.member_id: b"b-range"}
    assert b2.members == ()                                  # followers get no metadata


def test_followers_sync_parks_until_leader_sends_assignments(coord):
    a = stable_group_of_one(coord)
    b = join(coord)
    a2 = join(coord, member=a.member_id).result
    b2 = b.result
    follower = sync(coord, b2)
    assert follower.pending
    leader = sync(coord, a2, {a2.member_id: b"A", b2.member_id: b"B"})
    assert leader.result == G.SyncResult(0, b"A") and follower.result == G.SyncResult(0, b"B")
    assert coord.heartbeat("g", a2.generation, a2.member_id) == 0
    assert coord.describe_group("g")[1].state == "Stable"


def test_unchanged_follower_rejoin_when_stable_is_answered_at_once(coord):
    a = stable_group_of_one(coord)
    b = join(coord)
    a2 = join(coord, member=a.member_id).result
    b2 = b.result
    sync(coord, a2, {a2.member_id: b"A", b2.member_id: b"B"})
    again = join(coord, member=b2.member_id).result
    assert again.generation == b2.generation and again.members == ()
    assert sync(coord, again).result == G.SyncResult(0, b"B")


def test_inconsistent_protocols_are_refused_and_group_unharmed(coord):
    a = stable_group_of_one(coord)
    assert join(coord, protocols=[("sticky", b"")]).result.error == \
        G.INCONSISTENT_GROUP_PROTOCOL
    assert join(coord, ptype="connect").result.error == G.INCONSISTENT_GROUP_PROTOCOL
    assert join(coord, protocols=[]).result.error == G.INCONSISTENT_GROUP_PROTOCOL
    assert coord.heartbeat("g", a.generation, a.member_id) == 0


def test_bad_join_inputs_get_kafka_error_codes(coord):
    assert join(coord, group="").result.error == G.INVALID_GROUP_ID
    assert join(coord, member="nobody").result.error == G.UNKNOWN_MEMBER_ID
    assert join(coord, session_ms=10).result.error == G.INVALID_SESSION_TIMEOUT
    assert coord.list_groups() == (0, [])


# -- heartbeat, leave, timeouts -------------------------------------------------------------
def test_heartbeat_errors_for_unknown_member_stale_generation_and_empty_group_id(coord):
    a = stable_group_of_one(coord)
    assert coord.heartbeat("g", a.generation, "stranger") == G.UNKNOWN_MEMBER_ID
    assert coord.heartbeat("nogroup", 1, a.member_id) == G.UNKNOWN_MEMBER_ID
    assert coord.heartbeat("g", a.generation - 1, a.member_id) == G.ILLEGAL_GENERATION
    assert coord.heartbeat("", a.generation, a.member_id) == G.INVALID_GROUP_ID
    assert sync(coord, a._replace(generation=0)).result.error == G.ILLEGAL_GENERATION
    assert coord.heartbeat("g", a.generation, a.member_id) == 0


def test_leave_rebalances_the_rest_and_last_leave_empties_the_group(coord):
    a = stable_group_of_one(coord)
    b = join(coord)
    a2 = join(coord, member=a.member_id).result
    b2 = b.result
    sync(coord, a2, {})
    assert coord.leave("g", [a2.member_id]) == (0, [0])
    assert coord.heartbeat("g", b2.generation, b2.member_id) == G.REBALANCE_IN_PROGRESS
    b3 = join(coord, member=b2.member_id).result
    assert b3.generation == 3 and b3.leader == b2.member_id
    assert coord.leave("g", [b2.member_id, "ghost"]) == (0, [0, G.UNKNOWN_MEMBER_ID])
    assert coord.describe_group("g")[1].state == "Empty"


def test_expired_session_removes_member_and_rebalances(coord):
    a = join(coord, session_ms=30000).result
    sync(coord, a, {})
    b = join(coord, session_ms=6000)
    a2 = join(coord, member=a.member_id, session_ms=30000).result
    b2 = b.result
    sync(coord, a2, {})
    coord.tick(time.monotonic() + 5)          # within both sessions: nothing happens
    assert coord.heartbeat("g", b2.generation, b2.member_id) == 0
    coord.tick(time.monotonic() + 6.5)        # past b's 6 s session, within a's 30 s
    assert coord.heartbeat("g", b2.generation, b2.member_id) == G.UNKNOWN_MEMBER_ID
    assert coord.heartbeat("g", a2.generation, a2.member_id) == G.REBALANCE_IN_PROGRESS
    assert join(coord, member=a2.member_id, session_ms=30000).result.generation == 3


def test_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout(coord):
    a = stable_group_of_one(coord)
    b = join(coord, rebalance_ms=8000)
    assert b.pending
    coord.tick(time.monotonic() + 11)        # past the largest rebalance timeout (10 s)
    r = b.result
    assert r.error == 0 and r.generation == 2 and r.leader == r.member_id
    assert coord.heartbeat("g", a.generation, a.member_id) == G.UNKNOWN_MEMBER_ID


def test_initial_rebalance_delay_gathers_early_joiners(log):
    from pylog.broker.groups import GroupCoordinator
    coord = GroupCoordinator(log, initial_rebalance_delay_ms=100)
    try:
        coord.wait_loaded(10)
        a, b = join(coord), join(coord)
        assert a.pending and b.pending
        coord.tick(time.monotonic() + 0.2)
        assert a.result.generation == b.result.generation == 1
        assert len([r for r in (a.result, b.result) if r.members]) == 1
    finally:
        coord.close()


def test_close_answers_parked_requests(log):
    from pylog.broker.groups import GroupCoordinator
    coord = GroupCoordinator(log)
    coord.wait_loaded(10)
    a = join(coord).result
    sync(coord, a, {})
    b = join(coord)
    coord.close()
    assert b.result.error == G.COORDINATOR_NOT_AVAILABLE


# -- offsets --------------------------------------------------------------------------------
def test_non_member_commit_is_accepted_only_while_group_is_empty(coord):
    assert coord.commit_offsets("solo", -1, "", [("t", 0, 5, -1, "m")]) == [0]
    assert coord.fetch_offsets("solo", [("t", 0), ("t", 1)]) == (
        0, {("t", 0): Committed(5, -1, "m", coord.offsets.fetch("solo", "t", 0)
                                .commit_timestamp), ("t", 1): None})
    a = stable_group_of_one(coord)
    assert coord.commit_offsets("g", -1, "", [("t", 0, 1, -1, None)]) == [G.UNKNOWN_MEMBER_ID]
    assert coord.commit_offsets("g", a.generation, a.member_id,
                                [("t", 0, 7, -1, None)]) == [0]
    assert coord.fetch_offsets("g", None)[1][("t", 0)].offset == 7


def test_bad_commits_get_per_partition_errors_and_leave_the_rest_committed(coord):
    a = stable_group_of_one(coord)
    entries = [("t", 0, 10, -1, "x" * 4096), ("t", 1, 11, -1, "x" * 4097),
               ("nope", 0, 1, -1, None), ("t", 99, 1, -1, None), ("bad/name", 0, 1, -1, "")]
    codes = coord.commit_offsets("g", a.generation, a.member_id, entries)
    assert codes == [0, G.OFFSET_METADATA_TOO_LARGE, G.UNKNOWN_TOPIC_OR_PARTITION,
                     G.UNKNOWN_TOPIC_OR_PARTITION, G.UNKNOWN_TOPIC_OR_PARTITION]
    assert coord.commit_offsets("g", a.generation + 5, a.member_id,
                                [("t", 2, 1, -1, "")]) == [G.ILLEGAL_GENERATION]
    assert coord.commit_offsets("g", a.generation, "ghost",
                                [("t", 2, 1, -1, "")]) == [G.UNKNOWN_MEMBER_ID]
    got = coord.fetch_offsets("g", None)[1]
    assert list(got) == [("t", 0)] and got[("t", 0)].metadata == "x" * 4096
    assert coord.heartbeat("g", a.generation, a.member_id) == 0


def test_lag_is_log_end_minus_committed(log, coord):
    t = log.topic("t")
    for i in range(10):
        t.append(b"v", partition=i % 2)
    coord.commit_offsets("lagging", -1, "", [("t", 0, 2, -1, ""), ("t", 1, 5, -1, "")])
    assert [(x.partition, x.committed_offset, x.log_end_offset, x.lag)
            for x in coord.lag("lagging")] == [(0, 2, 5, 3), (1, 5, 5, 0)]
    assert {x.group for x in coord.lag()} == {"lagging"}


def test_committed_offsets_survive_clean_close_and_crash(tmp_path):
    d = tmp_path / "data"
    with pylog.open(d) as lg:
        lg.create_topic("t", partitions=2)
        lg.groups.wait_loaded(10)
        lg.groups.commit_offsets("g", -1, "", [("t", 0, 3, 7, "meta")])
    lg = pylog.open(d)
    lg.groups.wait_loaded(10)
    assert lg.groups.offsets.fetch("g", "t", 0)[:3] == (3, 7, "meta")
    lg.groups.commit_offsets("g", -1, "", [("t", 1, 9, -1, "")])
    lg._simulate_crash()                     # no barrier, no checkpoint, no marker
    with pylog.open(d) as lg2:
        lg2.groups.wait_loaded(10)
        assert lg2.groups.fetch_offsets("g", None)[1].keys() == {("t", 0), ("t", 1)}
        assert lg2.groups.offsets.fetch("g", "t", 1).offset == 9


def test_compaction_keeps_the_offsets_topic_small_and_loading_exact(tmp_path):
    from pylog.broker.groups import GroupCoordinator
    d = tmp_path / "data"
    r = 64 << 10
    with pylog.open(d, log_cleaner_enable=False) as lg:
        lg.create_topic("t", partitions=4)
        coord = GroupCoordinator(lg, offsets_retention_bytes=r)
        coord.wait_loaded(10)
        for n in range(3000):
            coord.commit_offsets(f"g{n % 7}", -1, "", [("t", n % 4, n, -1, "m" * (n % 13))])
        coord.offsets.delete_offsets("g0", [("t", 0)])
        p = lg.topic(OFFSETS_TOPIC).partition(0)
        assert p.config.cleanup_policy == ("compact",)
        expected = {g: coord.offsets.group_offsets(g) for g in coord.offsets.group_ids()}
        assert coord.offsets.snapshots == 0
        before = p.size_bytes
        p.roll()
        p.barrier()
        while lg.cleaner.clean_once() is not None:
            pass
        assert p.size_bytes < before // 10
        assert len(list(p.iter())) == 7 * 4         # one record per key (+1 tombstone)
        coord.close()
    with pylog.open(d) as lg:
        coord = GroupCoordinator(lg, offsets_retention_bytes=r)
        coord.wait_loaded(10)
        assert {g: coord.offsets.group_offsets(g) for g in coord.offsets.group_ids()} == expected
        coord.close()


def test_an_old_delete_policy_offsets_topic_is_read_and_switched_to_compact(tmp_path):
    from pylog.broker.groups import GroupCoordinator
    d = tmp_path / "data"
    with pylog.open(d) as lg:                   # what an older pylog created
        lg.create_topic(OFFSETS_TOPIC, 1, {"cleanup.policy": "delete",
                                           "retention.bytes": 4 << 20})
        lg.create_topic("t")
        coord = GroupCoordinator(lg)
        coord.wait_loaded(10)
        coord.commit_offsets("g", -1, "", [("t", 0, 5, -1, "")])
        coord.close()
    with pylog.open(d) as lg:
        coord = GroupCoordinator(lg)
        coord.wait_loaded(10)
        assert coord.offsets.fetch("g", "t", 0).offset == 5
        assert lg.topic(OFFSETS_TOPIC).config.cleanup_policy == ("compact",)
        coord.close()


@given(st.text(max_size=30), st.text(max_size=30), st.integers(-2**31, 2**31 - 1),
       st.integers(-2**63, 2**63 - 1), st.integers(-2**31, 2**31 - 1), st.text(max_size=50))
def test_offset_records_round_trip(group, topic, partition, offset, epoch, metadata):
    c = Committed(offset, epoch, metadata, 1234)
    assert decode_key(encode_key(group, topic, partition)) == (group, topic, partition)
    assert decode_value(encode_value(c)) == c


# -- a random walk over the state machine -----------------------------------------------------
_OPS = st.lists(st.tuples(st.sampled_from(["join", "rejoin", "sync", "hb", "leave", "tick"]),
                          st.integers(0, 3)), max_size=40)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_OPS)
def test_random_operations_keep_the_group_consistent(coord, ops):
    group = f"rw{time.monotonic_ns()}"
    known: list = []                              # latest JoinResult per member
    clock = [time.monotonic()]
    for op, k in ops:
        if op == "join" or not known:
            a = join(coord, group=group)
            if a.results and a.result.error == 0:
                known.append(a.result)
            continue
        r = known[k % len(known)]
        if op == "rejoin":
            a = join(coord, group=group, member=r.member_id)
            if a.results and a.results[-1].error == 0:
                known[k % len(known)] = a.results[-1]
        elif op == "sync":
            sync(coord, r, {m.member_id: m.member_id.encode() for m in known}, group=group)
        elif op == "hb":
            assert coord.heartbeat(group, r.generation, r.member_id) in (
                0, G.REBALANCE_IN_PROGRESS, G.ILLEGAL_GENERATION, G.UNKNOWN_MEMBER_ID)
        elif op == "leave":
            coord.leave(group, [r.member_id])
        else:
            clock[0] += 4
            coord.tick(clock[0])
        _, s = coord.describe_group(group)
        assert s.state in ("Empty", "PreparingRebalance", "CompletingRebalance", "Stable",
                           "Dead")                # Dead: empty, without offsets: forgotten
        members = {m.member_id for m in s.members}
        if s.state in ("Empty", "Dead"):
            assert not members
        if s.state == "Stable":
            # every member's assignment came from the leader's sync
            assert all(m.assignment in (b"", m.member_id.encode()) for m in s.members)
    coord.leave(group, [r.member_id for r in known])


def test_requests_get_load_in_progress_until_offsets_are_loaded(log):
    from pylog.broker.groups import GroupCoordinator
    coord = GroupCoordinator(log, load=False)
    try:
        assert join(coord).result.error == G.COORDINATOR_LOAD_IN_PROGRESS
        assert coord.heartbeat("g", 1, "m") == G.COORDINATOR_LOAD_IN_PROGRESS
        assert coord.commit_offsets("g", -1, "", [("t", 0, 1, -1, "")]) == \
            [G.COORDINATOR_LOAD_IN_PROGRESS]
        assert coord.fetch_offsets("g", None) == (G.COORDINATOR_LOAD_IN_PROGRESS, {})
        assert coord.list_groups() == (G.COORDINATOR_LOAD_IN_PROGRESS, [])
        coord._loader.start()
        assert coord.wait_loaded(10)
        assert join(coord).result.error == 0
    finally:
        coord.close()


def test_undecodable_records_in_the_offsets_topic_are_skipped(tmp_path):
    d = tmp_path / "data"
    with pylog.open(d) as lg:
        lg.create_topic("t")
        lg.groups.wait_loaded(10)
        lg.groups.commit_offsets("g", -1, "", [("t", 0, 4, -1, "")])
        p = lg.topic(OFFSETS_TOPIC).partition(0)
        p.append_batch([b"\x00", b"junk", None], [b"\x00\x01\xff", b"", b"\x00"])
    with pylog.open(d) as lg:
        assert lg.groups.wait_loaded(10)
        assert lg.groups.offsets.fetch("g", "t", 0).offset == 4
