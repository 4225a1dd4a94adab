"""The command doorbell: LISTEN for new command rows, so a command starts without the SQS hop.

The API's insert of a command NOTIFYs `zemeow_command_new` (a trigger, migration 0081)
with the command's id, session and type. The runner posts the commands of the slots it
holds straight to their session actors, as the poller does with SQS messages: on this
machine that takes the SQS send -> receive (about two thirds of a round trip) off a
command's way.

Nothing depends on the doorbell: the SQS message still comes (the actor, which tracks what
it holds and what it ran lately, only acknowledges that second copy), a NOTIFY missed while
this connection was down is a command that comes by SQS alone, and the claim keeps a
session's commands in order whichever way each arrives (`CommandRunner._claim_in_order`).
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable

import psycopg

from chalicelib.db import Database
from chalicelib.repositories.commands import NEW_COMMAND_CHANNEL, CommandRepository

Post = Callable[[str, str, "str | None"], None]  # (command_id, session_id, type)


class CommandDoorbell:
    def __init__(self, db: Database, post: Post, log: Any = None):
        self.db = db
        self.post = post
        self.log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="command-doorbell", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.db.connect_direct(application_name="zemeow-runner-doorbell") as conn:
                    CommandRepository.listen(conn, NEW_COMMAND_CHANNEL)
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            self._ring(notify.payload)
            except psycopg.Error as exc:
                if self.log:
                    self.log.warning("command doorbell lost its connection; commands come by SQS meanwhile",
                                     extra={"reason": str(exc)[:200]})
                self._stop.wait(1.0)

    def _ring(self, payload: str) -> None:
        try:
            body = json.loads(payload)
            command_id, session_id = str(body["command_id"]), str(body["session_id"])
        except (ValueError, KeyError, TypeError):
            return
        try:
            self.post(command_id, session_id, body.get("type"))
        except Exception as exc:  # noqa: BLE001 - the SQS copy still comes
            if self.log:
                self.log.warning("command doorbell could not post", extra={"reason": str(exc)[:200]})
