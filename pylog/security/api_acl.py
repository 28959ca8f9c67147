"""Which ACL each Kafka API needs, where the handler does not check per resource.

Handlers of the data and group APIs check their own resources and answer Kafka's
per-item error codes (TOPIC_AUTHORIZATION_FAILED 29 on a partition, GROUP_AUTHORIZATION_FAILED
30 on a group): Produce (WRITE topic), Fetch (READ topic), ListOffsets and Metadata
(DESCRIBE topic; Metadata lists only what the principal may describe, and auto-creates
only with CREATE), FindCoordinator (DESCRIBE group), the group membership APIs, OffsetCommit
(READ group), OffsetFetch (DESCRIBE group), the share-group APIs (READ group and topic),
the ACL and SCRAM admin APIs (ALTER / DESCRIBE cluster).

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
    15: DESCRIBE,          # DescribeGroups
    16: DESCRIBE,          # ListGroups
    19: CREATE,            # CreateTopics
    20: DELETE,            # DeleteTopics
    21: DELETE,            # DeleteRecords
    22: IDEMPOTENT_WRITE,  # InitProducerId
    32: DESCRIBE_CONFIGS,  # DescribeConfigs
    33: ALTER_CONFIGS,     # AlterConfigs
    35: DESCRIBE,          # DescribeLogDirs
    37: ALTER,             # CreatePartitions
    42: DELETE,            # DeleteGroups
    43: ALTER,             # ElectLeaders
    44: ALTER_CONFIGS,     # IncrementalAlterConfigs
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
