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
    POST /emulator/sessions/{id}/inbound   a message from another phone: {"from", "chat"?: "<id>@g.us"
                                           (a group) or "status@broadcast" (a status), "push_name"?, "business_name"? (a change of
                                           either -> contact.updated), "ephemeral"?, "view_once"?
                                           (wrapped as WhatsApp does), "type": ...}:
                                           text {"text", "mentions"?, "quoted_message_id"?};
                                           image|video|audio|document|sticker {"media_base64",
                                             "mime_type", "caption", "filename"};
                                           reaction {"message_id", "emoji" ("" takes it back)};
                                           edit {"message_id", "text"} -> message.edited;
                                           revoke {"message_id", "by_admin"?, "author"?} -> message.revoked;
                                           poll {"name", "options", "selectable_count"};
                                           poll_vote {"poll_id", "options": [names]} -> poll.vote
                                           (encrypted with the poll's kept secret)
    POST /emulator/sessions/{id}/receipt   {"message_ids": [...], "type": delivered|read|played|sender|
                                           retry|server_error|inactive|peer_msg} the other phone
                                           acknowledges messages this session sent; read_self|played_self
                                           with "chat": this account read them on another device
    POST /emulator/sessions/{id}/groupchange {"chat": "<id>@g.us", "by", "action": added|removed|
                                           promoted|demoted, "participants": [...], "reason"?} and/or
                                           {"subject", "description" (null removes), "announce",
                                           "locked"} -> group.participants / group.update
    POST /emulator/sessions/{id}/drop      drop the socket, as a network fault would
    POST /emulator/sessions/{id}/unreachable {"on": true|false} WhatsApp stops answering requests
                                           on the open socket (a logout then cannot be confirmed)
    POST /emulator/sessions/{id}/fail      {"code": ...} what WhatsApp says when it refuses the
                                           session: logged_out, client_outdated, temporary_ban,
                                           stream_replaced, service_unavailable
    GET  /emulator/sessions/{id}/outbox    messages the session sent (for tests), with the text and
                                           `mentioned_jids` as the neonize builder writes them
    GET  /emulator/sessions/{id}/activity  everything the driver was asked, in order: messages (by
                                           id), read receipts, presences, number checks, group changes
    POST /emulator/sessions/{id}/groups    {"name", "participants": [...], "admins": [...]} a group
                                           someone else created with this session as a plain member
    POST /emulator/sessions/{id}/invites   {"name", "participants": [...], "approval": bool} someone
                                           else's group, reachable by the returned {jid, code, link}
    POST /emulator/sessions/{id}/requests  {"group_jid", "participants": [...]} people asking to join
                                           (both: emulator_account.py)
    POST /emulator/sessions/{id}/call      {"from", "call_id"} someone calls the session (emulator_calls.py)
    GET  /emulator/sessions/{id}/connections  {"opened": n}: clients opened for it (emulator_calls.py)
    GET  /emulator/sessions/{id}           what the emulator holds for the session
    GET  /emulator/sessions                every session held by this runner
"""
from __future__ import annotations

import hmac
import json
import re
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from runner_container.drivers import emulator_calls
from runner_container.drivers.base import DriverError
from runner_container.drivers.emulator_account import CONTROL_ACTIONS
from runner_container.drivers.emulator_account import control as account_control
from runner_container.drivers.emulator_history import deliver
from runner_container.drivers.emulator_inbound import RECEIPT_KINDS, InboundError, group_change_event
from runner_container.drivers.emulator_rules import _bare, _group_view, apply_group_change

if TYPE_CHECKING:  # pragma: no cover
    from runner_container.drivers.emulator import EmulatorDriver

_ROUTE = re.compile(r"^/emulator/sessions(?:/(?P<sid>[a-z0-9][a-z0-9_-]{2,63})(?:/(?P<action>[a-z]+))?)?/?$")



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
                if method == "POST" and action in CONTROL_ACTIONS:
                    return self._send(*account_control(driver, client, sid, action, body))
                if method == "POST" and action == "scan":
                    jid = client.scan(body.get("phone"), body.get("push_name"))
                    if body.get("history") is not None:  # what the phone already has (emulator_history.py)
                        return self._send(200, {"jid": jid, "history_chats": deliver(client, body["history"])})
                    return self._send(200, {"jid": jid})
                if method == "POST" and action == "inbound":
                    return self._send(200, {"message_id": client.inbound(body)})
                if method == "POST" and action == "groupchange":
                    client.play(group_change_event(body))
                    with driver._lock:
                        apply_group_change(driver.chat_state(sid)["groups"].get(str(body.get("chat"))), body)
                    return self._send(200, {"changed": body.get("chat")})
                if method == "POST" and action == "receipt":
                    kind = str(body.get("type") or "delivered")
                    ids = body.get("message_ids")
                    if kind not in RECEIPT_KINDS or not isinstance(ids, list):
                        return self._send(422, {"code": "validation_failed",
                                                "message": f"give message_ids (a list) and type, one of "
                                                           f"{', '.join(RECEIPT_KINDS)}"})
                    client.receipt([str(m) for m in ids], kind, chat=body.get("chat"))
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
                answer = emulator_calls.route(driver, client, method, action, body)
                if answer is not None:
                    return self._send(*answer)
            except InboundError as exc:
                return self._send(422, {"code": "validation_failed", "message": str(exc)})
            except DriverError as exc:
                return self._send(409, {"code": exc.code, "message": exc.message})
            return self._send(404, {"code": "not_found", "message": f"no emulator route {method} {self.path}"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler
