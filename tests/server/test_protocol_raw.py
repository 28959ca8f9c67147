"""Exact protocol behaviour over a raw socket: versions, errors, idempotence, Fetch rules."""
from __future__ import annotations

import datetime
import struct
import threading
import time

import pytest
from kafka_raw import RawClient, module, req

from pylog.records import decode_batch, encode_batch, iter_headers

PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS = 0, 1, 2, 3, 18
INIT_PRODUCER_ID, CREATE_TOPICS, DELETE_TOPICS, DESCRIBE_CONFIGS = 22, 19, 20, 32
FIND_COORDINATOR, JOIN_GROUP, OFFSET_FETCH = 10, 11, 9
MS = datetime.timedelta(milliseconds=1)


def produce_req(topic, records: bytes, partition=0, acks=-1, version=8):
    mod = module(PRODUCE, version)
    pd = mod.PartitionProduceData(index=partition, records=records)
    td = mod.TopicProduceData(name=topic, partition_data=(pd,))
    return mod.ProduceRequest(transactional_id=None, acks=acks, timeout=5000 * MS,
                              topic_data=(td,))


def produce(client, topic, records, partition=0, acks=-1, version=8):
    """Produce like a client: Metadata first (which auto-creates), then Produce."""
    metadata(client, [topic])
    resp = client.call(PRODUCE, version, produce_req(topic, records, partition, acks, version))
    return resp.responses[0].partition_responses[0]


def fetch_req(topic, offset, partition=0, max_wait_ms=0, max_bytes=1 << 20,
              partition_max_bytes=1 << 20, min_bytes=1, version=11):
    mod = module(FETCH, version)
    fp = mod.FetchPartition(partition=partition, current_leader_epoch=-1, fetch_offset=offset,
                            log_start_offset=-1, partition_max_bytes=partition_max_bytes)
    return mod.FetchRequest(replica_id=-1, max_wait=max_wait_ms * MS, min_bytes=min_bytes,
                            max_bytes=max_bytes, isolation_level=0, session_id=0,
                            session_epoch=-1, topics=(mod.FetchTopic(topic=topic,
                                                                     partitions=(fp,)),),
                            forgotten_topics_data=(), rack_id="")


def fetch(client, topic, offset, **kw):
    resp = client.call(FETCH, 11, fetch_req(topic, offset, **kw))
    assert resp.session_id == 0
    return resp.responses[0].partitions[0]


def latest(client, topic, partition=0):
    mod = module(LIST_OFFSETS, 5)
    q = mod.ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=(
        mod.ListOffsetsTopic(name=topic, partitions=(
            mod.ListOffsetsPartition(partition_index=partition, current_leader_epoch=-1,
                                     timestamp=-1),)),))
    p = client.call(LIST_OFFSETS, 5, q).topics[0].partitions[0]
    return p.offset if p.error_code == 0 else None


def metadata(client, topics, version=8, allow=True):
    mod = module(METADATA, version)
    extra = {"topic_id": None} if version >= 10 else {}
    fields = {"topics": None if topics is None else
              tuple(mod.MetadataRequestTopic(name=t, **extra) for t in topics)}
    if version >= 4:
        fields["allow_auto_topic_creation"] = allow
    if version >= 8:
        fields.update(include_topic_authorized_operations=False)
    if 8 <= version <= 10:
        fields.update(include_cluster_authorized_operations=False)
    return client.call(METADATA, version, req(METADATA, version, **fields))


def batch(values, **kw):
    return encode_batch([v if isinstance(v, bytes) else v.encode() for v in values],
                        timestamps=1_700_000_000_000, **kw)


@pytest.fixture
def client(bootstrap):
    with RawClient(bootstrap) as c:
        yield c


