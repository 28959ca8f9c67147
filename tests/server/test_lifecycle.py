"""pylog-server as a process: startup line, SIGTERM shutdown, the data-dir lock, restarts,
kill -9 during a durable produce, and the embedded API reading what clients wrote."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

from kafka_raw import RawClient, module

import pylog
from pylog.records import encode_batch
from pylog.testing import PylogServer

PRODUCE, METADATA, INIT_PRODUCER_ID, LIST_OFFSETS = 0, 3, 22, 2


def produce_raw(client, topic, data):
    import datetime
    mod = module(METADATA, 1)
    client.call(METADATA, 1, mod.MetadataRequest(topics=(mod.MetadataRequestTopic(name=topic),)))
    mod = module(PRODUCE, 8)
    pd = mod.PartitionProduceData(index=0, records=data)
    r = client.call(PRODUCE, 8, mod.ProduceRequest(
        transactional_id=None, acks=-1, timeout=datetime.timedelta(seconds=5),
        topic_data=(mod.TopicProduceData(name=topic, partition_data=(pd,)),)))
    return r.responses[0].partition_responses[0]


def test_startup_prints_the_listener_and_sigterm_exits_0_with_a_clean_marker(tmp_path):
    srv = PylogServer(tmp_path / "data").start()
    assert srv.port > 0 and srv.host == "127.0.0.1"
    with RawClient(srv.bootstrap) as c:
        assert produce_raw(c, "life", encode_batch([b"a"])).error_code == 0
    assert srv.stop() == 0
    assert (tmp_path / "data" / ".kafka_cleanshutdown").exists()
    assert "stopped cleanly" in srv.log_text()


def test_cluster_id_is_stable_across_restarts(tmp_path):
    srv = PylogServer(tmp_path / "data").start()
    mod = module(METADATA, 2)
    try:
        with RawClient(srv.bootstrap) as c:
            first = c.call(METADATA, 2, mod.MetadataRequest(topics=())).cluster_id
        srv.restart()
        with RawClient(srv.bootstrap) as c:
            assert c.call(METADATA, 2, mod.MetadataRequest(topics=())).cluster_id == first
    finally:
        assert srv.stop() == 0


def test_sigterm_finishes_an_in_flight_long_poll(tmp_path):
    srv = PylogServer(tmp_path / "data").start()
    import confluent_kafka as ck
    c = ck.Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "x",
                     "fetch.wait.max.ms": 5000})
    c.assign([ck.TopicPartition("idle", 0, 0)])
    c.poll(1.0)                                  # a Fetch is now parked in the server
    started = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - started < 5
    c.close()


def test_second_server_on_the_same_data_dir_is_refused(tmp_path):
    srv = PylogServer(tmp_path / "data").start()
    try:
        proc = subprocess.run([sys.executable, "-m", "pylog.server.main", "--data-dir",
                               str(tmp_path / "data"), "--kafka-listener", "127.0.0.1:0"],
                              capture_output=True, timeout=30)
        assert proc.returncode == 1
        assert str(srv.process.pid) in proc.stderr.decode()
    finally:
        assert srv.stop() == 0


def test_log_json_writes_one_json_object_per_line_and_sigint_stops_cleanly(tmp_path):
    import signal
    srv = PylogServer(tmp_path / "data", args=["--log-json"]).start()
    srv.process.send_signal(signal.SIGINT)
    assert srv.process.wait(15) == 0
    srv.process.stdout.close()
    assert (tmp_path / "data" / ".kafka_cleanshutdown").exists()
    lines = [json.loads(line) for line in srv.log_text().splitlines() if line.strip()]
    assert any(rec["msg"].startswith("kafka listener on") for rec in lines)
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])


def test_producer_ids_and_idempotence_state_survive_a_restart(tmp_path):
    srv = PylogServer(tmp_path / "data").start()
    mod = module(INIT_PRODUCER_ID, 1)
    import datetime
    init = mod.InitProducerIdRequest(transactional_id=None,
                                     transaction_timeout=datetime.timedelta(seconds=60))
    try:
        with RawClient(srv.bootstrap) as c:
            pid = c.call(INIT_PRODUCER_ID, 1, init).producer_id
            b = encode_batch([b"x", b"y"], producer_id=pid, producer_epoch=0, base_sequence=0)
            assert produce_raw(c, "idem-restart", b).base_offset == 0
        srv.kill()                                 # crash: state must come from the log
        srv.start()
        with RawClient(srv.bootstrap) as c:
            assert c.call(INIT_PRODUCER_ID, 1, init).producer_id > pid
            again = produce_raw(c, "idem-restart", b)
            assert (again.error_code, again.base_offset) == (0, 0)
            nxt = encode_batch([b"z"], producer_id=pid, producer_epoch=0, base_sequence=2)
            assert produce_raw(c, "idem-restart", nxt).base_offset == 2
    finally:
        srv.stop()


def test_kill_9_during_acks_all_produce_loses_no_acknowledged_record(tmp_path):
    import confluent_kafka as ck
    srv = PylogServer(tmp_path / "data").start()
    acked: dict[int, bytes] = {}
    stop = threading.Event()

    def on_delivery(err, msg):
        if err is None:
            acked[msg.offset()] = msg.value()

    def produce_forever():
        p = ck.Producer({"bootstrap.servers": srv.bootstrap, "acks": "all", "linger.ms": 2,
                         "enable.idempotence": True, "message.timeout.ms": 3000})
        i = 0
        while not stop.is_set():
            try:
                p.produce("crash", value=b"rec-%08d" % i, partition=0, on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.001 if i % 100 == 0 else 0)
        p.flush(5)

    thread = threading.Thread(target=produce_forever)
    thread.start()
    deadline = time.monotonic() + 20
    while len(acked) < 5000 and time.monotonic() < deadline:      # several batches acked
        time.sleep(0.05)
    time.sleep(0.5)                                                # kill mid-stream
    srv.kill()
    stop.set()
    thread.join(30)
    assert len(acked) >= 5000
    srv.requested_port = 0
    srv.start()
    try:
        c = ck.Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "x",
                         "check.crcs": True, "enable.auto.commit": False})
        c.assign([ck.TopicPartition("crash", 0, 0)])
        seen, deadline, target = {}, time.monotonic() + 30, max(acked) + 1
        while len(seen) < target and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None:
                assert m.error() is None, m.error()
                seen[m.offset()] = m.value()
        c.close()
        missing = [o for o, v in acked.items() if seen.get(o) != v]
        assert missing == []
        assert sorted(seen) == list(range(len(seen)))        # contiguous, nothing corrupt
    finally:
        srv.stop()


def test_embedded_api_reads_client_records_and_clients_read_embedded_records(tmp_path):
    import confluent_kafka as ck
    from kafka import KafkaConsumer, TopicPartition
    data = tmp_path / "data"
    srv = PylogServer(data).start()
    p = ck.Producer({"bootstrap.servers": srv.bootstrap, "compression.type": "zstd"})
    sent = [(b"k%d" % i, b"v%d" % i * 30, [("h", b"%d" % i)], 1_700_000_000_000 + i)
            for i in range(50)]
    for k, v, h, ts in sent:
        p.produce("interop", value=v, key=k, headers=h, timestamp=ts, partition=0)
    assert p.flush(10) == 0
    assert srv.stop() == 0
    with pylog.open(data) as log:
        recs = log.topic("interop").partition(0).read(0, max_records=100)
        assert [(r.key, r.value, list(r.headers), r.timestamp) for r in recs] == sent
        t = log.topic("interop")
        for i in range(10):
            t.append(b"emb%d" % i, key=b"e%d" % i, headers=[("src", b"embedded")],
                     timestamp=1_800_000_000_000 + i, partition=0)
    srv.requested_port = 0
    srv.start()
    try:
        consumer = KafkaConsumer(bootstrap_servers=srv.bootstrap)
        tp = TopicPartition("interop", 0)
        consumer.assign([tp])
        consumer.seek(tp, 50)
        got, deadline = [], time.monotonic() + 20
        while len(got) < 10 and time.monotonic() < deadline:
            for m in consumer.poll(timeout_ms=1000).get(tp, []):
                got.append((m.offset, m.key, m.value, list(m.headers), m.timestamp))
        consumer.close()
        assert got == [(50 + i, b"e%d" % i, b"emb%d" % i, [("src", b"embedded")],
                        1_800_000_000_000 + i) for i in range(10)]
    finally:
        srv.stop()
