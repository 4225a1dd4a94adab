"""The OpenAPI 3.1 document, built from the router's `RouteSpec`s and the pydantic models.

Nothing is listed by hand: a route registered through `Router.route` is in the document,
with its request body, query parameters, responses and security; tests check both ways.
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from chalicelib.routing import ADMIN, PUBLIC, SESSION, RouteSpec

ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message", "request_id"],
    "properties": {
        "code": {"type": "string", "description": "snake_case reason"},
        "message": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "details": {"description": "validation errors: one entry per bad field; other errors: an "
                                   "object with what helps (e.g. the command_id of a command that timed out)",
                    "anyOf": [
                        {"type": "array", "items": {"type": "object", "properties": {
                            "field": {"type": "string"}, "message": {"type": "string"},
                            "type": {"type": "string"}}}},
                        {"type": "object"}]},
    },
}
ERROR_DESCRIPTIONS = {
    400: "Malformed request (e.g. invalid JSON)",
    401: "Missing or unknown API key",
    403: "The key may not use this route",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body too large",
    422: "Invalid fields (details name each one)",
    429: "Over a rate limit: retry after `Retry-After` seconds (also `details.retry_after_seconds`)",
    502: "The runner could not do it (the error names why)",
    503: "A dependency (database, queue, runner) is unavailable",
    504: "The runner did not answer in time",
}
ERROR_HEADERS = {
    429: {"Retry-After": {"description": "seconds to wait before the request can succeed", "required": True,
                          "schema": {"type": "integer", "minimum": 1}},
          "RateLimit-Limit": {"description": "requests per window for this key (API_RATE_LIMIT; only for "
                                             "the per-key limit)", "schema": {"type": "integer"}},
          "RateLimit-Remaining": {"description": "requests left in the window", "schema": {"type": "integer"}},
          "RateLimit-Reset": {"description": "seconds until the key's bucket is full again",
                              "schema": {"type": "integer"}}},
}
_PATH_PARAM = re.compile(r"{([^}]+)}")


ACCESS_DESCRIPTIONS = {ADMIN: "Admin key only.", SESSION: "Admin key, or the key of the session in the path."}


def _parameters(spec: RouteSpec) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(spec.path)]
    if spec.query is not None:
        query_schema = spec.query.model_json_schema()
        required = set(query_schema.get("required", []))
        parameters += [{"name": name, "in": "query", "required": name in required, "schema": prop}
                       for name, prop in query_schema.get("properties", {}).items()]
    return parameters


def _implied_errors(spec: RouteSpec) -> set[int]:
    """The errors every route of its kind can answer, beside those it declares."""
    errors = {400, 503} if spec.body is not None else {503}
    if spec.body is not None or spec.query is not None or "{" in spec.path:
        errors.add(422)  # path parameters too: NUL or a lone surrogate (chalicelib/untrusted_input.py)
    if spec.body is not None:
        errors.add(413)
    if spec.access != PUBLIC:
        errors |= {401, 403, 429}  # 429: the per-key limit (API_RATE_LIMIT)
    return errors


class OpenApiBuilder:
    def __init__(self, title: str, version: str):
        self.title = title
        self.version = version
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def _ref(self, model: Any) -> dict[str, Any]:
        if isinstance(model, dict):
            return model
        if isinstance(model, type) and issubclass(model, BaseModel):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
            for name, definition in schema.pop("$defs", {}).items():
                self.schemas.setdefault(name, definition)
            self.schemas.setdefault(model.__name__, schema)
            return {"$ref": f"#/components/schemas/{model.__name__}"}
        raise TypeError(f"cannot describe {model!r}")

    def _input_schema(self, model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        self.schemas.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def operation(self, spec: RouteSpec) -> dict[str, Any]:
        op: dict[str, Any] = {
            "operationId": spec.name,
            "summary": spec.summary,
            "tags": spec.tags,
            "parameters": _parameters(spec),
            "responses": {},
        }
        if spec.body is not None:  # before the responses: a model's first schema (input) is kept
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": self._input_schema(spec.body)}}}
        for status in sorted({spec.status, *spec.responses}):
            op["responses"][str(status)] = self._response(spec, status)
        op["security"] = [{"bearerAuth": []}, {"apiKeyHeader": []}] if spec.access != PUBLIC else []
        for status in sorted(_implied_errors(spec)):
            op["responses"].setdefault(str(status), {
                "description": ERROR_DESCRIPTIONS[status],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                **({"headers": ERROR_HEADERS[status]} if status in ERROR_HEADERS else {})})
        op["x-zemeow-access"] = spec.access
        if spec.access in ACCESS_DESCRIPTIONS:
            op["description"] = ACCESS_DESCRIPTIONS[spec.access]
        return op

    def _response(self, spec: RouteSpec, status: int) -> dict[str, Any]:
        model = spec.responses.get(status)
        response: dict[str, Any] = {"description": "OK" if status < 400 else ERROR_DESCRIPTIONS.get(status, "Error")}
        if status >= 400 and model is None:
            response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            if status in ERROR_HEADERS:
                response["headers"] = ERROR_HEADERS[status]
        elif model is not None or (status == spec.status and spec.produces != ["application/json"]):
            response["content"] = {media: {"schema": self._media_schema(media, model)}
                                   for media in spec.produces or ["application/json"]}
        return response

    def _media_schema(self, media: str, model: Any) -> dict[str, Any]:
        if "json" in media and model is not None:
            return self._ref(model)
        return {"type": "string", **({} if media.startswith("text/") else {"format": "binary"})}

    def build(self, specs: list[RouteSpec]) -> dict[str, Any]:
        from chalicelib.schemas.webhook_events import webhooks  # noqa: PLC0415 - loaded for the document only

        paths: dict[str, Any] = {}
        for spec in specs:
            paths.setdefault(spec.path, {})[spec.method.lower()] = self.operation(spec)
        events = webhooks(self._ref)
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version,
                     "description": "Many WhatsApp sessions behind one REST API. Errors are "
                                    "`{code, message, request_id}`; keys go in "
                                    "`Authorization: Bearer <key>` or `X-API-Key`."},
            "paths": dict(sorted(paths.items())),
            "webhooks": events,
            "components": {
                "schemas": dict(sorted(self.schemas.items())),
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer"},
                    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                },
            },
        }


# No inline script or style: the page's Content-Security-Policy (DOCS_CSP) allows only
# what /docs/assets/ serves, so the start-up call lives in an asset of ours and reads
# the document's URL from its own tag.
SWAGGER_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zemeow API</title>
<link rel="stylesheet" href="{base}/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{base}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{base}/docs/assets/zemeow-docs.js" data-spec-url="{base}/openapi.json"></script>
</body></html>
"""
DOCS_INIT_JS = """window.ui = SwaggerUIBundle({
  url: document.currentScript.dataset.specUrl,
  dom_id: "#swagger-ui",
});
"""
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
DOC_ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "application/javascript",
              "zemeow-docs.js": "application/javascript"}
OWN_DOC_ASSETS = {"zemeow-docs.js": DOCS_INIT_JS}  # served from here, the rest from swagger_ui_bundle
