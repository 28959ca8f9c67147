"""One connection's authentication, and the broker-wide security settings.

``Security`` (one per server): the users file, the enabled SASL mechanisms
(``sasl.enabled.mechanisms``: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), the TLS context,
``connections.max.reauth.ms`` (KIP-368; 0 = sessions never expire) and
``connection.failed.authentication.delay.ms`` (the failed answer waits that long, so
guessing passwords is slow; 100 ms by default, as Kafka).

``ConnectionAuth`` (one per connection): the principal once known — ``User:ANONYMOUS``
on PLAINTEXT and SSL without a client certificate, ``User:<DN>`` with one, ``User:<name>``
after SASL — and the SASL exchange in progress.  Before a SASL listener's client has
authenticated, only ApiVersions, SaslHandshake and SaslAuthenticate are allowed (the
connection is closed on anything else, as Kafka does).  Re-authentication (a new
handshake on an authenticated connection) must end with the same principal; after the
session lifetime a request other than those three closes the connection.
"""
from __future__ import annotations

import logging
import time

from .listeners import ListenerSpec
from .scram import MECHANISMS, ScramError, ScramServer
from .tls import TlsConfig, principal_from_cert
from .users import UserStore

__all__ = ["Security", "ConnectionAuth", "SaslFailure", "ANONYMOUS", "PRE_AUTH_APIS"]

log = logging.getLogger("pylog.security")
ANONYMOUS = "User:ANONYMOUS"
ALL_MECHANISMS = ("PLAIN", *MECHANISMS)
PRE_AUTH_APIS = frozenset({17, 18, 36})     # SaslHandshake, ApiVersions, SaslAuthenticate
UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED = 33, 34, 58


class SaslFailure(Exception):
    """Authentication failed: ``code`` and a message safe to send to the client."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Security:
    def __init__(self, data_dir, *, mechanisms=ALL_MECHANISMS, tls: TlsConfig | None = None,
                 reauth_ms: int = 0, failed_auth_delay_ms: int = 100) -> None:
        bad = [m for m in mechanisms if m not in ALL_MECHANISMS]
        if bad:
            raise ValueError(f"unknown SASL mechanism(s) {', '.join(bad)}: use "
                             f"{', '.join(ALL_MECHANISMS)}")
        self.users = UserStore(data_dir)
        self.mechanisms = tuple(mechanisms)
        self.tls = tls
        self.reauth_ms = reauth_ms
        self.failed_auth_delay_s = failed_auth_delay_ms / 1000
        self.failed = 0                        # failed authentications since start
        self.succeeded = 0

    def stats(self) -> dict:
        return {"authentications": self.succeeded, "failed_authentications": self.failed}


class ConnectionAuth:
    def __init__(self, spec: ListenerSpec | None, security: Security | None,
                 peercert: dict | None = None, host: str = "*") -> None:
        self.spec = spec
        self.host = host                      # the client's address, for ACL host rules
        self.security = security
        self.sasl = bool(spec and spec.sasl)
        self.principal: str | None = None if self.sasl else \
            (principal_from_cert(peercert) or ANONYMOUS)
        self.mechanism: str | None = None
        self._exchange = None
        self.expires_at: float | None = None
        self.close_after_response = False     # a failed authentication was answered

    @property
    def authenticated(self) -> bool:
        return self.principal is not None

    def allows(self, api_key: int, now: float | None = None) -> bool:
        if api_key in PRE_AUTH_APIS:
            return True
        if self.principal is None:
            return False
        if self.expires_at is not None and (now or time.monotonic()) >= self.expires_at:
            return False                      # KIP-368: the session has expired
        return True

    def handshake(self, mechanism: str) -> int:
        if not self.sasl or self.security is None:
            return ILLEGAL_SASL_STATE
        if mechanism not in self.security.mechanisms:
            return UNSUPPORTED_SASL_MECHANISM
        self.mechanism = mechanism
        users = self.security.users
        self._exchange = "PLAIN" if mechanism == "PLAIN" else ScramServer(
            mechanism, lambda u: users.credential(u, mechanism))
        return 0

    def authenticate(self, token: bytes) -> tuple[bytes, int]:
        """One SaslAuthenticate step: (response bytes, session lifetime ms or 0)."""
        if self._exchange is None:
            raise SaslFailure(ILLEGAL_SASL_STATE, "SaslAuthenticate before SaslHandshake")
        try:
            if self._exchange == "PLAIN":
                user = self._plain(token)
                reply = b""
            else:
                reply = self._exchange.step(token)
                if not self._exchange.done:
                    return reply, 0
                user = self._exchange.user
        except (SaslFailure, ScramError) as exc:
            self._fail(str(exc))
        principal = f"User:{user}"
        if self.principal is not None and principal != self.principal:
            self._fail(f"re-authentication as {principal} on a connection of "
                       f"{self.principal}")
        self.principal = principal
        self._exchange = None
        self.security.succeeded += 1
        lifetime = self.security.reauth_ms
        self.expires_at = time.monotonic() + lifetime / 1000 if lifetime else None
        return reply, lifetime

    def _plain(self, token: bytes) -> str:
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise SaslFailure(SASL_AUTHENTICATION_FAILED, "malformed SASL/PLAIN token")
        try:
            authzid, user, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise SaslFailure(SASL_AUTHENTICATION_FAILED, "SASL/PLAIN token is not UTF-8")
        if authzid and authzid != user:
            raise SaslFailure(SASL_AUTHENTICATION_FAILED, "SASL/PLAIN authorization id "
                              "must be empty or the user")
        if not self.security.users.check_password(user, password):
            raise SaslFailure(SASL_AUTHENTICATION_FAILED, f"authentication failed for "
                              f"user {user!r}")
        return user

    def _fail(self, why: str):
        self._exchange = None
        self.security.failed += 1
        log.info("SASL %s authentication failed: %s", self.mechanism, why)
        raise SaslFailure(SASL_AUTHENTICATION_FAILED,
                          f"Authentication failed during authentication due to invalid "
                          f"credentials with SASL mechanism {self.mechanism}")
