"""Authentication and ACLs on the text protocol.

``--text-security`` picks how the text listener treats clients, with Kafka's protocol
names: PLAINTEXT (the default: no TLS, principal ``User:ANONYMOUS``), SSL (TLS with the
Kafka listeners' certificate; a client certificate's subject is the principal when
``--ssl-client-auth`` asks for one), SASL_PLAINTEXT and SASL_SSL (``AUTH <user>
<password>`` first, checked against the same users as SASL/PLAIN; every other command
before it is ``ERR SASL_AUTHENTICATION_FAILED``; a wrong password answers that after
``connection.failed.authentication.delay.ms`` and closes the connection).

With ``--authorizer acl`` every command needs the ACL Kafka would ask for the same
thing (below; the first argument names the resource), else ``ERR
TOPIC_AUTHORIZATION_FAILED`` / ``GROUP_AUTHORIZATION_FAILED`` /
``CLUSTER_AUTHORIZATION_FAILED``, and nothing is done.
"""
from __future__ import annotations

import asyncio

from pylog.errors import (ClusterAuthorizationFailedError, GroupAuthorizationFailedError,
                          SaslAuthenticationFailedError, TopicAuthorizationFailedError)
from pylog.security.sasl import ANONYMOUS
from pylog.security.tls import principal_from_cert

__all__ = ["TextAuth", "COMMAND_ACLS", "check", "auth_command"]

READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 3, 4, 5, 6, 7, 8
DESCRIBE_CONFIGS, ALTER_CONFIGS = 10, 11
TOPIC, GROUP, CLUSTER = 2, 3, 4

# command -> [(operation, resource type, argument index or None for the cluster)]
COMMAND_ACLS: dict[str, list[tuple[int, int, int | None]]] = {
    "PRODUCE": [(WRITE, TOPIC, 0)], "PRODUCEB": [(WRITE, TOPIC, 0)],
    "PRODUCEX": [(WRITE, TOPIC, 0)], "CONSUME": [(READ, TOPIC, 0)],
    "CONSUMEX": [(READ, TOPIC, 0)], "TOPICS": [(DESCRIBE, CLUSTER, None)],
    "CREATE": [(CREATE, CLUSTER, None)], "DELETE": [(DELETE, TOPIC, 0)],
    "DESCRIBE": [(DESCRIBE, TOPIC, 0)], "COMMIT": [(READ, GROUP, 0), (READ, TOPIC, 1)],
    "OFFSET": [(DESCRIBE, GROUP, 0)], "GROUPS": [(DESCRIBE, CLUSTER, None)],
    "GROUP": [(DESCRIBE, GROUP, 0)], "TIMEOFFSET": [(DESCRIBE, TOPIC, 0)],
    "CONFIGS": [(DESCRIBE_CONFIGS, TOPIC, 0)], "ALTER": [(ALTER_CONFIGS, TOPIC, 0)],
    "PARTITIONS": [(ALTER, TOPIC, 0)], "MEMBERS": [(DESCRIBE, GROUP, 0)],
    "DELETEGROUP": [(DELETE, GROUP, 0)], "RECEIVE": [(READ, GROUP, 0), (READ, TOPIC, 1)],
    "ACK": [(READ, GROUP, 0)], "RELEASE": [(READ, GROUP, 0)], "REJECT": [(READ, GROUP, 0)],
    "QUEUE": [(DESCRIBE, GROUP, 0)], "DLQ": [(READ, TOPIC, 0)],
    "REQUEUE": [(READ, TOPIC, 0), (ALTER, CLUSTER, None)],
}
NO_AUTH_NEEDED = frozenset({"AUTH", "PING", "HELP", "QUIT"})
_ERRORS = {TOPIC: TopicAuthorizationFailedError, GROUP: GroupAuthorizationFailedError,
           CLUSTER: ClusterAuthorizationFailedError}


class TextAuth:
    """One text connection's principal."""

    def __init__(self, protocol: str, peercert: dict | None, host: str) -> None:
        self.protocol = protocol
        self.sasl = protocol.startswith("SASL_")
        self.host = host
        self.principal: str | None = None if self.sasl else \
            (principal_from_cert(peercert) or ANONYMOUS)


def check(conn, name: str, rest: bytes) -> None:
    """Raise the Kafka error a command may not run with (nothing raised: go on)."""
    auth: TextAuth | None = getattr(conn, "auth", None)
    if auth is None or name in NO_AUTH_NEEDED:
        return
    if auth.principal is None:
        raise SaslAuthenticationFailedError("AUTH <user> <password> first")
    authz = conn.server.broker.authorizer
    if authz is None:
        return
    args = rest.decode("utf-8", "replace").split()
    for operation, rtype, index in COMMAND_ACLS.get(name, ()):
        if index is None:
            resource = "kafka-cluster"
        elif index < len(args):
            resource = args[index]
        else:
            continue                         # a usage error follows from the handler
        if not authz.authorize(auth.principal, auth.host, operation, rtype, resource):
            raise _ERRORS[rtype](f"{auth.principal} may not do {name} on {resource}")


async def auth_command(conn, rest: bytes) -> bytes:
    """AUTH <user> <password>: SASL/PLAIN's check over the text protocol."""
    auth: TextAuth | None = getattr(conn, "auth", None)
    security = conn.server.broker.security
    if auth is None or not auth.sasl or security is None:
        return b"OK AUTH not needed on this listener\n"
    user, _, password = rest.decode("utf-8", "replace").strip().partition(" ")
    if user and password and security.users.check_password(user, password):
        principal = f"User:{user}"
        if auth.principal not in (None, principal):
            raise SaslAuthenticationFailedError(f"already authenticated as {auth.principal}")
        auth.principal = principal
        security.succeeded += 1
        return f"OK {principal}\n".encode()
    security.failed += 1
    await asyncio.sleep(security.failed_auth_delay_s)
    conn.close_after = True
    raise SaslAuthenticationFailedError("authentication failed")
