"""Authentication and ACLs on the HTTP listener.

``--http-security`` uses Kafka's protocol names: PLAINTEXT (the default: nobody is asked,
principal ``User:ANONYMOUS``), SSL (TLS with the Kafka listeners' certificate; a client
certificate's subject is the principal), SASL_PLAINTEXT and SASL_SSL (every route but
``/healthz``, the dashboard's page and static files, the API description and
``/auth/*`` needs credentials, checked against the SASL users):

* ``Authorization: Basic base64(user:password)`` on any request (REST clients, curl);
* ``POST /auth/login`` ``{"user", "password"}`` → a session: an HttpOnly, SameSite=Strict
  cookie ``pylog_session`` (the dashboard's login form) and the same token in the body,
  usable as ``Authorization: Bearer <token>``; sessions last ``SESSION_S`` (8 h) and end
  with ``POST /auth/logout`` or a restart.

Missing or wrong credentials: 401 ``{"error_code": 40101, ...}`` (after
``connection.failed.authentication.delay.ms`` when a password was wrong), with a Basic
challenge unless the dashboard asked (``X-Pylog-Dashboard``).  With ``--authorizer acl``
each route needs the ACL Kafka would ask for the same thing (``route_acls``), else 403
``{"error_code": 40301, ...}`` and nothing is done.
"""
from __future__ import annotations

import asyncio
import base64
import secrets
import time

from aiohttp import web

from pylog.security.sasl import ANONYMOUS
from pylog.security.tls import principal_from_cert

from .errors import RestError, read_json
from .routing import Route

__all__ = ["auth_middleware", "routes", "route_acls", "SESSION_S"]

SESSION_S = 8 * 3600
COOKIE = "pylog_session"
PUBLIC = ("/healthz", "/", "/static/{name}", "/openapi.json", "/routes", "/auth/login",
          "/auth/logout")
READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 3, 4, 5, 6, 7, 8
TOPIC, GROUP, CLUSTER = 2, 3, 4
_CLUSTER = "kafka-cluster"


class Sessions:
    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}

    def new(self, principal: str) -> str:
        now = time.monotonic()
        for t in [t for t, (_p, exp) in self._tokens.items() if exp <= now]:
            del self._tokens[t]
        token = secrets.token_urlsafe(32)
        self._tokens[token] = (principal, now + SESSION_S)
        return token

    def principal(self, token: str) -> str | None:
        got = self._tokens.get(token)
        if got is None or got[1] <= time.monotonic():
            return None
        return got[0]

    def end(self, token: str) -> None:
        self._tokens.pop(token, None)


def _security(request):
    return request.app["http_security"]


async def _principal(request, ctx) -> str | None:
    """The request's principal, or None when it must authenticate and has not."""
    proto = _security(request)
    peercert = request.transport.get_extra_info("peercert") if request.transport else None
    if not proto.startswith("SASL_"):
        return principal_from_cert(peercert) or ANONYMOUS
    header = request.headers.get("Authorization", "")
    kind, _, value = header.partition(" ")
    if kind.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return await _check_password(ctx, user, password)
    token = value.strip() if kind.lower() == "bearer" else request.cookies.get(COOKIE, "")
    return ctx.sessions.principal(token) if token else None


async def _check_password(ctx, user: str, password: str) -> str | None:
    security = ctx.broker.security
    if security is not None and user and security.users.check_password(user, password):
        security.succeeded += 1
        return f"User:{user}"
    if security is not None:
        security.failed += 1
        await asyncio.sleep(security.failed_auth_delay_s)
    return None


