"""ConsumerGroupHeartbeat / ConsumerGroupDescribe on the wire (raw kio requests): bad
member ids, wrong epochs, bad assignors, unknown topics and malformed requests get
Kafka's error codes; member epochs are checked by OffsetCommit/OffsetFetch v9+; a
group id is classic or consumer, never both; the feature group.version is advertised."""
from __future__ import annotations

import datetime
import uuid

import pytest
from group_clients import create_topic
from kafka_raw import RawClient, module, req

from pylog.testing import start_server

HB, DESCRIBE_CG, COMMIT, FETCH, JOIN, DESCRIBE, LIST, APIV = 68, 69, 8, 9, 11, 15, 16, 18
MIN = datetime.timedelta(minutes=1)
FENCED, UNRELEASED, UNSUPPORTED_ASSIGNOR, STALE = 110, 111, 112, 113


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("kip848raw") / "data",
                     args=["--group-consumer-session-timeout-ms", "2000",
                           "--group-consumer-heartbeat-interval-ms", "500"])
    yield s
    s.stop()


@pytest.fixture
def c(srv):
    with RawClient(srv.bootstrap) as client:
        yield client


@pytest.fixture(scope="module", autouse=True)
def hbt(srv):
    create_topic(srv.bootstrap, "hbt", partitions=3)


def hb(c, group, member_id, epoch, topics=("hbt",), owned=(), assignor=None,
       instance_id=None, rebalance=MIN, regex=None, version=1):
    m = module(HB, version)
    owned_tp = None if owned is None else tuple(
        m.TopicPartitions(topic_id=tid, partitions=tuple(ps)) for tid, ps in owned)
    fields = dict(group_id=group, member_id=member_id, member_epoch=epoch,
                  instance_id=instance_id, rack_id=None, rebalance_timeout=rebalance,
                  subscribed_topic_names=None if topics is None else tuple(topics),
                  server_assignor=assignor, topic_partitions=owned_tp)
    if version >= 1:
        fields["subscribed_topic_regex"] = regex
    return c.call(HB, version, req(HB, version, **fields))


def topic_id(c, srv, name):
    resp = c.call(3, 12, req(3, 12, topics=(module(3, 12).MetadataRequestTopic(
        name=name, topic_id=None),), allow_auto_topic_creation=False,
        include_topic_authorized_operations=False))
    return resp.topics[0].topic_id


def test_group_version_feature_and_apis_are_advertised(c):
    resp = c.call(APIV, 3, req(APIV, 3, client_software_name="t",
                               client_software_version="1"))
    keys = {k.api_key: k.max_version for k in resp.api_keys}
    assert keys[HB] == 1 and keys[DESCRIBE_CG] == 1 and keys[42] == 2 and keys[47] == 0
    assert {f.name: f.max_version_level for f in resp.finalized_features}["group.version"] == 1


def test_join_heartbeat_and_leave(c, srv):
    mid = str(uuid.uuid4())
    r = hb(c, "g-basic", mid, 0)
    assert r.error_code == 0 and r.member_id == mid and r.member_epoch >= 1
    assert sum(len(tp.partitions) for tp in r.assignment.topic_partitions) == 3
    assert r.heartbeat_interval.total_seconds() == 0.5
    epoch = r.member_epoch
    r = hb(c, "g-basic", mid, epoch, topics=None, owned=None, rebalance=datetime.timedelta(
        milliseconds=-1))
    assert r.error_code == 0 and r.member_epoch == epoch and r.assignment is None
    d = c.call(DESCRIBE_CG, 1, req(DESCRIBE_CG, 1, group_ids=("g-basic", "nope"),
                                   include_authorized_operations=False))
    g, missing = d.groups
    assert g.error_code == 0 and g.group_state == "Stable" and g.assignor_name == "uniform"
    assert [m.member_id for m in g.members] == [mid] and g.members[0].member_epoch == epoch
    assert missing.error_code == 69
    r = hb(c, "g-basic", mid, -1, topics=None, owned=None)
    assert r.error_code == 0 and r.member_epoch == -1
    assert hb(c, "g-basic", mid, epoch, topics=None, owned=None).error_code == 25