# -- ApiVersions -------------------------------------------------------------------------
@pytest.mark.parametrize("version", [5, 7, 300])
def test_api_versions_above_4_is_answered_in_v0_layout_with_error_35(client, version):
    client.send_frame(client.header(API_VERSIONS, version) + b"\x00\x00\x00")
    frame = client.recv_frame()
    cid, code, count = struct.unpack_from(">ihi", frame, 0)
    assert (cid, code) == (client.correlation_id, 35)
    entries = [struct.unpack_from(">hhh", frame, 10 + 6 * i) for i in range(count)]
    assert (18, 0, 4) in entries and (0, 0, 13) in entries and (1, 0, 18) in entries
    assert len(frame) == 10 + 6 * count


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_api_versions_served_versions_list_every_api_from_zero(client, version):
    fields = {"client_software_name": "raw", "client_software_version": "1"} \
        if version >= 3 else {}
    resp = client.call(API_VERSIONS, version, req(API_VERSIONS, version, **fields))
    assert resp.error_code == 0
    table = {a.api_key: (a.min_version, a.max_version) for a in resp.api_keys}
    assert table[0] == (0, 13) and table[1] == (0, 18) and table[22] == (0, 6)
    assert all(lo == 0 for lo, _ in table.values())


@pytest.mark.parametrize("version", [3, 4])
def test_api_versions_v3_plus_is_flexible_with_a_v0_response_header(client, version):
    """The response header stays v0 (no tagged-field byte after the correlation id),
    the body is flexible and lists the finalized features."""
    body = req(API_VERSIONS, version, client_software_name="raw",
               client_software_version="1.0")
    client.send(API_VERSIONS, version, body)
    frame = client.recv_frame()
    cid, code = struct.unpack_from(">ih", frame, 0)      # no tag byte before error_code
    assert (cid, code) == (client.correlation_id, 0)
    resp = client.call(API_VERSIONS, version, body)
    finalized = {f.name: f.max_version_level for f in resp.finalized_features}
    assert finalized["metadata.version"] >= 7
    assert {f.name for f in resp.supported_features} >= set(finalized)


# -- Metadata ----------------------------------------------------------------------------
def test_metadata_null_means_all_and_empty_means_none(client):
    produce(client, "md-a", batch(["x"]))
    assert "md-a" in {t.name for t in metadata(client, None).topics}
    assert metadata(client, []).topics == ()
    assert "md-a" in {t.name for t in metadata(client, [], version=0).topics}


def test_metadata_auto_creates_unless_the_request_forbids_it(client):
    t = metadata(client, ["md-new"]).topics[0]
    assert (t.error_code, len(t.partitions), t.partitions[0].leader_epoch) == (0, 1, 0)
    t = metadata(client, ["md-not-created"], allow=False).topics[0]
    assert (t.error_code, t.partitions) == (3, ())


# -- Produce -----------------------------------------------------------------------------
def test_produce_assigns_offsets_and_fetch_returns_the_whole_containing_batch(client):
    assert produce(client, "p-basic", batch([f"a{i}" for i in range(10)])).base_offset == 0
    r = produce(client, "p-basic", batch([f"b{i}" for i in range(5)]))
    assert (r.error_code, r.base_offset, r.log_start_offset) == (0, 10, 0)
    part = fetch(client, "p-basic", 5)
    assert (part.error_code, part.high_watermark, part.last_stable_offset) == (0, 15, 15)
    assert part.log_start_offset == 0 and part.preferred_read_replica == -1
    headers = [h for _, h in iter_headers(part.records)]
    assert [h.base_offset for h in headers] == [0, 10]          # starts at the batch holding 5
    assert headers[0].partition_leader_epoch == 0


def test_produce_to_a_topic_not_yet_created_is_unknown_topic(client):
    r = client.call(PRODUCE, 8, produce_req("p-no-metadata-first", batch(["x"])))
    assert r.responses[0].partition_responses[0].error_code == 3


