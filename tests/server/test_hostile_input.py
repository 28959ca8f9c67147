"""Hostile bytes over raw sockets (reliability.md T9/T11): the server closes the connection
or answers with a Kafka error code, writes nothing, creates no file outside its data
directory, and keeps serving a well-behaved client on another connection."""
from __future__ import annotations

import os
import socket
import struct
import threading
import time

import pytest
from kafka_raw import RawClient, module

from pylog.records import encode_batch

METADATA, PRODUCE = 3, 0


def tree(root) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


def metadata_v1(client, names=None):
    mod = module(METADATA, 1)
    topics = None if names is None else tuple(mod.MetadataRequestTopic(name=n) for n in names)
    return client.call(METADATA, 1, mod.MetadataRequest(topics=topics))


class WellBehaved:
    """A client producing on its own connection while the test misbehaves."""

    def __init__(self, bootstrap):
        self.client = RawClient(bootstrap)
        metadata_v1(self.client, ["calm"])
        self.acked, self.errors = 0, []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import datetime
        mod = module(PRODUCE, 8)
        try:
            while not self._stop.is_set():
                pd = mod.PartitionProduceData(index=0, records=encode_batch([b"calm"]))
                r = self.client.call(PRODUCE, 8, mod.ProduceRequest(
                    transactional_id=None, acks=1, timeout=datetime.timedelta(seconds=5),
                    topic_data=(mod.TopicProduceData(name="calm", partition_data=(pd,)),)))
                assert r.responses[0].partition_responses[0].error_code == 0
                self.acked += 1
                time.sleep(0.005)
        except Exception as exc:        # noqa: BLE001 -- reported by stop()
            self.errors.append(exc)

    def stop(self):
        self._stop.set()
        self.thread.join(10)
        self.client.close()
        return self.acked, self.errors


@pytest.fixture
def calm(bootstrap):
    w = WellBehaved(bootstrap)
    yield w
    acked, errors = w.stop()
    assert errors == [] and acked > 0


def connect(bootstrap):
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    return s


def closed_soon(s, within=2.0) -> bool:
    s.settimeout(within)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


@pytest.mark.parametrize("size", [-1, 0, 5, 104_857_601, 2**31 - 1, -2**31])
def test_frame_sizes_kafka_refuses_close_the_connection(bootstrap, calm, size):
    s = connect(bootstrap)
    started = time.monotonic()
    s.sendall(struct.pack(">i", size) + b"\0" * 16)
    assert closed_soon(s)
    assert time.monotonic() - started < 1.0
    s.close()


def test_truncated_frames_then_close_leave_the_server_serving(bootstrap, calm):
    for cut in (1, 3, 4, 10, 40):
        s = connect(bootstrap)
        s.sendall((struct.pack(">i", 200) + struct.pack(">hhih", 3, 1, 1, 0) + b"\0" * 40)[:cut])
        s.close()
    with RawClient(bootstrap) as c:
        assert metadata_v1(c).brokers[0].node_id == 0


@pytest.mark.parametrize("key,version", [(999, 0), (17, 0), (36, 3), (0, 2), (0, 14), (1, 3),
                                         (1, 19), (3, 14), (-5, 0)])
def test_unknown_api_keys_and_versions_close_the_connection(bootstrap, calm, key, version):
    with RawClient(bootstrap) as c:
        c.send_frame(c.header(key, version) + b"\0" * 30)
        assert c.is_closed_by_server()


def test_array_claiming_2_pow_31_elements_closes_without_allocating(bootstrap, calm):
    with RawClient(bootstrap) as c:
        # Metadata v1 whose topics array claims INT32_MAX entries, 10 bytes of body.
        c.send_frame(c.header(METADATA, 1) + struct.pack(">i", 2**31 - 1) + b"\0" * 10)
        assert c.is_closed_by_server()
    with RawClient(bootstrap) as c:
        # Produce v8 topic_data claiming INT32_MAX topics.
        c.send_frame(c.header(PRODUCE, 8) + struct.pack(">hhii", -1, 1, 1000, 2**31 - 1)
                     + b"\0" * 10)
        assert c.is_closed_by_server()


