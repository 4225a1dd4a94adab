"""zemeow's API Lambda: routes only.

Each view parses nothing itself: `chalicelib.routing.Router` authenticates, validates the
body and query into pydantic models, audits mutations and maps errors to the contract's
JSON. Views call a `chalicelib` service and return what it gives.
"""
from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any, Callable

from chalice import Chalice, Response

from chalicelib import http_errors
from chalicelib.bootstrap import get_container
from chalicelib.openapi import DOC_ASSETS, SWAGGER_HTML, OpenApiBuilder
from chalicelib.routing import ADMIN, PUBLIC, SESSION, RequestContext, RouteSpec, Router
from chalicelib.schemas.sessions import (AuditList, AuditQuery, CreateSessionRequest, ListSessionsQuery,
                                         SessionCreated, SessionList, SessionOut, SessionUpdated,
                                         UpdateSessionRequest)
from chalicelib.services.auth import Principal

app = Chalice(app_name="zemeow")
app.log.disabled = True  # Chalice's own logger would print tracebacks outside our JSON logs

# Paths that must answer even when the database is down (they report it instead).
_NO_SCHEMA_PATHS = {"/health", "/ready", "/openapi.json", "/docs", "/docs/assets/{asset}"}


def _request_id() -> str | None:
    request = app.current_request
    return None if request is None else request.context.get("zemeow_request_id")


def _audit(principal: Principal | None, spec: RouteSpec, path_params: dict[str, str], status: int,
           request_id: str | None) -> None:
    try:
        get_container().audit_repo.add(
            actor=principal.actor if principal else "anonymous", action=spec.name,
            session_id=path_params.get("session_id") or (principal.session_id if principal else None),
            request_id=request_id,
            details={"method": spec.method, "route": spec.path, "status": status})
    except Exception as exc:  # noqa: BLE001 - an audit failure is logged, the answer stands
        get_container().logger.error("audit write failed", extra={"error": str(exc)})


router = Router(
    app,
    authenticate=lambda request: get_container().auth.authenticate(request.headers),
    authorize=lambda principal, access, session_id: get_container().auth.authorize(principal, access, session_id),
    audit=_audit,
    request_id=_request_id,
    max_body_bytes=lambda: get_container().settings.max_body_bytes,
    on_unexpected=lambda exc: get_container().logger.exception(
        "unhandled error", extra={"error_type": exc.__class__.__name__}),
)
route = router.route


@app.middleware("http")
def request_context(event: Any, get_response: Callable[[Any], Response]) -> Response:
    context = event.context
    request_id = (event.headers.get("x-request-id") or context.get("requestId") or str(uuid.uuid4()))[:128]
    context["zemeow_request_id"] = request_id
    container = get_container()
    container.logger.append_keys(request_id=request_id)
    try:
        if context.get("resourcePath") not in _NO_SCHEMA_PATHS:
            try:
                container.ensure_schema()
            except Exception as exc:  # noqa: BLE001 - mapped to 503 with a readable body
                return http_errors.error_response(exc, request_id)
        response = get_response(event)
        response = http_errors.normalise_chalice_error(response, request_id)
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        container.logger.remove_keys(["request_id"])


def _health_response(answer: Any) -> Response:
    return Response(body=answer.body, status_code=answer.status_code,
                    headers={"Cache-Control": "no-store", "Content-Type": "application/json"})


# -- operations -------------------------------------------------------------------------
@route("/health", "GET", access=PUBLIC, summary="Liveness: database, runner, events queue", tags=["operations"],
       responses={503: None})
def health(ctx: RequestContext) -> Response:
    return _health_response(get_container().health.health())


@route("/ready", "GET", access=PUBLIC, summary="Readiness: migrations, queues, DLQ, runner", tags=["operations"],
       responses={503: None})
def ready(ctx: RequestContext) -> Response:
    return _health_response(get_container().health.ready())


