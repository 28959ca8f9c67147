"""The share-group APIs on the wire (raw kio requests): ShareGroupHeartbeat/Describe,
ShareFetch/ShareAcknowledge with share sessions, the share-offset admin APIs, and
ListGroups/DescribeGroups/DeleteGroups knowing the share type.  Bad input gets Kafka's
error codes and disturbs nothing else."""
from __future__ import annotations

import datetime
import uuid

import pytest
from group_clients import create_topic
from kafka_raw import RawClient, module, req

from pylog.testing import start_server

HB, DESCRIBE, FETCH, ACK, APIV = 76, 77, 78, 79, 18
D_OFF, A_OFF, DEL_OFF, LIST, DESC_G, DEL_G, JOIN = 90, 91, 92, 16, 15, 42, 11
INVALID_REQUEST, UNKNOWN_MEMBER, FENCED, NOT_FOUND, NON_EMPTY = 42, 25, 110, 69, 68
INVALID_RECORD_STATE, SESSION_NOT_FOUND, BAD_SESSION_EPOCH = 121, 122, 123
WAIT = datetime.timedelta(milliseconds=100)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("shareraw") / "data")
    yield s
    assert s.stop() == 0, s.log_text()[-3000:]


@pytest.fixture
def c(srv):
    with RawClient(srv.bootstrap) as client:
        yield client


def hb(c, group, member, epoch, topics=("sp",)):  # noqa: D103
    return c.call(HB, 1, req(HB, 1, group_id=group, member_id=member, member_epoch=epoch,
                             rack_id=None,
                             subscribed_topic_names=None if topics is None else tuple(topics)))


def topic_id(c, name):
    resp = c.call(3, 12, req(3, 12, topics=(module(3, 12).MetadataRequestTopic(
        name=name, topic_id=None),), allow_auto_topic_creation=False,
        include_topic_authorized_operations=False))
    return resp.topics[0].topic_id


def produce(c, topic, n):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": f"{c.sock.getpeername()[0]}:{c.sock.getpeername()[1]}"})
    for i in range(n):
        p.produce(topic, value=b"r%d" % i)
    assert p.flush(10) == 0


def fetch(c, group, member, epoch, tid, acks=(), max_records=100, partition=0, wait=WAIT,
          version=1):
    m = module(FETCH, version)
    batches = tuple(m.AcknowledgementBatch(first_offset=f, last_offset=l_,
                                           acknowledge_types=tuple(t)) for f, l_, t in acks)
    topics = (m.FetchTopic(topic_id=tid, partitions=(m.FetchPartition(
        partition_index=partition, acknowledgement_batches=batches),)),)
    return c.call(FETCH, version, req(FETCH, version, group_id=group, member_id=member,
                                share_session_epoch=epoch, max_wait=wait, min_bytes=1,
                                max_bytes=1 << 20, max_records=max_records, batch_size=100,
                                topics=topics, forgotten_topics_data=()))


def ack(c, group, member, epoch, tid, acks, partition=0):
    m = module(ACK, 1)
    batches = tuple(m.AcknowledgementBatch(first_offset=f, last_offset=l_,
                                           acknowledge_types=tuple(t)) for f, l_, t in acks)
    return c.call(ACK, 1, req(ACK, 1, group_id=group, member_id=member,
                              share_session_epoch=epoch, topics=(m.AcknowledgeTopic(
                                  topic_id=tid, partitions=(m.AcknowledgePartition(
                                      partition_index=partition,
                                      acknowledgement_batches=batches),)),)))


def part(resp):
    return resp.responses[0].partitions[0]


@pytest.fixture(scope="module", autouse=True)
def sp_topic(srv):
    create_topic(srv.bootstrap, "sp", partitions=1)


