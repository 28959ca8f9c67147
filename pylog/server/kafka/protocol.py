"""One Kafka client connection: an ``asyncio.Protocol`` over framing and dispatch.

What runs on the event-loop thread: framing, decoding, the handlers (including
the append into the mmap, a memcpy), encoding and writing.  What does not: the
barrier (fsync/msync) behind durable acks, done by the storage engine's
flusher thread; a Produce response waiting for it is a coroutine here.

Ordering: Kafka applies and answers the requests of one connection in the order
they came (librdkafka keeps up to 5 idempotent Produce requests in flight and
relies on it).  Applied: a request whose handler returns a coroutine has not taken
effect yet (a Produce waiting for a producer-state rebuild, a long-polling Fetch);
until that coroutine returns, later frames of the connection wait, undecoded, in
``_backlog`` and are then handled in order.  A request that has taken effect but
whose answer waits (``Applied``: a durability barrier, a parked JoinGroup) does not
hold the next one back, so pipelined durable Produce requests share barriers.
Answered: a response that is ready at once is written at once when nothing is
queued before it; otherwise it joins ``_queue`` and ``_drain`` writes the queue in
order, awaiting each pending response.

Errors: a frame size Kafka would refuse, an undecodable request, or an API key
or version we do not serve closes this connection (Kafka does the same); a
handler bug is logged and closes it too.  Nothing here can stop other
connections.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque

from pylog.errors import ProtocolError
from pylog.security.api_acl import CLUSTER, COARSE

from .context import BrokerContext, RequestContext
from .dispatch import Applied, CloseConnection, UnsupportedRequestError, decode_request
from .framing import FrameDecoder, FrameError
from .messages import encode_response

__all__ = ["KafkaConnection", "FlowControl"]

log = logging.getLogger("pylog.server.kafka")
MAX_QUEUED = 64        # requests awaiting an answer before we stop reading this socket


class FlowControl:
    """Pauses reading while the client is not reading our responses, or while too
    many of its requests wait for an answer; resumes when both clear."""

    __slots__ = ("_transport", "_reasons", "_writable")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._reasons: set[str] = set()
        self._writable = asyncio.Event()
        self._writable.set()

    def pause(self, reason: str) -> None:
        if not self._reasons:
            self._transport.pause_reading()
        self._reasons.add(reason)
        if reason == "write":
            self._writable.clear()

    def resume(self, reason: str) -> None:
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        if reason == "write":
            self._writable.set()
        if not self._reasons and not self._transport.is_closing():
            self._transport.resume_reading()

    @property
    def paused(self) -> bool:
        """True while we are not reading this socket (not the client's delay)."""
        return bool(self._reasons)

    @property
    def can_write(self) -> bool:
        """False while the transport's write buffer is over its high-water mark."""
        return self._writable.is_set()

    async def writable(self) -> None:
        await self._writable.wait()


class KafkaConnection(asyncio.Protocol):
    """One client connection (event-loop thread only)."""

    def __init__(self, broker: BrokerContext, registry: set | None = None,
                 spec=None) -> None:
        # Shared by all connections.
        self.broker = broker
        self.registry = registry if registry is not None else set()
        self.spec = spec                    # ListenerSpec (None: PLAINTEXT)
        self.auth = None                    # ConnectionAuth, set in connection_made
        # Per connection.
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl | None = None
        self.decoder = FrameDecoder(broker.settings.max_request_bytes)
        self.peer = "?"
        self.local_host, self.local_port = "127.0.0.1", 0
        self.last_activity = 0.0
        self.request_started: float | None = None   # first byte of the partial request
        # Per request: answers not yet written, in request order.
        self._queue: deque = deque()        # (correlation_id, api name, task | response)
        self._drainer: asyncio.Task | None = None
        # Requests received while an earlier one is not applied yet, in order (frames).
        self._backlog: deque[bytes] = deque()
        self._applying = False              # a handler's coroutine has not applied it yet

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.flow = FlowControl(transport)
        sock = transport.get_extra_info("sockname") or ("127.0.0.1", 0)
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.local_host, self.local_port = sock[0], sock[1]
        self.peer = f"{peer[0]}:{peer[1]}"
        from pylog.security.sasl import ConnectionAuth
        self.auth = ConnectionAuth(self.spec, getattr(self.broker, "security", None),
                                   transport.get_extra_info("peercert"), str(peer[0]))
        self.last_activity = asyncio.get_running_loop().time()
        self.registry.add(self)
        self.broker.metrics.connection_opened("kafka")
        log.debug("connection from %s", self.peer)

    def connection_lost(self, exc) -> None:
        self.registry.discard(self)
        self.broker.metrics.connection_closed("kafka")
        for _cid, _name, item in self._queue:
            if isinstance(item, asyncio.Task):
                item.cancel()
        self._queue.clear()
        self._backlog.clear()
        if self._drainer is not None:
            self._drainer.cancel()
        log.debug("connection from %s closed%s", self.peer, f": {exc}" if exc else "")

    def pause_writing(self) -> None:
        self.flow.pause("write")

    def resume_writing(self) -> None:
        self.flow.resume("write")

    def data_received(self, data: bytes) -> None:
        now = self.last_activity = asyncio.get_running_loop().time()
        partial_before = self.decoder.buffered
        try:
            frames = self.decoder.feed(data)
        except FrameError as exc:
            self.close(f"bad frame: {exc}")
            return
        # The request deadline (request_timeout_ms) runs from a request's first byte: a
        # client trickling a request byte by byte is cut off by app.Server's sweep.
        if not self.decoder.buffered:
            self.request_started = None
        elif frames or not partial_before:
            self.request_started = now
        for frame in frames:
            if self.transport.is_closing():
                return
            if self._applying:
                self._backlog.append(frame)
                if self._owed >= MAX_QUEUED:
                    self.flow.pause("queue")
            else:
                self._handle(frame)

    # -- requests ---------------------------------------------------------------------
    def _handle(self, frame: bytes) -> None:
        try:
            request = decode_request(frame)
        except (UnsupportedRequestError, ProtocolError) as exc:
            self.close(str(exc))
            return
        header = request.header
        if not self.auth.allows(header.api_key):
            self.close(f"{request.spec.name} before SASL authentication" if
                       not self.auth.authenticated else "SASL session expired "
                       "(connections.max.reauth.ms) without re-authentication")
            return
        self.broker.metrics.request(request.spec.name, version=header.api_version)
        ctx = RequestContext(self.broker, header, self.local_host, self.local_port,
                             self.auth)
        need = COARSE.get(header.api_key)
        if need is not None and not ctx.allowed(need, CLUSTER, "kafka-cluster"):
            self.close(f"{ctx.principal} is not authorized for {request.spec.name} "
                       f"(operation {need} on the cluster)")
            return
        try:
            result = request.spec.handler(ctx, request.body)
        except CloseConnection as exc:
            self.close(str(exc))
            return
        except Exception:       # noqa: BLE001 -- a handler bug closes one connection only
            log.exception("%s v%d from %s failed", request.spec.name, header.api_version,
                          self.peer)
            self.close("internal error")
            return
        if result is None:
            return                           # acks=0: no response at all
        if isinstance(result, Applied):      # in effect; the answer waits (a barrier)
            result = asyncio.ensure_future(result.awaitable)
        elif asyncio.iscoroutine(result):    # not in effect yet: hold the next requests
            self._applying = True
            result = asyncio.ensure_future(self._apply(result))
        if (not self._queue and not isinstance(result, asyncio.Future)
                and self.flow.can_write):
            self._write(header.correlation_id, request.spec.name, result)
            return
        # Queued: written in order by _drain once earlier answers are out and the client
        # reads again, so a client that never reads holds at most MAX_QUEUED answers
        # (encoded only when written) instead of one encoded copy per pipelined request.
        self._queue.append((header.correlation_id, request.spec.name, result))
        if self._owed >= MAX_QUEUED:
            self.flow.pause("queue")
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain())

    async def _apply(self, pending):
        """Await a handler's coroutine; once it returns, the request has taken effect and
        the requests received meanwhile are handled, in order, before its answer (which
        may still wait: ``Applied``) is awaited."""
        try:
            result = await pending
        except BaseException:
            # The connection closes (in _drain, after the earlier answers) or is gone:
            # nothing sent after this request is applied.
            self._backlog.clear()
            raise
        self._applying = False
        while self._backlog and not self._applying and not self.transport.is_closing():
            self._handle(self._backlog.popleft())
        if isinstance(result, Applied):
            result = await result.awaitable
        return result

    @property
    def _owed(self) -> int:
        """Requests received and not yet answered (queued answers and the backlog)."""
        return len(self._queue) + len(self._backlog)

    async def _drain(self) -> None:
        """Write queued responses in request order, awaiting the pending ones."""
        try:
            while self._queue:
                cid, name, item = self._queue[0]
                if isinstance(item, asyncio.Future):
                    try:
                        item = await item
                    except asyncio.CancelledError:
                        raise
                    except CloseConnection as exc:
                        self.close(str(exc))
                        return
                    except Exception:      # noqa: BLE001 -- as in _handle
                        log.exception("%s from %s failed", name, self.peer)
                        self.close("internal error")
                        return
                await self.flow.writable()
                if self.transport.is_closing():
                    return
                self._queue.popleft()
                if item is not None:                 # None: acks=0, nothing to send
                    self._write(cid, name, item)
                if self._owed < MAX_QUEUED // 2:
                    self.flow.resume("queue")
        finally:
            self._drainer = None

    def _write(self, correlation_id: int, name: str, response) -> None:
        try:
            parts = encode_response(correlation_id, response)
        except Exception:          # noqa: BLE001 -- an encoding bug closes this connection
            log.exception("cannot encode %s response for %s", name, self.peer)
            self.close("internal error")
            return
        if len(parts) == 1:
            self.transport.write(parts[0])
        else:
            self.transport.writelines(parts)
        if self.auth is not None and self.auth.close_after_response:
            self.close("SASL authentication failed")

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while requests of this connection are being answered."""
        return bool(self._queue or self._backlog)

    def stop_reading(self) -> None:
        """Shutdown step: take no new requests (answers already owed still go out)."""
        if self.transport is not None and not self.transport.is_closing():
            self.flow.pause("shutdown")

    def cut_off(self, timeout_s: float) -> None:
        """The partial request missed its deadline: count it, log it, close."""
        self.request_started = None
        self.broker.metrics.request_timed_out("kafka")
        self.close(f"request not complete {timeout_s:g} s after its first byte "
                   f"({self.decoder.buffered} bytes received; request_timeout_ms)")

    def close(self, reason: str | None = None) -> None:
        if reason:
            log.warning("closing connection from %s: %s", self.peer, reason)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
