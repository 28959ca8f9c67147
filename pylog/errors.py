"""pylog's exception tree, each class mapped to one Kafka error code.

Names can change; codes cannot.  Every error that can reach a client is a
``PylogError`` subclass whose ``errno`` is the Kafka error code from Kafka's
``Errors.java`` (research/kafka-protocol.md section 4).  ``for_code(n)`` gives the
class for a code, so the server can turn an exception into a response field and a
client-side helper can turn a code back into an exception.
"""
from __future__ import annotations

__all__ = [
    "PylogError", "for_code", "error_name",
    "UnknownServerError", "OffsetOutOfRangeError", "CorruptRecordError",
    "UnknownTopicError", "LeaderNotAvailableError", "RequestTimedOutError",
    "RecordTooLargeError", "CoordinatorLoadInProgressError",
    "CoordinatorNotAvailableError", "NotCoordinatorError", "InvalidTopicError",
    "RecordListTooLargeError", "InvalidRequiredAcksError", "IllegalGenerationError",
    "InconsistentGroupProtocolError", "InvalidGroupIdError", "UnknownMemberIdError",
    "InvalidSessionTimeoutError", "RebalanceInProgressError",
    "OffsetMetadataTooLargeError", "InvalidCommitOffsetSizeError",
    "InvalidTimestampError", "UnsupportedVersionError", "TopicExistsError",
    "InvalidPartitionsError", "InvalidReplicationFactorError", "InvalidConfigError",
    "InvalidRequestError", "OutOfOrderSequenceError", "DuplicateSequenceError",
    "InvalidProducerEpochError", "StorageError", "UnknownProducerIdError",
    "NonEmptyGroupError", "GroupIdNotFoundError", "MemberIdRequiredError",
    "InvalidRecordError", "LogLockedError", "ProtocolError",
    "UnknownTopicIdError", "InconsistentTopicIdError", "FencedMemberEpochError",
    "UnreleasedInstanceIdError", "GroupMaxSizeReachedError", "FencedInstanceIdError",
    "UnstableOffsetCommitError", "GroupSubscribedToTopicError", "PolicyViolationError",
    "FetchSessionIdNotFoundError", "InvalidFetchSessionEpochError",
    "UnsupportedAssignorError", "StaleMemberEpochError", "ThrottlingQuotaExceededError",
    "InvalidReplicaAssignmentError", "InvalidRecordStateError",
    "TopicAuthorizationFailedError", "GroupAuthorizationFailedError",
    "ClusterAuthorizationFailedError", "SaslAuthenticationFailedError",
]

_REGISTRY: dict[int, type["PylogError"]] = {}


class PylogError(Exception):
    """Root of pylog's errors.  ``errno`` is the Kafka error code."""

    errno: int = -1
    name: str = "UNKNOWN_SERVER_ERROR"
    retriable: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The first class registered for a code is the canonical one.
        _REGISTRY.setdefault(cls.errno, cls)

    def __str__(self) -> str:
        msg = super().__str__()
        return msg or self.name


def for_code(code: int) -> type[PylogError]:
    """The exception class for a Kafka error code (UnknownServerError if unknown)."""
    return _REGISTRY.get(code, UnknownServerError)


def error_name(code: int) -> str:
    """Kafka's name for an error code, e.g. 3 -> 'UNKNOWN_TOPIC_OR_PARTITION'."""
    cls = _REGISTRY.get(code)
    return cls.name if cls is not None else f"ERROR_{code}"


def _define(class_name: str, code: int, kafka_name: str, retriable: bool = False,
            base: type[PylogError] = PylogError, doc: str = "") -> type[PylogError]:
    cls = type(class_name, (base,), {"errno": code, "name": kafka_name,
                                    "retriable": retriable, "__doc__": doc,
                                    "__module__": __name__})
    return cls


UnknownServerError = _define("UnknownServerError", -1, "UNKNOWN_SERVER_ERROR",
                             doc="An unexpected internal failure.")
OffsetOutOfRangeError = _define("OffsetOutOfRangeError", 1, "OFFSET_OUT_OF_RANGE",
                                doc="Offset below the log start or past the log end.")
CorruptRecordError = _define("CorruptRecordError", 2, "CORRUPT_MESSAGE", True,
                             doc="Bad CRC, magic, or an illegal or truncated batch length.")
UnknownTopicError = _define("UnknownTopicError", 3, "UNKNOWN_TOPIC_OR_PARTITION", True,
                            doc="No such topic or partition.")
