"""Group APIs on the wire (raw kio requests, exact fields): bad input gets Kafka's error
codes and leaves the group unharmed; FindCoordinator, ListGroups, DescribeGroups."""
from __future__ import annotations

import datetime

import pytest
from group_clients import create_topic
from kafka_raw import RawClient, module, req

JOIN, SYNC, HEARTBEAT, LEAVE, COMMIT, FETCH, FIND, DESCRIBE, LIST = 11, 14, 12, 13, 8, 9, 10, 15, 16
S6 = datetime.timedelta(seconds=6)


def join(c, group, member_id="", version=5, protocols=(("range", b"meta"),)):
    proto = module(JOIN, version).JoinGroupRequestProtocol
    fields = dict(group_id=group, session_timeout=S6, member_id=member_id,
                  protocol_type="consumer",
                  protocols=tuple(proto(name=n, metadata=m) for n, m in protocols))
    if version >= 1:
        fields["rebalance_timeout"] = S6
    if version >= 5:
        fields["group_instance_id"] = None
    return c.call(JOIN, version, req(JOIN, version, **fields))


def sync(c, group, generation, member_id, assignments=()):
    a = module(SYNC, 3).SyncGroupRequestAssignment
    return c.call(SYNC, 3, req(SYNC, 3, group_id=group, generation_id=generation,
                               member_id=member_id, group_instance_id=None,
                               assignments=tuple(a(member_id=m, assignment=x)
                                                 for m, x in assignments)))


def heartbeat(c, group, generation, member_id):
    return c.call(HEARTBEAT, 3, req(HEARTBEAT, 3, group_id=group, generation_id=generation,
                                    member_id=member_id, group_instance_id=None)).error_code


def commit(c, group, generation, member_id, entries):
    m = module(COMMIT, 7)
    topics: dict = {}
    for topic, p, off, meta in entries:
        topics.setdefault(topic, []).append(m.OffsetCommitRequestPartition(
            partition_index=p, committed_offset=off, committed_leader_epoch=-1,
            committed_metadata=meta))
    resp = c.call(COMMIT, 7, req(COMMIT, 7, group_id=group, generation_id_or_member_epoch=
                                 generation, member_id=member_id, group_instance_id=None,
                                 topics=tuple(m.OffsetCommitRequestTopic(name=t, partitions=
                                                                         tuple(ps))
                                              for t, ps in topics.items())))
    return {(t.name, p.partition_index): int(p.error_code)
            for t in resp.topics for p in t.partitions}


def fetch_all(c, group, version=5):
    resp = c.call(FETCH, version, req(FETCH, version, group_id=group, topics=None))
    return int(resp.error_code), {(t.name, p.partition_index): (p.committed_offset, p.metadata)
                                  for t in resp.topics for p in t.partitions}


@pytest.fixture
def stable(bootstrap):
    """A group "bad-input" with one raw member, Stable; yields (client, JoinGroup response)."""
    create_topic(bootstrap, "errs")
    with RawClient(bootstrap) as c:
        j = join(c, "bad-input")
        assert int(j.error_code) == 0 and j.leader == j.member_id
        s = sync(c, "bad-input", j.generation_id, j.member_id, [(j.member_id, b"plan")])
        assert (int(s.error_code), s.assignment) == (0, b"plan")
        yield c, j
        leave = c.call(LEAVE, 1, req(LEAVE, 1, group_id="bad-input", member_id=j.member_id))
        assert int(leave.error_code) == 0


def test_bad_group_requests_get_kafka_error_codes_and_group_is_unharmed(stable):
    c, j = stable
    g, gen, me = "bad-input", j.generation_id, j.member_id
    assert int(join(c, "").error_code) == 24                       # INVALID_GROUP_ID
    assert int(join(c, "", version=0).error_code) == 24
    assert heartbeat(c, "", gen, me) == 24
    assert int(join(c, g, member_id="stranger").error_code) == 25  # UNKNOWN_MEMBER_ID
    assert int(join(c, g, protocols=(("other", b""),)).error_code) == 23
    assert int(sync(c, g, gen - 1, me).error_code) == 22           # ILLEGAL_GENERATION
    assert heartbeat(c, g, gen + 1, me) == 22
    assert heartbeat(c, g, gen, "stranger") == 25
    assert int(sync(c, g, gen, "stranger").error_code) == 25
    codes = commit(c, g, gen, me, [("errs", 0, 5, "ok"), ("errs", 1, 6, "x" * 4097),
                                   ("no-such-topic", 0, 1, None), ("errs", 9, 1, None)])
    assert codes == {("errs", 0): 0, ("errs", 1): 12, ("no-such-topic", 0): 3, ("errs", 9): 3}
    assert set(commit(c, g, gen - 1, me, [("errs", 2, 1, None)]).values()) == {22}
    assert set(commit(c, g, -1, "", [("errs", 2, 1, None)]).values()) == {25}  # not empty
    # unharmed: still Stable, same generation, the good commit and only it
    assert heartbeat(c, g, gen, me) == 0
    assert fetch_all(c, g) == (0, {("errs", 0): (5, "ok")})
    d = c.call(DESCRIBE, 4, req(DESCRIBE, 4, groups=(g,), include_authorized_operations=False))
    (group,) = d.groups
    assert (int(group.error_code), group.group_state, group.protocol_type,
            group.protocol_data) == (0, "Stable", "consumer", "range")
    assert [(m.member_id, m.member_metadata, m.member_assignment) for m in group.members] == \
        [(me, b"meta", b"plan")]


