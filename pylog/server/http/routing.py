"""One route table for the whole HTTP listener: what aiohttp serves and what
``/openapi.json`` and ``/routes`` describe come from the same ``Route`` rows.

Each area module has ``routes(ctx) -> list[Route]``; ``build_app`` collects them in
``AREAS`` order and keeps the table as ``app["routes"]``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from aiohttp import web

from .errors import MAX_BODY, csrf_middleware, error_middleware

__all__ = ["Route", "build_app", "AREAS"]


class Route(NamedTuple):
    method: str
    path: str                       # aiohttp syntax: /topics/{topic}
    handler: Callable
    summary: str
    tag: str                        # area, as the OpenAPI document groups them
    query: dict[str, str] = {}      # query parameter -> description
    body: dict[str, Any] | None = None      # {content type: JSON schema (short)}
    responses: dict[int, str] = {}  # status -> description (200 is implied)


AREAS = ("metrics_routes", "rest_v2", "rest_consumers", "queue_routes", "admin_routes",
         "dlq_routes", "live", "openapi", "dashboard", "auth")


def _counter(metrics):
    """Count each request under its route ("POST /topics/{topic}") in /metrics'
    requests.http (/metrics and /healthz count themselves, as before)."""
    @web.middleware
    async def count(request: web.Request, handler):
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else "unrouted"
        if path not in ("/metrics", "/healthz"):
            metrics.request(f"{request.method} {path}", "http")
        return await handler(request)
    return count


def build_app(ctx, middlewares: list) -> web.Application:
    from importlib import import_module
    from .auth import auth_middleware
    app = web.Application(middlewares=[*middlewares, _counter(ctx.broker.metrics),
                                       error_middleware, csrf_middleware(ctx.csrf_token),
                                       auth_middleware(ctx)],
                          client_max_size=MAX_BODY)
    app["http_security"] = getattr(ctx.server, "security_protocol", "PLAINTEXT")
    table: list[Route] = []
    for area in AREAS:
        table.extend(import_module(f"{__package__}.{area}").routes(ctx))
    for r in table:
        app.router.add_route(r.method, r.path, r.handler)
    app["routes"] = table
    ctx.routes = table
    return app
