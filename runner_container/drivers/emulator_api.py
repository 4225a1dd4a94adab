"""The control API (loopback only, `EMULATOR_PORT`) plays the phone and the network. It pairs
and drives any session it holds, so every request must carry `X-Emulator-Token: <EMULATOR_TOKEN>`
(compared in constant time; 401 without it): a webhook URL or any other request forged
through the API cannot carry it. The driver refuses to start without a token, and
`chalicelib.config` refuses the emulator in production.

    POST /emulator/sessions/{id}/scan      {"phone": "5511...", "push_name": "..."} complete the
                                           pending login (no push_name: none, as before WhatsApp
                                           syncs it; account presence is then refused)
                                           + "history": {...}: the chats the phone already has, sent
                                           as a real HistorySync protobuf (emulator_history.py)
    POST /emulator/sessions/{id}/inbound   {"from": "...", "text": "..."} -> message.received
                                           ("chat": "<id>@g.us": in a group, from a member), or media:
                                           {"from", "type": "image"|"video"|"audio"|"document"|"sticker",
                                            "media_base64", "mime_type", "caption", "filename"}
    POST /emulator/sessions/{id}/drop      drop the socket, as a network fault would
    POST /emulator/sessions/{id}/receipt   {"message_ids": [...], "type": "delivered"|"read"|"played"}
                                           the other phone acknowledges messages this session sent
    POST /emulator/sessions/{id}/unreachable {"on": true|false} WhatsApp stops answering requests
                                           on the open socket (a logout then cannot be confirmed)
    POST /emulator/sessions/{id}/fail      {"code": ...} what WhatsApp says when it refuses the
                                           session: logged_out, client_outdated, temporary_ban,
                                           stream_replaced, service_unavailable
    GET  /emulator/sessions/{id}/outbox    messages the session sent (for tests)
    GET  /emulator/sessions/{id}/activity  everything the driver was asked, in order: messages (by
                                           id), read receipts, presences, number checks, group changes
    POST /emulator/sessions/{id}/groups    {"name", "participants": [...], "admins": [...]} a group
                                           someone else created with this session as a plain member
    GET  /emulator/sessions/{id}           what the emulator holds for the session
    GET  /emulator/sessions                every session held by this runner
"""
from __future__ import annotations

import base64
import hmac
import json
import re
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from runner_container.drivers.base import DriverError
from runner_container.drivers.emulator_history import deliver
from runner_container.drivers.emulator_rules import _bare, _group_view

if TYPE_CHECKING:  # pragma: no cover
    from runner_container.drivers.emulator import EmulatorDriver

_INBOUND_MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
_ROUTE = re.compile(r"^/emulator/sessions(?:/(?P<sid>[a-z0-9][a-z0-9_-]{2,63})(?:/(?P<action>[a-z]+))?)?/?$")



def _inbound_media(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """Validate an `inbound` body: (problem, media) where media is None for a text message."""
    if not body.get("from"):
        return "give from, and text or type + media_base64", None
    kind = body.get("type", "text")
    if kind == "text":
        return (None, None) if isinstance(body.get("text"), str) else ("give from and text", None)
    if kind not in _INBOUND_MEDIA_TYPES:
        return f"type must be text or one of {', '.join(_INBOUND_MEDIA_TYPES)}", None
    try:
        blob = base64.b64decode(body.get("media_base64") or "", validate=True)
    except (ValueError, TypeError):
        return "media_base64 is not valid base64", None
    if not blob:
        return f"a {kind} message needs media_base64", None
    return None, {"type": kind, "data": blob, "mime_type": body.get("mime_type"), "caption": body.get("caption"),
                  "filename": body.get("filename")}


def _handler(driver: "EmulatorDriver") -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet: the runner logs what matters
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            given = (self.headers.get("X-Emulator-Token") or "").encode()
            return hmac.compare_digest(given, driver.token.encode())

        def _route(self, method: str) -> None:
            if not self._authorised():
                return self._send(401, {"code": "unauthorized",
                                        "message": "the emulator control API needs the X-Emulator-Token header "
                                                   "(the runner's EMULATOR_TOKEN)"})
            match = _ROUTE.match(self.path.split("?")[0])
            if not match:
                return self._send(404, {"code": "not_found", "message": f"no emulator route {self.path}"})
            sid, action = match.group("sid"), match.group("action")
            if sid is None:
                with driver._lock:
                    held = [c.view() for c in driver.clients.values()]
                return self._send(200, {"sessions": held})
            client = driver.find(sid)
            if client is None:
                return self._send(404, {"code": "session_not_held",
                                        "message": f"this runner does not hold session '{sid}'"})
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            except ValueError:
                return self._send(400, {"code": "invalid_json", "message": "body is not JSON"})
            try:
                if method == "GET" and action is None:
                    return self._send(200, client.view())
                if method == "GET" and action == "outbox":
                    with client._lock:
                        return self._send(200, {"messages": list(client.outbox)})
                if method == "GET" and action == "activity":
                    state = driver.chat_state(sid)
                    with driver._lock:
                        return self._send(200, {"activity": list(state["activity"])})
                if method == "POST" and action == "groups":
                    me = client._me()
                    members = [_bare(str(p)) for p in body.get("participants") or []]
                    owner = members[0] if members else "5511900000001@s.whatsapp.net"
                    admins = [_bare(str(p)) for p in body.get("admins") or []] or [owner]
                    group = driver.add_group(sid, str(body.get("name") or "a group"), owner=owner,
                                             members=[owner, *members, me], admins=admins)
                    with driver._lock:
                        return self._send(200, _group_view(group))
                if method == "POST" and action == "scan":
                    jid = client.scan(body.get("phone"), body.get("push_name"))
                    if body.get("history") is not None:  # what the phone already has (emulator_history.py)
                        return self._send(200, {"jid": jid, "history_chats": deliver(client, body["history"])})
                    return self._send(200, {"jid": jid})
                if method == "POST" and action == "inbound":
                    problem, media = _inbound_media(body)
                    if problem:
                        return self._send(422, {"code": "validation_failed", "message": problem})
                    chat = body.get("chat")
                    if chat is not None and not re.fullmatch(r"[0-9-]+@g\.us", str(chat)):
                        return self._send(422, {"code": "validation_failed", "message": "chat must be a group JID"})
                    return self._send(200, {"message_id": client.inbound(str(body["from"]), body.get("text"),
                                                                         media, chat=chat)})
                if method == "POST" and action == "receipt":
                    kind = str(body.get("type") or "delivered")
                    ids = body.get("message_ids")
                    if kind not in ("delivered", "read", "played") or not isinstance(ids, list):
                        return self._send(422, {"code": "validation_failed",
                                                "message": "give message_ids (a list) and type delivered|read|played"})
                    client.receipt([str(m) for m in ids], kind)
                    return self._send(200, {"acknowledged": len(ids)})
                if method == "POST" and action == "unreachable":
                    with client._lock:
                        client.unreachable = bool(body.get("on", True))
                    return self._send(200, {"unreachable": client.unreachable})
                if method == "POST" and action == "fail":
                    client.fail(str(body.get("code", "")))
                    return self._send(200, {"failed": body.get("code")})
                if method == "POST" and action == "drop":
                    client.drop()
                    return self._send(200, {"dropped": True})
            except DriverError as exc:
                return self._send(409, {"code": exc.code, "message": exc.message})
            return self._send(404, {"code": "not_found", "message": f"no emulator route {method} {self.path}"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler
