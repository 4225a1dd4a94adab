"""zemeow's API Lambda: routes only.

Each view parses nothing itself: `chalicelib.routing.Router` authenticates, validates the
body and query into pydantic models, audits mutations and maps errors to the contract's
JSON. Views call a `chalicelib` service and return what it gives.
"""
from __future__ import annotations

import time
import uuid
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from chalice import Chalice, Rate, Response

from chalicelib import access_log, cors, http_errors
from chalicelib import qr as qr_render
from chalicelib import security_headers
from chalicelib.bootstrap import get_container
from chalicelib.config import queue_prefix_from_env
from chalicelib.metrics import record_prune, record_request
from chalicelib.routing import ADMIN, PUBLIC, SESSION, RequestContext, Router, RouteSpec
from chalicelib.services.auth import Principal
from chalicelib.untrusted_input import printable_or_none

if TYPE_CHECKING:
    from chalicelib.commands.outcome import Outcome

app = Chalice(app_name="zemeow")
app.log.disabled = True  # Chalice's own logger would print tracebacks outside our JSON logs

# Paths that must answer even when the database is down (they report it instead).
_NO_SCHEMA_PATHS = {"/health", "/ready", "/openapi.json", "/docs", "/docs/assets/{asset}", "/console",
                    "/console/assets/{asset}"}


def _request_id() -> str | None:
    request = app.current_request
    return None if request is None else request.context.get("zemeow_request_id")


def _audit(principal: Principal | None, spec: RouteSpec, path_params: dict[str, str], response: Response,
           request_id: str | None) -> None:
    body = response.body if isinstance(response.body, dict) else {}
    session_id = (path_params.get("session_id") or body.get("session_id")
                  or (principal.session_id if principal else None))
    try:
        get_container().audit_repo.add(
            actor=principal.actor if principal else "anonymous", action=spec.name,
            session_id=session_id, request_id=request_id,
            details={"method": spec.method, "route": spec.path, "status": response.status_code})
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
    rate_limit=lambda principal: get_container().api_limits.headers_for(principal),
    cors_origins=lambda: get_container().settings.cors_allow_origins,
)
route = router.route