async def route_acls(request) -> list[tuple[int, int, str]]:
    """(operation, resource type, name) a request needs."""
    route = request.match_info.route.resource
    path = route.canonical if route is not None else request.path
    m, q, method = request.match_info, request.query, request.method
    if path in PUBLIC or path == "/auth/whoami":
        return []
    if path.startswith("/topics/{topic}"):
        if method == "POST":
            return [(WRITE, TOPIC, m["topic"])]
        return [(READ if path.endswith("/records") else DESCRIBE, TOPIC, m["topic"])]
    if path.startswith("/consumers/{group}"):
        need = [(READ, GROUP, m["group"])]
        if method == "POST" and path.endswith(("/subscription", "/assignments")):
            body = await read_json(request, ("application/json",
                                             "application/vnd.kafka.v2+json"), True) or {}
            for t in body.get("topics") or []:
                need.append((READ, TOPIC, str(t)))
            for p in body.get("partitions") or []:
                if isinstance(p, dict):
                    need.append((READ, TOPIC, str(p.get("topic"))))
            if body.get("topic_pattern"):
                need.append((DESCRIBE, CLUSTER, _CLUSTER))
        return need
    if path == "/topics" and method == "POST":
        return [(CREATE, CLUSTER, _CLUSTER)]
    if path in ("/produce", "/ack"):
        body = await read_json(request, allow_empty=True) or {}
        if path == "/produce":
            return [(WRITE, TOPIC, str(body.get("topic")))]
        return [(READ, GROUP, str(body.get("group")))]
    if path == "/consume":
        return [(READ, GROUP, q.get("group", "")), (READ, TOPIC, q.get("topic", ""))]
    if path == "/api/topics/{topic}/messages" or path == "/api/live/topics/{topic}":
        return [(READ, TOPIC, m["topic"])]
    if path == "/api/topics/{topic}" and method == "DELETE":
        return [(DELETE, TOPIC, m["topic"])]
    if path == "/api/groups/{group}/reset":
        return [(READ, GROUP, m["group"])]
    if method != "GET":
        return [(ALTER, CLUSTER, _CLUSTER)]
    return [(DESCRIBE, CLUSTER, _CLUSTER)]      # /metrics, /dashboard, /api/..., /brokers


def auth_middleware(ctx):
    @web.middleware
    async def auth(request: web.Request, handler):
        principal = await _principal(request, ctx)
        route = request.match_info.route.resource
        path = route.canonical if route is not None else request.path
        if principal is None and path not in PUBLIC:
            headers = {} if request.headers.get("X-Pylog-Dashboard") else {
                "WWW-Authenticate": 'Basic realm="pylog", charset="UTF-8"'}
            err = RestError(401, 40101, "authentication required: Basic credentials, a "
                                        "Bearer token or a session from POST /auth/login")
            resp = err.response()
            resp.headers.update(headers)
            return resp
        request["principal"] = principal or ANONYMOUS
        authz = ctx.broker.authorizer
        if authz is not None and path not in PUBLIC:
            host = (request.remote or "*")
            for operation, rtype, name in await route_acls(request):
                if not authz.authorize(request["principal"], host, operation, rtype, name):
                    raise RestError(403, 40301, f"{request['principal']} is not authorized "
                                                f"for {request.method} {request.path}")
        return await handler(request)
    return auth


def routes(ctx) -> list[Route]:
    async def login(request):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise RestError(422, 422, "expected {\"user\": ..., \"password\": ...}")
        if not _security(request).startswith("SASL_"):
            return web.json_response({"principal": ANONYMOUS, "token": None})
        principal = await _check_password(ctx, str(body.get("user", "")),
                                          str(body.get("password", "")))
        if principal is None:
            raise RestError(401, 40101, "authentication failed")
        token = ctx.sessions.new(principal)
        resp = web.json_response({"principal": principal, "token": token,
                                  "expires_in_s": SESSION_S})
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict",
                        secure=request.secure, max_age=SESSION_S, path="/")
        return resp

    async def logout(request):
        token = request.cookies.get(COOKIE) or request.headers.get(
            "Authorization", "").partition(" ")[2].strip()
        ctx.sessions.end(token)
        resp = web.json_response({"logged_out": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def whoami(request):
        return web.json_response({"principal": request["principal"]})

    t = "auth"
    return [Route("POST", "/auth/login", login, "Log in: a session cookie and token", t,
                  body={"application/json": {"user": "string", "password": "string"}}),
            Route("POST", "/auth/logout", logout, "End the session", t),
            Route("GET", "/auth/whoami", whoami, "The request's principal", t)]
