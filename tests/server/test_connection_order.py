"""Requests of one Kafka connection are applied in the order sent (issue 18, defect 3).

The first idempotent Produce for a large partition after a restart waits while that
partition's producer state is rebuilt in a worker thread.  A later request of the
same connection must not be applied meanwhile: Kafka applies one connection's
requests in order, and librdkafka keeps 5 Produce requests in flight relying on it.
Here ``big-0`` is large (its state is rebuilt in a thread), ``big-1`` small (inline).
"""
from __future__ import annotations

import datetime
import io
import struct

import pytest
from kafka_raw import RawClient, module, req
from kio.serial import entity_writer

import pylog
from pylog.records import encode_batch, iter_headers
from pylog.server.kafka.produce import INLINE_REBUILD_BYTES
from pylog.testing import PylogServer

PRODUCE, FETCH, INIT_PRODUCER_ID = 0, 1, 22
MS = datetime.timedelta(milliseconds=1)
EARLIER_PID = 900_000            # an earlier idempotent producer, written before the start
BIG_BATCHES = 20_000             # ~3 MiB of one-record batches in big-0


def make_big_topic(data_dir, config=None) -> None:
    """Topic ``big`` (2 partitions) whose partition 0 is large and was written by an
    idempotent producer: rebuilding its producer state is the slow, threaded path."""
    with pylog.open(data_dir) as log:
        topic = log.create_topic("big", partitions=2, config=config)
        p0 = topic.partition(0)
        for seq in range(BIG_BATCHES):
            p0.append_raw(encode_batch([b"e" * 80], producer_id=EARLIER_PID, producer_epoch=0,
                                       base_sequence=seq, timestamps=1_700_000_000_000),
                          wait=False)
        assert p0.size_bytes >= 2 * INLINE_REBUILD_BYTES
        p1 = topic.partition(1)
        p1.append_raw(encode_batch([b"s"], producer_id=EARLIER_PID, producer_epoch=0,
                                   base_sequence=0), wait=False)


def init_pid(client) -> int:
    r = client.call(INIT_PRODUCER_ID, 1, req(INIT_PRODUCER_ID, 1, transactional_id=None,
                                             transaction_timeout=60000 * MS))
    assert r.error_code == 0
    return r.producer_id


def produce_frame(client, parts: list[tuple[int, bytes]]) -> tuple[int, bytes]:
    """(correlation id, framed Produce v8 request) for topic ``big``, not sent."""
    mod = module(PRODUCE, 8)
    td = mod.TopicProduceData(name="big", partition_data=tuple(
        mod.PartitionProduceData(index=i, records=rec) for i, rec in parts))
    request = mod.ProduceRequest(transactional_id=None, acks=-1, timeout=10000 * MS,
                                 topic_data=(td,))
    buf = io.BytesIO()
    entity_writer(type(request))(buf, request)
    payload = client.header(PRODUCE, 8) + buf.getvalue()
    return client.correlation_id, struct.pack(">i", len(payload)) + payload


def idem_batch(pid: int, seq: int, partition: int) -> bytes:
    return encode_batch([b"p%d-s%d" % (partition, seq)], producer_id=pid, producer_epoch=0,
                        base_sequence=seq, timestamps=1_700_000_000_000)


def pipeline(client, requests: list[list[tuple[int, bytes]]]) -> list:
    """Send every request in one write (nothing waits for an answer), then read the
    answers: they must come back in request order.  Returns the responses."""
    framed = [produce_frame(client, parts) for parts in requests]
    client.sock.sendall(b"".join(frame for _cid, frame in framed))
    responses = []
    for cid, _frame in framed:
        got, resp = client.recv(PRODUCE, 8)
        assert got == cid, "responses out of request order"
        responses.append(resp)
    return responses


def codes(resp) -> dict[int, tuple[int, int]]:
    """partition → (error code, base offset) of one Produce response."""
    (topic,) = resp.responses
    return {p.index: (p.error_code, p.base_offset) for p in topic.partition_responses}


def producer_batches(data_dir, pid: int, partition: int) -> list[tuple[int, int]]:
    """(base offset, base sequence) of producer ``pid``'s batches, in log order."""
    with pylog.open(data_dir) as log:
        return [(h.base_offset, h.base_sequence)
                for h in log.partition("big", partition).iter_batch_headers()
                if h.producer_id == pid]


