"""Kafka's ACL model and an authorizer over it, kept in ``<data>/acls.json``.

A binding: (resource type, resource name, pattern type, principal, host, operation,
permission).  Kafka's numbers are used everywhere (wire, file, CLI names map to them):

  resource  TOPIC 2, GROUP 3, CLUSTER 4 (name ``kafka-cluster``), TRANSACTIONAL_ID 5
  pattern   LITERAL 3 (name ``*`` = every resource), PREFIXED 4
  operation ALL 2, READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
            CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12
  permission DENY 2, ALLOW 3
  principal ``User:alice`` or ``User:*``; host an IP or ``*``

Decision (as Kafka's StandardAuthorizer): a super user may do anything; else a matching
DENY refuses; else a matching ALLOW grants — ALLOW of READ, WRITE, DELETE or ALTER also
grants DESCRIBE, and ALLOW of ALTER_CONFIGS grants DESCRIBE_CONFIGS; else, if no
binding at all names the resource, ``allow.everyone.if.no.acl.found`` decides (false by
default: deny).  Filters (DescribeAcls, DeleteAcls) use ANY (1) for "any value", null
names/principals/hosts for any, and pattern MATCH (2) for "bindings that would apply
to this name" (literal, wildcard and prefixes).
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import NamedTuple

from pylog.crc import crc32c
from pylog.errors import StorageError
from pylog.storage import files

from .watched import WatchedFile

__all__ = ["AclBinding", "AclFilter", "Authorizer", "RESOURCE", "PATTERN", "OPERATION",
           "PERMISSION", "CLUSTER_NAME", "ACLS_FILE"]

ACLS_FILE = "acls.json"
CLUSTER_NAME = "kafka-cluster"
RESOURCE = {"ANY": 1, "TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5}
PATTERN = {"ANY": 1, "MATCH": 2, "LITERAL": 3, "PREFIXED": 4}
OPERATION = {"ANY": 1, "ALL": 2, "READ": 3, "WRITE": 4, "CREATE": 5, "DELETE": 6, "ALTER": 7,
             "DESCRIBE": 8, "CLUSTER_ACTION": 9, "DESCRIBE_CONFIGS": 10,
             "ALTER_CONFIGS": 11, "IDEMPOTENT_WRITE": 12}
PERMISSION = {"ANY": 1, "DENY": 2, "ALLOW": 3}
ANY, MATCH, LITERAL, PREFIXED, ALL, DENY, ALLOW = 1, 2, 3, 4, 2, 2, 3
DESCRIBE, DESCRIBE_CONFIGS = 8, 10
_IMPLIES = {DESCRIBE: {3, 4, 6, 7, DESCRIBE}, DESCRIBE_CONFIGS: {11, DESCRIBE_CONFIGS}}
_NAMES = {"resource": {v: k for k, v in RESOURCE.items()},
          "pattern": {v: k for k, v in PATTERN.items()},
          "operation": {v: k for k, v in OPERATION.items()},
          "permission": {v: k for k, v in PERMISSION.items()}}


class AclBinding(NamedTuple):
    resource_type: int
    name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int

    def check(self) -> None:
        """ValueError if this cannot be stored (Kafka's INVALID_REQUEST cases)."""
        if self.resource_type not in (2, 3, 4, 5):
            raise ValueError(f"resource type {self.resource_type} cannot have ACLs")
        if self.pattern_type not in (LITERAL, PREFIXED):
            raise ValueError(f"pattern type {self.pattern_type} cannot be stored")
        if not self.name or (self.resource_type == 4 and self.name != CLUSTER_NAME):
            raise ValueError(f"bad resource name {self.name!r}" + (
                f" (the cluster is {CLUSTER_NAME!r})" if self.resource_type == 4 else ""))
        if not self.principal.startswith("User:") or len(self.principal) < 6:
            raise ValueError(f"principal {self.principal!r} must be User:<name> or User:*")
        if not self.host:
            raise ValueError("host must be an address or *")
        if self.operation not in _NAMES["operation"] or self.operation == ANY:
            raise ValueError(f"operation {self.operation} cannot be stored")
        if self.permission not in (DENY, ALLOW):
            raise ValueError(f"permission {self.permission} must be ALLOW or DENY")

    def describe(self) -> str:
        n = _NAMES
        return (f"{self.principal} is {n['permission'][self.permission]} "
                f"{n['operation'][self.operation]} from {self.host} on "
                f"{n['resource'][self.resource_type]}:{n['pattern'][self.pattern_type]}:"
                f"{self.name}")


class AclFilter(NamedTuple):
    resource_type: int = ANY
    name: str | None = None
    pattern_type: int = ANY
    principal: str | None = None
    host: str | None = None
    operation: int = ANY
    permission: int = ANY

    def matches(self, b: AclBinding) -> bool:
        if self.resource_type != ANY and b.resource_type != self.resource_type:
            return False
        if self.pattern_type == MATCH:
            if self.name is not None and not _applies(b, self.name):
                return False
        else:
            if self.pattern_type != ANY and b.pattern_type != self.pattern_type:
                return False
            if self.name is not None and b.name != self.name:
                return False
        return ((self.principal is None or b.principal == self.principal)
                and (self.host is None or b.host == self.host)
                and (self.operation == ANY or b.operation == self.operation)
                and (self.permission == ANY or b.permission == self.permission))


def _applies(b: AclBinding, name: str) -> bool:
    if b.pattern_type == LITERAL:
        return b.name == name or b.name == "*"
    return name.startswith(b.name)


def _canonical(doc) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class Authorizer:
    """The ACLs of one data directory; ``authorize`` answers every request's checks."""

    def __init__(self, data_dir, super_users=(), allow_if_no_acl: bool = False) -> None:
        self._path = Path(data_dir) / ACLS_FILE if data_dir is not None else None
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_if_no_acl
        self._lock = threading.Lock()
        self._watch = WatchedFile(self._path)
        self._acls: list[AclBinding] = self._load()
        self._checked = time.monotonic()
        self.denied = 0

    def _refresh_locked(self) -> None:
        """At most once a second: pick up ``acls.json`` changed by ``pylog acls`` while
        the server runs (a damaged file is ignored with a WARNING)."""
        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        self._checked = now
        if not self._watch.changed():
            return
        try:
            self._acls = self._load()
        except StorageError as exc:
            import logging
            logging.getLogger("pylog.security").warning("%s; keeping the ACLs loaded "
                                                        "before", exc)

    def _load(self) -> list[AclBinding]:
        if self._path is None or not self._path.exists():
            return []
        try:
            doc = json.loads(self._path.read_bytes())
            if doc.pop("crc32c") != crc32c(_canonical(doc)) or doc.get("version") != 1:
                raise ValueError("checksum or version does not match")
            acls = [AclBinding(*row) for row in doc["acls"]]
            for a in acls:
                a.check()
            return acls
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"{self._path}: unreadable ACL file ({exc}); restore it, or "
                               f"remove it to start with no ACLs") from None

    def _save_locked(self) -> None:
        if self._path is None:
            return
        doc = {"version": 1, "acls": [list(a) for a in self._acls]}
        doc["crc32c"] = crc32c(_canonical(doc))
        self._path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o077)
        try:
            files.atomic_write(self._path, json.dumps(doc, indent=1).encode())
        finally:
            os.umask(old)

    # -- decisions -----------------------------------------------------------------------
    def authorize(self, principal: str, host: str, operation: int, resource_type: int,
                  name: str) -> bool:
        if principal in self.super_users:
            return True
        with self._lock:
            self._refresh_locked()
            acls = [a for a in self._acls
                    if a.resource_type == resource_type and _applies(a, name)]
        allowed = False
        for a in acls:
            if a.principal not in (principal, "User:*") or a.host not in (host, "*"):
                continue
            if a.permission == DENY and a.operation in (operation, ALL):
                self.denied += 1
                return False
            if a.permission == ALLOW and (a.operation in (operation, ALL) or
                                          a.operation in _IMPLIES.get(operation, ())):
                allowed = True
        if allowed:
            return True
        if not acls and self.allow_if_no_acl:
            return True
        self.denied += 1
        return False

    def allows_any(self, principal: str, host: str, operation: int,
                   resource_type: int) -> bool:
        """Some resource of that type grants the operation (Kafka's check for an
        idempotent producer: WRITE on any topic)."""
        if principal in self.super_users:
            return True
        with self._lock:
            self._refresh_locked()
            return any(a.resource_type == resource_type and a.permission == ALLOW
                       and a.principal in (principal, "User:*") and a.host in (host, "*")
                       and a.operation in (operation, ALL) for a in self._acls)

    # -- admin ---------------------------------------------------------------------------
    def create(self, bindings: list[AclBinding]) -> list[str | None]:
        """Store each binding (an existing one is left as is); an error text or None."""
        out: list[str | None] = []
        with self._lock:
            self._checked = 0.0
            self._refresh_locked()
            for b in bindings:
                try:
                    b.check()
                except ValueError as exc:
                    out.append(str(exc))
                    continue
                if b not in self._acls:
                    self._acls.append(b)
                out.append(None)
            self._save_locked()
            self._watch.seen()
        return out

    def describe(self, flt: AclFilter) -> list[AclBinding]:
        with self._lock:
            return [a for a in self._acls if flt.matches(a)]

    def delete(self, filters: list[AclFilter]) -> list[list[AclBinding]]:
        with self._lock:
            self._checked = 0.0
            self._refresh_locked()
            results = [[a for a in self._acls if f.matches(a)] for f in filters]
            gone = {a for r in results for a in r}
            if gone:
                self._acls = [a for a in self._acls if a not in gone]
                self._save_locked()
                self._watch.seen()
        return results

    def __len__(self) -> int:
        with self._lock:
            return len(self._acls)