LeaderNotAvailableError = _define("LeaderNotAvailableError", 5, "LEADER_NOT_AVAILABLE", True)
RequestTimedOutError = _define("RequestTimedOutError", 7, "REQUEST_TIMED_OUT", True)
RecordTooLargeError = _define("RecordTooLargeError", 10, "MESSAGE_TOO_LARGE",
                              doc="A batch larger than max.message.bytes.")
OffsetMetadataTooLargeError = _define("OffsetMetadataTooLargeError", 12,
                                      "OFFSET_METADATA_TOO_LARGE")
CoordinatorLoadInProgressError = _define("CoordinatorLoadInProgressError", 14,
                                         "COORDINATOR_LOAD_IN_PROGRESS", True)
CoordinatorNotAvailableError = _define("CoordinatorNotAvailableError", 15,
                                       "COORDINATOR_NOT_AVAILABLE", True)
NotCoordinatorError = _define("NotCoordinatorError", 16, "NOT_COORDINATOR", True)
InvalidTopicError = _define("InvalidTopicError", 17, "INVALID_TOPIC_EXCEPTION",
                            doc="A topic name Kafka would refuse.")
RecordListTooLargeError = _define("RecordListTooLargeError", 18, "RECORD_LIST_TOO_LARGE")
InvalidRequiredAcksError = _define("InvalidRequiredAcksError", 21, "INVALID_REQUIRED_ACKS")
IllegalGenerationError = _define("IllegalGenerationError", 22, "ILLEGAL_GENERATION")
InconsistentGroupProtocolError = _define("InconsistentGroupProtocolError", 23,
                                         "INCONSISTENT_GROUP_PROTOCOL")
InvalidGroupIdError = _define("InvalidGroupIdError", 24, "INVALID_GROUP_ID")
UnknownMemberIdError = _define("UnknownMemberIdError", 25, "UNKNOWN_MEMBER_ID")
InvalidSessionTimeoutError = _define("InvalidSessionTimeoutError", 26,
                                     "INVALID_SESSION_TIMEOUT")
RebalanceInProgressError = _define("RebalanceInProgressError", 27, "REBALANCE_IN_PROGRESS")
InvalidCommitOffsetSizeError = _define("InvalidCommitOffsetSizeError", 28,
                                       "INVALID_COMMIT_OFFSET_SIZE")
InvalidTimestampError = _define("InvalidTimestampError", 32, "INVALID_TIMESTAMP")
UnsupportedVersionError = _define("UnsupportedVersionError", 35, "UNSUPPORTED_VERSION")
TopicExistsError = _define("TopicExistsError", 36, "TOPIC_ALREADY_EXISTS")
InvalidPartitionsError = _define("InvalidPartitionsError", 37, "INVALID_PARTITIONS")
InvalidReplicationFactorError = _define("InvalidReplicationFactorError", 38,
                                        "INVALID_REPLICATION_FACTOR")
InvalidReplicaAssignmentError = _define("InvalidReplicaAssignmentError", 39,
                                        "INVALID_REPLICA_ASSIGNMENT")
InvalidConfigError = _define("InvalidConfigError", 40, "INVALID_CONFIG")
InvalidRequestError = _define("InvalidRequestError", 42, "INVALID_REQUEST")
OutOfOrderSequenceError = _define("OutOfOrderSequenceError", 45,
                                  "OUT_OF_ORDER_SEQUENCE_NUMBER")
DuplicateSequenceError = _define("DuplicateSequenceError", 46, "DUPLICATE_SEQUENCE_NUMBER")
InvalidProducerEpochError = _define("InvalidProducerEpochError", 47, "INVALID_PRODUCER_EPOCH")
InvalidTxnStateError = _define("InvalidTxnStateError", 48, "INVALID_TXN_STATE",
                               doc="A transactional request not allowed in the "
                                   "transaction's current state.")
InvalidProducerIdMappingError = _define("InvalidProducerIdMappingError", 49,
                                        "INVALID_PRODUCER_ID_MAPPING",
                                        doc="The producer id is not the one the "
                                            "transactional id holds.")
InvalidTransactionTimeoutError = _define("InvalidTransactionTimeoutError", 50,
                                         "INVALID_TRANSACTION_TIMEOUT")
ConcurrentTransactionsError = _define("ConcurrentTransactionsError", 51,
                                      "CONCURRENT_TRANSACTIONS", True,
                                      doc="The previous transaction of this id is still "
                                          "being completed; retry.")
