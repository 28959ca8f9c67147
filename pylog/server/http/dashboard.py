"""The dashboard: ``/`` (static/index.html with the CSRF token filled in) and
``/static/*`` (hand-written app.js and app.css; no third-party files, no build step).

The page talks only to ``/api/...``, ``/topics``, ``/produce`` and the event streams,
sending ``X-Pylog-CSRF`` on every mutating call (errors.csrf_middleware).  Responses
carry a Content-Security-Policy that allows scripts from this origin only, so even a
value that slipped past ``textContent`` could not run inline script.
"""
from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

__all__ = ["routes", "STATIC", "CSP"]

STATIC = Path(__file__).with_name("static")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
          ".svg": "image/svg+xml", ".txt": "text/plain"}


def routes(ctx) -> list:
    from .routing import Route
    index = (STATIC / "index.html").read_text()
    page = index.replace("{{csrf}}", html.escape(ctx.csrf_token, quote=True))
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}
    files = {p.name: p for p in STATIC.iterdir() if p.suffix in _TYPES}

    async def root(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", headers=headers)

    async def static(request: web.Request) -> web.Response:
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return web.Response(body=path.read_bytes(),
                            headers={"Content-Type": _TYPES[path.suffix] + "; charset=utf-8",
                                     "Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})

    return [
        Route("GET", "/", root, "The dashboard (HTML)", "dashboard"),
        Route("GET", "/static/{name}", static, "The dashboard's script and style sheet",
              "dashboard"),
    ]
