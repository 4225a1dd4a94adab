"""A background thread that takes items from a queue and handles them in batches.

The runner's SQS writes that need not hold up a session (event sends, command deletes)
go through one: callers `put()` and go on; the thread takes whatever has piled up (up to
`max_items`) and hands it to `handle` in one go, so a burst costs few SQS requests.
`close()` handles what is queued, then stops. `handle` must not raise: it logs.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable


class BatchingThread:
    def __init__(self, name: str, handle: Callable[[list[Any]], None], *, max_items: int = 50):
        self._handle = handle
        self._max_items = max_items
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        self._queue.put(item)

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = [first], False
            while len(batch) < self._max_items:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._handle(batch)
            if stop:
                return
