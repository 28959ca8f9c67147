"""When may a share group hand out a record: delivery hints and redelivery backoff.

The one place that decides "is this record deliverable now, and in which order"
(NATS JetStream's consumer.go keeps it in one place too).  Everything here is pure:
share_state.SharePartition applies it, queues.ShareGroups reads the headers.

Record headers (values ASCII decimal; the last of a repeated name wins)::

    pylog-deliver-at  epoch ms      not handed out before then (a scheduled message)
    pylog-delay-ms    ms >= 0       not before record timestamp + delay
                                    (both given: the later of the two)
    pylog-ttl-ms      ms >= 0, -1   expires at record timestamp + ttl: never delivered
                                    after; -1 = never expires (overrides the topic's
                                    ``message.ttl.ms``)
    pylog-priority    0..9          higher first within the look-ahead window;
                                    default 4 (JMS's range and default, so a producer
                                    can send both more and less urgent than plain)

``parse_hints`` raises InvalidRecordError (Kafka INVALID_RECORD, 87) naming the header
and value when one does not parse or is out of range: the produce path refuses such a
record.  A share group that meets one in the log (written before, or by a door that
does not check) treats that header as absent and counts it (``bad_hints_total``).

Redelivery backoff (group configs ``share.redelivery.backoff.*``): a record released or
whose lock expired after its n-th delivery is available again only after
``min(max_ms, initial_ms * multiplier ** (n - 1)) * (1 - jitter * U[0, 1))``.  initial 0
(the default) is Kafka's immediate redelivery.

How share_state.SharePartition applies them:

* redelivery backoff: a released or lock-expired record gets ``not_before`` = then +
  ``backoff.delay_ms(count)`` (``acknowledge(release_delay_ms=)`` overrides it); after a
  restore every unfinished record that was delivered before waits one backoff from the
  restore (0 with the default backoff).
* hints (``pylog-deliver-at`` / ``-delay-ms`` / ``-ttl-ms`` / ``-priority``): with
  ``track_hints`` the caller hands in every record's Hints from ``hint_range_locked``
  on (``set_hints_locked``; records without hints cost nothing here) and acquire looks
  no further than it has hints for.  A record held back (backoff, deliver-at) is
  skipped, not waited for: the records behind it are handed out, but it keeps its
  slot, so a record delayed at ``spso`` lets at most ``max_record_locks - 1`` records
  behind it through before the partition waits for it (invariant 3).
* TTL: an AVAILABLE record of the look-ahead ``[spso, spso + max_record_locks)``
  whose ``expires_at`` passed is archived (reason "expired"), never delivered; an
  ACQUIRED one is left to its holder.
* priority: among the deliverable records of ``[spso, spso + priority_window)`` higher
  ``priority`` first, FIFO within one; records past that window (when it is smaller
  than the lock window) come after, FIFO.  Runs are returned in offset order.
* dead letters: with ``dead_letters`` on, every record archived by REJECT ("rejected"),
  by the delivery limit ("delivery-limit") or by TTL with ``expired_action="dlq"``
  ("expired") is listed for the caller (``take_dead_letters_locked``), which must
  produce it to the dead-letter topic *before* it persists the delta.
"""
from __future__ import annotations

import re
from typing import Iterable, NamedTuple

from pylog.errors import InvalidConfigError, InvalidRecordError

__all__ = ["H_DELIVER_AT", "H_DELAY_MS", "H_TTL_MS", "H_PRIORITY", "HINT_HEADERS",
           "PRIORITY_MIN", "PRIORITY_MAX", "DEFAULT_PRIORITY", "Hints", "NO_HINTS",
           "parse_hints", "Backoff", "parse_iso_duration", "parse_auto_offset_reset"]

H_DELIVER_AT = "pylog-deliver-at"
H_DELAY_MS = "pylog-delay-ms"
H_TTL_MS = "pylog-ttl-ms"
H_PRIORITY = "pylog-priority"
HINT_HEADERS = frozenset((H_DELIVER_AT, H_DELAY_MS, H_TTL_MS, H_PRIORITY))

PRIORITY_MIN, PRIORITY_MAX = 0, 9
DEFAULT_PRIORITY = 4
_INT64_MAX = (1 << 63) - 1


class Hints(NamedTuple):
    """A record's delivery hints, epoch ms: deliverable from ``deliver_at`` (0 = at
    once), never after ``expires_at`` (None = never)."""
    deliver_at: int = 0
    expires_at: int | None = None
    priority: int = DEFAULT_PRIORITY


NO_HINTS = Hints()


