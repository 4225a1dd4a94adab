"""Every command the runner executes, in one table: `type -> CommandSpec`.

The API records only types listed here; the runner looks the type up here to know
whether it waits for the login and how to run it; a route that waits for it names it
with `what` and answers a failure with `failure_code`. Adding a command is a row here,
the method behind `runner_container/drivers/base.py` and its implementation in both
drivers (a `ClientCall` row needs nothing else; a command that changes the session's
state is a `handler` of `runner_container/commands.py`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClientCall:
    """Run as `client.<method>(*payload[args])` on the logged-in session's client."""

    method: str
    args: tuple[str, ...] = ()
    answer: str | None = None  # the result is {answer: value}; None: the handler shapes it


@dataclass(frozen=True)
class CommandSpec:
    type: str
    handler: str  # the function of runner_container/commands.py that runs it
    waits_for_login: bool = False  # arriving while (re)connecting, it waits for the login, in order
    what: str = "the command"  # how a waiting route names it in a timeout or failure
    failure_code: str = "runner_failed"  # the code a waiting route answers when it failed
    call: ClientCall | None = None


def _chat(type: str, what: str, call: ClientCall | None = None, handler: str = "client_call") -> CommandSpec:
    """A command that talks to WhatsApp as the logged-in account."""
    return CommandSpec(type, handler, waits_for_login=True, what=what, failure_code=f"{type}_failed", call=call)


COMMANDS: dict[str, CommandSpec] = {spec.type: spec for spec in (
    CommandSpec("connect", "connect"),
    CommandSpec("disconnect", "disconnect"),
    CommandSpec("logout", "logout", failure_code="logout_failed"),
    CommandSpec("pair_phone", "pair_phone", failure_code="pair_phone_failed"),
    CommandSpec("send_message", "send_message", waits_for_login=True, what="the send", failure_code="send_failed"),
    CommandSpec("ping", "ping"),
    # the session row's behaviour settings changed (PUT /sessions/{id}): reread, no reconnect
    CommandSpec("apply_settings", "apply_settings"),
    # chats, contacts and groups (chalicelib/services/chats.py)
    _chat("mark_read", "marking messages read", handler="mark_read"),
    _chat("send_presence", "sending the presence", handler="send_presence"),
    _chat("check_contacts", "the number check", ClientCall("check_contacts", ("phones",), "contacts")),
    _chat("list_groups", "listing the groups", ClientCall("list_groups", (), "groups")),
    _chat("group_info", "reading the group", ClientCall("group_info", ("group_jid",), "group")),
    _chat("create_group", "creating the group", ClientCall("create_group", ("name", "participants"), "group")),
    _chat("update_participants", "updating the participants",
          ClientCall("update_participants", ("group_jid", "action", "participants"), "participants")),
    # group administration, profile, privacy, blocklist (chalicelib/services/account.py): the
    # client method answers the whole result (runner_container/drivers/account_base.py)
    *(_chat(type, what, ClientCall(type, args)) for type, what, args in (
        ("leave_group", "leaving the group", ("group_jid",)),
        ("group_invite_link", "the invite link", ("group_jid", "revoke")),
        ("group_invite_preview", "the invite preview", ("code",)),
        ("join_group", "joining the group", ("code",)),
        ("set_group_subject", "renaming the group", ("group_jid", "subject")),
        ("set_group_description", "changing the description", ("group_jid", "description")),
        ("set_group_picture", "changing the group picture", ("group_jid", "picture")),
        ("set_group_settings", "changing the group settings", ("group_jid", "announce", "locked")),
        ("group_requests", "listing the join requests", ("group_jid",)),
        ("update_group_requests", "answering the join requests", ("group_jid", "action", "participants")),
        ("set_push_name", "setting the push name", ("name",)),
        ("set_about", "setting the about text", ("about",)),
        ("set_profile_picture", "setting the profile picture", ("picture",)),
        ("get_privacy", "reading the privacy settings", ()),
        ("set_privacy", "changing the privacy settings", ("settings",)),
        ("blocklist", "reading the blocklist", ()),
        ("update_blocklist", "changing the blocklist", ("contact", "action")),
    )),
    # the message store's contact detail (chalicelib/services/store.py): about text, picture URL
    _chat("contact_profile", "reading the contact's profile", ClientCall("contact_profile", ("jid",), "profile")),
)}
COMMAND_TYPES = tuple(COMMANDS)