def test_share_apis_are_advertised(c):
    resp = c.call(APIV, 3, req(APIV, 3, client_software_name="t",
                               client_software_version="1"))
    keys = {k.api_key: k.max_version for k in resp.api_keys}
    assert {k: keys.get(k) for k in (76, 77, 78, 79, 90, 91, 92)} == {
        76: 1, 77: 1, 78: 2, 79: 2, 90: 1, 91: 0, 92: 0}


def test_heartbeat_join_epochs_and_leave(c):
    mid = str(uuid.uuid4())
    r = hb(c, "g-hb", mid, 0)
    assert r.error_code == 0 and r.member_id == mid and r.member_epoch >= 1
    assert [tp.topic_id for tp in r.assignment.topic_partitions] == [topic_id(c, "sp")]
    assert r.assignment.topic_partitions[0].partitions == (0,)
    epoch = r.member_epoch
    r = hb(c, "g-hb", mid, epoch, topics=None)
    assert r.error_code == 0 and r.member_epoch == epoch and r.assignment is None
    assert hb(c, "g-hb", mid, epoch + 5, topics=None).error_code == FENCED
    assert hb(c, "g-hb", "nobody", 3, topics=None).error_code == UNKNOWN_MEMBER
    assert hb(c, "g-hb", "", 0).error_code == INVALID_REQUEST
    assert hb(c, "g-hb", str(uuid.uuid4()), 0, topics=None).error_code == INVALID_REQUEST
    assert hb(c, "", mid, 0).error_code == INVALID_REQUEST
    d = c.call(DESCRIBE, 1, req(DESCRIBE, 1, group_ids=("g-hb", "nope"),
                                include_authorized_operations=False))
    assert d.groups[0].error_code == 0 and d.groups[0].group_state == "Stable"
    assert [m.member_id for m in d.groups[0].members] == [mid]
    assert d.groups[0].members[0].assignment.topic_partitions[0].topic_name == "sp"
    assert d.groups[1].error_code == NOT_FOUND
    r = hb(c, "g-hb", mid, -1, topics=None)
    assert r.error_code == 0 and r.member_epoch == -1
    assert hb(c, "g-hb", mid, epoch, topics=None).error_code == UNKNOWN_MEMBER


def test_classic_group_id_is_not_a_share_group(c, srv):
    from confluent_kafka import Consumer
    cons = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "g-classic"})
    cons.subscribe(["sp"])
    cons.poll(3)
    try:
        assert hb(c, "g-classic", str(uuid.uuid4()), 0).error_code == NOT_FOUND
    finally:
        cons.close()