def test_request_waiting_for_a_producer_state_rebuild_is_not_overtaken(tmp_path):
    data = tmp_path / "data"
    make_big_topic(data)
    srv = PylogServer(data).start()          # a restart: no producer state is loaded yet
    try:
        with RawClient(srv.bootstrap) as c:
            pid = init_pid(c)
            a = [(0, idem_batch(pid, 0, 0)), (1, idem_batch(pid, 0, 1))]
            b = [(1, idem_batch(pid, 1, 1))]
            resp_a, resp_b = pipeline(c, [a, b])
            assert codes(resp_a)[0][0] == 0 and codes(resp_a)[1][0] == 0, codes(resp_a)
            assert codes(resp_b)[1][0] == 0, codes(resp_b)
            assert codes(resp_a)[1][1] < codes(resp_b)[1][1]

            mod = module(FETCH, 11)
            fp = mod.FetchPartition(partition=1, current_leader_epoch=-1, fetch_offset=0,
                                    log_start_offset=-1, partition_max_bytes=1 << 20)
            f = c.call(FETCH, 11, mod.FetchRequest(
                replica_id=-1, max_wait=0 * MS, min_bytes=1, max_bytes=1 << 20,
                isolation_level=0, session_id=0, session_epoch=-1,
                topics=(mod.FetchTopic(topic="big", partitions=(fp,)),),
                forgotten_topics_data=(), rack_id=""))
            part = f.responses[0].partitions[0]
            assert part.error_code == 0
            mine = [(h.base_offset, h.base_sequence) for _, h in iter_headers(part.records)
                    if h.producer_id == pid]
            assert mine == sorted(mine) and [s for _, s in mine] == [0, 1]
    finally:
        assert srv.stop() == 0, srv.log_text()[-3000:]


@pytest.mark.parametrize("config", [None, {"flush.messages": 1}], ids=["default", "flush1"])
def test_pipelined_idempotent_produce_across_restarts_keeps_sequence_order(tmp_path, config):
    data = tmp_path / "data"
    make_big_topic(data, config)
    srv = PylogServer(data).start()
    seqs = {0: 0, 1: 0}
    # Request shapes: the first names the large partition (waits for its rebuild), the
    # later ones the small one too, alone or with the large one.
    shapes = [(0, 1), (1,), (0, 1), (1,), (1, 0), (0,)]
    try:
        with RawClient(srv.bootstrap) as c:
            pid = init_pid(c)
        for round_ in range(6):
            with RawClient(srv.bootstrap) as c:
                requests = []
                for shape in shapes:
                    parts = []
                    for i in shape:
                        parts.append((i, idem_batch(pid, seqs[i], i)))
                        seqs[i] += 1
                    requests.append(parts)
                for resp in pipeline(c, requests):
                    for index, (code, _offset) in codes(resp).items():
                        assert code == 0, (round_, index, code)
            if round_ % 3 == 2:
                srv.kill()                   # unclean: recovery, then the rebuild
                srv.start()
            else:
                srv.restart()
    finally:
        assert srv.stop() == 0, srv.log_text()[-3000:]
    for i in (0, 1):
        batches = producer_batches(data, pid, i)
        offsets = [o for o, _ in batches]
        assert offsets == sorted(offsets)
        assert [s for _, s in batches] == list(range(seqs[i])), (i, batches)


def test_long_polling_fetch_is_applied_before_a_later_produce_of_its_connection(bootstrap):
    """Kafka's order for reads too: a Fetch waiting for data on an empty partition, then a
    Produce to it on the same connection: the Fetch is answered (empty, at its max wait)
    before the Produce is applied, so it cannot see that later request's record."""
    from test_protocol_raw import batch, fetch_req, metadata, produce_req
    with RawClient(bootstrap) as c:
        metadata(c, ["order-poll"])
        fetch_cid = c.send(FETCH, 11, fetch_req("order-poll", 0, max_wait_ms=300))
        produce_cid = c.send(PRODUCE, 8, produce_req("order-poll", batch(["later"])))
        cid, f = c.recv(FETCH, 11)
        assert cid == fetch_cid
        part = f.responses[0].partitions[0]
        assert (part.error_code, part.high_watermark, part.records or b"") == (0, 0, b"")
        cid, p = c.recv(PRODUCE, 8)
        assert cid == produce_cid
        assert p.responses[0].partition_responses[0].base_offset == 0
