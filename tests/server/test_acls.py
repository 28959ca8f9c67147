"""ACLs enforced on the Kafka API (``--authorizer acl``), with confluent-kafka over
SASL: a super user manages ACLs with the admin client; a user gets exactly what its
ACLs allow (TOPIC_AUTHORIZATION_FAILED on produce and fetch, GROUP_AUTHORIZATION_FAILED
on groups, TRANSACTIONAL_ID_AUTHORIZATION_FAILED on transactional ids, Metadata listing only
what it may describe); DescribeAcls without the right is CLUSTER_AUTHORIZATION_FAILED; deleting the ACLs takes the access away."""
from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)

from pylog.security.users import UserStore
from pylog.testing import start_server

USERS = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    data = tmp_path_factory.mktemp("acl") / "data"
    store = UserStore(data)
    for name, pw in USERS.items():
        store.set_password(name, pw, mechanisms=("SCRAM-SHA-256",))
    s = start_server(data, args=["--kafka-listener", "SASL_PLAINTEXT://127.0.0.1:0",
                                 "--authorizer", "acl", "--super-users", "User:admin",
                                 "--connection-failed-authentication-delay-ms", "0"])
    admin = AdminClient(conf(s, "admin"))
    for f in admin.create_topics([NewTopic("acl-a", 1), NewTopic("acl-b", 1)]).values():
        f.result(20)
    acls = [AclBinding(ResourceType.TOPIC, "acl-a", ResourcePatternType.LITERAL, "User:alice",
                       "*", op, AclPermissionType.ALLOW)
            for op in (AclOperation.WRITE, AclOperation.READ)]
    acls.append(AclBinding(ResourceType.GROUP, "g-a", ResourcePatternType.LITERAL,
                           "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW))
    for f in admin.create_acls(acls).values():
        f.result(20)
    yield s
    assert s.stop() == 0, s.log_text()[-3000:]


def conf(srv, user):
    return {"bootstrap.servers": srv.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user,
            "sasl.password": USERS[user]}


def produce(srv, user, topic) -> KafkaError | None:
    result = []
    p = Producer({**conf(srv, user), "message.timeout.ms": 5000})
    p.produce(topic, b"v", on_delivery=lambda err, msg: result.append(err))
    p.flush(10)
    return result[0] if result else KafkaError(KafkaError._MSG_TIMED_OUT)


def consume(srv, user, topic, group, n=1):
    c = Consumer({**conf(srv, user), "group.id": group, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, errors = [], []
    for _ in range(30):
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            errors.append(m.error().code())
            break
        got.append(m.value())
        if len(got) >= n:
            break
    c.close()
    return got, errors


def test_a_user_writes_and_reads_only_what_its_acls_allow(srv):
    assert produce(srv, "alice", "acl-a") is None
    err = produce(srv, "alice", "acl-b")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    got, errors = consume(srv, "alice", "acl-a", "g-a")
    assert got == [b"v"] and not errors
    got, errors = consume(srv, "bob", "acl-a", "g-a")
    assert not got


def test_metadata_lists_only_describable_topics(srv):
    topics = AdminClient(conf(srv, "alice")).list_topics(timeout=10).topics
    assert "acl-a" in topics and "acl-b" not in topics
    assert "acl-b" in AdminClient(conf(srv, "admin")).list_topics(timeout=10).topics


def test_an_unlisted_group_is_refused(srv):
    got, errors = consume(srv, "alice", "acl-a", "g-other")
    assert not got


def test_describe_acls_needs_cluster_describe(srv):
    # kafka-python: librdkafka 2.16 drops DescribeAcls' top-level error (returns []).
    from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, KafkaAdminClient, \
        ResourcePatternFilter
    from kafka.admin import ResourceType as KResource
    from kafka.errors import ClusterAuthorizationFailedError
    from kafka.admin import ACLResourcePatternType

    def client(user):
        return KafkaAdminClient(bootstrap_servers=srv.bootstrap, security_protocol=
                                "SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                                sasl_plain_username=user, sasl_plain_password=USERS[user])
    flt = ACLFilter(principal=None, host="*", operation=ACLOperation.ANY,
                    permission_type=ACLPermissionType.ANY,
                    resource_pattern=ResourcePatternFilter(KResource.ANY, None,
                                                           ACLResourcePatternType.ANY))
    alice = client("alice")
    with pytest.raises(ClusterAuthorizationFailedError):
        alice.describe_acls(flt)
    alice.close()
    admin = client("admin")
    found, _err = admin.describe_acls(flt)
    admin.close()
    assert {(a.resource_pattern.resource_name, a.operation) for a in found} >= {
        ("acl-a", ACLOperation.WRITE), ("g-a", ACLOperation.READ)}


def test_admin_requests_get_kafkas_per_resource_errors(srv):
    from confluent_kafka.admin import ConfigResource, ResourceType as RT
    alice = AdminClient(conf(srv, "alice"))
    fut = alice.create_topics([NewTopic("acl-new", 1)])["acl-new"]
    with pytest.raises(Exception) as err:
        fut.result(10)
    assert "TOPIC_AUTHORIZATION_FAILED" in str(err.value) or "authoriz" in str(err.value)
    res = ConfigResource(RT.TOPIC, "acl-b")
    with pytest.raises(Exception) as err:
        alice.describe_configs([res])[res].result(10)
    assert "TOPIC_AUTHORIZATION_FAILED" in str(err.value) or "authoriz" in str(err.value)
    ok = ConfigResource(RT.TOPIC, "acl-a")          # READ/WRITE do not grant configs
    with pytest.raises(Exception):
        alice.describe_configs([ok])[ok].result(10)
    groups = alice.list_consumer_groups().result(10)
    assert {g.group_id for g in groups.valid} <= {"g-a"}


def test_idempotent_producers_need_write_somewhere(srv):
    delivered = []
    p = Producer({**conf(srv, "alice"), "enable.idempotence": True,
                  "message.timeout.ms": 5000})
    p.produce("acl-a", b"idem", on_delivery=lambda e, m: delivered.append(e))
    p.flush(10)
    assert delivered == [None]
    failed = []
    p = Producer({**conf(srv, "bob"), "enable.idempotence": True,
                  "message.timeout.ms": 3000})
    p.produce("acl-a", b"idem", on_delivery=lambda e, m: failed.append(e and e.code()))
    p.flush(5)
    assert failed and failed[0] in (KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                                    KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                    KafkaError._FATAL), failed


def test_transactional_ids_need_write_on_the_id(srv):
    from confluent_kafka import KafkaException
    admin = AdminClient(conf(srv, "admin"))
    for f in admin.create_acls([AclBinding(
            ResourceType.TRANSACTIONAL_ID, "alice-app", ResourcePatternType.LITERAL,
            "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW)]).values():
        f.result(20)
    p = Producer({**conf(srv, "alice"), "transactional.id": "alice-app"})
    p.init_transactions(15)
    p.begin_transaction()
    p.produce("acl-a", b"in-txn")
    p.commit_transaction(15)
    other = Producer({**conf(srv, "alice"), "transactional.id": "not-hers"})
    with pytest.raises(KafkaException) as info:
        other.init_transactions(10)
    assert info.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_deleting_acls_takes_access_away(srv):
    admin = AdminClient(conf(srv, "admin"))
    flt = AclBindingFilter(ResourceType.TOPIC, "acl-a", ResourcePatternType.LITERAL,
                           "User:alice", None, AclOperation.WRITE, AclPermissionType.ANY)
    deleted = list(admin.delete_acls([flt]).values())[0].result(10)
    assert [a.operation for a in deleted] == [AclOperation.WRITE]
    err = produce(srv, "alice", "acl-a")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
