"""Request dispatch: the table of APIs pylog serves and the decode → handler step.

No I/O.  ``decode_request(frame)`` turns one frame into a ``Request`` (header,
kio body entity, the ``ApiSpec`` that will answer it) or raises ProtocolError;
the connection then calls ``spec.handler(ctx, request.body)``.

What a handler returns (the connection applies one connection's requests in the
order sent, as Kafka does): a response, or None (no response: acks=0), once the
request has taken effect; ``Applied(awaitable)`` when it has taken effect but its
response waits (a durability barrier, other group members), so the connection may
apply its next request meanwhile; or a coroutine when it has not taken effect yet
(it waits for a producer-state rebuild; a long-polling Fetch): the connection's
next request is not applied before it returns.  Its result is again one of these.

Versions (research/kafka-protocol.md §2.4–2.5): every API is advertised with
min 0 and max = its highest non-flexible version, because librdkafka < 2.11.1
(Debian's kcat) drops compression and other features when a v0 is missing from
the advertised range.  Versions below ``spec.versions`` (Produce 0–2, Fetch 0–3,
...; kio does not even have their schemas, and no current client sends them)
are rejected the way Kafka 4.x rejects them: the connection is closed.  An
ApiVersions request of a version we do not serve (v3/v4, sent first by
librdkafka and kafka-python) is answered in the v0 layout with error 35 so
the client retries with a version we do serve.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from kio.index import UnknownEntity

from pylog.errors import ProtocolError

from .bounds import check_flexible
from .messages import (RequestHeader, decode_body, decode_header, request_class,
                       skip_tagged_fields)

__all__ = ["ApiSpec", "Applied", "Request", "UnsupportedRequestError", "CloseConnection",
           "decode_request", "register",
           "API_TABLE", "API_VERSIONS_KEY"]

API_VERSIONS_KEY = 18


class UnsupportedRequestError(ProtocolError):
    """An API key or version pylog does not serve; Kafka closes the connection."""


class CloseConnection(Exception):
    """Raised by a handler whose only way to report an error is closing the connection
    (Kafka does this for a failed acks=0 Produce: there is no response to carry it)."""


class Applied:
    """A handler's answer for a request that has taken effect (its writes are in the
    log, its group change is made) but whose response still waits on ``awaitable``."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable) -> None:
        self.awaitable = awaitable


@dataclass(frozen=True)
class ApiSpec:
    key: int
    name: str
    versions: range                 # versions decoded and answered
    advertised_max: int             # highest version advertised (advertised min is 0)
    handler: Callable[..., Any]     # handler(ctx, body) -> response | None | Applied | coroutine


class Request(NamedTuple):
    header: RequestHeader
    body: Any                       # kio request entity; None for ApiVersions v3+
    spec: ApiSpec


API_TABLE: dict[int, ApiSpec] = {}


def register(*specs: ApiSpec) -> None:
    """Add APIs to the table.  Their kio schema modules load on first use (loading all
    of them costs about a second of startup); tests/server/test_dispatch.py checks that
    every served version has its request and response classes."""
    for spec in specs:
        API_TABLE[spec.key] = spec


def decode_request(frame: bytes) -> Request:
    """Decode one request frame; ProtocolError (or UnsupportedRequestError) if we can't."""
    header = decode_header(frame)
    spec = API_TABLE.get(header.api_key)
    if spec is None:
        raise UnsupportedRequestError(f"unknown api key {header.api_key} "
                                      f"(correlation id {header.correlation_id})")
    if header.api_version not in spec.versions:
        if header.api_key == API_VERSIONS_KEY and header.api_version > spec.versions[-1]:
            return Request(header, None, spec)      # answered in the v0 layout, error 35
        raise UnsupportedRequestError(
            f"{spec.name} v{header.api_version} is not served (versions "
            f"{spec.versions[0]}-{spec.versions[-1]}, correlation id {header.correlation_id})")
    try:
        cls = request_class(header.api_key, header.api_version)
    except UnknownEntity as exc:                    # pragma: no cover - checked by the tests
        raise UnsupportedRequestError(str(exc)) from exc
    offset = header.body_offset
    if cls.__flexible__:                            # request header v2: tagged fields
        offset = skip_tagged_fields(frame, offset)
        check_flexible(cls, frame, offset)          # lengths kio would over-allocate for
    body = decode_body(cls, frame, offset)
    return Request(header, body, spec)


def _install() -> None:
    """Import the handler modules; each calls ``register`` for its APIs."""
    from . import admin, admin_describe, api_versions, fetch, groups, list_offsets  # noqa: F401
    from . import admin_configs, admin_partitions, metadata  # noqa: F401
    from . import produce, producer_ids, telemetry  # noqa: F401
    from . import acl_admin, sasl, scram_admin, share_fetch, share_groups  # noqa: F401
    from . import quotas_admin, share_offsets, txn  # noqa: F401


_install()
