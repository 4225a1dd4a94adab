"""The emulator's part for calls and session behaviour (issue 17), kept out of
`emulator.py`: the caller's phone offering a call, the session rejecting it (recorded in
the session's activity, as presences and read receipts are), and how many clients the
driver opened for a session, so a test can prove a settings change did not reconnect.

    POST /emulator/sessions/{id}/call         {"from": "5511...", "call_id": "..."} someone calls the
                                              session -> `call.offer` (the call id is generated when omitted)
    GET  /emulator/sessions/{id}/connections  {"opened": n}: clients opened for the session (one per
                                              connect or reconnect) since this runner started
"""
from __future__ import annotations

import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from runner_container.drivers.base import DriverError
from runner_container.drivers.emulator_rules import _render

if TYPE_CHECKING:  # pragma: no cover
    from runner_container.drivers.emulator import EmulatorClient, EmulatorDriver

_CALLER = re.compile(r"^\+?[0-9]{6,20}(@s\.whatsapp\.net|@lid)?$")


class EmulatorCalls:
    """Mixed into `EmulatorClient`: calls as whatsmeow sees them."""

    def reject_call(self: "EmulatorClient", caller: str, call_id: str) -> None:  # type: ignore[misc]
        state = self._connected()
        self._log(state, "reject_call", call_id=call_id, caller=caller)

    def offer_call(self: "EmulatorClient", caller: str, call_id: str | None = None) -> str:  # type: ignore[misc]
        """The other phone calls this session: `call.offer`, as neonize's translation gives it."""
        self._connected()
        call_id = call_id or secrets.token_hex(16).upper()
        self.sink("event", {"event": "call.offer", "data": {
            "call_id": call_id, "from": _render(caller),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}})
        return call_id


def route(driver: "EmulatorDriver", client: "EmulatorClient", method: str, action: str | None,
          body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The answer to one of this module's control routes; None when it is not one."""
    if method == "POST" and action == "call":
        caller = str(body.get("from") or "")
        if not _CALLER.match(caller):
            return 422, {"code": "validation_failed", "message": "give from: a phone number or a user JID"}
        call_id = body.get("call_id")
        if call_id is not None and not re.fullmatch(r"[A-Za-z0-9]{1,64}", str(call_id)):
            return 422, {"code": "validation_failed", "message": "call_id must be 1 to 64 letters or digits"}
        try:
            return 200, {"call_id": client.offer_call(caller.lstrip("+"), call_id)}
        except DriverError as exc:
            return 409, {"code": exc.code, "message": exc.message}
    if method == "GET" and action == "connections":
        with driver._lock:
            return 200, {"opened": driver.opened.get(client.config.session_id, 0)}
    return None
