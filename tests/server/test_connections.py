"""Per-connection behaviour: pipelined requests answered in order (durable acks included),
idle connections and half-sent requests closed after their deadlines."""
from __future__ import annotations

import datetime
import struct
import time

from kafka_raw import RawClient, module

from pylog.records import encode_batch

MS = datetime.timedelta(milliseconds=1)


def create(client, name, configs=()):
    mod = module(19, 4)
    ct = mod.CreatableTopic(name=name, num_partitions=1, replication_factor=1, assignments=(),
                            configs=tuple(mod.CreatableTopicConfig(name=k, value=v)
                                          for k, v in configs))
    r = client.call(19, 4, mod.CreateTopicsRequest(topics=(ct,), timeout=MS, validate_only=False))
    assert r.topics[0].error_code == 0


def test_pipelined_durable_produces_are_answered_in_request_order(bootstrap):
    mod = module(0, 7)
    with RawClient(bootstrap) as c:
        create(c, "pipelined", [("flush.messages", "1")])
        sent = []
        for i in range(20):
            pd = mod.PartitionProduceData(index=0, records=encode_batch([b"r%d" % i] * 3))
            sent.append(c.send(0, 7, mod.ProduceRequest(
                transactional_id=None, acks=-1, timeout=5000 * MS,
                topic_data=(mod.TopicProduceData(name="pipelined", partition_data=(pd,)),))))
        answers = [c.recv(0, 7) for _ in sent]
    assert [cid for cid, _ in answers] == sent
    assert [r.responses[0].partition_responses[0].base_offset for _, r in answers] == \
        list(range(0, 60, 3))


def test_idle_connections_and_half_sent_requests_are_closed(pylog_server_factory):
    srv = pylog_server_factory(args=["--idle-ms", "1500", "--request-timeout-ms", "1000"])
    with RawClient(srv.bootstrap) as partial:
        partial.sock.sendall(struct.pack(">i", 100) + b"\0\x03")
        started = time.monotonic()
        assert partial.is_closed_by_server(wait=4)
        assert 0.9 < time.monotonic() - started < 4
    mod = module(3, 1)
    with RawClient(srv.bootstrap) as idle, RawClient(srv.bootstrap) as busy:
        for _ in range(6):                     # a client that keeps talking stays connected
            busy.call(3, 1, mod.MetadataRequest(topics=()))
            time.sleep(0.4)
        assert idle.is_closed_by_server(wait=2)
        busy.call(3, 1, mod.MetadataRequest(topics=()))


def test_max_connections_per_ip_refuses_the_extra_ones(pylog_server_factory):
    import socket
    import time

    from kafka_raw import RawClient
    srv = pylog_server_factory(args=["--max-connections-per-ip", "3"])
    socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(5)]
    try:
        time.sleep(0.5)
        closed = []
        for s in socks:
            s.settimeout(1.0)
            try:
                closed.append(s.recv(1) == b"")
            except socket.timeout:
                closed.append(False)
        assert closed.count(True) == 2, closed
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    with RawClient(srv.bootstrap) as c:                     # freed: admitted again
        from kafka_raw import req
        assert c.call(18, 3, req(18, 3, client_software_name="t",
                                 client_software_version="1")).error_code == 0
