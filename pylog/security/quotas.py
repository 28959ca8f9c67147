"""Client quotas, Kafka's model (KIP-13, KIP-55, KIP-219): byte rates per user and client id.

Quotas are set with AlterClientQuotas (48/49's entity types ``user`` and ``client-id``; a
null name is the default entity) and kept in ``<data>/quotas.json``:
``producer_byte_rate`` (bytes/s of produce requests) and ``consumer_byte_rate``
(bytes/s of fetch responses).  The quota that applies to a request is found in Kafka's
order, most specific first::

    user+client-id, user+<default client>, user, <default user>+client-id,
    <default user>+<default client>, <default user>, client-id, <default client>

and the rate is measured per matched entity (clients of one user share a user quota).
Rates are measured over ``WINDOWS`` one-second windows.  A request that takes the rate
over its quota gets ``throttle_time_ms`` = (rate − quota) / quota × the measured span,
at most ``MAX_THROTTLE_MS``, and the connection is not read for that long (KIP-219; the
response goes out at once and well-behaved clients also wait).
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from pylog.crc import crc32c
from pylog.errors import StorageError
from pylog.storage import files

__all__ = ["QuotaManager", "QUOTA_KEYS", "QUOTAS_FILE"]

QUOTAS_FILE = "quotas.json"
QUOTA_KEYS = ("producer_byte_rate", "consumer_byte_rate")
ENTITY_TYPES = ("user", "client-id")
WINDOWS = 11                      # quota.window.num
MAX_THROTTLE_MS = 30_000
DEFAULT = None                    # the default entity's name


def _key(user, client) -> str:
    return json.dumps([user, client])


class _Rate:
    """Bytes per second over the last WINDOWS one-second windows."""
    __slots__ = ("buckets", "start")

    def __init__(self, now: float) -> None:
        self.buckets: dict[int, float] = {}
        self.start = now

    def add(self, n: float, now: float) -> float:
        sec = int(now)
        self.buckets[sec] = self.buckets.get(sec, 0.0) + n
        for old in [s for s in self.buckets if s <= sec - WINDOWS]:
            del self.buckets[old]
        span = max(1.0, min(now - self.start, WINDOWS - 1 + (now - sec)))
        return sum(self.buckets.values()) / span, span


class QuotaManager:
    def __init__(self, data_dir) -> None:
        self._path = Path(data_dir) / QUOTAS_FILE if data_dir is not None else None
        self._lock = threading.Lock()
        self._quotas: dict[str, dict[str, float]] = self._load()   # entity key -> values
        self._rates: dict[tuple, _Rate] = {}
        self.throttled = 0

    def _load(self) -> dict:
        if self._path is None or not self._path.exists():
            return {}
        try:
            doc = json.loads(self._path.read_bytes())
            if doc.pop("crc32c") != crc32c(json.dumps(doc, sort_keys=True).encode()):
                raise ValueError("checksum does not match")
            return {k: {q: float(v) for q, v in vals.items() if q in QUOTA_KEYS}
                    for k, vals in doc["quotas"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StorageError(f"{self._path}: unreadable quota file ({exc})") from None

    def _save_locked(self) -> None:
        if self._path is None:
            return
        doc = {"version": 1, "quotas": self._quotas}
        doc["crc32c"] = crc32c(json.dumps(doc, sort_keys=True).encode())
        self._path.parent.mkdir(parents=True, exist_ok=True)
        files.atomic_write(self._path, json.dumps(doc, indent=1, sort_keys=True).encode())

    # -- admin ---------------------------------------------------------------------------
    def alter(self, entity: dict, ops: list[tuple[str, float, bool]],
              validate_only: bool = False) -> None:
        """``entity``: {"user": name|None, "client-id": name|None} (a missing type = not
        part of the entity); ``ops``: (key, value, remove).  ValueError if invalid."""
        if not entity or any(t not in ENTITY_TYPES for t in entity):
            raise ValueError(f"entity types must be {' and/or '.join(ENTITY_TYPES)}")
        for k, v, remove in ops:
            if k not in QUOTA_KEYS:
                raise ValueError(f"unknown quota {k!r} (pylog has {', '.join(QUOTA_KEYS)})")
            if not remove and not v > 0:
                raise ValueError(f"quota {k} must be positive, not {v}")
        if validate_only:
            return
        key = _key(entity.get("user", "-"), entity.get("client-id", "-"))
        with self._lock:
            vals = self._quotas.setdefault(key, {})
            for k, v, remove in ops:
                if remove:
                    vals.pop(k, None)
                else:
                    vals[k] = float(v)
            if not vals:
                del self._quotas[key]
            self._save_locked()
            self._rates.clear()

    def describe(self) -> list[tuple[dict, dict[str, float]]]:
        with self._lock:
            out = []
            for key, vals in sorted(self._quotas.items()):
                user, client = json.loads(key)
                entity = {}
                if user != "-":
                    entity["user"] = user
                if client != "-":
                    entity["client-id"] = client
                out.append((entity, dict(vals)))
            return out

    # -- enforcement ---------------------------------------------------------------------
    def _match_locked(self, user: str, client: str, kind: str):
        q = self._quotas
        for u, c in ((user, client), (user, DEFAULT), (user, "-"), (DEFAULT, client),
                     (DEFAULT, DEFAULT), (DEFAULT, "-"), ("-", client), ("-", DEFAULT)):
            vals = q.get(_key(u, c))
            if vals and kind in vals:
                return vals[kind], (u, c)
        return None, (None, None)

    def record(self, principal: str, client_id: str, kind: str, nbytes: int,
               now: float | None = None) -> int:
        """Count ``nbytes`` against the quota of ``kind``; the throttle time in ms (0 if
        within it or no quota applies)."""
        if not self._quotas:
            return 0
        user = principal.removeprefix("User:")
        now = time.monotonic() if now is None else now
        with self._lock:
            quota, (u, c) = self._match_locked(user, client_id or "", kind)
            if quota is None:
                return 0
            # Default entities are measured per actual user / client (Kafka's sanitized
            # entity), named ones per the entity itself.
            ident = (user if u is None else u, client_id if c is None else c, kind)
            rate = self._rates.get(ident)
            if rate is None:
                rate = self._rates[ident] = _Rate(now)
            observed, span = rate.add(nbytes, now)
        if observed <= quota:
            return 0
        self.throttled += 1
        return int(min(MAX_THROTTLE_MS, (observed - quota) / quota * span * 1000))


def entity_of(components) -> dict:
    """AlterClientQuotas EntityData list → {"user": ..., "client-id": ...}."""
    return {e.entity_type: e.entity_name for e in components}

