"""A session actor's inbox: in order, except that what the session's client reports goes
ahead of the commands, reconciliations and timers waiting there.

A received message exists only in this process until it is written: whatsmeow acknowledges
it to WhatsApp as it arrives (neonize hands events to Python through a Go channel and never
sets `SynchronousAck`), so WhatsApp does not send it again if the runner dies first. Behind a
burst of queued sends it waited for each of them (seconds at a time), and a runner killed
meanwhile lost it (bench/faults.py scenario 1). Ahead of them, it waits at most for the item
being handled. The client's reports keep their order among themselves, and the rest keeps
its order too (a stop stays behind the commands posted before it).
"""
from __future__ import annotations

import itertools
import queue
from typing import Any

FIRST, THEN = 0, 1


class Inbox:
    def __init__(self) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, tuple]] = queue.PriorityQueue()
        self._order = itertools.count()

    def put(self, item: tuple) -> None:
        self._queue.put((FIRST if item[0] == "driver" else THEN, next(self._order), item))

    def get(self, timeout: float | None = None) -> Any:
        """The next item; raises queue.Empty once `timeout` seconds passed without one."""
        return self._queue.get(timeout=timeout)[2]

    def get_nowait(self) -> Any:
        return self._queue.get_nowait()[2]

    def empty(self) -> bool:
        return self._queue.empty()