def test_fetch_ack_and_every_bad_acknowledgement(c, srv):
    tid = topic_id(c, "sp")
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert hb(c, "g-f", a, 0).error_code == 0 and hb(c, "g-f", b, 0).error_code == 0
    # No member, no session, wrong epoch.
    assert fetch(c, "g-f", "stranger", 0, tid).error_code == UNKNOWN_MEMBER
    assert fetch(c, "g-f", a, 1, tid).error_code == SESSION_NOT_FOUND
    first = fetch(c, "g-f", a, 0, tid)               # opens the session; log end = start
    assert first.error_code == 0
    base = _log_end(c)
    produce(c, "sp", 10)
    r = fetch(c, "g-f", a, 1, tid, max_records=6)
    p = part(r)
    assert [(x.first_offset, x.last_offset, x.delivery_count) for x in p.acquired_records] \
        == [(base, base + 5, 1)]
    assert len(p.records) > 0 and r.acquisition_lock_timeout.total_seconds() == 30
    assert fetch(c, "g-f", a, 7, tid).error_code == BAD_SESSION_EPOCH
    # Bad acknowledgements: each leaves every record as it was.
    for bad, code in [([(base + 8, base + 8, (1,))], INVALID_RECORD_STATE),  # not acquired
                      ([(base + 2, base + 1, (1,))], INVALID_REQUEST),       # backwards
                      ([(base, base + 3, (1,)), (base + 2, base + 4, (1,))], INVALID_REQUEST),
                      ([(base, base + 2, (1, 1))], INVALID_REQUEST),         # types count
                      ([(base, base, (9,))], INVALID_REQUEST)]:              # unknown type
        r = ack(c, "g-f", a, 2 if code == INVALID_RECORD_STATE else _next_epoch(), tid, bad)
        assert r.error_code == 0
        assert part(r).error_code == code, (bad, part(r))
    # Another member can't settle a's records (its own session).
    fetch(c, "g-f", b, 0, tid, max_records=1)
    rb = ack(c, "g-f", b, 1, tid, [(base, base, (1,))])
    assert part(rb).error_code == INVALID_RECORD_STATE
    # a accepts 0-1, releases 2, rejects 3 (per-offset types), piggy-backed on a fetch.
    r = fetch(c, "g-f", a, _next_epoch(), tid,
              acks=[(base, base + 3, (1, 1, 2, 3))], max_records=1)
    assert part(r).acknowledge_error_code == 0
    got = [(x.first_offset, x.delivery_count) for x in part(r).acquired_records]
    assert got == [(base + 2, 2)], "the released record comes back first"
    d = c.call(D_OFF, 1, req(D_OFF, 1, groups=(module(D_OFF, 1).DescribeShareGroupOffsetsRequestGroup(
        group_id="g-f", topics=(module(D_OFF, 1).DescribeShareGroupOffsetsRequestTopic(
            topic_name="sp", partitions=(0,)),)),)))
    row = d.groups[0].topics[0].partitions[0]
    assert (row.error_code, row.start_offset) == (0, base + 2)
    assert ack(c, "g-f", a, 0, tid, [(base + 2, base + 2, (1,))]).error_code == BAD_SESSION_EPOCH


_epochs = {"n": 2}


def _next_epoch() -> int:
    _epochs["n"] += 1
    return _epochs["n"]


def _log_end(c) -> int:
    m = module(2, 7)
    r = c.call(2, 7, req(2, 7, replica_id=-1, isolation_level=0, topics=(m.ListOffsetsTopic(
        name="sp", partitions=(m.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1,
                                                      timestamp=-1),)),)))
    return r.topics[0].partitions[0].offset


def test_offsets_admin_list_describe_and_delete_group(c):
    tid = topic_id(c, "sp")
    mid = str(uuid.uuid4())
    assert hb(c, "g-adm", mid, 0).error_code == 0
    fetch(c, "g-adm", mid, 0, tid)
    end = _log_end(c)
    produce(c, "sp", 3)
    r = fetch(c, "g-adm", mid, 1, tid)
    assert part(r).acquired_records[0].first_offset == end
    m91, m92 = module(A_OFF, 0), module(DEL_OFF, 0)
    alter = req(A_OFF, 0, group_id="g-adm", topics=(m91.AlterShareGroupOffsetsRequestTopic(
        topic_name="sp", partitions=(m91.AlterShareGroupOffsetsRequestPartition(
            partition_index=0, start_offset=0),)),))
    assert c.call(A_OFF, 0, alter).error_code == NON_EMPTY
    lst = c.call(LIST, 5, req(LIST, 5, states_filter=(), types_filter=("share",)))
    assert ("g-adm", "share", "Stable") in {(g.group_id, g.group_type, g.group_state)
                                            for g in lst.groups}
    dg = c.call(DESC_G, 5, req(DESC_G, 5, groups=("g-adm",), include_authorized_operations=False))
    assert dg.groups[0].error_code == NOT_FOUND
    assert c.call(DEL_G, 2, req(DEL_G, 2, groups_names=("g-adm",))).results[0].error_code \
        == NON_EMPTY
    assert hb(c, "g-adm", mid, -1, topics=None).error_code == 0      # leaves: releases
    resp = c.call(A_OFF, 0, alter)
    assert resp.error_code == 0 and resp.responses[0].partitions[0].error_code == 0
    assert c.call(A_OFF, 0, req(A_OFF, 0, group_id="nope", topics=())).error_code == NOT_FOUND
    # From 0 again, delivery count 1: a new member gets the topic's first record.
    mid2 = str(uuid.uuid4())
    hb(c, "g-adm", mid2, 0)
    r = fetch(c, "g-adm", mid2, 0, tid, max_records=1)
    assert [(x.first_offset, x.delivery_count) for x in part(r).acquired_records] == [(0, 1)]
    hb(c, "g-adm", mid2, -1, topics=None)
    delete = req(DEL_OFF, 0, group_id="g-adm", topics=(m92.DeleteShareGroupOffsetsRequestTopic(
        topic_name="sp"),))
    assert c.call(DEL_OFF, 0, delete).responses[0].error_code == 0
    d = c.call(D_OFF, 1, req(D_OFF, 1, groups=(module(D_OFF, 1).DescribeShareGroupOffsetsRequestGroup(
        group_id="g-adm", topics=None),)))
    assert d.groups[0].error_code == NOT_FOUND or d.groups[0].topics == ()
    assert c.call(DEL_G, 2, req(DEL_G, 2, groups_names=("g-adm",))).results[0].error_code in (0, NOT_FOUND)


