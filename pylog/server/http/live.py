"""Live updates as Server-Sent Events (``text/event-stream``).

    GET /api/live/topics/{topic}?partition=&from=end|<offset>
        event: record   data: the message browser's record JSON (queue_routes.record_doc)
    GET /api/live/metrics
        event: metrics  data: admin_routes.overview, once a second

Memory per client is bounded: every stream has a queue of at most ``BUFFER_EVENTS``
events between what the server produces and what the client has taken.  A client that
falls that far behind (it stopped reading, or reads slower than records arrive) is
dropped: its stream ends and ``dropped`` counts it.  Writes wait for the socket at most
``WRITE_TIMEOUT_S``.  At most ``MAX_STREAMS`` streams are open at once (503 beyond).
A comment line is sent every ``KEEPALIVE_S`` so proxies keep idle streams open.
"""
from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from pylog.errors import OffsetOutOfRangeError

from .context import int_param
from .errors import RestError
from .queue_routes import record_doc

__all__ = ["LiveHub", "routes", "BUFFER_EVENTS"]

log = logging.getLogger("pylog.server.http")

BUFFER_EVENTS = 256
WRITE_TIMEOUT_S = 5.0
KEEPALIVE_S = 15.0
MAX_STREAMS = 256
METRICS_EVERY_S = 1.0


class _Dropped(Exception):
    pass


class Stream:
    """One client's bounded queue of encoded events."""

    def __init__(self, hub: "LiveHub") -> None:
        self.hub = hub
        self.queue: asyncio.Queue = asyncio.Queue(BUFFER_EVENTS)
        self.dropped = False

    def offer(self, event: str, data) -> bool:
        """Queue one event; False (and the stream is dropped) when the queue is full."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            return True
        except asyncio.QueueFull:
            self.dropped = True
            self.hub.dropped += 1
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)          # wakes the writer, which ends the stream
            return False


class LiveHub:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.streams: set[Stream] = set()
        self.metric_streams: set[Stream] = set()
        self.dropped = 0                    # clients dropped for falling behind
        self.disconnected = 0               # clients that closed their stream
        self.served = 0
        self._ticker: asyncio.Task | None = None
        self.closing = False

    def start(self) -> None:
        self._ticker = asyncio.ensure_future(self._tick())

    def close(self) -> None:
        self.closing = True
        if self._ticker is not None:
            self._ticker.cancel()
        for s in list(self.streams):
            s.offer("bye", {})
            try:
                s.queue.put_nowait(None)
            except asyncio.QueueFull:
                pass

    def stats(self) -> dict:
        return {"streams": len(self.streams), "dropped": self.dropped,
                "disconnected": self.disconnected,
                "served": self.served, "buffer_events": BUFFER_EVENTS}

    async def _tick(self) -> None:
        from .admin_routes import overview
        while True:
            await asyncio.sleep(METRICS_EVERY_S)
            if self.metric_streams:
                doc = overview(self.ctx)
                for s in list(self.metric_streams):
                    s.offer("metrics", doc)

    async def serve(self, request: web.Request, stream: Stream, producer=None
                    ) -> web.StreamResponse:
        """Write ``stream``'s events to the client until it goes, lags or we stop."""
        if len(self.streams) >= MAX_STREAMS:
            raise RestError(503, 50301, f"{MAX_STREAMS} event streams are open")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        self.streams.add(stream)
        self.served += 1
        task = asyncio.ensure_future(producer(stream)) if producer else None
        try:
            await asyncio.wait_for(resp.write(b": stream open\n\n"), WRITE_TIMEOUT_S)
            while not self.closing:
                try:
                    chunk = await asyncio.wait_for(stream.queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    chunk = b": keepalive\n\n"
                if chunk is None:
                    break
                await asyncio.wait_for(resp.write(chunk), WRITE_TIMEOUT_S)
        except asyncio.TimeoutError:          # the socket took no bytes for 5 s
            if not stream.dropped:
                stream.dropped = True
                self.dropped += 1
        except ConnectionError:               # the client went away
            self.disconnected += 1
        finally:
            self.streams.discard(stream)
            self.metric_streams.discard(stream)
            if task is not None:
                task.cancel()
        if stream.dropped:
            log.info("event stream to %s dropped: it fell %d events behind",
                     request.remote, BUFFER_EVENTS)
            if request.transport is not None:
                request.transport.abort()      # drop what is buffered too
        return resp


def routes(ctx) -> list:
    from .routing import Route
    hub: LiveHub = ctx.live

    async def topic_stream(request: web.Request) -> web.StreamResponse:
        name = request.match_info["topic"]
        index = int_param(request, "partition", 0, 0, 1 << 31)
        _t, p = ctx.partition(name, index)
        where = request.query.get("from", "end")
        start = p.log_end_offset if where == "end" else \
            int_param(request, "from", 0, 0, 1 << 62)

        async def produce(stream: Stream) -> None:
            pos = max(start, p.log_start_offset)
            while not stream.dropped and not hub.closing:
                if pos >= p.log_end_offset:
                    await ctx.wait_for_records([p], 5.0, None)
                    continue
                try:
                    recs = p.read(pos, max_records=100)
                except OffsetOutOfRangeError:
                    pos = p.log_start_offset
                    continue
                for r in recs:
                    if r.offset < pos:
                        continue
                    if not stream.offer("record", record_doc(r, index)):
                        return
                    pos = r.offset + 1
                await asyncio.sleep(0)

        return await hub.serve(request, Stream(hub), produce)

    async def metrics_stream(request: web.Request) -> web.StreamResponse:
        from .admin_routes import overview
        stream = Stream(hub)
        stream.offer("metrics", overview(ctx))
        hub.metric_streams.add(stream)
        return await hub.serve(request, stream)

    async def live_stats(request: web.Request) -> web.Response:
        return web.json_response(hub.stats())

    t = "live"
    return [
        Route("GET", "/api/live/topics/{topic}", topic_stream, "Server-Sent Events: new "
              "records of one partition (live tail)", t,
              query={"partition": "partition", "from": "end (default) or an offset"}),
        Route("GET", "/api/live/metrics", metrics_stream, "Server-Sent Events: overview "
              "figures every second", t),
        Route("GET", "/api/live", live_stats, "Open streams and clients dropped for "
              "falling behind", t),
    ]
