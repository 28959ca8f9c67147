"""Which ACL each Kafka API needs, where the handler does not check per resource.

Handlers of the data and group APIs check their own resources and answer Kafka's
per-item error codes (TOPIC_AUTHORIZATION_FAILED 29 on a partition, GROUP_AUTHORIZATION_FAILED
30 on a group): Produce (WRITE topic), Fetch (READ topic), ListOffsets and Metadata
(DESCRIBE topic; Metadata lists only what the principal may describe, and auto-creates
only with CREATE), FindCoordinator (DESCRIBE group), the group membership APIs, OffsetCommit
(READ group), OffsetFetch (DESCRIBE group), the share-group APIs (READ group and topic),
the ACL and SCRAM admin APIs (ALTER / DESCRIBE cluster), CreateTopics (CREATE on the
cluster or the topic), DeleteTopics and DeleteRecords (DELETE topic), CreatePartitions
(ALTER topic), Describe/AlterConfigs and IncrementalAlterConfigs (DESCRIBE_CONFIGS /
ALTER_CONFIGS on the topic, group or cluster), ListGroups (lists what DESCRIBE allows),
DescribeGroups (DESCRIBE group), DeleteGroups (DELETE group), InitProducerId
(IDEMPOTENT_WRITE on the cluster or WRITE on any topic: CLUSTER_AUTHORIZATION_FAILED).

The admin APIs below are checked coarsely, on the cluster resource ``kafka-cluster``,
before their handler runs; a principal without that right has its connection closed
(logged) instead of a per-resource error code — a documented gap.
"""
from __future__ import annotations

__all__ = ["COARSE", "CLUSTER"]

CLUSTER = 4
READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 3, 4, 5, 6, 7, 8
DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE = 10, 11, 12

COARSE: dict[int, int] = {
    35: DESCRIBE,          # DescribeLogDirs
    43: ALTER,             # ElectLeaders
    47: DELETE,            # OffsetDelete
    60: DESCRIBE,          # DescribeCluster
    61: DESCRIBE,          # DescribeProducers
    69: DESCRIBE,          # ConsumerGroupDescribe
    75: DESCRIBE,          # DescribeTopicPartitions
    77: DESCRIBE,          # ShareGroupDescribe
    90: DESCRIBE,          # DescribeShareGroupOffsets
    91: ALTER,             # AlterShareGroupOffsets
    92: DELETE,            # DeleteShareGroupOffsets
}