def test_renew_extends_locks_in_version_2_only(c):
    tid = topic_id(c, "sp")
    mid = str(uuid.uuid4())
    assert hb(c, "g-renew", mid, 0).error_code == 0
    fetch(c, "g-renew", mid, 0, tid)
    end = _log_end(c)
    produce(c, "sp", 2)
    r = fetch(c, "g-renew", mid, 1, tid, version=2)
    assert part(r).acquired_records[0].first_offset == end
    assert part(ack(c, "g-renew", mid, 2, tid, [(end, end, (4,))])).error_code \
        == INVALID_REQUEST                                   # v1 has no renew
    m = module(ACK, 2)
    renew = req(ACK, 2, group_id="g-renew", member_id=mid, share_session_epoch=3,
                is_renew_ack=True, topics=(m.AcknowledgeTopic(topic_id=tid, partitions=(
                    m.AcknowledgePartition(partition_index=0, acknowledgement_batches=(
                        m.AcknowledgementBatch(first_offset=end, last_offset=end + 1,
                                               acknowledge_types=(4,)),)),)),))
    assert part(c.call(ACK, 2, renew)).error_code == 0
    # Still held by mid: accepting them now works.
    assert part(ack(c, "g-renew", mid, 4, tid, [(end, end + 1, (1,))])).error_code == 0
    hb(c, "g-renew", mid, -1, topics=None)


def test_a_large_batch_is_split_to_the_acquired_records(c, srv):
    """A ShareFetch acquiring 5 records of a 2,000-record batch gets a batch of those 5
    (re-encoded, CRC-valid, offsets kept), not the whole stored batch."""
    from confluent_kafka import Producer
    tid_topic = "sp-split"
    create_topic(srv.bootstrap, tid_topic, partitions=1)
    tid = topic_id(c, tid_topic)
    mid = str(uuid.uuid4())
    hb(c, "g-split", mid, 0, topics=(tid_topic,))
    fetch(c, "g-split", mid, 0, tid)
    p = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 200,
                  "batch.num.messages": 5000, "batch.size": 4 << 20})
    for i in range(2000):
        p.produce(tid_topic, b"v%04d" % i)
    assert p.flush(10) == 0
    r = fetch(c, "g-split", mid, 1, tid, max_records=5)
    got = part(r)
    assert [(a.first_offset, a.last_offset) for a in got.acquired_records] == [(0, 4)]
    assert len(got.records) < 1000, len(got.records)       # not the ~20 KB batch
    from pylog.records import iter_batches                  # checks each CRC
    recs = [rec for _h, rs in iter_batches(bytes(got.records)) for rec in rs]
    assert [(x.offset, x.value) for x in recs] == [(i, b"v%04d" % i) for i in range(5)]
