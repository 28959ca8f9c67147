"""The KIP-848 consumer-group state machine, the server-side assignors, offset expiry,
OffsetDelete and group limits — the coordinator's Python API over a real Log."""
from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pylog
from pylog.broker import consumer_groups as CG
from pylog.broker.assignors import range_assign, uniform
from pylog.broker.group_state import (FENCED_MEMBER_EPOCH, GROUP_MAX_SIZE_REACHED,
                                      GROUP_SUBSCRIBED_TO_TOPIC, INVALID_SESSION_TIMEOUT,
                                      NONE, STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID)
from pylog.broker.groups import GroupCoordinator
from pylog.broker.offsets import Committed

MIN = 60_000


@pytest.fixture
def log(tmp_path):
    with pylog.open(tmp_path / "d") as lg:
        lg.create_topic("t", partitions=4)
        yield lg


def coordinator(log, **kw) -> GroupCoordinator:
    c = GroupCoordinator(log, **kw)
    assert c.wait_loaded(10)
    return c


def hb(c, member, epoch, group="g", owned=None, **kw):
    kw.setdefault("topics", ["t"] if epoch == 0 else None)
    kw.setdefault("rebalance_timeout_ms", MIN if epoch == 0 else -1)
    return c.consumer_heartbeat(group, member, epoch, owned=owned, **kw)


def parts(r) -> set:
    return {(t, p) for t, ps in (r.assignment or {}).items() for p in ps}


def test_second_member_gets_partitions_only_after_the_first_revokes(log):
    c = coordinator(log)
    a = hb(c, "a", 0)
    assert a.error == NONE and parts(a) == {("t", i) for i in range(4)}
    b = hb(c, "b", 0)
    assert b.error == NONE and parts(b) == set()          # still owned by a
    a2 = hb(c, "a", a.member_epoch, owned={"t": frozenset(range(4))})
    assert a2.member_epoch == a.member_epoch              # revoking first: epoch stays
    kept = {p for _t, p in parts(a2)}
    assert len(kept) == 2
    b2 = hb(c, "b", b.member_epoch, owned={})
    assert parts(b2) == set()                              # a has not released yet
    a3 = hb(c, "a", a.member_epoch, owned={"t": frozenset(kept)})
    assert a3.member_epoch > a.member_epoch
    b3 = hb(c, "b", b2.member_epoch, owned={})
    assert {p for _t, p in parts(b3)} == set(range(4)) - kept
    assert b3.member_epoch == a3.member_epoch
    with c.locked():
        assert c.consumer_group("g").state == "Stable"
    c.close()


def test_epochs_are_checked_for_heartbeats_and_offsets(log):
    c = coordinator(log)
    a = hb(c, "a", 0)
    assert hb(c, "a", a.member_epoch + 1).error == FENCED_MEMBER_EPOCH
    assert hb(c, "nobody", 3).error == UNKNOWN_MEMBER_ID
    assert c.commit_offsets("g", a.member_epoch, "a", [("t", 0, 7, -1, None)]) == [NONE]
    hb(c, "b", 0)
    a2 = hb(c, "a", a.member_epoch, owned={"t": frozenset(range(4))})
    mine = frozenset(p for _t, p in parts(a2))
    a3 = hb(c, "a", a.member_epoch, owned={"t": mine})
    assert a3.member_epoch > a.member_epoch
    assert c.commit_offsets("g", a.member_epoch, "a", [("t", 0, 8, -1, None)]) == \
        [STALE_MEMBER_EPOCH]
    assert c.fetch_offsets("g", None, member_id="a", member_epoch=a.member_epoch)[0] == \
        STALE_MEMBER_EPOCH
    assert c.fetch_offsets("g", None)[1][("t", 0)].offset == 7     # admin: no member
    c.close()


def test_session_timeout_removes_a_member_and_frees_its_partitions(log):
    c = coordinator(log, consumer_session_timeout_ms=1000)
    a = hb(c, "a", 0)
    c.tick(time.monotonic() + 2)
    assert hb(c, "a", a.member_epoch).error == UNKNOWN_MEMBER_ID
    b = hb(c, "b", 0)
    assert len(parts(b)) == 4
    c.close()


def test_static_member_leave_keeps_its_assignment_for_its_successor(log):
    c = coordinator(log)
    a = hb(c, "a", 0, instance_id="i")
    assert hb(c, "a", -2, instance_id="i").member_epoch == -2
    b = hb(c, "b", 0, instance_id="i")
    assert parts(b) == parts(a)
    c.close()


