"""Group administration routes (issue 17): leave, invite links, join by link (and a preview),
subject, description, picture, settings, join requests. Logic in
`chalicelib/services/account.py`; each route waits for the runner's answer."""
from __future__ import annotations

from typing import Any, Callable

from chalicelib.bootstrap import get_container
from chalicelib.routing import SESSION, RequestContext

_ERRORS: dict[int, Any] = {404: None, 409: None, 422: None, 502: None, 504: None}


def _group(text: str) -> str:
    from chalicelib.schemas.chats import group_jid  # noqa: PLC0415 - schemas load on first use

    return group_jid(text)


def register(route: Callable[..., Any]) -> None:
    def groups(summary: str, path: str, method: str, answer: str, **spec: Any) -> Callable[..., Any]:
        return route(f"/sessions/{{session_id}}/groups{path}", method, access=SESSION, summary=summary,
                     tags=["groups"], responses={200: f"account.{answer}", **_ERRORS, **spec.pop("more", {})},
                     **spec)

    @groups("Leave a group", "/{group_jid}/leave", "POST", "GroupLeft")
    def leave_group(ctx: RequestContext, session_id: str, group_jid: str) -> Any:
        return ctx.shape(get_container().account.leave_group(session_id, _group(group_jid)))

    @groups("The group's invite link (admins)", "/{group_jid}/invite-link", "GET", "InviteLinkOut")
    def get_group_invite_link(ctx: RequestContext, session_id: str, group_jid: str) -> Any:
        return ctx.shape(get_container().account.invite_link(session_id, _group(group_jid), revoke=False))

    @groups("Revoke the invite link; answers the new one (admins)", "/{group_jid}/invite-link/revoke", "POST",
            "InviteLinkOut")
    def revoke_group_invite_link(ctx: RequestContext, session_id: str, group_jid: str) -> Any:
        return ctx.shape(get_container().account.invite_link(session_id, _group(group_jid), revoke=True))

    @groups("The group an invite link leads to, without joining", "/preview", "POST", "InvitePreview",
            body="account.InviteRequest")
    def preview_group_invite(ctx: RequestContext, session_id: str) -> Any:
        return ctx.shape(get_container().account.preview_invite(session_id, ctx.body.invite))

    @groups("Join a group by invite link (a join request when the group approves members)", "/join", "POST",
            "GroupJoined", body="account.InviteRequest")
    def join_group(ctx: RequestContext, session_id: str) -> Any:
        return ctx.shape(get_container().account.join_group(session_id, ctx.body.invite))

    @groups("Rename a group", "/{group_jid}/subject", "PUT", "GroupChanged", body="account.SubjectRequest")
    def set_group_subject(ctx: RequestContext, session_id: str, group_jid: str) -> Any:
        answer = get_container().account.set_group_subject(session_id, _group(group_jid), ctx.body.subject)
        return ctx.shape(answer, exclude_none=True)

    @groups("Set a group's description (empty removes it)", "/{group_jid}/description", "PUT", "GroupChanged",
            body="account.DescriptionRequest")
    def set_group_description(ctx: RequestContext, session_id: str, group_jid: str) -> Any:
        answer = get_container().account.set_group_description(session_id, _group(group_jid), ctx.body.description)
        return ctx.shape(answer, exclude_none=True)

    @groups("Set a group's picture (JPEG: media_base64 or media_key)", "/{group_jid}/picture", "PUT",
            "GroupChanged", body="account.PictureRequest", more={413: None, 503: None})
    def set_group_picture(ctx: RequestContext, session_id: str, group_jid: str) -> Any:
        answer = get_container().account.set_group_picture(session_id, _group(group_jid), ctx.body)
        return ctx.shape(answer, exclude_none=True)

    @groups("Group settings: announce (only admins send), locked (only admins edit info)", "/{group_jid}/settings",
            "PUT", "GroupChanged", body="account.GroupSettingsRequest")
    def set_group_settings(ctx: RequestContext, session_id: str, group_jid: str) -> Any:
        answer = get_container().account.set_group_settings(session_id, _group(group_jid), ctx.body)
        return ctx.shape(answer, exclude_none=True)

    @groups("Pending requests to join (admins)", "/{group_jid}/requests", "GET", "JoinRequestsOut")
    def list_group_join_requests(ctx: RequestContext, session_id: str, group_jid: str) -> Any:
        return ctx.shape(get_container().account.join_requests(session_id, _group(group_jid)))

    @groups("Approve or reject requests to join (a result per participant)", "/{group_jid}/requests", "POST",
            "JoinRequestsResult", body="account.JoinRequestsAction")
    def answer_group_join_requests(ctx: RequestContext, session_id: str, group_jid: str) -> Any:
        return ctx.shape(get_container().account.answer_join_requests(session_id, _group(group_jid), ctx.body))
