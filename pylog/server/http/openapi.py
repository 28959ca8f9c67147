"""``/openapi.json`` (OpenAPI 3.1) and ``/routes`` (the same table as an HTML page),
both built from the route table (routing.Route), so neither can miss a route."""
from __future__ import annotations

import html
import re

from aiohttp import web

from .errors import rest_json

__all__ = ["routes", "openapi_document"]

_ERROR = {"type": "object", "required": ["error_code", "message"], "properties": {
    "error_code": {"type": "integer"}, "message": {"type": "string"},
    "kafka_error": {"type": "string"}}}


def openapi_document(table, version: str) -> dict:
    paths: dict = {}
    for r in table:
        params = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "integer" if name == "partition" else "string"}}
                  for name in re.findall(r"{(\w+)}", r.path)]
        params += [{"name": name, "in": "query", "required": False,
                    "description": text, "schema": {"type": "string"}}
                   for name, text in r.query.items()]
        op = {"summary": r.summary, "tags": [r.tag],
              "operationId": f"{r.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', r.path)}"
                             .rstrip("_"),
              "responses": {"200": {"description": "OK"},
                            "default": {"description": "error", "content": {
                                "application/json": {"schema": _ERROR}}}}}
        for status, text in r.responses.items():
            op["responses"][str(status)] = {"description": text}
        if params:
            op["parameters"] = params
        if r.body:
            op["requestBody"] = {"required": r.method != "DELETE", "content": {
                ctype: {"schema": schema} for ctype, schema in r.body.items()}}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {"openapi": "3.1.0",
            "info": {"title": "pylog HTTP API", "version": version,
                     "description": "Confluent REST Proxy v2 compatible routes, simple "
                                    "queue routes, the dashboard's API and live streams. "
                                    "Errors: {error_code, message}."},
            "paths": paths}


def routes(ctx) -> list:
    from .routing import Route

    def _version() -> str:
        from ..settings import version
        return version()

    async def spec(request: web.Request) -> web.Response:
        return rest_json(openapi_document(ctx.routes, _version()))

    async def page(request: web.Request) -> web.Response:
        rows = []
        for r in ctx.routes:
            rows.append(f"<tr><td>{html.escape(r.method)}</td><td><code>"
                        f"{html.escape(r.path)}</code></td><td>{html.escape(r.tag)}</td>"
                        f"<td>{html.escape(r.summary)}</td></tr>")
        body = ("<!doctype html><html><head><meta charset='utf-8'><title>pylog routes"
                "</title><link rel='stylesheet' href='/static/app.css'></head><body>"
                "<main class='page'><h1>pylog HTTP routes</h1><p>Machine-readable: <a "
                "href='/openapi.json'>/openapi.json</a>. Dashboard: <a href='/'>/</a>. "
                "Errors are <code>{\"error_code\", \"message\"}</code>.</p>"
                "<table class='grid'><thead><tr><th>Method</th><th>Path</th><th>Area</th>"
                "<th>What</th></tr></thead><tbody>" + "".join(rows) +
                "</tbody></table></main></body></html>")
        return web.Response(text=body, content_type="text/html")

    return [
        Route("GET", "/openapi.json", spec, "This API as OpenAPI 3.1", "docs"),
        Route("GET", "/routes", page, "Every route, as an HTML page", "docs"),
    ]
