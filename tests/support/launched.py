"""A `python -m devstack run` launched by a test, its output drained all the time.

The launcher and its children (API, runner, bridge) share one stdout pipe. A test that read
only up to the "up" banner and then waited for the exit left the pipe unread: 64 KiB of
logs later every writer blocks, Ctrl-C cannot finish, and the test sees a hang it cannot
explain (two suite runs timed out that way with no output). A thread reads the pipe into a
buffer from the start, so nothing ever blocks on it and every failure shows what was printed.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

from devstack import PROJECT_ROOT


class Launched:
    def __init__(self, env: dict[str, str], *args: str, sigint_ignored: bool = False):
        """`sigint_ignored`: start it the way a shell starts a background job (SIGINT ignored,
        which a child inherits); Ctrl-C must stop it all the same."""
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        self.process = subprocess.Popen([sys.executable, "-m", "devstack", "run", *args], cwd=str(PROJECT_ROOT),
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=ignore)
        self._output: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._drain, name="launched-stdout", daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self._output)

    def _drain(self) -> None:
        fd = self.process.stdout.fileno()
        while chunk := os.read(fd, 65536):
            with self._changed:
                self._output.append(chunk.decode(errors="replace"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_output(self, pattern: str, timeout: float) -> str:
        """Everything printed so far, once `pattern` is in it; fails with the output if the
        launcher exits or `timeout` passes first."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: re.search(pattern, "".join(self._output)) or not self._reader.is_alive(), timeout)
            output = "".join(self._output)
        if not found or not re.search(pattern, output):
            raise AssertionError(f"{pattern!r} not printed within {timeout}s:\n{output[-6000:]}")
        return output

    def interrupt(self) -> None:
        """Ctrl-C, as a terminal sends it: to the launcher's process group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def wait_stopped(self, timeout: float) -> int:
        """The exit code; a launcher still running after `timeout` fails the test with what it printed."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout}s after Ctrl-C:\n{self.output[-6000:]}") from None
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