@settings(max_examples=60, deadline=None)
@given(members=st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True),
       counts=st.dictionaries(st.sampled_from(["t", "u", "v"]), st.integers(0, 9), min_size=1),
       subs=st.data())
def test_assignors_give_every_partition_to_exactly_one_subscriber(members, counts, subs):
    topics = sorted(counts)
    subscriptions = {m: tuple(subs.draw(st.lists(st.sampled_from(topics), min_size=1,
                                                 unique=True))) for m in members}
    previous = {}
    for assignor in (uniform, range_assign):
        out = assignor(subscriptions, counts, previous)
        owned = [(t, p) for m, a in out.items() for t, ps in a.items() for p in ps]
        assert len(owned) == len(set(owned))
        want = {(t, p) for t, n in counts.items() for p in range(n)
                if any(t in s for s in subscriptions.values())}
        assert set(owned) == want
        for m, a in out.items():
            assert set(a) <= set(subscriptions[m])
        previous = out
    same = {m: ("t",) for m in members}
    out = uniform(same, {"t": counts.get("t", 5)}, previous)
    sizes = [len(a.get("t", ())) for a in out.values()]
    assert max(sizes) - min(sizes) <= 1


def test_uniform_is_sticky(log):
    first = uniform({"a": ("t",), "b": ("t",)}, {"t": 6}, {})
    second = uniform({"a": ("t",), "b": ("t",), "c": ("t",)}, {"t": 6}, first)
    moved = sum(len(first[m]["t"] - second[m].get("t", frozenset())) for m in ("a", "b"))
    assert moved == 2


def test_offsets_expire_after_retention_once_the_group_is_empty(log, tmp_path):
    c = coordinator(log, offsets_retention_minutes=1)
    now = int(time.time() * 1000)
    c.commit_offsets("idle", -1, "", [("t", 0, 5, -1, None), ("t", 1, 6, -1, None)])
    a = hb(c, "m", 0, group="busy")
    c.commit_offsets("busy", a.member_epoch, "m", [("t", 2, 9, -1, None)])
    assert c.expire_offsets(now + 30_000) == 0              # not yet
    assert c.expire_offsets(now + 61_000) == 2              # idle's two; busy has a member
    assert c.fetch_offsets("idle", None)[1] == {}
    assert c.fetch_offsets("busy", None)[1][("t", 2)].offset == 9
    log.create_topic("old", partitions=1)                   # busy read "old" once
    c.offsets.commit("busy", [("old", 0, Committed(4, commit_timestamp=now))])
    assert c.expire_offsets(now + 61_000) == 1              # not subscribed: expires
    hb(c, "m", -1, group="busy")                            # busy becomes empty now
    c.tick()
    assert c.expire_offsets(int(time.time() * 1000) + 30_000) == 0
    assert c.expire_offsets(int(time.time() * 1000) + 61_000) == 1
    c.close()
    log.close()
    with pylog.open(tmp_path / "d") as again:                # the tombstones are durable
        c2 = again.groups
        c2.wait_loaded(10)
        assert c2.fetch_offsets("idle", None)[1] == {} and c2.fetch_offsets("busy", None)[1] == {}


def test_offset_delete_refuses_topics_an_active_group_reads(log):
    c = coordinator(log)
    log.create_topic("other", partitions=1)
    a = hb(c, "m", 0)
    c.commit_offsets("g", a.member_epoch, "m", [("t", 0, 1, -1, None)])
    c.offsets.commit("g", [("other", 0, Committed(3))])
    top, codes = c.delete_offsets("g", [("t", 0), ("other", 0)])
    assert top == NONE and codes == [GROUP_SUBSCRIBED_TO_TOPIC, NONE]
    assert set(c.fetch_offsets("g", None)[1]) == {("t", 0)}
    assert c.delete_offsets("nope", [("t", 0)])[0] == 69
    c.close()


def test_group_limits(log):
    c = coordinator(log, min_session_timeout_ms=1000, max_size=1)
    got = []
    c.join("lim", "", "consumer", [("range", b"")], got.append, session_timeout_ms=3000)
    assert got[0].error == NONE
    c.join("lim", "", "consumer", [("range", b"")], got.append, session_timeout_ms=3000)
    assert got[1].error == GROUP_MAX_SIZE_REACHED
    c.join("lim2", "", "consumer", [("range", b"")], got.append, session_timeout_ms=500)
    assert got[2].error == INVALID_SESSION_TIMEOUT
    assert hb(c, str(uuid.uuid4()), 0, group="cg").error == NONE
    assert hb(c, str(uuid.uuid4()), 0, group="cg").error == GROUP_MAX_SIZE_REACHED
    c.close()


