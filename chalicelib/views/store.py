"""The message store's read API (issue 15): chats, a chat's messages, a message, contacts.

Thin views over `chalicelib/services/store.py`; session or admin key (`SESSION` access).
"""
from __future__ import annotations

from typing import Any, Callable
from urllib.parse import unquote

from chalicelib.bootstrap import get_container
from chalicelib.routing import SESSION, RequestContext


def register(route: Callable[..., Any]) -> None:
    @route("/sessions/{session_id}/chats", "GET", access=SESSION, tags=["store"],
           summary="The session's chats from the message store, newest activity first",
           query="store.ChatsQuery", responses={200: "store.ChatList", 404: None, 422: None})
    def store_list_chats(ctx: RequestContext, session_id: str) -> dict[str, Any]:
        return ctx.shape(get_container().store.chats(session_id, ctx.query))

    @route("/sessions/{session_id}/chats/{chat}/messages", "GET", access=SESSION, tags=["store"],
           summary="A chat's stored messages, newest first ({chat}: a URL-encoded JID or phone digits)",
           query="store.MessagesQuery", responses={200: "store.MessageList", 404: None, 422: None})
    def store_chat_messages(ctx: RequestContext, session_id: str, chat: str) -> dict[str, Any]:
        return ctx.shape(get_container().store.messages(session_id, unquote(chat), ctx.query))

    @route("/sessions/{session_id}/messages/{message_id}", "GET", access=SESSION, tags=["store"],
           summary="One stored message (its status, edits, revoke)",
           responses={200: "store.StoredMessage", 404: None})
    def store_get_message(ctx: RequestContext, session_id: str, message_id: str) -> dict[str, Any]:
        return ctx.shape(get_container().store.message(session_id, unquote(message_id)))

    @route("/sessions/{session_id}/contacts", "GET", access=SESSION, tags=["store"],
           summary="Contacts the session knows (WhatsApp's contact store and what it saw); search by name or phone",
           query="store.ContactsQuery", responses={200: "store.ContactList", 404: None, 422: None})
    def store_list_contacts(ctx: RequestContext, session_id: str) -> dict[str, Any]:
        return ctx.shape(get_container().store.contacts(session_id, ctx.query))

    @route("/sessions/{session_id}/contacts/{phone}", "GET", access=SESSION, tags=["store"],
           summary="A contact: names, on WhatsApp, about text and picture URL (fetched through the runner, cached)",
           query="store.ContactQuery",
           responses={200: "store.ContactOut", 404: None, 422: None, 502: None, 504: None})
    def store_get_contact(ctx: RequestContext, session_id: str, phone: str) -> dict[str, Any]:
        return ctx.shape(get_container().store.contact(session_id, unquote(phone), refresh=ctx.query.refresh))
