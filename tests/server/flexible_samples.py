"""Valid flexible request frames (header v2 + body) for the bounds and fuzz tests."""
from __future__ import annotations

import datetime
import io
import struct
import sys
import uuid

from kio.serial import entity_writer

from pylog.server.kafka.messages import request_class

MS = datetime.timedelta(milliseconds=500)


def _mod(key, version):
    return sys.modules[request_class(key, version).__module__]


def frame(key: int, version: int, body) -> bytes:
    buf = io.BytesIO()
    entity_writer(type(body))(buf, body)
    return struct.pack(">hhih", key, version, 1, 1) + b"c" + b"\0" + buf.getvalue()


def samples() -> list[bytes]:
    out = []
    m = _mod(0, 13)
    out.append(frame(0, 13, m.ProduceRequest(transactional_id=None, acks=-1, timeout=MS,
               topic_data=(m.TopicProduceData(topic_id=uuid.uuid4(), partition_data=(
                   m.PartitionProduceData(index=0, records=b"r" * 70),)),))))
    m = _mod(1, 18)
    out.append(frame(1, 18, m.FetchRequest(max_wait=MS, min_bytes=1, max_bytes=1 << 20,
               isolation_level=0, session_id=5, session_epoch=2, rack_id="r",
               topics=(m.FetchTopic(topic_id=uuid.uuid4(), partitions=(
                   m.FetchPartition(partition=0, fetch_offset=3, partition_max_bytes=9),
                   m.FetchPartition(partition=1, fetch_offset=3, partition_max_bytes=9))),),
               forgotten_topics_data=(m.ForgottenTopic(topic_id=uuid.uuid4(),
                                                       partitions=(1, 2)),))))
    m = _mod(3, 13)
    out.append(frame(3, 13, m.MetadataRequest(topics=(m.MetadataRequestTopic(
        topic_id=None, name="abc"),), allow_auto_topic_creation=False,
        include_topic_authorized_operations=False)))
    m = _mod(18, 4)
    out.append(frame(18, 4, m.ApiVersionsRequest(client_software_name="n",
                                                 client_software_version="1")))
    m = _mod(75, 0)
    out.append(frame(75, 0, m.DescribeTopicPartitionsRequest(
        topics=(m.TopicRequest(name="a"), m.TopicRequest(name="b")),
        response_partition_limit=5, cursor=m.Cursor(topic_name="a", partition_index=1))))
    m = _mod(19, 7)
    out.append(frame(19, 7, m.CreateTopicsRequest(timeout=MS, validate_only=True, topics=(
        m.CreatableTopic(name="x", num_partitions=1, replication_factor=1, assignments=(),
                         configs=(m.CreatableTopicConfig(name="retention.ms", value="1"),)),))))
    return out