def test_produce_acks_0_sends_no_response(client):
    metadata(client, ["p-acks0"])
    client.send(PRODUCE, 8, produce_req("p-acks0", batch(["quiet"]), acks=0))
    cid = client.send(METADATA, 8, req(METADATA, 8, topics=(), allow_auto_topic_creation=True,
                                       include_cluster_authorized_operations=False,
                                       include_topic_authorized_operations=False))
    got, _ = client.recv(METADATA, 8)
    assert got == cid
    assert latest(client, "p-acks0") == 1


def test_failed_acks_0_produce_closes_the_connection(client):
    metadata(client, ["p-acks0-bad"])
    bad = bytearray(batch(["x"]))
    bad[-1] ^= 1
    client.send(PRODUCE, 8, produce_req("p-acks0-bad", bytes(bad), acks=0))
    assert client.is_closed_by_server()


def test_produce_invalid_acks_is_refused(client):
    r = produce(client, "p-badacks", batch(["x"]), acks=2)
    assert r.error_code == 21


def test_produce_bad_crc_is_corrupt_message_and_writes_nothing(client):
    good = bytearray(batch(["intact", "bytes"]))
    produce(client, "p-crc", bytes(good))
    good[-1] ^= 0xFF
    r = produce(client, "p-crc", bytes(good))
    assert r.error_code == 2
    assert latest(client, "p-crc") == 2


def test_produce_decompression_bomb_is_corrupt_message_and_writes_nothing(client):
    # ~300 MiB of zeros as zstd in a few KiB, claiming to be one record: refused while
    # inflating (MAX_INFLATED_BYTES), never held in memory whole.
    import cramjam

    from pylog.crc import crc32c
    produce(client, "p-bomb", batch(["before"]))
    c, chunk = cramjam.zstd.Compressor(), bytes(1 << 20)
    for _ in range(300):
        c.compress(chunk)
    bomb = bytearray(batch(["x"], compression=4)[:61]) + bytes(c.finish())
    bomb[8:12] = (len(bomb) - 12).to_bytes(4, "big")
    bomb[17:21] = crc32c(bytes(bomb[21:])).to_bytes(4, "big")
    r = produce(client, "p-bomb", bytes(bomb))
    assert r.error_code == 2
    assert latest(client, "p-bomb") == 1
    assert produce(client, "p-bomb", batch(["after"])).error_code == 0


def test_produce_batch_over_max_message_bytes_is_message_too_large(client):
    big = batch([b"x" * 1_048_600])
    r = produce(client, "p-big", big)
    assert r.error_code == 10
    assert latest(client, "p-big") == 0


def test_produce_two_batches_or_offset_mismatch_is_invalid_record(client):
    r = produce(client, "p-two", batch(["a"]) + batch(["b"]))
    assert r.error_code == 87
    bad = bytearray(batch(["a", "b", "c"]))
    struct.pack_into(">i", bad, 57, 7)             # recordsCount 7, lastOffsetDelta 2
    from pylog.crc import crc32c
    struct.pack_into(">I", bad, 17, crc32c(bytes(bad[21:])))
    assert produce(client, "p-two", bytes(bad)).error_code in (2, 87)
    assert latest(client, "p-two") == 0


def test_produce_to_unknown_partition_is_unknown_topic_or_partition(client):
    produce(client, "p-parts", batch(["x"]))
    assert produce(client, "p-parts", batch(["x"]), partition=3).error_code == 3


@pytest.mark.parametrize("name", ["../x", "a/b", "t" * 250, ".", "..", "", "bad name",
                                  "é", "a\\b", "x\x00y"])
def test_invalid_topic_names_get_error_17_everywhere(client, name):
    assert produce(client, name, batch(["x"])).error_code == 17
    assert metadata(client, [name]).topics[0].error_code == 17
    mod = module(CREATE_TOPICS, 4)
    ct = mod.CreatableTopic(name=name, num_partitions=1, replication_factor=1, assignments=(),
                            configs=())
    resp = client.call(CREATE_TOPICS, 4, mod.CreateTopicsRequest(topics=(ct,), timeout=MS,
                                                                 validate_only=False))
    assert resp.topics[0].error_code == 17


