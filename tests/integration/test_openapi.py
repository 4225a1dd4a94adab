"""/openapi.json describes exactly the routes app.py serves, and /docs works offline."""
from __future__ import annotations

import re

from openapi_spec_validator import validate

import app as app_module


def test_document_is_valid_openapi_3_1(api):
    document = api.get("/openapi.json").json_body
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented_and_nothing_else(api):
    document = api.get("/openapi.json").json_body
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = {(path, method) for path, methods in app_module.app.routes.items() for method in methods
              if method != "OPTIONS"}
    assert documented == served
    # each path also answers CORS preflights (chalicelib/cors.py), which carry no data
    assert {path for path, _ in served} == {path for path, methods in app_module.app.routes.items()
                                            if "OPTIONS" in methods}


def test_protected_routes_declare_security_and_auth_errors(api):
    document = api.get("/openapi.json").json_body
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation["x-zemeow-access"] == "public":
                assert operation["security"] == []
            else:
                assert operation["security"], f"{method} {path}"
                assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(operation["responses"]), f"{method} {path}"


def test_request_schemas_refuse_unknown_fields(api):
    schemas = api.get("/openapi.json").json_body["components"]["schemas"]
    assert schemas["CreateSessionRequest"]["additionalProperties"] is False
    assert "name" in schemas["CreateSessionRequest"]["required"]


def test_docs_page_loads_its_assets_from_us(api):
    page = api.get("/docs")
    assert page.status_code == 200
    html = page.body.decode() if isinstance(page.body, bytes) else page.body
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/docs/assets/") for s in sources), sources
    assert "http://" not in html and "https://" not in html  # no CDN
    for source in sources:
        asset = api.get(source)
        assert asset.status_code == 200
        assert len(asset.body) > (50 if source.endswith("zemeow-docs.js") else 10_000)
    assert api.get("/docs/assets/../../app.py").status_code in (403, 404)
    assert api.get("/docs/assets/nope.js").status_code == 404


def test_the_webhook_events_are_described_in_the_document(api):
    document = api.get("/openapi.json").json_body
    hooks = document["webhooks"]
    assert {"message.edited", "message.revoked", "message.receipt", "poll.vote", "group.participants",
            "group.update", "contact.updated", "message.received"} <= set(hooks)
    body = hooks["poll.vote"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["event"] == {"const": "poll.vote"}
    assert body["properties"]["data"] == {"$ref": "#/components/schemas/PollVote"}
    assert "options" in document["components"]["schemas"]["PollVote"]["properties"]
    changes = document["components"]["schemas"]["GroupChanges"]["properties"]
    assert {"subject", "description", "announce", "locked"} <= set(changes)