def test_invalid_topic_names_create_nothing_anywhere(server, calm):
    root = server.data_dir.parent
    before = tree(root)
    names = ["../x", "a/b", "t" * 250, "..", ".", "", "../../etc/pylog", "/abs", "a\\b",
             "x\x00y", "ü", "with space"]
    with RawClient(server.bootstrap) as c:
        md = metadata_v1(c, names)
        assert {t.error_code for t in md.topics} == {17}
    after = tree(root)
    new = {p for p in after - before if not p.startswith("data" + os.sep)
           and not p.endswith(".server.log")}
    assert new == set()
    inside = {p for p in after - before if p.startswith("data" + os.sep)}
    assert not any("x-0" in p or "b-0" in p or "pylog-0" in p for p in inside), inside


def test_random_garbage_streams_never_stop_the_server(bootstrap, calm):
    import random
    rng = random.Random(1234)
    for _ in range(40):
        s = connect(bootstrap)
        payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(10, 300)))
        try:
            s.sendall(struct.pack(">i", len(payload)) + payload)
            closed_soon(s, 0.2)
        except OSError:
            pass
        s.close()
    with RawClient(bootstrap) as c:
        assert metadata_v1(c).brokers[0].port == int(bootstrap.rsplit(":", 1)[1])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_thousands_of_bad_frames_do_not_grow_memory(server):
    sizes = [-1, 0, 104_857_601, 2**31 - 1]
    for size in sizes * 25:                                   # warm up allocator pools
        s = connect(server.bootstrap)
        s.sendall(struct.pack(">i", size))
        s.close()
    before = rss_kib(server.process.pid)
    for i in range(2000):
        s = connect(server.bootstrap)
        if i % 5 == 4:                  # a truncated frame announcing 50 MB, then gone
            s.sendall(struct.pack(">i", 50_000_000) + b"\0" * 1000)
        else:
            s.sendall(struct.pack(">i", sizes[i % 4]) + b"\0" * 8)
        s.close()
    with RawClient(server.bootstrap) as c:
        metadata_v1(c)
    assert rss_kib(server.process.pid) - before < 10 * 1024


def test_a_client_that_never_reads_its_responses_is_held_back(server):
    """Reading stops once the socket's write buffer is full: 300 pipelined 1 MiB Fetches
    from a client that never reads cost the server a bounded amount of memory."""
    import datetime
    with RawClient(server.bootstrap) as c:
        metadata_v1(c, ["greedy"])
        mod = module(PRODUCE, 8)
        for _ in range(4):
            pd = mod.PartitionProduceData(index=0, records=encode_batch([b"g" * 500_000]))
            r = c.call(PRODUCE, 8, mod.ProduceRequest(
                transactional_id=None, acks=1, timeout=datetime.timedelta(seconds=5),
                topic_data=(mod.TopicProduceData(name="greedy", partition_data=(pd,)),)))
            assert r.responses[0].partition_responses[0].error_code == 0
    before = rss_kib(server.process.pid)
    fmod = module(1, 11)
    fetch = fmod.FetchRequest(
        replica_id=-1, max_wait=datetime.timedelta(0), min_bytes=1, max_bytes=4 << 20,
        isolation_level=0, session_id=0, session_epoch=-1, forgotten_topics_data=(),
        rack_id="", topics=(fmod.FetchTopic(topic="greedy", partitions=(fmod.FetchPartition(
            partition=0, current_leader_epoch=-1, fetch_offset=0, log_start_offset=-1,
            partition_max_bytes=4 << 20),)),))
    greedy = RawClient(server.bootstrap)
    greedy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    greedy.sock.settimeout(0.2)
    try:
        for _ in range(300):
            try:
                greedy.send(1, 11, fetch)
            except socket.timeout:
                break                      # the server stopped reading us: held back
        time.sleep(1.0)
        grown = rss_kib(server.process.pid) - before
        with RawClient(server.bootstrap) as other:
            assert metadata_v1(other).brokers[0].node_id == 0
    finally:
        greedy.close()
    assert grown < 32 * 1024, f"RSS grew {grown} KiB"   # 300 answers would be 600 MiB
