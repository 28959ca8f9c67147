"""SASL users of one data directory: ``<data>/users.json``, SCRAM credentials only.

    {"version": 1, "crc32c": N, "users": {"alice": {"SCRAM-SHA-256": {"salt": b64,
      "iterations": 4096, "stored_key": b64, "server_key": b64}, "SCRAM-SHA-512": {...}}}}

Passwords are never stored: SCRAM-SHA-256/512 keep Kafka's salted keys, and SASL/PLAIN
checks a password against them (PBKDF2 with the stored salt).  Written atomically (tmp,
fsync, rename, fsync of the directory), with a CRC-32C over the canonical JSON like
``topic-metadata.json``; a file that does not check out is refused with StorageError
rather than guessed (a server must not start with nobody or everybody allowed).
Changed by ``pylog users add|remove|list`` (with the server stopped, or through it)
and by AlterUserScramCredentials (51); read by DescribeUserScramCredentials (50).
"""
from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path

from pylog.crc import crc32c
from pylog.errors import StorageError
from pylog.storage import files

from .watched import WatchedFile
from .scram import MECHANISMS, MIN_ITERATIONS, ScramCredential, make_credential, \
    verify_password

__all__ = ["UserStore", "USERS_FILE"]

USERS_FILE = "users.json"
VERSION = 1
MAX_NAME = 255


def _canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or \
            any(ord(ch) < 32 for ch in name):
        raise ValueError(f"user names are 1-{MAX_NAME} printable characters, not {name!r}")
    return name


class UserStore:
    """Users and their SCRAM credentials; thread-safe; in memory if ``data_dir`` is None."""

    def __init__(self, data_dir: str | Path | None) -> None:
        self._path = Path(data_dir) / USERS_FILE if data_dir is not None else None
        self._lock = threading.Lock()
        self._watch = WatchedFile(self._path)
        self._users: dict[str, dict[str, ScramCredential]] = self._load()

    def _refresh_locked(self) -> None:
        """Pick up a users file changed by another process (``pylog users add`` while
        the server runs); a damaged one is ignored with a WARNING, the old users kept."""
        if not self._watch.changed():
            return
        try:
            self._users = self._load()
        except StorageError as exc:
            import logging
            logging.getLogger("pylog.security").warning("%s; keeping the users loaded "
                                                        "before", exc)

    def _load(self) -> dict:
        if self._path is None or not self._path.exists():
            return {}
        try:
            doc = json.loads(self._path.read_bytes())
            stored = doc.pop("crc32c")
            if stored != crc32c(_canonical(doc)) or doc.get("version") != VERSION:
                raise ValueError("checksum or version does not match")
            users = {}
            for name, mechs in doc["users"].items():
                users[check_name(name)] = {
                    m: ScramCredential(base64.b64decode(c["salt"]), int(c["iterations"]),
                                       base64.b64decode(c["stored_key"]),
                                       base64.b64decode(c["server_key"]))
                    for m, c in mechs.items() if m in MECHANISMS}
            return users
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StorageError(f"{self._path}: unreadable users file ({exc}); restore it "
                               f"or remove it to start with no users") from None

    def _save_locked(self) -> None:
        if self._path is None:
            return
        doc = {"version": VERSION, "users": {
            name: {m: {"salt": _b64(c.salt), "iterations": c.iterations,
                       "stored_key": _b64(c.stored_key), "server_key": _b64(c.server_key)}
                   for m, c in mechs.items()} for name, mechs in sorted(self._users.items())}}
        doc["crc32c"] = crc32c(_canonical(doc))
        self._path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o077)                # salted keys: readable by the owner only
        try:
            files.atomic_write(self._path, json.dumps(doc, indent=1, sort_keys=True).encode())
        finally:
            os.umask(old)
        os.chmod(self._path, 0o600)

    # -- changes -------------------------------------------------------------------------
    def set_password(self, name: str, password: str, mechanisms=tuple(MECHANISMS),
                     iterations: int = MIN_ITERATIONS) -> None:
        check_name(name)
        if not password:
            raise ValueError("the password must not be empty")
        creds = {m: make_credential(m, password, iterations) for m in mechanisms}
        self.upsert(name, creds)

    def upsert(self, name: str, creds: dict[str, ScramCredential]) -> None:
        check_name(name)
        for m in creds:
            if m not in MECHANISMS:
                raise ValueError(f"unknown mechanism {m!r}")
        with self._lock:
            self._refresh_locked()
            self._users.setdefault(name, {}).update(creds)
            self._save_locked()
            self._watch.seen()

    def remove(self, name: str, mechanism: str | None = None) -> bool:
        with self._lock:
            self._refresh_locked()
            mechs = self._users.get(name)
            if mechs is None or (mechanism is not None and mechanism not in mechs):
                return False
            if mechanism is None:
                del self._users[name]
            else:
                del mechs[mechanism]
                if not mechs:
                    del self._users[name]
            self._save_locked()
            self._watch.seen()
            return True

    # -- reads ---------------------------------------------------------------------------
    def credential(self, name: str, mechanism: str) -> ScramCredential | None:
        with self._lock:
            self._refresh_locked()
            return self._users.get(name, {}).get(mechanism)

    def check_password(self, name: str, password: str) -> bool:
        """SASL/PLAIN: the password matches any stored credential of the user."""
        with self._lock:
            self._refresh_locked()
            mechs = dict(self._users.get(name, {}))
        if not mechs:
            return False
        m = "SCRAM-SHA-256" if "SCRAM-SHA-256" in mechs else next(iter(mechs))
        return verify_password(mechs[m], m, password)

    def users(self) -> dict[str, dict[str, int]]:
        """name → {mechanism: iterations} (what DescribeUserScramCredentials tells)."""
        with self._lock:
            self._refresh_locked()
            return {n: {m: c.iterations for m, c in mechs.items()}
                    for n, mechs in sorted(self._users.items())}

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._users
