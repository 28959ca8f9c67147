"""Long polls woken by appends: the partition listener every long-polling door uses
(Kafka Fetch and ShareFetch, the HTTP consumer routes)."""
from __future__ import annotations

import asyncio
import threading

__all__ = ["AppendWaker"]


class AppendWaker:
    """An ``asyncio.Event`` (``.event``) set by every append to the partitions it
    listens to, from whichever thread appended (``call_soon_threadsafe`` off the loop's
    own thread).  ``close()`` removes its listeners."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        self._thread = threading.get_ident()
        self._partitions: list = []

    def __call__(self) -> None:              # the partition's listener
        if threading.get_ident() == self._thread:
            self.event.set()
        else:
            self.loop.call_soon_threadsafe(self.event.set)

    def listen(self, partitions) -> "AppendWaker":
        for p in partitions:
            p.add_listener(self)
            self._partitions.append(p)
        return self

    def close(self) -> None:
        for p in self._partitions:
            try:
                p.remove_listener(self)
            except Exception:          # noqa: BLE001 -- a deleted topic's log may refuse
                pass
        self._partitions = []