@pytest.mark.parametrize("fields, code", [
    (dict(group="", member_id="m", epoch=0), 24),                          # empty group id
    (dict(member_id="", epoch=0), 42),                                     # v1: no member id
    (dict(member_id="m", epoch=0, rebalance=datetime.timedelta(milliseconds=-1)), 42),
    (dict(member_id="m", epoch=0, topics=None), 42),                       # no subscription
    (dict(member_id="m", epoch=-3), 42),                                   # no such epoch
    (dict(member_id="m", epoch=0, instance_id=""), 42),
    (dict(member_id="m", epoch=-2), 42),                                   # -2 needs instance
    (dict(member_id="m", epoch=0, assignor="sticky"), UNSUPPORTED_ASSIGNOR),
    (dict(member_id="m", epoch=0, topics=(), regex="(unclosed"), 42),
    (dict(member_id="stranger", epoch=5), 25),                             # unknown member
    (dict(member_id="m", epoch=0, topics=None, regex="(h+)+t"), 42),       # backtracking
])
def test_bad_heartbeats_get_kafka_error_codes(c, fields, code):
    group = fields.pop("group", "g-bad")
    r = hb(c, group, fields.pop("member_id"), fields.pop("epoch"), **fields)
    assert r.error_code == code, r
    assert r.error_message and r.member_epoch == -1


def test_regex_subscription_matches_topics(c):
    r = hb(c, "g-regex", str(uuid.uuid4()), 0, topics=None, regex="hb.")
    assert r.error_code == 0
    assert sorted(p for tp in r.assignment.topic_partitions for p in tp.partitions) == [0, 1, 2]


def test_wrong_epochs_are_fenced(c, srv):
    mid = str(uuid.uuid4())
    epoch = hb(c, "g-epochs", mid, 0).member_epoch
    assert hb(c, "g-epochs", mid, epoch + 7, topics=None, owned=None).error_code == FENCED
    assert hb(c, "g-epochs", mid, epoch, topics=None, owned=None).error_code == 0
    # Another member joins: the first one's epoch moves on; its old epoch is then stale.
    other = str(uuid.uuid4())
    hb(c, "g-epochs", other, 0)
    r = hb(c, "g-epochs", mid, epoch, topics=None, owned=None)
    assert r.error_code == 0


def test_unknown_topics_in_subscriptions_give_an_empty_assignment(c):
    mid = str(uuid.uuid4())
    r = hb(c, "g-unknown", mid, 0, topics=("no-such-topic-anywhere",))
    assert r.error_code == 0 and r.assignment.topic_partitions == ()
    owned = [(uuid.uuid4(), [0, 1])]                                    # unknown topic id
    r = hb(c, "g-unknown", mid, r.member_epoch, topics=None, owned=owned)
    assert r.error_code == 0


def test_static_member_must_be_released_before_another_takes_its_instance(c, srv):
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    r = hb(c, "g-static", first, 0, instance_id="inst-1")
    assert r.error_code == 0
    assert hb(c, "g-static", second, 0, instance_id="inst-1").error_code == UNRELEASED
    assert hb(c, "g-static", first, -2, topics=None, owned=None,
              instance_id="inst-1").member_epoch == -2
    r2 = hb(c, "g-static", second, 0, instance_id="inst-1")
    assert r2.error_code == 0
    assert sorted(p for tp in r2.assignment.topic_partitions for p in tp.partitions) == \
        [0, 1, 2]                                    # the released member's partitions
    assert hb(c, "g-static", first, r.member_epoch, topics=None, owned=None,
              instance_id="inst-1").error_code == 82   # FENCED_INSTANCE_ID