# -- Idempotence -------------------------------------------------------------------------
def init_pid(client):
    r = client.call(INIT_PRODUCER_ID, 1, req(INIT_PRODUCER_ID, 1, transactional_id=None,
                                             transaction_timeout=60000 * MS))
    assert r.error_code == 0 and r.producer_epoch == 0
    return r.producer_id


def test_idempotent_retry_is_acked_with_the_original_offset_and_not_written_twice(client):
    pid = init_pid(client)
    assert init_pid(client) != pid
    produce(client, "idem", batch(["other"]))
    first = batch(["a", "b", "c"], producer_id=pid, producer_epoch=0, base_sequence=0)
    second = batch(["d", "e"], producer_id=pid, producer_epoch=0, base_sequence=3)
    assert produce(client, "idem", first).base_offset == 1
    assert produce(client, "idem", second).base_offset == 4
    again = produce(client, "idem", first)                        # a retry of batch 1
    assert (again.error_code, again.base_offset) == (0, 1)
    assert latest(client, "idem") == 6
    gap = batch(["z"], producer_id=pid, producer_epoch=0, base_sequence=9)
    assert produce(client, "idem", gap).error_code == 45
    assert latest(client, "idem") == 6
    nxt = batch(["f"], producer_id=pid, producer_epoch=0, base_sequence=5)
    assert produce(client, "idem", nxt).base_offset == 6


def test_aiokafka_style_sequence_zero_without_producer_id_is_not_deduplicated(client):
    b = batch(["same"], base_sequence=0)                          # pid -1, seq 0
    assert produce(client, "no-idem", b).base_offset == 0
    assert produce(client, "no-idem", b).base_offset == 1


def test_transactional_init_producer_id_v1_gets_the_ids_producer(client):
    """(Transactions: test_transactions*.py.)  The same id again bumps the epoch."""
    first = client.call(INIT_PRODUCER_ID, 1, req(INIT_PRODUCER_ID, 1, transactional_id="tx",
                                                 transaction_timeout=60000 * MS))
    again = client.call(INIT_PRODUCER_ID, 1, req(INIT_PRODUCER_ID, 1, transactional_id="tx",
                                                 transaction_timeout=60000 * MS))
    assert first.error_code == again.error_code == 0 and first.producer_id >= 0
    assert (again.producer_id, again.producer_epoch) == (first.producer_id,
                                                         first.producer_epoch + 1)


# -- Fetch -------------------------------------------------------------------------------
def test_fetch_beyond_high_watermark_is_offset_out_of_range(client):
    produce(client, "f-range", batch(["a", "b"]))
    part = fetch(client, "f-range", 3)
    assert (part.error_code, part.high_watermark, part.log_start_offset) == (1, 2, 0)
    part = fetch(client, "f-range", 2)
    assert (part.error_code, bytes(part.records)) == (0, b"")


def test_fetch_returns_at_least_one_batch_even_over_the_limits(client):
    produce(client, "f-big", batch([b"y" * 5000]))
    produce(client, "f-big", batch([b"z" * 5000]))
    part = fetch(client, "f-big", 0, max_bytes=100, partition_max_bytes=100)
    records = [r for _, recs in [decode_batch(part.records)] for r in recs]
    assert [r.value for r in records] == [b"y" * 5000]


def test_fetch_unknown_topic_reports_it_and_every_requested_partition(client):
    part = fetch(client, "f-unknown", 0)
    assert part.error_code == 3


def test_fetch_long_poll_is_woken_by_an_append(client, bootstrap):
    produce(client, "f-poll", batch(["first"]))

    def later():
        time.sleep(0.3)
        with RawClient(bootstrap) as other:
            produce(other, "f-poll", batch(["second"]))

    threading.Thread(target=later).start()
    started = time.monotonic()
    part = fetch(client, "f-poll", 1, max_wait_ms=10_000)
    waited = time.monotonic() - started
    assert waited < 5, waited
    _, recs = decode_batch(part.records)
    assert [r.value for r in recs] == [b"second"]


