"""What every HTTP handler reaches: the broker, committed offsets, the REST consumer
instances, the live-stream hub and a few limits (event-loop thread only)."""
from __future__ import annotations

import asyncio
import functools
import time

from .errors import RestError, new_token

__all__ = ["HttpContext", "int_param"]


class HttpContext:
    def __init__(self, broker, offsets, server) -> None:
        from .live import LiveHub
        from .rest_consumers import ConsumerInstances
        self.broker = broker
        self.log = broker.log
        self.offsets = offsets              # metrics.CommittedOffsets
        self.server = server                # HttpServer: ready / stopping / waiting_for
        self.csrf_token = new_token()
        from .auth import Sessions
        self.sessions = Sessions()          # dashboard logins (auth.py)
        self.started_at = time.time()
        self.consumers = ConsumerInstances(self)
        self.live = LiveHub(self)
        self.routes: list = []
        self.closing = False
        self.waiters: set[asyncio.Event] = set()    # long polls, woken at shutdown
        self.http_members: dict = {}        # queue_routes: (group, member) in use

    def start(self) -> None:
        self.consumers.start()
        self.live.start()

    def close(self) -> None:
        self.closing = True
        for event in list(self.waiters):
            event.set()
        self.consumers.close()
        self.live.close()

    async def run(self, fn, *args, **kwargs):
        """``fn(*args)`` in the default executor: calls that may wait for a disk write."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    # -- lookups with the REST proxy's errors ------------------------------------------
    def topic(self, name: str):
        from ..kafka.context import validate_topic_name
        try:
            validate_topic_name(name)
        except Exception as exc:        # noqa: BLE001 -- InvalidTopicError
            raise RestError(404, 40401, f"topic not found: {exc}") from None
        if not self.log.has_topic(name):
            raise RestError(404, 40401, f"topic {name!r} not found")
        return self.log.topic(name)

    def partition(self, topic: str, partition) -> tuple:
        t = self.topic(topic)
        if isinstance(partition, bool) or not isinstance(partition, int) \
                or not 0 <= partition < t.num_partitions:
            raise RestError(404, 40402, f"partition {partition!r} of topic {topic!r} not "
                                        f"found (it has {t.num_partitions})")
        return t, t.partition(partition)

    async def wait_for_records(self, partitions, timeout_s: float, ready) -> None:
        """Wait up to ``timeout_s`` until ``ready()`` is true, woken by appends to any
        of ``partitions`` (their listeners) or by shutdown; ``ready=None``: return at
        the first append."""
        from ..wakeup import AppendWaker
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        waker = AppendWaker().listen(partitions)
        woken = waker.event
        self.waiters.add(woken)
        try:
            while not self.closing and (ready is None or not ready()):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                woken.clear()
                try:
                    await asyncio.wait_for(woken.wait(), min(remaining, 0.5))
                except asyncio.TimeoutError:
                    continue
                if ready is None:
                    return
        finally:
            self.waiters.discard(woken)
            waker.close()


def int_param(request, name: str, default: int, low: int, high: int) -> int:
    """A query parameter as an int in [low, high]; 400 with the REST error body else."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RestError(400, 400, f"query parameter {name}={raw!r} is not an integer") \
            from None
    if not low <= value <= high:
        raise RestError(400, 400, f"query parameter {name}={value} is outside "
                                  f"[{low}, {high}]")
    return value