def _commit(c, group, member_id, epoch, topic="hbt", version=9):
    m = module(COMMIT, version)
    resp = c.call(COMMIT, version, req(
        COMMIT, version, group_id=group, generation_id_or_member_epoch=epoch,
        member_id=member_id, group_instance_id=None, topics=(m.OffsetCommitRequestTopic(
            name=topic, partitions=(m.OffsetCommitRequestPartition(
                partition_index=0, committed_offset=5, committed_leader_epoch=-1,
                committed_metadata=None),)),)))
    return int(resp.topics[0].partitions[0].error_code)


def _fetch(c, group, member_id, epoch):
    m = module(FETCH, 9)
    resp = c.call(FETCH, 9, req(FETCH, 9, groups=(m.OffsetFetchRequestGroup(
        group_id=group, member_id=member_id, member_epoch=epoch, topics=None),),
        require_stable=False))
    return int(resp.groups[0].error_code)


def test_offset_commit_and_fetch_check_the_member_epoch(c, srv):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    epoch_a = hb(c, "g-commit", a, 0).member_epoch
    assert _commit(c, "g-commit", a, epoch_a) == 0
    assert _fetch(c, "g-commit", a, epoch_a) == 0
    assert _commit(c, "g-commit", a, epoch_a + 1) == STALE
    assert _commit(c, "g-commit", "stranger", epoch_a) == 25
    assert _commit(c, "g-commit", "", -1) == 25             # non-member, group not empty
    assert _fetch(c, "g-commit", "stranger", 1) == 25
    hb(c, "g-commit", b, 0)
    r = hb(c, "g-commit", a, epoch_a, topics=None, owned=[(topic_id(c, srv, "hbt"), [0, 1, 2])])
    new_epoch = r.member_epoch
    if new_epoch == epoch_a:                                 # revoking first: ack it
        mine = [p for tp in r.assignment.topic_partitions for p in tp.partitions]
        r = hb(c, "g-commit", a, epoch_a, topics=None, owned=[(topic_id(c, srv, "hbt"), mine)])
        new_epoch = r.member_epoch
    assert new_epoch > epoch_a
    assert _commit(c, "g-commit", a, epoch_a) == STALE
    assert _fetch(c, "g-commit", a, epoch_a) == STALE
    assert _commit(c, "g-commit", a, new_epoch) == 0
    assert _commit(c, "g-commit", a, new_epoch, version=8) == 35   # must use v9+


def test_group_id_is_classic_or_consumer(c, srv):
    mid = str(uuid.uuid4())
    assert hb(c, "g-kind", mid, 0).error_code == 0
    proto = module(JOIN, 5).JoinGroupRequestProtocol
    join = c.call(JOIN, 5, req(JOIN, 5, group_id="g-kind", session_timeout=datetime.timedelta(
        seconds=6), rebalance_timeout=datetime.timedelta(seconds=6), member_id="",
        group_instance_id=None, protocol_type="consumer",
        protocols=(proto(name="range", metadata=b""),)))
    assert join.error_code == 23                              # INCONSISTENT_GROUP_PROTOCOL
    d = c.call(DESCRIBE, 5, req(DESCRIBE, 5, groups=("g-kind",),
                                include_authorized_operations=False))
    assert d.groups[0].error_code == 69 and d.groups[0].group_state == "Dead"
    lg = c.call(LIST, 5, req(LIST, 5, states_filter=(), types_filter=("consumer",)))
    assert "g-kind" in {g.group_id for g in lg.groups}
    assert all(g.group_type == "consumer" for g in lg.groups)
    # the member's session (2 s) expires: the id is free for a classic group again
    import time
    time.sleep(3.2)
    join = c.call(JOIN, 5, req(JOIN, 5, group_id="g-kind", session_timeout=datetime.timedelta(
        seconds=6), rebalance_timeout=datetime.timedelta(seconds=6), member_id="",
        group_instance_id=None, protocol_type="consumer",
        protocols=(proto(name="range", metadata=b""),)))
    assert join.error_code == 0