@app.middleware("http")
def request_context(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Request id, schema check, CORS fields and the access log line, for every request."""
    started = time.perf_counter()
    context = event.context
    request_id = (printable_or_none(event.headers.get("x-request-id")) or context.get("requestId")
                  or str(uuid.uuid4()))[:128]
    context["zemeow_request_id"] = request_id
    container = get_container()
    container.logger.append_keys(request_id=request_id)
    status = 500  # an exception escaping the router is a 5xx for the metrics
    try:
        response = _respond(event, get_response, container, request_id)
        response.headers["X-Request-Id"] = request_id
        security_headers.apply(response.headers)
        cors.decorate(response.headers, event.headers, container.settings.cors_allow_origins)
        status = response.status_code
        access_log.log_request(container.logger, event, response.status_code,
                               (time.perf_counter() - started) * 1000)
        return response
    finally:
        container.logger.remove_keys(["request_id"])
        _record_request(container, event, status, started)


def _record_request(container: Any, event: Any, status: int, started: float) -> None:
    """One EMF line per request (chalicelib/metrics.py): by route template, never the path."""
    template = event.context.get("resourcePath")
    route_name = template if template in app.routes else "other"
    millis = (time.perf_counter() - started) * 1000
    _metrics_quietly(container, lambda: record_request(container.api_metrics, route=route_name,
                                                       method=event.method, status=status, millis=millis))
    _metrics_quietly(container, lambda: container.api_metrics.flush())


def _metrics_quietly(container: Any, action: Callable[[], Any]) -> None:
    """Metrics never change an answer, a batch's outcome or a job's."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001
        try:
            container.logger.warning("metrics failed", extra={"error_type": exc.__class__.__name__})
        except Exception:  # noqa: BLE001, S110 - no logger either (bad configuration)
            pass


def _respond(event: Any, get_response: Callable[[Any], Response], container: Any, request_id: str) -> Response:
    if event.method != "OPTIONS" and event.context.get("resourcePath") not in _NO_SCHEMA_PATHS:
        try:
            container.ensure_schema()
        except Exception as exc:  # noqa: BLE001 - mapped to 503 with a readable body
            return http_errors.error_response(exc, request_id)
    return http_errors.normalise_chalice_error(get_response(event), request_id)


def _health_response(ctx: RequestContext, answer: Any) -> Response:
    """200 when every check passed, else 503; a check the answer leaves out stays out (not null)."""
    status = 200 if answer.ok else 503
    return Response(body=ctx.shape(answer.body, status=status, exclude_unset=True), status_code=status,
                    headers={"Cache-Control": "no-store", "Content-Type": "application/json"})


# -- operations -------------------------------------------------------------------------
@route("/health", "GET", access=PUBLIC, summary="Liveness: database, runner, events queue", tags=["operations"],
       responses={200: "operations.HealthOut", 503: "operations.HealthOut"})
def health(ctx: RequestContext) -> Response:
    return _health_response(ctx, get_container().health.health())


@route("/ready", "GET", access=PUBLIC, summary="Readiness: migrations, queues, DLQ, runner (details: admin key)",
       tags=["operations"], responses={200: "operations.ReadyOut", 503: "operations.ReadyOut"})
def ready(ctx: RequestContext) -> Response:
    return _health_response(ctx, get_container().health.ready(detailed=_called_by_admin(ctx)))


def _called_by_admin(ctx: RequestContext) -> bool:
    """On a public route: did the caller send the admin key? Any other key, none, or a
    key that cannot be checked now (database or secret down) gets the public answer."""
    from chalicelib.services.auth import key_from_headers  # noqa: PLC0415

    if not key_from_headers(ctx.raw_request.headers):
        return False
    try:
        return get_container().auth.authenticate(ctx.raw_request.headers).is_admin
    except Exception:  # noqa: BLE001 - a bad or uncheckable key is simply not the admin
        return False


@route("/openapi.json", "GET", access=PUBLIC, summary="This OpenAPI 3.1 document", tags=["operations"])
def openapi_document(ctx: RequestContext) -> dict[str, Any]:
    return _openapi()


@lru_cache(maxsize=1)
def _openapi() -> dict[str, Any]:
    from chalicelib.openapi import OpenApiBuilder  # noqa: PLC0415 - only this route needs it

    return OpenApiBuilder("zemeow", get_container().settings.version).build(router.specs)


@route("/docs", "GET", access=PUBLIC, summary="Swagger UI (works offline)", tags=["operations"],
       produces=["text/html"])
def docs(ctx: RequestContext) -> Response:
    from chalicelib.openapi import DOCS_CSP, SWAGGER_HTML  # noqa: PLC0415

    base = _stage_prefix(ctx)
    return Response(body=SWAGGER_HTML.format(base=base), status_code=200,
                    headers={"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": DOCS_CSP})


@route("/docs/assets/{asset}", "GET", access=PUBLIC, summary="Swagger UI assets", tags=["operations"],
       responses={404: None}, produces=["text/css", "application/javascript"])
def docs_asset(ctx: RequestContext, asset: str) -> Response:
    import swagger_ui_bundle  # noqa: PLC0415 - only the docs need it

    from chalicelib.errors import NotFound  # noqa: PLC0415
    from chalicelib.openapi import DOC_ASSETS, OWN_DOC_ASSETS  # noqa: PLC0415

    if asset not in DOC_ASSETS:
        raise NotFound(f"no docs asset '{asset}'")
    body = OWN_DOC_ASSETS.get(asset) or (swagger_ui_bundle.swagger_ui_path / asset).read_text()
    return Response(body=body, status_code=200,
                    headers={"Content-Type": DOC_ASSETS[asset], "Cache-Control": "public, max-age=86400"})


@route("/console", "GET", access=PUBLIC, summary="The web console: pair, watch and operate sessions",
       tags=["operations"], responses={304: None}, produces=["text/html"])
def console(ctx: RequestContext) -> Response:
    from chalicelib import console as console_files  # noqa: PLC0415 - only the console reads its files

    body, etag = console_files.page()
    return _console_response(ctx, body, "text/html; charset=utf-8", etag)


@route("/console/assets/{asset}", "GET", access=PUBLIC, summary="The web console's scripts and styles",
       tags=["operations"], responses={304: None, 404: None}, produces=["text/javascript", "text/css", "image/svg+xml"])
def console_asset(ctx: RequestContext, asset: str) -> Response:
    from chalicelib import console as console_files  # noqa: PLC0415
    from chalicelib.errors import NotFound  # noqa: PLC0415

    found = console_files.asset(asset)
    if found is None:
        raise NotFound(f"no console asset '{asset}'")
    return _console_response(ctx, *found)


def _console_response(ctx: RequestContext, body: str, content_type: str, etag: str) -> Response:
    """The console's security headers (CSP: own origin only, no framing, no referrer)."""
    from chalicelib import console as console_files  # noqa: PLC0415

    settings = get_container().settings
    headers = console_files.headers(content_type, etag, console_files.media_origins(
        settings.media_bucket, settings.aws_endpoint_url, settings.aws_region))
    if (ctx.raw_request.headers or {}).get("if-none-match") == etag:
        return Response(body="", status_code=304, headers=headers)
    return Response(body=body, status_code=200, headers=headers)


def _stage_prefix(ctx: RequestContext) -> str:
    """'/api' behind API Gateway's stage path, '' under chalice local."""
    stage = (ctx.raw_request.context or {}).get("stage")
    path = (ctx.raw_request.context or {}).get("path", "")
    return f"/{stage}" if stage and path.startswith(f"/{stage}/") else ""


@route("/audit", "GET", access=ADMIN, summary="Recent audit log entries", tags=["operations"],
       query="sessions.AuditQuery", responses={200: "sessions.AuditList"})
def audit_log(ctx: RequestContext) -> dict[str, Any]:
    rows = get_container().audit_repo.recent(session_id=ctx.query.session_id, limit=ctx.query.limit)
    return {"entries": [{**row, "at": row["at"].isoformat()} for row in rows]}


@app.schedule(Rate(1, unit=Rate.HOURS), name="prune_retention")
def prune_retention(event: Any) -> dict[str, Any]:
    """Delete rows past their retention (chalicelib/services/retention.py), in bounded batches."""
    container = get_container()
    try:
        container.ensure_schema()
        report = container.retention.run()
        _metrics_quietly(container, lambda: record_prune(container.retention_metrics,
                                                         sum(report.deleted.values()), report.complete))
    except Exception:
        _metrics_quietly(container, lambda: container.retention_metrics.add("Errors", 1))
        raise
    finally:
        _metrics_quietly(container, lambda: container.retention_metrics.flush())  # once per invocation
    return {"deleted": report.deleted, "batches": report.batches, "seconds": report.seconds,
            "complete": report.complete}


# -- sessions ---------------------------------------------------------------------------
@route("/sessions", "POST", access=ADMIN, summary="Create a session", tags=["sessions"],
       body="sessions.CreateSessionRequest", status=201, responses={201: "sessions.SessionCreated", 409: None})
def create_session(ctx: RequestContext) -> dict[str, Any]:
    return ctx.shape(get_container().sessions.create(ctx.body), exclude_none=True)


@route("/sessions", "GET", access=ADMIN, summary="List sessions", tags=["sessions"],
       query="sessions.ListSessionsQuery", responses={200: "sessions.SessionList"})
def list_sessions(ctx: RequestContext) -> dict[str, Any]:
    return ctx.shape(get_container().sessions.list(ctx.query))


@route("/sessions/{session_id}", "GET", access=SESSION, summary="Read a session", tags=["sessions"],
       responses={200: "sessions.SessionOut", 404: None})
def get_session(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().sessions.get(session_id))


@route("/sessions/{session_id}", "PUT", access=SESSION, summary="Update a session (partial)", tags=["sessions"],
       body="sessions.UpdateSessionRequest", responses={200: "sessions.SessionUpdated", 404: None})
def update_session(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    updated = get_container().sessions.update(session_id, ctx.body)
    return ctx.shape(updated, exclude_none=False)


@route("/sessions/{session_id}", "DELETE", access=SESSION, summary="Delete a session", tags=["sessions"],
       status=204, responses={404: None})
def delete_session(ctx: RequestContext, session_id: str) -> Response:
    get_container().sessions.delete(session_id)
    return Response(body="", status_code=204)


@route("/sessions/{session_id}/rotate-key", "POST", access=SESSION,
       summary="New session API key (shown once); the old key is refused at once", tags=["sessions"],
       responses={200: "sessions.SessionKeyRotated", 404: None})
def rotate_session_key(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().sessions.rotate_key(session_id))


# -- export and import (chalicelib/services/backup.py) ------------------------------------
def _passphrase(ctx: RequestContext) -> str | None:
    from chalicelib.services.backup import PASSPHRASE_HEADER  # noqa: PLC0415

    return ctx.raw_request.headers.get(PASSPHRASE_HEADER.lower())


@route("/sessions/export", "GET", access=ADMIN, summary="Export every session's configuration (paged)",
       tags=["backup"], query="backup.ExportAllQuery", responses={200: "backup.ExportDocument"})
def export_sessions(ctx: RequestContext) -> dict[str, Any]:
    q = ctx.query
    document = get_container().backup.export_all(include_secrets=q.include_secrets, passphrase=_passphrase(ctx),
                                                 limit=q.limit, offset=q.offset)
    return ctx.shape(document, exclude_none=True)


@route("/sessions/{session_id}/export", "GET", access=ADMIN, summary="Export one session's configuration",
       tags=["backup"], query="backup.ExportQuery", responses={200: "backup.ExportDocument", 404: None})
def export_session(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    document = get_container().backup.export_one(session_id, include_secrets=ctx.query.include_secrets,
                                                  passphrase=_passphrase(ctx))
    return ctx.shape(document, exclude_none=True)


@route("/sessions/import", "POST", access=ADMIN, summary="Create sessions from an export (answers per session)",
       tags=["backup"], body="backup.ExportDocument", responses={200: "backup.ImportAnswer"})
def import_sessions(ctx: RequestContext) -> dict[str, Any]:
    return ctx.shape(get_container().backup.import_document(ctx.body, _passphrase(ctx)), exclude_none=True)


# -- proxy (chalicelib/services/proxy.py) -----------------------------------------------


@route("/sessions/{session_id}/proxy", "GET", access=SESSION, summary="The session's proxy (password masked)",
       tags=["proxy"], responses={200: "proxy.ProxyOut", 404: None})
def get_proxy(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().proxies.get(session_id))


@route("/sessions/{session_id}/proxy", "POST", access=SESSION,
       summary="Set the session's proxy (emits session.updated; the runner applies it)", tags=["proxy"],
       body="proxy.ProxyIn", responses={200: "proxy.ProxyOut", 404: None})
def set_proxy(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().proxies.set(session_id, ctx.body))


@route("/sessions/{session_id}/proxy/test", "POST", access=SESSION,
       summary="Open a tunnel through the proxy to a target and report the outcome (rate-limited per session)",
       tags=["proxy"], body="proxy.ProxyTestRequest",
       responses={200: "proxy.ProxyTestResult", 404: None, 409: None, 429: None})
def probe_proxy(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().proxies.test(session_id, ctx.body))


# -- connections and commands (the runner's side: chalicelib/services/connections.py) -----


def _answer(ctx: RequestContext, outcome: "Outcome", *, exclude_none: bool = False) -> Response:
    """Done now: 200; accepted (the runner will do it): 202. Shaped by the route's model for that status."""
    status = 200 if outcome.done else 202
    return Response(body=ctx.shape(outcome.body, status=status, exclude_none=exclude_none), status_code=status,
                    headers={"Content-Type": "application/json"})


@route("/sessions/{session_id}/connect", "POST", access=SESSION, summary="Connect the session to WhatsApp",
       tags=["connection"], status=202, responses={200: "connections.ConnectAnswer", 202: "connections.ConnectAnswer", 404: None})
def connect_session(ctx: RequestContext, session_id: str) -> Response:
    return _answer(ctx, get_container().connections.connect(session_id), exclude_none=True)


@route("/sessions/{session_id}/disconnect", "POST", access=SESSION,
       summary="Close the socket (the device stays paired)", tags=["connection"], status=202,
       responses={200: "connections.ConnectAnswer", 202: "connections.ConnectAnswer", 404: None})
def disconnect_session(ctx: RequestContext, session_id: str) -> Response:
    return _answer(ctx, get_container().connections.disconnect(session_id), exclude_none=True)


@route("/sessions/{session_id}/logout", "POST", access=SESSION,
       summary="Unlink the device (the next connect needs a new QR)", tags=["connection"],
       responses={200: "connections.ConnectAnswer", 202: "connections.ConnectAnswer", 404: None, 409: None, 502: None})
def logout_session(ctx: RequestContext, session_id: str) -> Response:
    return _answer(ctx, get_container().connections.logout(session_id), exclude_none=True)


@route("/sessions/{session_id}/status", "GET", access=SESSION, summary="Connection status", tags=["connection"],
       responses={200: "connections.StatusOut", 404: None})
def session_status(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().connections.status(session_id))


@route("/sessions/{session_id}/stats", "GET", access=SESSION, summary="Session counters", tags=["connection"],
       responses={200: "connections.StatsOut", 404: None})
def session_stats(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().connections.stats(session_id))


@route("/sessions/{session_id}/qr", "GET", access=SESSION, summary="The QR code to scan (json, png or terminal)",
       tags=["connection"], query="connections.QrQuery", responses={200: "connections.QrOut", 404: None, 409: None},
       produces=["application/json", "image/png", "text/plain"])
def session_qr(ctx: RequestContext, session_id: str) -> Any:
    code = get_container().connections.qr(session_id, ctx.query.wait)
    if ctx.query.format == "png":
        return Response(body=qr_render.png_bytes(code["qr_code"]), status_code=200,
                        headers={"Content-Type": "image/png", "Cache-Control": "no-store"})
    if ctx.query.format == "terminal":
        return Response(body=qr_render.terminal_text(code["qr_code"]), status_code=200,
                        headers={"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})
    return ctx.shape({**code, "image": qr_render.data_uri(code["qr_code"])})


@route("/sessions/{session_id}/pairphone", "POST", access=SESSION, summary="Pair by phone number (pairing code)",
       tags=["connection"], body="connections.PairPhoneRequest", responses={200: "connections.PairPhoneOut", 404: None, 409: None,
                                                              502: None, 504: None})
def pair_phone(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    answer = get_container().connections.pair_phone(session_id, ctx.body.phone, ctx.body.show_push_notification)
    return ctx.shape(answer)


@route("/sessions/{session_id}/events", "GET", access=SESSION,
       summary="The session's recent events, oldest first; poll with after=cursor (kept EVENT_RETENTION)",
       tags=["events"], query="events.EventsQuery", responses={200: "events.EventList", 404: None, 422: None})
def list_events(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().event_feed.list(session_id, ctx.query.after, ctx.query.limit))


@route("/sessions/{session_id}/commands/{command_id}", "GET", access=SESSION, summary="A command's state",
       tags=["commands"], responses={200: "connections.CommandOut", 404: None})
def get_command(ctx: RequestContext, session_id: str, command_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().connections.command(session_id, command_id))


# -- webhooks (chalicelib/webhooks) ----------------------------------------------------------


@app.on_sqs_message(queue=f"{queue_prefix_from_env()}-events", batch_size=10)
def dispatch_webhooks(event: Any) -> dict[str, Any]:
    """Deliver a batch of events (and webhook retries) to the sessions' webhook URLs."""
    container = get_container()
    try:
        container.ensure_schema()
        return container.webhook_dispatcher.handle(event.to_dict()["Records"])
    except Exception:
        _metrics_quietly(container, lambda: container.webhook_metrics.add("Errors", 1))  # the batch comes back
        raise
    finally:
        _metrics_quietly(container, lambda: container.webhook_metrics.flush())  # once per invocation


@route("/sessions/{session_id}/webhook/deliveries", "GET", access=SESSION, summary="Webhook deliveries (newest first)",
       tags=["webhooks"], query="webhooks.DeliveriesQuery", responses={200: "webhooks.DeliveryList", 404: None})
def list_webhook_deliveries(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().webhooks.list_deliveries(session_id, ctx.query))


@route("/sessions/{session_id}/webhook/deliveries/{delivery_id}", "GET", access=SESSION,
       summary="One webhook delivery with its attempts", tags=["webhooks"], responses={200: "webhooks.DeliveryOut", 404: None})
def get_webhook_delivery(ctx: RequestContext, session_id: str, delivery_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().webhooks.get_delivery(session_id, delivery_id))


@route("/sessions/{session_id}/webhook/deliveries/{delivery_id}/redeliver", "POST", access=SESSION,
       summary="Deliver a finished (failed, skipped or succeeded) delivery again", tags=["webhooks"], status=202,
       responses={202: "webhooks.RedeliverAccepted", 404: None, 409: None})
def redeliver_webhook(ctx: RequestContext, session_id: str, delivery_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().webhooks.redeliver(session_id, delivery_id))


@route("/sessions/{session_id}/webhook/redeliver", "POST", access=SESSION,
       summary="Redeliver every failed delivery (since a time)", tags=["webhooks"], body="webhooks.BulkRedeliverRequest",
       status=202, responses={202: "webhooks.BulkRedeliverAccepted", 404: None})
def redeliver_webhooks_bulk(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    answer = get_container().webhooks.redeliver_bulk(session_id, ctx.body)
    return ctx.shape(answer)


@route("/sessions/{session_id}/webhook/rotate-secret", "POST", access=SESSION,
       summary="New webhook secret (shown once); the old one also signs for 24 h", tags=["webhooks"],
       responses={200: "webhooks.RotateSecretOut", 404: None, 409: None})
def rotate_webhook_secret(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().webhooks.rotate_secret(session_id))


@route("/webhooks/send", "POST", access=ADMIN, summary="Send an event to a session's webhook (or a given URL)",
       tags=["webhooks"], body="webhooks.SendWebhookRequest", status=202, responses={202: "webhooks.SendWebhookAccepted", 404: None,
                                                                         409: None})
def send_webhook(ctx: RequestContext) -> dict[str, Any]:
    return ctx.shape(get_container().webhooks.send(ctx.body))


@route("/webhooks/stats", "GET", access=ADMIN, summary="Webhook delivery totals, latency, queues, breakers",
       tags=["webhooks"], responses={200: "webhooks.WebhookStats"})
def webhook_stats(ctx: RequestContext) -> dict[str, Any]:
    return ctx.shape(get_container().webhooks.stats())


@route("/webhooks/sessions/{session_id}/stats", "GET", access=SESSION, summary="One session's webhook stats",
       tags=["webhooks"], responses={200: "webhooks.WebhookStats", 404: None})
def session_webhook_stats(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().webhooks.stats(session_id))


# -- messages ---------------------------------------------------------------------------
@route("/sessions/{session_id}/messages", "POST", access=SESSION, summary="Send a message", tags=["messages"],
       body="messages.SendMessageRequest", query="messages.SendQuery", status=202,
       responses={202: "messages.MessageAccepted", 200: "messages.MessageSent", 404: None, 409: None, 502: None, 504: None})
def send_message(ctx: RequestContext, session_id: str) -> Response:
    return _answer(ctx, get_container().messages.send(session_id, ctx.body.root, wait=ctx.query.wait))


# -- chats, contacts and groups (chalicelib/services/chats.py) ----------------------------
def _group(text: str) -> str:
    from chalicelib.schemas.chats import group_jid  # noqa: PLC0415 - schemas load on first use

    return group_jid(text)


@route("/sessions/{session_id}/read", "POST", access=SESSION, summary="Mark messages in a chat as read",
       tags=["chats"], body="chats.MarkReadRequest", query="chats.WaitQuery", status=202,
       responses={202: "chats.CommandAccepted", 200: "chats.CommandDone", 404: None, 409: None, 502: None, 504: None})
def mark_read(ctx: RequestContext, session_id: str) -> Response:
    return _answer(ctx, get_container().chats.mark_read(session_id, ctx.body, wait=ctx.query.wait))


@route("/sessions/{session_id}/presence", "POST", access=SESSION,
       summary="Presence: the account (available/unavailable) or a chat (composing/recording/paused)",
       tags=["chats"], body="chats.PresenceRequest", query="chats.WaitQuery", status=202,
       responses={202: "chats.CommandAccepted", 200: "chats.CommandDone", 404: None, 409: None, 502: None, 504: None})
def send_presence(ctx: RequestContext, session_id: str) -> Response:
    return _answer(ctx, get_container().chats.presence(session_id, ctx.body, wait=ctx.query.wait))


@route("/sessions/{session_id}/contacts/check", "POST", access=SESSION,
       summary="Which numbers are on WhatsApp (capped batch, rate-limited per session)", tags=["contacts"],
       body="chats.ContactsCheckRequest", responses={200: "chats.ContactsCheckOut", 404: None, 409: None, 429: None, 502: None,
                                             504: None})
def check_contacts(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().chats.check_contacts(session_id, ctx.body.phones))


@route("/sessions/{session_id}/groups", "GET", access=SESSION, summary="Groups the session is in",
       tags=["groups"], responses={200: "chats.GroupList", 404: None, 409: None, 502: None, 504: None})
def list_groups(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().chats.list_groups(session_id))


@route("/sessions/{session_id}/groups", "POST", access=SESSION, summary="Create a group", tags=["groups"],
       body="chats.CreateGroupRequest", status=201,
       responses={201: "chats.GroupDetail", 404: None, 409: None, 502: None, 504: None})
def create_group(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().chats.create_group(session_id, ctx.body))


@route("/sessions/{session_id}/groups/{group_jid}", "GET", access=SESSION,
       summary="A group with its participants", tags=["groups"],
       responses={200: "chats.GroupDetail", 404: None, 409: None, 422: None, 502: None, 504: None})
def get_group(ctx: RequestContext, session_id: str, group_jid: str) -> dict[str, Any]:
    return ctx.shape(get_container().chats.group_info(session_id, _group(group_jid)))


@route("/sessions/{session_id}/groups/{group_jid}/participants", "POST", access=SESSION,
       summary="Add, remove, promote or demote participants (a result per participant)", tags=["groups"],
       body="chats.ParticipantsRequest", responses={200: "chats.ParticipantsOut", 404: None, 409: None, 502: None, 504: None})
def update_group_participants(ctx: RequestContext, session_id: str, group_jid: str) -> dict[str, Any]:
    answer = get_container().chats.update_participants(session_id, _group(group_jid), ctx.body)
    return ctx.shape(answer)


# -- media (issue 6: chalicelib/services/media.py; 503 media_storage_not_configured without MEDIA_BUCKET)
@route("/sessions/{session_id}/media/upload-url", "POST", access=SESSION,
       summary="A presigned PUT URL to upload a file into the media bucket; send it with media_key",
       tags=["media"], body="media.UploadUrlRequest", status=201, responses={201: "media.UploadUrlOut", 404: None})
def media_upload_url(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    answer = get_container().media.upload_url(session_id, ctx.body.mime_type, ctx.body.size, ctx.body.filename)
    return ctx.shape(answer)


@route("/sessions/{session_id}/media/url", "POST", access=SESSION,
       summary="A fresh presigned GET URL for a stored media_key (received media, uploads)",
       tags=["media"], body="media.MediaUrlRequest", responses={200: "media.MediaUrlOut", 404: None})
def media_download_url(ctx: RequestContext, session_id: str) -> dict[str, Any]:
    return ctx.shape(get_container().media.download_url(session_id, ctx.body.media_key))


# -- route modules (chalicelib/views): each declares its routes with the same router ------
# one line a module, so features land without touching the routes above
from chalicelib.views import account as account_views, group_admin as group_admin_views  # noqa: E402

group_admin_views.register(route)
account_views.register(route)
import chalicelib.views.store as _store_views  # noqa: E402 - message store read API (issue 15)
_store_views.register(route)