def test_non_member_commits_to_an_empty_group_and_fetches_with_old_versions(bootstrap):
    create_topic(bootstrap, "solo-t")
    with RawClient(bootstrap) as c:
        assert commit(c, "solo", -1, "", [("solo-t", 0, 42, "meta"), ("solo-t", 1, 7, None)]) \
            == {("solo-t", 0): 0, ("solo-t", 1): 0}
        m1 = module(FETCH, 1)
        resp = c.call(FETCH, 1, req(FETCH, 1, group_id="solo", topics=(
            m1.OffsetFetchRequestTopic(name="solo-t", partition_indexes=(0, 1, 2)),)))
        assert [(p.partition_index, p.committed_offset, p.metadata, int(p.error_code))
                for p in resp.topics[0].partitions] == [(0, 42, "meta", 0), (1, 7, "", 0),
                                                        (2, -1, "", 0)]
        listed = c.call(LIST, 2, req(LIST, 2)).groups
        assert ("solo", "") in {(x.group_id, x.protocol_type) for x in listed}


@pytest.mark.parametrize("version", [0, 1, 2])
def test_find_coordinator_answers_self(bootstrap, version):
    host, port = bootstrap.rsplit(":", 1)
    with RawClient(bootstrap) as c:
        fields = {"key": "any"} if version == 0 else {"key": "any", "key_type": 0}
        r = c.call(FIND, version, req(FIND, version, **fields))
        assert (int(r.error_code), r.node_id, r.host, r.port) == (0, 0, host, int(port))
        if version:
            txn = c.call(FIND, version, req(FIND, version, key="tx", key_type=1))
            assert (int(txn.error_code), txn.node_id) == (0, 0)   # transactions: this node
            bad = c.call(FIND, version, req(FIND, version, key="x", key_type=7))
            assert int(bad.error_code) == 15


def test_leave_of_unknown_members_reports_each(bootstrap):
    with RawClient(bootstrap) as c:
        ident = module(LEAVE, 3).MemberIdentity
        r = c.call(LEAVE, 3, req(LEAVE, 3, group_id="nobody-here", members=(
            ident(member_id="a", group_instance_id=None),)))
        assert int(r.error_code) == 0 and [int(m.error_code) for m in r.members] == [25]
        r1 = c.call(LEAVE, 1, req(LEAVE, 1, group_id="nobody-here", member_id="a"))
        assert int(r1.error_code) == 25


def test_parked_join_is_answered_at_shutdown(pylog_server_factory):
    import time
    srv = pylog_server_factory()
    with RawClient(srv.bootstrap) as a, RawClient(srv.bootstrap) as b:
        j = join(a, "parked")
        sync(a, "parked", j.generation_id, j.member_id, [(j.member_id, b"")])
        cid = b.send(JOIN, 5, req(JOIN, 5, group_id="parked", session_timeout=S6,
                                  rebalance_timeout=datetime.timedelta(seconds=60),
                                  member_id="", group_instance_id=None,
                                  protocol_type="consumer", protocols=(
                                      module(JOIN, 5).JoinGroupRequestProtocol(
                                          name="range", metadata=b""),)))
        time.sleep(0.3)                  # b waits for a to rejoin, which it never does
        started = time.monotonic()
        assert srv.stop() == 0
        assert time.monotonic() - started < 5
        got, resp = b.recv(JOIN, 5)
        assert got == cid and int(resp.error_code) == 15      # COORDINATOR_NOT_AVAILABLE


def test_new_member_whose_connection_drops_while_parked_is_dropped(bootstrap):
    import time
    with RawClient(bootstrap) as a:
        j = join(a, "dropped")
        sync(a, "dropped", j.generation_id, j.member_id, [(j.member_id, b"")])
        with RawClient(bootstrap) as b:
            b.send(JOIN, 5, req(JOIN, 5, group_id="dropped", session_timeout=S6,
                                rebalance_timeout=S6, member_id="", group_instance_id=None,
                                protocol_type="consumer", protocols=(
                                    module(JOIN, 5).JoinGroupRequestProtocol(
                                        name="range", metadata=b""),)))
            time.sleep(0.3)
            assert heartbeat(a, "dropped", j.generation_id, j.member_id) == 27
        time.sleep(0.3)                  # b's connection is gone, and with it b
        again = join(a, "dropped", member_id=j.member_id)
        assert int(again.error_code) == 0 and again.generation_id == j.generation_id + 1
        assert [m.member_id for m in again.members] == [j.member_id]
