"""The command table is the one place a command type is declared: every row names a
handler that exists, and a `ClientCall` row a method every driver's client has."""
from __future__ import annotations

import inspect

from chalicelib.commands import COMMAND_TYPES
from chalicelib.commands.catalog import COMMANDS
from runner_container import handlers
from runner_container.drivers.base import SessionClient


def test_every_command_has_a_handler_and_the_api_accepts_exactly_the_table():
    assert set(COMMAND_TYPES) == set(COMMANDS)
    for type, spec in COMMANDS.items():
        assert spec.type == type
        handler = getattr(handlers, spec.handler, None)
        assert callable(handler), f"{type}: no handler {spec.handler!r} in runner_container/handlers.py"
        assert list(inspect.signature(handler).parameters) == ["actor", "spec", "payload"]


def test_client_calls_name_methods_of_the_driver_interface_with_their_arguments():
    calls = {type: spec.call for type, spec in COMMANDS.items() if spec.call is not None}
    assert calls, "the table has plain client calls"
    for type, call in calls.items():
        assert COMMANDS[type].handler == "client_call"
        method = getattr(SessionClient, call.method, None)
        assert method is not None, f"{type}: SessionClient has no {call.method}"
        assert list(inspect.signature(method).parameters)[1:] == list(call.args), type


def test_what_waits_for_the_login():
    waiting = {type for type, spec in COMMANDS.items() if spec.waits_for_login}
    account = {"leave_group", "group_invite_link", "group_invite_preview", "join_group", "set_group_subject",
               "set_group_description", "set_group_picture", "set_group_settings", "group_requests",
               "update_group_requests", "set_push_name", "set_about", "set_profile_picture", "get_privacy",
               "set_privacy", "blocklist", "update_blocklist"}
    assert waiting == {"send_message", "mark_read", "send_presence", "check_contacts", "list_groups",
                       "group_info", "create_group", "update_participants", "contact_profile"} | account
