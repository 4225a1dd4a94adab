"""One total deadline per outbound request, for every socket the request opens.

A read timeout alone does not bound a request: a server that sends one byte a second
answers every read in time, forever. A `Scope` (one per request, the current one kept
per thread) collects the request's sockets; one watchdog thread for the whole process
shuts them down when the scope's deadline passes, which wakes a read or connect blocked
on them; the request then reports a timeout. A socket that TLS will wrap (and detach) is
watched through a duplicate descriptor, so the shutdown still reaches it.
"""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time

class Scope:
    """The sockets of one request, shut down when its deadline passes."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.expired = False
        self.done = False  # the request ended: the watchdog leaves it alone
        self._sockets: dict[int, socket.socket] = {}
        self._dups: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def watch(self, sock: socket.socket | None, *, dup: bool = False) -> None:
        """`dup`: keep a duplicate descriptor, so that a socket later wrapped by TLS (and
        detached) can still be shut down."""
        if sock is None:
            return
        with self._lock:
            if dup:
                try:
                    sock = sock.dup()
                except OSError:
                    return
                self._dups.append(sock)
            elif id(sock) in self._sockets:
                return
            self._sockets[id(sock)] = sock
            if self.expired:
                _shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets.values():
                _shutdown(sock)

    def close(self) -> None:
        with self._lock:
            for sock in self._dups:
                try:
                    sock.close()
                except OSError:
                    pass
            self._dups.clear()
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    try:  # the plain socket method: on a TLS socket it stops the fd without touching the TLS state
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, ValueError, TypeError):
        pass


class _Watchdog:
    """One thread for every deadline of the process (a heap of scopes by deadline)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Scope]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, scope: Scope) -> None:
        with self._cond:
            heapq.heappush(self._heap, (scope.deadline, next(self._counter), scope))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="outbound-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, _, scope = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            if not scope.done:
                scope.expire()


_WATCHDOG = _Watchdog()
_current = threading.local()


def current() -> Scope | None:
    return getattr(_current, "scope", None)



def begin(timeout: float) -> Scope:
    """Start the current thread's request scope: its deadline is `timeout` from now."""
    scope = Scope(time.monotonic() + timeout)
    _current.scope = scope
    _WATCHDOG.add(scope)
    return scope


def end(scope: Scope) -> None:
    scope.done = True
    _current.scope = None
    scope.close()
