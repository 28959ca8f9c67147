"""Transactions over a raw socket: every bad request gets Kafka's error code and
disturbs nothing (INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED / INVALID_PRODUCER_EPOCH,
INVALID_TXN_STATE, INVALID_TRANSACTION_TIMEOUT, TRANSACTIONAL_ID_NOT_FOUND, ...), and
the exact fields of DescribeTransactions / ListTransactions / DescribeProducers."""
from __future__ import annotations

import datetime

import pytest
from kafka_raw import RawClient, module, req
from test_protocol_raw import fetch_req, metadata, produce_req

from pylog.records import encode_batch

MS = datetime.timedelta(milliseconds=1)
PRODUCE, FETCH, LIST_OFFSETS, INIT = 0, 1, 2, 22
ADD_P, ADD_O, END, TXN_COMMIT, DESCRIBE, LIST, PRODUCERS = 24, 25, 26, 28, 65, 66, 61


@pytest.fixture
def client(server):
    with RawClient(server.bootstrap) as c:
        yield c


def init(c, txn_id, timeout_ms=60_000, version=4, pid=-1, epoch=-1):
    r = c.call(INIT, version, req(INIT, version, transactional_id=txn_id,
                                  transaction_timeout=timeout_ms * MS, producer_id=pid,
                                  producer_epoch=epoch))
    return r.error_code, r.producer_id, r.producer_epoch


def add(c, txn_id, pid, epoch, topic, partitions=(0,), version=3):
    m = module(ADD_P, version)
    r = c.call(ADD_P, version, req(
        ADD_P, version, v3_and_below_transactional_id=txn_id, v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch, v3_and_below_topics=(
            m.AddPartitionsToTxnTopic(name=topic, partitions=tuple(partitions)),)))
    return {(t.name, p.partition_index): p.partition_error_code
            for t in r.results_by_topic_v3_and_below for p in t.results_by_partition}


def end(c, txn_id, pid, epoch, commit=True, version=3):
    return c.call(END, version, req(END, version, transactional_id=txn_id, producer_id=pid,
                                    producer_epoch=epoch, committed=commit)).error_code


def txn_batch(pid, epoch, seq=0, values=(b"v",)):
    return encode_batch(list(values), producer_id=pid, producer_epoch=epoch,
                        base_sequence=seq, attributes=0x10)


def produce(c, topic, records, version=9):
    r = c.call(PRODUCE, version, produce_req(topic, records, version=version))
    return r.responses[0].partition_responses[0]


def test_timeouts_outside_the_limits(client):
    assert init(client, "tx-timeout", timeout_ms=0)[0] == 50
    assert init(client, "tx-timeout", timeout_ms=900_001)[0] == 50
    assert init(client, "tx-timeout", timeout_ms=900_000)[0] == 0


def test_unknown_id_and_wrong_producer(client):
    metadata(client, ["tx-e1"])
    assert add(client, "tx-never", 12345, 0, "tx-e1") == {("tx-e1", 0): 49}
    code, pid, epoch = init(client, "tx-e1-id")
    assert code == 0 and epoch == 0
    assert add(client, "tx-e1-id", pid + 1000, 0, "tx-e1") == {("tx-e1", 0): 49}
    assert end(client, "tx-e1-id", pid, epoch) == 48              # nothing begun: Empty


def test_a_second_init_fences_the_old_epoch(client):
    metadata(client, ["tx-fence"])
    _, pid, e0 = init(client, "tx-fence-id")
    _, pid2, e1 = init(client, "tx-fence-id")
    assert (pid2, e1) == (pid, e0 + 1)
    assert add(client, "tx-fence-id", pid, e0, "tx-fence") == {("tx-fence", 0): 90}
    assert add(client, "tx-fence-id", pid, e0, "tx-fence", version=1) == {("tx-fence", 0): 47}
    assert end(client, "tx-fence-id", pid, e0) == 90
    # KIP-360: asking with the current (pid, epoch) bumps it; with the fenced one is refused
    assert init(client, "tx-fence-id", pid=pid, epoch=e0)[0] == 90
    assert init(client, "tx-fence-id", pid=pid, epoch=e1)[1:] == (pid, e1 + 1)


def test_unknown_partition_is_not_attempted_with_the_others(client):
    metadata(client, ["tx-parts"])
    _, pid, epoch = init(client, "tx-parts-id")
    codes = add(client, "tx-parts-id", pid, epoch, "tx-parts", partitions=(0, 7))
    assert codes == {("tx-parts", 0): 55, ("tx-parts", 7): 3}
    # nothing was added: a transactional batch to partition 0 is refused
    r = produce(client, "tx-parts", txn_batch(pid, epoch))
    assert r.error_code == 48