@route("/openapi.json", "GET", access=PUBLIC, summary="This OpenAPI 3.1 document", tags=["operations"])
def openapi_document(ctx: RequestContext) -> dict[str, Any]:
    return _openapi()


@lru_cache(maxsize=1)
def _openapi() -> dict[str, Any]:
    return OpenApiBuilder("zemeow", get_container().settings.version).build(router.specs)


@route("/docs", "GET", access=PUBLIC, summary="Swagger UI (works offline)", tags=["operations"],
       produces=["text/html"])
def docs(ctx: RequestContext) -> Response:
    base = _stage_prefix(ctx)
    return Response(body=SWAGGER_HTML.format(base=base), status_code=200,
                    headers={"Content-Type": "text/html; charset=utf-8"})


@route("/docs/assets/{asset}", "GET", access=PUBLIC, summary="Swagger UI assets", tags=["operations"],
       responses={404: None}, produces=["text/plain"])
def docs_asset(ctx: RequestContext, asset: str) -> Response:
    import swagger_ui_bundle  # noqa: PLC0415 - only the docs need it

    from chalicelib.errors import NotFound  # noqa: PLC0415

    if asset not in DOC_ASSETS:
        raise NotFound(f"no docs asset '{asset}'")
    body = (swagger_ui_bundle.swagger_ui_path / asset).read_text()
    return Response(body=body, status_code=200,
                    headers={"Content-Type": DOC_ASSETS[asset], "Cache-Control": "public, max-age=86400"})


def _stage_prefix(ctx: RequestContext) -> str:
    """'/api' behind API Gateway's stage path, '' under chalice local."""
    stage = (ctx.raw_request.context or {}).get("stage")
    path = (ctx.raw_request.context or {}).get("path", "")
    return f"/{stage}" if stage and path.startswith(f"/{stage}/") else ""


@route("/audit", "GET", access=ADMIN, summary="Recent audit log entries", tags=["operations"],
       query=AuditQuery, responses={200: AuditList})
def audit_log(ctx: RequestContext) -> dict[str, Any]:
    rows = get_container().audit_repo.recent(session_id=ctx.query.session_id, limit=ctx.query.limit)
    return {"entries": [{**row, "at": row["at"].isoformat()} for row in rows]}


# -- sessions ---------------------------------------------------------------------------
@route("/sessions", "POST", access=ADMIN, summary="Create a session", tags=["sessions"],
       body=CreateSessionRequest, status=201, responses={201: SessionCreated, 409: None})
def create_session(ctx: RequestContext) -> dict[str, Any]:
    return SessionCreated(**get_container().sessions.create(ctx.body)).model_dump(mode="json", exclude_none=True)


@route("/sessions", "GET", access=ADMIN, summary="List sessions", tags=["sessions"],
       query=ListSessionsQuery, responses={200: SessionList})
def list_sessions(ctx: RequestContext) -> dict[str, Any]:
    return SessionList(**get_container().sessions.list(ctx.query)).model_dump(mode="json")


@route("/sessions/{session_id}", "GET", access=SESSION, summary="Read a session", tags=["sessions"],
       responses={200: SessionOut, 404: None})
def get_session(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return SessionOut(**get_container().sessions.get(session_id)).model_dump(mode="json")


@route("/sessions/{session_id}", "PUT", access=SESSION, summary="Update a session (partial)", tags=["sessions"],
       body=UpdateSessionRequest, responses={200: SessionUpdated, 404: None})
def update_session(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    updated = get_container().sessions.update(session_id, ctx.body)
    return SessionUpdated(**updated).model_dump(mode="json", exclude_none=False)


@route("/sessions/{session_id}", "DELETE", access=SESSION, summary="Delete a session", tags=["sessions"],
       status=204, responses={404: None})
def delete_session(ctx: RequestContext, session_id: str) -> Response:
    get_container().sessions.delete(session_id)
    return Response(body="", status_code=204)