def test_unknown_assignor_in_settings_is_refused():
    with pytest.raises(ValueError, match="sticky"):
        CG.ConsumerGroups(None, assignors="sticky")


@pytest.fixture(scope="module")
def shared_log(tmp_path_factory):
    with pylog.open(tmp_path_factory.mktemp("cg") / "d") as lg:
        lg.create_topic("t", partitions=4)
        lg.create_topic("u", partitions=3)
        yield lg


_steps = st.lists(st.tuples(st.sampled_from("abcd"),                      # member
                            st.sampled_from(["join", "beat", "ack", "stale", "leave",
                                             "expire"]),
                            st.sampled_from([("t",), ("u",), ("t", "u")])),
                  min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(steps=_steps, assignor=st.sampled_from(["uniform", "range"]))
def test_no_partition_is_ever_owned_by_two_members(shared_log, steps, assignor):
    """Random joins, heartbeats (with or without acknowledging revocations), stale
    epochs, leaves and expiries: a partition is never held by two members at once, and
    heartbeats acknowledging everything converge to the target."""
    c = coordinator(shared_log, consumer_session_timeout_ms=60_000)
    group = f"prop-{uuid.uuid4()}"
    known: dict[str, tuple[int, dict]] = {}          # member -> (epoch, what it holds)
    for who, what, topics in steps:
        if what == "join" or who not in known:
            r = hb(c, who, 0, group=group, topics=list(topics), assignor=assignor)
        elif what == "leave":
            r = hb(c, who, -1, group=group)
            known.pop(who, None)
            continue
        elif what == "expire":
            with c.locked():
                g = c.consumer_group(group)
                if g is not None and who in g.members:
                    c.consumer.remove(g, g.members[who], "expired by the test")
            known.pop(who, None)
            continue
        else:
            epoch, held = known[who]
            owned = held if what == "ack" else None     # None: revocations not acked
            r = hb(c, who, epoch - (what == "stale"), group=group, owned=owned)
        if r.error != NONE:                             # fenced: a client rejoins
            r = hb(c, who, 0, group=group, topics=list(topics), assignor=assignor)
            known.pop(who, None)
        assert r.error == NONE, r
        held = r.assignment if r.assignment is not None else known.get(who, (0, {}))[1]
        known[who] = (r.member_epoch, dict(held))
        with c.locked():
            g = c.consumer_group(group)
            owners: dict = {}
            for m in (g.members.values() if g is not None else ()):
                for tp in m.owned():
                    assert tp not in owners, (tp, owners.get(tp), m.member_id)
                    owners[tp] = m.member_id
    for _ in range(6):                                # everyone acknowledges: converge
        for who in list(known):
            epoch, held = known[who]
            r = hb(c, who, epoch, group=group, owned=held)
            assert r.error == NONE, r
            known[who] = (r.member_epoch, dict(r.assignment) if r.assignment is not None
                          else held)
    with c.locked():
        g = c.consumer_group(group)
        if g is not None and g.members:
            assert g.state == "Stable", [(m.member_id, m.state, m.epoch, g.assignment_epoch)
                                         for m in g.members.values()]
            for m in g.members.values():
                assert m.assigned == {t: p for t, p in g.target.get(m.member_id, {}).items()
                                      if p}
    c.close()


def test_group_level_session_and_heartbeat_configs_override_the_broker(log):
    """GROUP configs (IncrementalAlterConfigs, ``log.group_configs``) win over the broker's
    group.consumer.* settings for that group."""
    log.group_configs.alter("slow", {"consumer.session.timeout.ms": "50000",
                                     "consumer.heartbeat.interval.ms": "6000"})
    c = coordinator(log)
    slow, usual = hb(c, "a", 0, group="slow"), hb(c, "b", 0, group="usual")
    assert slow.heartbeat_interval_ms == 6000 and usual.heartbeat_interval_ms == 5000
    now = time.monotonic()
    c.tick(now + 47)                                    # past 45 s, before 50 s
    assert hb(c, "b", usual.member_epoch, group="usual").error == UNKNOWN_MEMBER_ID
    assert hb(c, "a", slow.member_epoch, group="slow").error == NONE
    c.close()