def test_transactional_produce_rules(client):
    metadata(client, ["tx-prod"])
    _, pid, epoch = init(client, "tx-prod-id")
    assert produce(client, "tx-prod", txn_batch(pid, epoch)).error_code == 48   # not added
    assert add(client, "tx-prod-id", pid, epoch, "tx-prod") == {("tx-prod", 0): 0}
    ok = produce(client, "tx-prod", txn_batch(pid, epoch, values=(b"a", b"b")))
    assert ok.error_code == 0 and ok.base_offset == 0
    assert produce(client, "tx-prod", txn_batch(pid, epoch - 1 if epoch else 5, seq=2)
                   ).error_code == 47
    assert produce(client, "tx-prod", txn_batch(-1, -1)).error_code == 87     # no producer id
    # the open transaction holds the last stable offset at 0
    f = client.call(FETCH, 11, fetch_req("tx-prod", 0))
    part = f.responses[0].partitions[0]
    assert (part.high_watermark, part.last_stable_offset) == (2, 0)
    committed = client.call(FETCH, 11, req(FETCH, 11, **{
        **{k: getattr(fetch_req("tx-prod", 0), k) for k in
           ("replica_id", "max_wait", "min_bytes", "max_bytes", "session_id",
            "session_epoch", "topics", "forgotten_topics_data", "rack_id")},
        "isolation_level": 1}))
    assert len(committed.responses[0].partitions[0].records or b"") == 0
    d = client.call(PRODUCERS, 0, req(PRODUCERS, 0, topics=(
        module(PRODUCERS, 0).TopicRequest(name="tx-prod", partition_indexes=(0,)),)))
    (state,) = d.topics[0].partitions[0].active_producers
    assert (state.producer_id, state.current_txn_start_offset) == (pid, 0)
    assert end(client, "tx-prod-id", pid, epoch, commit=False) == 0
    assert end(client, "tx-prod-id", pid, epoch, commit=False) == 0    # a retry
    assert end(client, "tx-prod-id", pid, epoch, commit=True) == 48    # the other way
    f = client.call(FETCH, 11, fetch_req("tx-prod", 0))
    part = f.responses[0].partitions[0]
    assert part.high_watermark == part.last_stable_offset == 3         # + the marker


def test_txn_offset_commit_needs_add_offsets(client):
    metadata(client, ["tx-off"])
    _, pid, epoch = init(client, "tx-off-id")
    m = module(TXN_COMMIT, 3)

    def commit():
        r = client.call(TXN_COMMIT, 3, req(
            TXN_COMMIT, 3, transactional_id="tx-off-id", group_id="tx-off-g",
            producer_id=pid, producer_epoch=epoch, generation_id=-1, member_id="",
            group_instance_id=None, topics=(m.TxnOffsetCommitRequestTopic(
                name="tx-off", partitions=(m.TxnOffsetCommitRequestPartition(
                    partition_index=0, committed_offset=5, committed_leader_epoch=-1,
                    committed_metadata=None),)),)))
        return r.topics[0].partitions[0].error_code
    assert commit() == 48
    r = client.call(ADD_O, 3, req(ADD_O, 3, transactional_id="tx-off-id", producer_id=pid,
                                  producer_epoch=epoch, group_id="tx-off-g"))
    assert r.error_code == 0
    assert commit() == 0
    assert end(client, "tx-off-id", pid, epoch, commit=True) == 0


def test_describe_and_list(client):
    metadata(client, ["tx-desc"])
    _, pid, epoch = init(client, "tx-desc-id", timeout_ms=45_000)
    add(client, "tx-desc-id", pid, epoch, "tx-desc")
    d = client.call(DESCRIBE, 0, req(DESCRIBE, 0, transactional_ids=("tx-desc-id",)))
    (live,) = d.transaction_states
    assert (live.error_code, live.transaction_state, live.producer_id) == (0, "Ongoing", pid)
    assert live.transaction_timeout == 45_000 * MS
    assert [(t.topic, t.partitions) for t in live.topics] == [("tx-desc", (0,))]
    # an unknown id: 105, with Kafka's -1 start time (which kio cannot decode: read it raw;
    # header: correlation id, tagged fields; body: throttle, compact array of 1, error)
    client.send(DESCRIBE, 0, req(DESCRIBE, 0, transactional_ids=("nope",)))
    frame = client.recv_frame()
    assert frame[9] == 2 and int.from_bytes(frame[10:12], "big") == 105
    lst = client.call(LIST, 1, req(LIST, 1, state_filters=("Ongoing", "Bogus"),
                                   producer_id_filters=()))
    assert lst.unknown_state_filters == ("Bogus",)
    assert ("tx-desc-id", pid, "Ongoing") in {
        (t.transactional_id, t.producer_id, t.transaction_state)
        for t in lst.transaction_states}
    assert end(client, "tx-desc-id", pid, epoch, commit=True) == 0
    lst = client.call(LIST, 1, req(LIST, 1, state_filters=("Ongoing",), producer_id_filters=(pid,)))
    assert lst.transaction_states == ()
