"""SCRAM (RFC 5802, SHA-256/512 per RFC 7677) as Kafka uses it: credentials and the
server side of one authentication exchange.

Stored per user and mechanism (never the password): salt, iterations, StoredKey =
H(ClientKey), ServerKey, where SaltedPassword = PBKDF2-HMAC(password, salt, i),
ClientKey = HMAC(SaltedPassword, "Client Key"), ServerKey = HMAC(SaltedPassword,
"Server Key").  The exchange:

    client-first   n,,n=<user>,r=<client nonce>[,ext...]
    server-first   r=<client nonce><server nonce>,s=<salt b64>,i=<iterations>
    client-final   c=<b64 of the gs2 header>,r=<the whole nonce>,p=<proof b64>
    server-final   v=<server signature b64>        (or e=<error>)

Anything malformed, an unknown user, a nonce that is not ours, a proof that does not
verify, or a message after the exchange ended raises ``ScramError`` (the caller answers
SASL_AUTHENTICATION_FAILED and closes).  An unknown user gets a server-first with a
fake salt, so the exchange does not tell which users exist.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from typing import Callable, NamedTuple

__all__ = ["MECHANISMS", "MIN_ITERATIONS", "ScramCredential", "ScramError",
           "make_credential", "ScramServer", "client_exchange"]

MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MIN_ITERATIONS = 4096            # Kafka's minimum (and its default)
MAX_ITERATIONS = 16384           # Kafka's maximum
_NONCE_BYTES = 24


class ScramError(Exception):
    """The exchange failed; the message says why (logged, not sent to the client)."""


class ScramCredential(NamedTuple):
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def _hmac(key: bytes, msg: bytes, algo: str) -> bytes:
    return hmac.new(key, msg, algo).digest()


def salted_password(password: str, salt: bytes, iterations: int, algo: str) -> bytes:
    return hashlib.pbkdf2_hmac(algo, password.encode("utf-8"), salt, iterations)


def make_credential(mechanism: str, password: str, iterations: int = MIN_ITERATIONS,
                    salt: bytes | None = None) -> ScramCredential:
    algo = _algo(mechanism)
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be {MIN_ITERATIONS}-{MAX_ITERATIONS}, "
                         f"not {iterations}")
    salt = salt if salt is not None else os.urandom(32)
    return credential_from_salted(salted_password(password, salt, iterations, algo),
                                  salt, iterations, algo)


def credential_from_salted(salted: bytes, salt: bytes, iterations: int,
                           algo: str) -> ScramCredential:
    client_key = _hmac(salted, b"Client Key", algo)
    return ScramCredential(salt, iterations, hashlib.new(algo, client_key).digest(),
                           _hmac(salted, b"Server Key", algo))


def verify_password(cred: ScramCredential, mechanism: str, password: str) -> bool:
    """True if ``password`` matches the stored credential (used by SASL/PLAIN)."""
    algo = _algo(mechanism)
    expect = credential_from_salted(salted_password(password, cred.salt, cred.iterations,
                                                    algo), cred.salt, cred.iterations, algo)
    return hmac.compare_digest(expect.stored_key, cred.stored_key)


def _algo(mechanism: str) -> str:
    try:
        return MECHANISMS[mechanism]
    except KeyError:
        raise ValueError(f"unknown SCRAM mechanism {mechanism!r}") from None


def _attrs(msg: str) -> list[tuple[str, str]]:
    out = []
    for part in msg.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramError(f"malformed SCRAM attribute {part[:40]!r}")
        out.append((part[0], part[2:]))
    return out


def _unescape_name(name: str) -> str:
    if "=" in name.replace("=2C", "").replace("=3D", ""):
        raise ScramError("malformed SCRAM user name")
    return name.replace("=2C", ",").replace("=3D", "=")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ScramError("malformed base64 in a SCRAM message") from None


class ScramServer:
    """One server-side exchange.  ``lookup(user)`` returns the user's credential for
    this mechanism, or None."""

    def __init__(self, mechanism: str,
                 lookup: Callable[[str], ScramCredential | None]) -> None:
        self.mechanism = mechanism
        self.algo = _algo(mechanism)
        self._lookup = lookup
        self._state = "first"
        self.user: str | None = None
        self._cred: ScramCredential | None = None
        self._known = False

    @property
    def done(self) -> bool:
        return self._state == "done"

    def step(self, message: bytes) -> bytes:
        """Answer one client message; raises ScramError on any failure."""
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("SCRAM message is not UTF-8") from None
        if self._state == "first":
            return self._first(text)
        if self._state == "final":
            return self._final(text)
        raise ScramError("SCRAM exchange already finished")

    def _first(self, text: str) -> bytes:
        self._state = "failed"
        gs2, sep, bare = _split_gs2(text)
        attrs = _attrs(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
            raise ScramError("SCRAM client-first must start with n=<user>,r=<nonce>")
        if any(k == "m" for k, _v in attrs):
            raise ScramError("SCRAM mandatory extensions are not supported")
        self.user = _unescape_name(attrs[0][1])
        cred = self._lookup(self.user)
        self._known = cred is not None
        if cred is None:                 # go on with a fake credential: same messages
            cred = credential_from_salted(os.urandom(64), hashlib.sha256(
                self.user.encode()).digest(), MIN_ITERATIONS, self.algo)
        self._cred = cred
        self._gs2 = gs2 + sep
        # Letters, digits, '-' and '_' only: some clients (librdkafka 2.0) mangle '+/='.
        self._cnonce = attrs[1][1]
        self._nonce = self._cnonce + secrets.token_urlsafe(_NONCE_BYTES)
        self._client_first_bare = bare
        self._server_first = f"r={self._nonce},s={_b64(cred.salt)},i={cred.iterations}"
        self._state = "final"
        return self._server_first.encode()

    def _final(self, text: str) -> bytes:
        self._state = "failed"
        attrs = _attrs(text)
        if len(attrs) < 3 or attrs[0][0] != "c" or attrs[1][0] != "r" or attrs[-1][0] != "p":
            raise ScramError("SCRAM client-final must be c=...,r=...,p=...")
        if _unb64(attrs[0][1]).decode("utf-8", "replace") != self._gs2:
            raise ScramError("SCRAM channel binding does not match the client-first")
        sent = attrs[1][1].encode()
        # librdkafka < 2.6.1 sends the client nonce twice (its #4895); Kafka 3.8.1+
        # accepts that form too (KAFKA-17439), so older kcat and clients still work.
        if not (hmac.compare_digest(sent, self._nonce.encode()) or hmac.compare_digest(
                sent, (self._cnonce + self._nonce).encode())):
            raise ScramError("SCRAM nonce does not match")
        without_proof = text[:text.rindex(",p=")]
        auth = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        cred = self._cred
        signature = _hmac(cred.stored_key, auth, self.algo)
        proof = _unb64(attrs[-1][1])
        if len(proof) != len(signature):
            raise ScramError("SCRAM proof has the wrong length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature))
        good = hmac.compare_digest(hashlib.new(self.algo, client_key).digest(),
                                   cred.stored_key)
        if not (good and self._known):
            raise ScramError(f"SCRAM authentication failed for user {self.user!r}")
        self._state = "done"
        return f"v={_b64(_hmac(cred.server_key, auth, self.algo))}".encode()


def _split_gs2(text: str) -> tuple[str, str, str]:
    """('n,,' or 'y,,' or 'n,a=..,', '', bare)."""
    parts = text.split(",", 2)
    if len(parts) != 3 or parts[0] not in ("n", "y") or (parts[1] and
                                                        not parts[1].startswith("a=")):
        raise ScramError("SCRAM client-first has a bad GS2 header (channel binding "
                         "is not supported)")
    return f"{parts[0]},{parts[1]},", "", parts[2]


def client_exchange(mechanism: str, user: str, password: str, server: ScramServer
                    ) -> bytes:
    """A full client side against ``server`` (tests and tools): returns the
    server-final message after checking the server's signature."""
    algo = _algo(mechanism)
    cnonce = _b64(os.urandom(18))
    name = user.replace("=", "=3D").replace(",", "=2C")
    first_bare = f"n={name},r={cnonce}"
    server_first = server.step(("n,," + first_bare).encode()).decode()
    attrs = dict(_attrs(server_first))
    salt, iterations = _unb64(attrs["s"]), int(attrs["i"])
    salted = salted_password(password, salt, iterations, algo)
    client_key = _hmac(salted, b"Client Key", algo)
    stored = hashlib.new(algo, client_key).digest()
    without_proof = f"c={_b64(b'n,,')},r={attrs['r']}"
    auth = f"{first_bare},{server_first},{without_proof}".encode()
    proof = bytes(a ^ b for a, b in zip(client_key, _hmac(stored, auth, algo)))
    final = server.step(f"{without_proof},p={_b64(proof)}".encode())
    expect = _hmac(_hmac(salted, b"Server Key", algo), auth, algo)
    if final.decode() != f"v={_b64(expect)}":
        raise ScramError("server signature does not verify")
    return final