TransactionalIdAuthorizationFailedError = _define(
    "TransactionalIdAuthorizationFailedError", 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED")
OperationNotAttemptedError = _define("OperationNotAttemptedError", 55, "OPERATION_NOT_ATTEMPTED")
ProducerFencedError = _define("ProducerFencedError", 90, "PRODUCER_FENCED",
                              doc="A newer producer with the same transactional id exists "
                                  "(its epoch is higher).")
TransactionalIdNotFoundError = _define("TransactionalIdNotFoundError", 105,
                                       "TRANSACTIONAL_ID_NOT_FOUND")
StorageError = _define("StorageError", 56, "KAFKA_STORAGE_ERROR", True,
                       doc="Out of space or an I/O error in the data directory.")
UnknownProducerIdError = _define("UnknownProducerIdError", 59, "UNKNOWN_PRODUCER_ID")
NonEmptyGroupError = _define("NonEmptyGroupError", 68, "NON_EMPTY_GROUP")
GroupIdNotFoundError = _define("GroupIdNotFoundError", 69, "GROUP_ID_NOT_FOUND")
MemberIdRequiredError = _define("MemberIdRequiredError", 79, "MEMBER_ID_REQUIRED")
InvalidRecordError = _define("InvalidRecordError", 87, "INVALID_RECORD",
                             doc="Structurally invalid batch: offsets vs count, control batch.")

PolicyViolationError = _define("PolicyViolationError", 44, "POLICY_VIOLATION")
FetchSessionIdNotFoundError = _define("FetchSessionIdNotFoundError", 70,
                                      "FETCH_SESSION_ID_NOT_FOUND", True)
InvalidFetchSessionEpochError = _define("InvalidFetchSessionEpochError", 71,
                                        "INVALID_FETCH_SESSION_EPOCH", True)
GroupMaxSizeReachedError = _define("GroupMaxSizeReachedError", 81, "GROUP_MAX_SIZE_REACHED")
FencedInstanceIdError = _define("FencedInstanceIdError", 82, "FENCED_INSTANCE_ID")
UnstableOffsetCommitError = _define("UnstableOffsetCommitError", 88, "UNSTABLE_OFFSET_COMMIT",
                                    True)
ThrottlingQuotaExceededError = _define("ThrottlingQuotaExceededError", 89,
                                       "THROTTLING_QUOTA_EXCEEDED", True)
GroupSubscribedToTopicError = _define("GroupSubscribedToTopicError", 86,
                                      "GROUP_SUBSCRIBED_TO_TOPIC")
UnknownTopicIdError = _define("UnknownTopicIdError", 100, "UNKNOWN_TOPIC_ID", True,
                              doc="No topic has this id (KIP-516).")
InconsistentTopicIdError = _define("InconsistentTopicIdError", 103, "INCONSISTENT_TOPIC_ID",
                                   True)
FencedMemberEpochError = _define("FencedMemberEpochError", 110, "FENCED_MEMBER_EPOCH")
UnreleasedInstanceIdError = _define("UnreleasedInstanceIdError", 111,
                                    "UNRELEASED_INSTANCE_ID")
UnsupportedAssignorError = _define("UnsupportedAssignorError", 112, "UNSUPPORTED_ASSIGNOR")
StaleMemberEpochError = _define("StaleMemberEpochError", 113, "STALE_MEMBER_EPOCH")
InvalidRecordStateError = _define("InvalidRecordStateError", 121, "INVALID_RECORD_STATE",
                                  doc="A share-group acknowledgement for a record not "
                                      "acquired by that member within its lock (KIP-932).")
TopicAuthorizationFailedError = _define("TopicAuthorizationFailedError", 29,
                                        "TOPIC_AUTHORIZATION_FAILED")
GroupAuthorizationFailedError = _define("GroupAuthorizationFailedError", 30,
                                        "GROUP_AUTHORIZATION_FAILED")
ClusterAuthorizationFailedError = _define("ClusterAuthorizationFailedError", 31,
                                          "CLUSTER_AUTHORIZATION_FAILED")
SaslAuthenticationFailedError = _define("SaslAuthenticationFailedError", 58,
                                        "SASL_AUTHENTICATION_FAILED")


class LogLockedError(StorageError):
    """The data directory is locked by another process (the message names its pid)."""


class ProtocolError(InvalidRequestError):
    """Undecodable bytes from the network; the only error the request decoder raises."""
