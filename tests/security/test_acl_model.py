"""The authorizer's decisions against a model of Kafka's rules: super users, DENY over
ALLOW, implied DESCRIBE, literal/wildcard/prefixed patterns, principal and host
wildcards, allow.everyone.if.no.acl.found; filters; the file survives a reopen."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylog.errors import StorageError
from pylog.security.acls import (ALLOW, ANY, DENY, LITERAL, MATCH, PREFIXED, AclBinding,
                                 AclFilter, Authorizer)

TOPIC, GROUP, CLUSTER = 2, 3, 4
READ, WRITE, ALL, DESCRIBE, ALTER_CONFIGS, DESCRIBE_CONFIGS = 3, 4, 2, 8, 11, 10


def b(name, principal="User:alice", op=READ, perm=ALLOW, pattern=LITERAL, host="*",
      rtype=TOPIC):
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


def test_rules(tmp_path):
    a = Authorizer(tmp_path, super_users=["User:root"])
    assert a.create([b("orders"), b("pay", op=ALL), b("pay", principal="User:*", op=WRITE,
                                                       perm=DENY), b("log-", pattern=PREFIXED),
                     b("*", principal="User:bob", op=DESCRIBE),
                     b("cfg", op=ALTER_CONFIGS), b("lan", host="10.0.0.1")]) == [None] * 7
    ok = lambda *args, host="127.0.0.1": a.authorize(args[0], host, args[1], TOPIC, args[2])
    assert ok("User:alice", READ, "orders")
    assert ok("User:alice", DESCRIBE, "orders")            # implied by READ
    assert not ok("User:alice", WRITE, "orders")
    assert not ok("User:alice", WRITE, "pay")              # DENY for everyone wins
    assert ok("User:alice", READ, "pay")                   # ALL covers READ
    assert ok("User:alice", READ, "log-app") and not ok("User:alice", READ, "logs")
    assert ok("User:bob", DESCRIBE, "anything") and not ok("User:bob", READ, "anything")
    assert ok("User:alice", DESCRIBE_CONFIGS, "cfg")       # implied by ALTER_CONFIGS
    assert ok("User:alice", READ, "lan", host="10.0.0.1") and not ok("User:alice", READ, "lan")
    assert ok("User:root", WRITE, "pay")                   # super user
    assert not ok("User:carol", READ, "unnamed")           # no ACL: deny by default
    assert Authorizer(tmp_path, allow_if_no_acl=True).authorize(
        "User:carol", "h", READ, GROUP, "g")               # ...unless allowed
    assert len(Authorizer(tmp_path)) == 7                  # persisted


def test_bad_bindings_are_refused_and_filters(tmp_path):
    a = Authorizer(tmp_path)
    errs = a.create([b("x", principal="alice"), b("", op=READ), b("x", pattern=MATCH),
                     b("c", rtype=CLUSTER), b("x", perm=ANY)])
    assert all(errs)
    a.create([b("orders"), b("orders", op=WRITE), b("ord", pattern=PREFIXED),
              b("*", principal="User:bob")])
    assert len(a.describe(AclFilter(TOPIC, "orders", MATCH))) == 4
    assert len(a.describe(AclFilter(TOPIC, "orders", LITERAL))) == 2
    assert len(a.describe(AclFilter(principal="User:bob"))) == 1
    gone = a.delete([AclFilter(TOPIC, "orders", LITERAL, operation=WRITE)])
    assert [x.operation for x in gone[0]] == [WRITE]
    assert len(Authorizer(tmp_path)) == 3


def test_a_damaged_acl_file_is_refused(tmp_path):
    Authorizer(tmp_path).create([b("orders")])
    p = tmp_path / "acls.json"
    p.write_bytes(p.read_bytes().replace(b"orders", b"orderz"))
    with pytest.raises(StorageError, match="unreadable ACL file"):
        Authorizer(tmp_path)


names = st.sampled_from(["a", "ab", "abc", "b", "*"])
ops = st.sampled_from([READ, WRITE, DESCRIBE, ALL])
bindings = st.builds(b, names, st.sampled_from(["User:u", "User:v", "User:*"]), ops,
                     st.sampled_from([ALLOW, DENY]), st.sampled_from([LITERAL, PREFIXED]))


@settings(max_examples=300, deadline=None)
@given(st.lists(bindings, max_size=8), st.sampled_from(["a", "ab", "abc", "b"]),
       st.sampled_from([READ, WRITE, DESCRIBE]))
def test_decisions_match_a_model(acls, name, op):
    a = Authorizer(None)
    a.create([x for x in acls if x.name != "*" or x.pattern_type == LITERAL])
    stored = a.describe(AclFilter())

    def applies(x):
        if x.pattern_type == LITERAL:
            return x.name in (name, "*")
        return name.startswith(x.name)
    mine = [x for x in stored if applies(x) and x.principal in ("User:u", "User:*")]
    deny = any(x.permission == DENY and x.operation in (op, ALL) for x in mine)
    implied = {DESCRIBE: {READ, WRITE, DESCRIBE}}.get(op, {op})
    allow = any(x.permission == ALLOW and (x.operation in (op, ALL) or x.operation in implied)
                for x in mine)
    assert a.authorize("User:u", "h", op, TOPIC, name) == (allow and not deny)