def test_v0_member_ids_are_given_by_the_coordinator(c):
    r = hb(c, "g-v0", "", 0, version=0)
    assert r.error_code == 0 and len(r.member_id) == 36
    again = hb(c, "g-v0", r.member_id, r.member_epoch, topics=None, owned=None, version=0)
    assert again.error_code == 0 and again.member_epoch == r.member_epoch


def test_heartbeat_to_a_classic_group_with_members_is_group_id_not_found(c):
    proto = module(JOIN, 5).JoinGroupRequestProtocol
    join = c.call(JOIN, 5, req(JOIN, 5, group_id="g-classic", session_timeout=datetime.timedelta(
        seconds=6), rebalance_timeout=datetime.timedelta(seconds=6), member_id="",
        group_instance_id=None, protocol_type="consumer",
        protocols=(proto(name="range", metadata=b""),)))
    assert join.error_code == 0
    r = hb(c, "g-classic", str(uuid.uuid4()), 0)
    assert r.error_code == 69 and "not a consumer group" in r.error_message
    lg = c.call(LIST, 5, req(LIST, 5, states_filter=("completingrebalance",),
                             types_filter=("classic",)))
    assert "g-classic" in {g.group_id for g in lg.groups}


def _hb_bytes(c, **overrides) -> bytes:
    import io

    from kio.serial import entity_writer
    r = req(HB, 1, group_id="g-wire", member_id="m", member_epoch=0, instance_id=None,
            rack_id=None, rebalance_timeout=MIN, subscribed_topic_names=("hbt",),
            subscribed_topic_regex=None, server_assignor=None, topic_partitions=())
    buf = io.BytesIO()
    entity_writer(type(r))(buf, r)
    return buf.getvalue()


@pytest.mark.parametrize("name, mangle", [
    ("group id length huge", lambda b: b"\xff\xff\xff\xff\x0f" + b[1 + len("g-wire"):]),
    ("truncated", lambda b: b[: len(b) // 2]),
    ("tag count huge", lambda b: b[:-1] + b"\xff\xff\xff\xff\x0f"),
    ("tagged field past the end", lambda b: b[:-1] + b"\x01\x00\x7f"),
])
def test_malformed_heartbeats_close_the_connection_and_the_server_goes_on(srv, name, mangle):
    with RawClient(srv.bootstrap) as c:
        body = _hb_bytes(c)
        c.send_frame(c.header(HB, 1) + b"\0" + mangle(body))
        assert c.is_closed_by_server(), name
    with RawClient(srv.bootstrap) as c:
        assert hb(c, "g-wire", str(uuid.uuid4()), 0).error_code == 0


def test_delete_and_offset_delete_for_a_consumer_protocol_group(c):
    mid = str(uuid.uuid4())
    epoch = hb(c, "g-delete", mid, 0).member_epoch
    assert _commit(c, "g-delete", mid, epoch) == 0

    def delete():
        r = c.call(42, 2, req(42, 2, groups_names=("g-delete",)))
        return r.results[0].error_code

    def offset_delete():
        m = module(47, 0)
        r = c.call(47, 0, req(47, 0, group_id="g-delete", topics=(m.OffsetDeleteRequestTopic(
            name="hbt", partitions=(m.OffsetDeleteRequestPartition(partition_index=0),)),)))
        return r.error_code, [p.error_code for t in r.topics for p in t.partitions]

    assert delete() == 68                                    # NON_EMPTY_GROUP
    assert offset_delete() == (0, [86])                      # GROUP_SUBSCRIBED_TO_TOPIC
    assert hb(c, "g-delete", mid, -1, topics=None, owned=None).error_code == 0
    assert delete() == 0
    assert delete() == 69                                    # gone
    assert offset_delete() == (69, [])
    assert _fetch(c, "g-delete", None, -1) == 0
