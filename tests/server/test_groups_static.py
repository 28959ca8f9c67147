"""Static membership on the classic protocol (``group.instance.id``, KIP-345): a member
that comes back with its instance id replaces its old self without a rebalance and gets
its assignment back; a stale member id of that instance is FENCED_INSTANCE_ID; LeaveGroup
v3+ names members by instance id."""
from __future__ import annotations

import datetime
import time

import confluent_kafka as ck
from group_clients import create_topic
from kafka_raw import RawClient, module, req

JOIN, SYNC, HEARTBEAT, LEAVE, COMMIT = 11, 14, 12, 13, 8
S6 = datetime.timedelta(seconds=6)


def _consumer(bootstrap, instance, revoked):
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "static",
                     "group.instance.id": instance, "session.timeout.ms": 10000,
                     "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest"})
    c.subscribe(["static"], on_revoke=lambda _c, parts: revoked.append(
        (instance, sorted(p.partition for p in parts))))
    return c


def _poll_until(consumers, cond, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in consumers:
            c.poll(0.05)
        if cond():
            return
    raise AssertionError("condition not reached")


def _parts(c):
    return sorted(tp.partition for tp in c.assignment())


def test_rejoining_static_member_keeps_its_partitions_without_a_rebalance(bootstrap):
    create_topic(bootstrap, "static", partitions=4)
    revoked: list = []
    a, b = _consumer(bootstrap, "inst-a", revoked), _consumer(bootstrap, "inst-b", revoked)
    _poll_until([a, b], lambda: _parts(a) and _parts(b)
                and sorted(_parts(a) + _parts(b)) == [0, 1, 2, 3])
    before_a, before_b = _parts(a), _parts(b)
    revoked.clear()
    a.close()                          # a static member sends no LeaveGroup
    a2 = _consumer(bootstrap, "inst-a", revoked)
    _poll_until([a2, b], lambda: _parts(a2) == before_a)
    for _ in range(20):                # b keeps going, nothing is revoked from it
        b.poll(0.05)
        a2.poll(0.05)
    assert _parts(b) == before_b and _parts(a2) == before_a
    assert [r for r in revoked if r[0] == "inst-b" and r[1]] == [], revoked
    a2.close()
    b.close()


def _join(c, group, member_id="", instance="i-1", version=5):
    proto = module(JOIN, version).JoinGroupRequestProtocol
    return c.call(JOIN, version, req(JOIN, version, group_id=group, session_timeout=S6,
                                     rebalance_timeout=S6, member_id=member_id,
                                     group_instance_id=instance, protocol_type="consumer",
                                     protocols=(proto(name="range", metadata=b"m"),)))


def _sync(c, group, gen, member_id, instance="i-1", assignments=()):
    a = module(SYNC, 3).SyncGroupRequestAssignment
    return c.call(SYNC, 3, req(SYNC, 3, group_id=group, generation_id=gen, member_id=member_id,
                               group_instance_id=instance, assignments=tuple(
                                   a(member_id=m, assignment=x) for m, x in assignments)))


def _heartbeat(c, group, gen, member_id, instance="i-1"):
    return c.call(HEARTBEAT, 3, req(HEARTBEAT, 3, group_id=group, generation_id=gen,
                                    member_id=member_id, group_instance_id=instance)).error_code


def test_stale_member_of_a_static_instance_is_fenced(bootstrap):
    with RawClient(bootstrap) as c1, RawClient(bootstrap) as c2:
        a = _join(c1, "static-f", instance="x")
        assert a.error_code == 0
        s = _sync(c1, "static-f", a.generation_id, a.member_id, "x", [(a.member_id, b"A")])
        assert s.error_code == 0 and s.assignment == b"A"
        # the same instance restarts: no member id, same instance id
        again = _join(c2, "static-f", instance="x")
        assert again.error_code == 0 and again.member_id != a.member_id
        assert _heartbeat(c1, "static-f", a.generation_id, a.member_id, "x") == 82
        assert _join(c1, "static-f", member_id=a.member_id, instance="x").error_code == 82
        assert _sync(c1, "static-f", a.generation_id, a.member_id, "x").error_code == 82
        leave = c1.call(LEAVE, 4, req(LEAVE, 4, group_id="static-f", members=(
            module(LEAVE, 4).MemberIdentity(member_id=a.member_id, group_instance_id="x"),)))
        assert leave.members[0].error_code == 82
        # leave by instance id alone (member id "")
        leave = c1.call(LEAVE, 4, req(LEAVE, 4, group_id="static-f", members=(
            module(LEAVE, 4).MemberIdentity(member_id="", group_instance_id="x"),)))
        assert leave.error_code == 0 and leave.members[0].error_code == 0
        assert _heartbeat(c2, "static-f", again.generation_id, again.member_id, "x") == 25