def _int(name: str, raw, lo: int, hi: int) -> int:
    if raw is None:
        raise InvalidRecordError(f"record header {name} has no value")
    try:
        text = bytes(raw).decode("ascii").strip()
    except (UnicodeDecodeError, TypeError):
        raise InvalidRecordError(f"record header {name}={bytes(raw)[:40]!r} is not "
                                 "ASCII decimal") from None
    body = text[1:] if text[:1] == "-" else text
    if not body.isdigit() or len(body) > 19:
        raise InvalidRecordError(f"record header {name}={text[:40]!r} is not an integer")
    n = int(text)
    if not lo <= n <= hi:
        raise InvalidRecordError(f"record header {name}={n} is out of range "
                                 f"({lo}..{hi})")
    return n


def parse_hints(headers: Iterable[tuple[str, bytes | None]] | None, timestamp_ms: int,
                default_ttl_ms: int | None = None) -> Hints:
    """The hints of one record (its headers and timestamp; ``default_ttl_ms`` is the
    topic's ``message.ttl.ms``, None or -1 = none).  Returns NO_HINTS itself when the
    record asks for nothing.  InvalidRecordError names a bad header and its value."""
    seen = {}
    if headers:
        for k, v in headers:
            if k in HINT_HEADERS:
                seen[k] = v
    ttl = default_ttl_ms if default_ttl_ms is not None and default_ttl_ms >= 0 else None
    if not seen and ttl is None:
        return NO_HINTS
    deliver_at = 0
    if H_DELIVER_AT in seen:
        deliver_at = _int(H_DELIVER_AT, seen[H_DELIVER_AT], 0, _INT64_MAX)
    if H_DELAY_MS in seen:
        d = _int(H_DELAY_MS, seen[H_DELAY_MS], 0, _INT64_MAX)
        deliver_at = max(deliver_at, min(_INT64_MAX, timestamp_ms + d))
    if H_TTL_MS in seen:
        t = _int(H_TTL_MS, seen[H_TTL_MS], -1, _INT64_MAX)
        ttl = None if t == -1 else t
    priority = DEFAULT_PRIORITY
    if H_PRIORITY in seen:
        priority = _int(H_PRIORITY, seen[H_PRIORITY], PRIORITY_MIN, PRIORITY_MAX)
    expires_at = None if ttl is None else min(_INT64_MAX, timestamp_ms + ttl)
    h = Hints(deliver_at, expires_at, priority)
    return NO_HINTS if h == NO_HINTS else h


class Backoff(NamedTuple):
    """Redelivery backoff; ``delay_ms(n, u)`` for a record delivered n times, u in
    [0, 1) a random draw (the jitter takes up to ``jitter`` of the delay off, so the
    cap holds)."""
    initial_ms: int = 0
    max_ms: int = 60_000
    multiplier: float = 2.0
    jitter: float = 0.2

    def delay_ms(self, delivery_count: int, u: float) -> int:
        if self.initial_ms <= 0:
            return 0
        n = max(0, delivery_count - 1)
        d = float(self.initial_ms)
        for _ in range(n):                 # stop at the cap (no float overflow)
            d *= self.multiplier
            if d >= self.max_ms:
                break
        d = min(d, float(self.max_ms))
        return int(d * (1.0 - self.jitter * u))


# -- share.auto.offset.reset ------------------------------------------------------------
_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,9}))?S)?)?",
                       re.IGNORECASE)


def parse_iso_duration(text: str) -> int:
    """An ISO-8601 duration as java.time.Duration.parse reads it (``PnDTnHnMn.nS``, no
    sign), in ms.  InvalidConfigError if it does not parse or is empty ("P")."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or not any(m.groups()):
        raise InvalidConfigError(f"{text!r} is not an ISO-8601 duration such as PT1H, "
                                 "P1DT12H or PT30.5S")
    days, hours, minutes, secs, frac = m.groups()
    ms = ((int(days or 0) * 24 + int(hours or 0)) * 60 + int(minutes or 0)) * 60_000 \
        + int(secs or 0) * 1000 + int(((frac or "") + "000")[:3])
    return ms


def parse_auto_offset_reset(value: str) -> str | int:
    """``latest`` / ``earliest``, or the duration in ms of ``by_duration:<ISO-8601>``
    (start at the first record no older than that).  InvalidConfigError otherwise."""
    v = str(value).strip()
    if v.lower() in ("latest", "earliest"):
        return v.lower()
    if v.lower().startswith("by_duration:"):
        return parse_iso_duration(v.split(":", 1)[1])
    raise InvalidConfigError(f"Invalid value {value!r} for configuration "
                             "share.auto.offset.reset: must be latest, earliest or "
                             "by_duration:<ISO-8601 duration>")