def test_fetch_long_poll_answers_empty_at_max_wait(client):
    produce(client, "f-wait", batch(["only"]))
    started = time.monotonic()
    part = fetch(client, "f-wait", 1, max_wait_ms=300)
    assert time.monotonic() - started >= 0.25
    assert (part.error_code, bytes(part.records)) == (0, b"")


# -- ListOffsets, admin, groups -------------------------------------------------------------
def test_list_offsets_earliest_latest_and_by_time(client):
    produce(client, "lo", encode_batch([b"a", b"b", b"c"], timestamps=[100, 200, 300]))
    mod = module(LIST_OFFSETS, 1)

    def ask(ts):
        q = mod.ListOffsetsRequest(replica_id=-1, topics=(mod.ListOffsetsTopic(
            name="lo", partitions=(mod.ListOffsetsPartition(partition_index=0,
                                                            timestamp=ts),)),))
        p = client.call(LIST_OFFSETS, 1, q).topics[0].partitions[0]
        return p.error_code, p.offset, p.timestamp
    assert ask(-2) == (0, 0, -1)
    assert ask(-1) == (0, 3, -1)
    assert ask(150) == (0, 1, 200)
    assert ask(300) == (0, 2, 300)
    assert ask(301) == (0, -1, -1)


def test_create_describe_delete_topics(client):
    mod = module(CREATE_TOPICS, 4)

    def create(name, n=1, rf=1, configs=()):
        cfg = tuple(mod.CreatableTopicConfig(name=k, value=v) for k, v in configs)
        ct = mod.CreatableTopic(name=name, num_partitions=n, replication_factor=rf,
                                assignments=(), configs=cfg)
        r = client.call(CREATE_TOPICS, 4, mod.CreateTopicsRequest(topics=(ct,), timeout=MS,
                                                                  validate_only=False))
        return r.topics[0].error_code
    assert create("adm", 3, configs=[("retention.ms", "1000")]) == 0
    assert create("adm") == 36
    assert create("adm-zero", 0) == 37
    assert create("adm-rf", 1, rf=3) == 38
    assert create("adm-cfg", 1, configs=[("retention.ms", "soon")]) == 40
    assert create("adm-default", -1, rf=-1) == 0
    dmod = module(DESCRIBE_CONFIGS, 1)
    res = dmod.DescribeConfigsResource(resource_type=2, resource_name="adm",
                                       configuration_keys=None)
    r = client.call(DESCRIBE_CONFIGS, 1, dmod.DescribeConfigsRequest(resources=(res,),
                                                                     include_synonyms=False))
    configs = {c.name: (c.value, c.config_source) for c in r.results[0].configs}
    assert configs["retention.ms"] == ("1000", 1)
    assert configs["max.message.bytes"][0] == "1048588"
    assert metadata(client, ["adm"]).topics[0].partitions[2].partition_index == 2
    delete = req(DELETE_TOPICS, 3, topic_names=("adm", "adm-never"), timeout=MS)
    codes = [x.error_code for x in client.call(DELETE_TOPICS, 3, delete).responses]
    assert codes == [0, 3]
    assert metadata(client, ["adm"], allow=False).topics[0].error_code == 3


def test_group_apis_answer_instead_of_closing(client):
    """Group APIs are served by the group coordinator (its own tests); here: no crash."""
    r = client.call(FIND_COORDINATOR, 2, req(FIND_COORDINATOR, 2, key="g", key_type=0))
    assert r.error_code in (0, 15)
    r = client.call(OFFSET_FETCH, 3, req(OFFSET_FETCH, 3, group_id="g", topics=None))
    assert r.error_code in (0, 15)
