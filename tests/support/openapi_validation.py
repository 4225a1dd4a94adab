"""Checks every response the test suite sees against /openapi.json.

The `api` fixture wraps Chalice's test client with `ValidatingHttp`: a response whose
status the document does not list for that route, or whose JSON body does not match
the documented schema, fails the test that made the request. So the document is kept
honest by every test, not by a sample.
"""
from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs

# Answers Chalice gives before our code runs (wrong method or media type).
UNDOCUMENTED_OK = {405, 415}


class OpenApiResponseChecker:
    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.routes: list[tuple[re.Pattern, str, dict[str, Any]]] = []
        for path, operations in document["paths"].items():
            pattern = re.compile("^" + re.sub(r"{[^}]+}", r"[^/]+", path) + "$")
            for method, operation in operations.items():
                self.routes.append((pattern, method.upper(), operation))
        self._validators: dict[str, Any] = {}

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        bare = path.split("?", 1)[0]
        matches = [(pattern.pattern.count("[^/]+"), index, op)
                   for index, (pattern, m, op) in enumerate(self.routes) if m == method and pattern.match(bare)]
        # a literal segment beats a placeholder when both match, as in API Gateway
        return min(matches)[2] if matches else None

    def _validator(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            root = {**schema, "components": self.document["components"]}
            self._validators[key] = jsonschema_rs.validator_for(root)
        return self._validators[key]

    def check(self, method: str, path: str, status: int, headers: dict[str, str], body: bytes) -> list[str]:
        operation = self.operation(method, path)
        if operation is None:
            return [] if status in (403, 404, 405) else [f"{method} {path}: not in the OpenAPI document"]
        documented = operation["responses"].get(str(status))
        if documented is None:
            if status in UNDOCUMENTED_OK:
                return []
            return [f"{method} {path}: status {status} is not documented "
                    f"(documented: {sorted(operation['responses'])})"]
        content = documented.get("content") or {}
        if not content:
            return []
        answered = (headers.get("Content-Type") or headers.get("content-type") or "application/json")
        answered = answered.split(";", 1)[0].strip()
        if answered not in content:
            return [f"{method} {path} -> {status}: Content-Type {answered} is not documented ({sorted(content)})"]
        media = answered
        if "json" not in media:
            return []
        schema = content[media].get("schema")
        if not schema:
            return []
        try:
            payload = json.loads(body)
        except ValueError:
            return [f"{method} {path}: {status} body is not JSON"]
        errors = [str(e) for e in self._validator(schema).iter_errors(payload)]
        return [f"{method} {path} -> {status}: {e}" for e in errors[:5]]


class ValidatingHttp:
    """Drop-in for `chalice.test.Client(...).http` that checks every response."""

    def __init__(self, http: Any, checker: OpenApiResponseChecker):
        self._http = http
        self._checker = checker

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: Any = b""):
        response = self._http.request(method, path, headers=headers or {}, body=body if body is not None else b"")
        problems = self._checker.check(method, path, response.status_code, response.headers, response.body)
        assert not problems, "response does not match /openapi.json:\n  " + "\n  ".join(problems)
        return response

    def get(self, path: str, **kwargs: Any):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any):
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any):
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any):
        return self.request("DELETE", path, **kwargs)

    def patch(self, path: str, **kwargs: Any):
        return self.request("PATCH", path, **kwargs)
