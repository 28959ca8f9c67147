"""Error bodies, request bodies and cross-site refusal for every HTTP route.

Errors are answered as the Confluent REST Proxy writes them::

    {"error_code": 40401, "message": "topic 'x' not found"}

``error_code`` is the HTTP status times 100 plus a sub-code where the REST proxy has
one (40401 topic not found, 40402 partition not found, 40403 consumer instance not
found, 40901/40902 subscription conflicts, 42201 record too large, 42202 invalid
offset or partition), else the bare status (400 malformed JSON, 404 no such route,
406, 413 body too large, 415 unsupported content type, 422 invalid record).  pylog adds
``kafka_error`` (the Kafka error name) when a broker error is behind the answer.

Cross-site requests: a mutating request (POST, PUT, PATCH, DELETE) that a browser
sends (it carries ``Origin`` or ``Sec-Fetch-Site``) must come from this server's own
origin *and* carry the dashboard's CSRF token in ``X-Pylog-CSRF`` (the token is in
the dashboard page).  REST clients (curl, requests, proxies' client libraries) send
neither header and are not affected.
"""
from __future__ import annotations

import json
import logging
import secrets

from aiohttp import web

from pylog.errors import PylogError

__all__ = ["RestError", "error_middleware", "csrf_middleware", "read_json", "new_token",
           "rest_json", "MAX_BODY", "V2_JSON"]

log = logging.getLogger("pylog.server.http")

MAX_BODY = 8 << 20              # request bodies (aiohttp client_max_size), 8 MiB
V2_JSON = "application/vnd.kafka.v2+json"   # what the REST proxy answers v2 calls with

# Kafka error name -> (HTTP status, REST proxy error code)
_KAFKA = {
    "UNKNOWN_TOPIC_OR_PARTITION": (404, 40401),
    "UNKNOWN_TOPIC_ID": (404, 40401),
    "INVALID_TOPIC_EXCEPTION": (422, 422),
    "MESSAGE_TOO_LARGE": (422, 42201),
    "RECORD_LIST_TOO_LARGE": (422, 42201),
    "OFFSET_OUT_OF_RANGE": (422, 42202),
    "TOPIC_ALREADY_EXISTS": (409, 40900),
    "INVALID_PARTITIONS": (422, 422),
    "INVALID_REPLICATION_FACTOR": (422, 422),
    "INVALID_CONFIG": (422, 422),
    "INVALID_REQUEST": (400, 400),
    "INVALID_GROUP_ID": (422, 422),
    "GROUP_ID_NOT_FOUND": (404, 404),
    "NON_EMPTY_GROUP": (409, 40900),
    "ILLEGAL_GENERATION": (409, 40900),
    "UNKNOWN_MEMBER_ID": (409, 40900),
    "REBALANCE_IN_PROGRESS": (409, 40900),
    "INVALID_RECORD_STATE": (409, 40900),
    "COORDINATOR_LOAD_IN_PROGRESS": (503, 50301),
    "COORDINATOR_NOT_AVAILABLE": (503, 50301),
    "REQUEST_TIMED_OUT": (408, 40801),
}


class RestError(Exception):
    """An error answer: HTTP status, REST proxy error code, message."""

    def __init__(self, status: int, code: int, message: str, kafka_error: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.kafka_error = kafka_error

    @classmethod
    def from_pylog(cls, exc: PylogError) -> "RestError":
        name = getattr(exc, "name", None) or type(exc).__name__
        status, code = _KAFKA.get(name, (500, 50002))     # 50002: "Kafka error"
        return cls(status, code, str(exc) or name, name)

    def response(self) -> web.Response:
        body = {"error_code": self.code, "message": self.message}
        if self.kafka_error:
            body["kafka_error"] = self.kafka_error
        return web.json_response(body, status=self.status)


def rest_json(doc, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(text=json.dumps(doc, separators=(",", ":")), status=status,
                        content_type=content_type)


@web.middleware
async def error_middleware(request: web.Request, handler):
    """Every error as a REST proxy error body (aiohttp's own 404/405/413 included)."""
    try:
        return await handler(request)
    except RestError as exc:
        return exc.response()
    except PylogError as exc:
        return RestError.from_pylog(exc).response()
    except web.HTTPRequestEntityTooLarge:
        return RestError(413, 413, f"request body over the {MAX_BODY}-byte limit; "
                                   f"nothing stored").response()
    except web.HTTPException as exc:
        if exc.status < 400 or exc.status == 404 and request.path.startswith("/static/"):
            raise
        return RestError(exc.status, exc.status, exc.reason).response()
    except ConnectionResetError:
        raise
    except Exception as exc:    # noqa: BLE001 -- a bug answers 500 and is logged, not hidden
        log.exception("http %s %s failed", request.method, request.path)
        return RestError(500, 500, f"internal error: {type(exc).__name__}: {exc}").response()


def new_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_middleware(token: str):
    """Refuse cross-site mutating requests (see the module doc)."""

    @web.middleware
    async def csrf(request: web.Request, handler):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return await handler(request)
        origin = request.headers.get("Origin")
        site = request.headers.get("Sec-Fetch-Site")
        if origin is None and site is None:
            return await handler(request)           # not a browser: a REST client
        own = f"{request.scheme}://{request.host}"
        if origin is not None and origin != own:
            raise RestError(403, 40301, f"cross-site request refused: Origin {origin!r} "
                                        f"is not {own!r}")
        if site not in (None, "same-origin", "none"):
            raise RestError(403, 40301, f"cross-site request refused (Sec-Fetch-Site: "
                                        f"{site})")
        if not secrets.compare_digest(request.headers.get("X-Pylog-CSRF", ""), token):
            raise RestError(403, 40302, "missing or wrong X-Pylog-CSRF token (the "
                                        "dashboard page carries it)")
        return await handler(request)

    return csrf


async def read_json(request: web.Request, types: tuple[str, ...] = ("application/json",),
                    allow_empty: bool = False):
    """The request's JSON body, after checking its content type against ``types``
    (415 if it is not one of them) and its size (413, aiohttp's client_max_size);
    400 if it does not parse."""
    ctype = request.content_type.lower()
    if request.content_length == 0 or not request.can_read_body:
        if allow_empty:
            return None
    if ctype not in types:
        raise RestError(415, 415, f"HTTP 415 Unsupported Media Type: {ctype or 'none'}; "
                                  f"expected {' or '.join(types)}")
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return None
        raise RestError(400, 400, "request body is empty; a JSON document is expected")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RestError(400, 400, f"malformed JSON: {exc}") from None
