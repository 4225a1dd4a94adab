"""Profile, privacy and blocklist routes (issue 17): the account's push name, about text and
picture; WhatsApp's privacy settings; blocking contacts. Logic in
`chalicelib/services/account.py`; each route waits for the runner's answer."""
from __future__ import annotations

from typing import Any, Callable

from chalicelib.bootstrap import get_container
from chalicelib.routing import SESSION, RequestContext

_ERRORS: dict[int, Any] = {404: None, 409: None, 422: None, 502: None, 504: None}


def register(route: Callable[..., Any]) -> None:
    def account(summary: str, path: str, method: str, answer: str, tag: str, **spec: Any) -> Callable[..., Any]:
        return route(f"/sessions/{{session_id}}{path}", method, access=SESSION, summary=summary, tags=[tag],
                     responses={200: f"account.{answer}", **_ERRORS, **spec.pop("more", {})}, **spec)

    @account("Set the account's push name (the name others see)", "/profile/name", "PUT", "ProfileChanged",
             "profile", body="account.PushNameRequest")
    def set_profile_name(ctx: RequestContext, session_id: str) -> Any:
        return ctx.shape(get_container().account.set_push_name(session_id, ctx.body.name), exclude_none=True)

    @account("Set the profile's about text", "/profile/about", "PUT", "ProfileChanged", "profile",
             body="account.AboutRequest")
    def set_profile_about(ctx: RequestContext, session_id: str) -> Any:
        return ctx.shape(get_container().account.set_about(session_id, ctx.body.about), exclude_none=True)

    @account("Set the profile picture (JPEG: media_base64 or media_key)", "/profile/picture", "PUT",
             "ProfileChanged", "profile", body="account.PictureRequest", more={413: None, 503: None})
    def set_profile_picture(ctx: RequestContext, session_id: str) -> Any:
        return ctx.shape(get_container().account.set_profile_picture(session_id, ctx.body), exclude_none=True)

    @account("Privacy settings: last seen, profile photo, about, groups add, read receipts", "/privacy", "GET",
             "PrivacyOut", "profile")
    def get_privacy(ctx: RequestContext, session_id: str) -> Any:
        return ctx.shape(get_container().account.privacy(session_id))

    @account("Change privacy settings (the ones given); answers all of them", "/privacy", "PUT", "PrivacyOut",
             "profile", body="account.PrivacyRequest")
    def set_privacy(ctx: RequestContext, session_id: str) -> Any:
        return ctx.shape(get_container().account.set_privacy(session_id, ctx.body))

    @account("Blocked contacts", "/blocklist", "GET", "BlocklistOut", "blocklist")
    def get_blocklist(ctx: RequestContext, session_id: str) -> Any:
        return ctx.shape(get_container().account.blocklist(session_id))

    @account("Block or unblock a contact; answers the blocklist", "/blocklist", "POST", "BlocklistOut",
             "blocklist", body="account.BlocklistRequest")
    def update_blocklist(ctx: RequestContext, session_id: str) -> Any:
        return ctx.shape(get_container().account.update_blocklist(session_id, ctx.body))
