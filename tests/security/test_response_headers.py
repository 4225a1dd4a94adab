"""Finding 12: answers that may carry secrets are never cached, nothing may be framed or
MIME-sniffed, /docs runs only our own scripts, and the public /ready tells anyone the
overall state only."""
from __future__ import annotations

import re
import uuid

import app as app_module
from chalicelib.routing import PUBLIC
from tests.conftest import TEST_ADMIN_KEY, session_headers

_PARAM = re.compile(r"{([^}]+)}")


def _header(response, name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in response.headers.items() if k.lower() == wanted), None)


def test_answers_that_carry_secrets_say_no_store(api, admin_headers):
    created = api.post("/sessions", headers=admin_headers, body='{"name": "headers"}')
    assert created.status_code == 201 and created.json_body["api_key"]
    assert _header(created, "Cache-Control") == "no-store"
    sid, own = created.json_body["session_id"], session_headers(created.json_body)
    rotated = api.post(f"/sessions/{sid}/webhook/rotate-secret", headers=own, body="{}")
    assert rotated.status_code in (200, 201, 409, 422), rotated.body
    assert _header(rotated, "Cache-Control") == "no-store"
    refused = api.get(f"/sessions/{sid}", headers={"Authorization": "Bearer zses_wrong"})
    assert refused.status_code == 401 and _header(refused, "Cache-Control") == "no-store"


def test_every_authenticated_route_says_no_store_and_every_answer_nosniff_and_no_frames(api, make_session):
    failures = []
    for spec in app_module.router.specs:
        own = make_session()
        values = {name: "x" + uuid.uuid4().hex[:8] for name in _PARAM.findall(spec.path)}
        values["session_id"] = own["session_id"]
        if spec.path == "/docs/assets/{asset}":
            values["asset"] = "swagger-ui.css"
        body = "{}" if spec.method in ("POST", "PUT", "PATCH") else None
        key = own["api_key"] if spec.access != "admin" else TEST_ADMIN_KEY
        response = getattr(api, spec.method.lower())(spec.path.format(**values), body=body,
                                                     headers={"Authorization": f"Bearer {key}"})
        label = f"{spec.method} {spec.path} ({response.status_code})"
        if spec.access != PUBLIC and _header(response, "Cache-Control") != "no-store":
            failures.append(f"{label}: Cache-Control {_header(response, 'Cache-Control')!r}")
        if _header(response, "X-Content-Type-Options") != "nosniff":
            failures.append(f"{label}: no nosniff")
        if _header(response, "X-Frame-Options") != "DENY" or \
                "frame-ancestors 'none'" not in (_header(response, "Content-Security-Policy") or ""):
            failures.append(f"{label}: may be framed")
    assert failures == []
    not_allowed = api.post("/health")  # an error Chalice itself answers goes through the middleware too
    assert not_allowed.status_code == 405 and _header(not_allowed, "X-Content-Type-Options") == "nosniff"


def test_docs_have_a_policy_that_allows_only_our_own_assets(api):
    page = api.get("/docs")
    assert page.status_code == 200
    policy = _header(page, "Content-Security-Policy")
    assert policy, "no Content-Security-Policy on /docs"
    directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    html = page.body.decode() if isinstance(page.body, bytes) else page.body
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline <script> the policy would block"
    assert "<style" not in html and "style=" not in html  # no inline styles
    assert not re.search(r"\son[a-z]+\s*=", html)  # nor inline event handlers
    for source in re.findall(r'<script[^>]*src="([^"]+)"', html):
        asset = api.get(source)
        assert asset.status_code == 200 and _header(asset, "X-Content-Type-Options") == "nosniff"
        assert "javascript" in _header(asset, "Content-Type")


def test_public_ready_gives_the_overall_state_only_and_the_admin_the_details(api, container, admin_headers,
                                                                            make_session):
    anyone = api.get("/ready")
    assert anyone.status_code in (200, 503)
    assert set(anyone.json_body) == {"ready", "timestamp"}, anyone.json_body
    text = anyone.body.decode() if isinstance(anyone.body, bytes) else str(anyone.body)
    assert container.settings.queue_prefix not in text
    session = make_session()
    for headers in (session_headers(session), {"Authorization": "Bearer zses_not-a-key"}):
        assert set(api.get("/ready", headers=headers).json_body) == {"ready", "timestamp"}
    admin = api.get("/ready", headers=admin_headers)
    assert admin.status_code == anyone.status_code
    details = admin.json_body["details"]
    assert container.settings.events_queue_name in details["queues"]
    assert set(admin.json_body["services"]) == {"database", "migrations", "queues", "events_dlq", "runner"}
