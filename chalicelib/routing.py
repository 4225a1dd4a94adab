"""Route registration with authentication, validation, audit and OpenAPI in one place.

`Router.route(...)` wraps a view so that, before it runs, the caller is authenticated
and authorised for the route's access level ('public', 'admin', or 'session' = admin or
the session named in the path), the JSON body and the query are parsed into pydantic
models (400 for bad JSON, 413 for oversized bodies, 422 naming each bad field; text we
cannot store, NUL or a lone surrogate, is refused in bodies, queries and path parameters
by `chalicelib.untrusted_input` before the view runs), and,
after it runs, every mutating request is written to the audit log. An authenticated key is
charged one request against its limit (`chalicelib/services/api_limits.py`) before it is
authorised, and every answer to it carries the RateLimit-* fields; a refusal is 429
`rate_limited` (not audited: it did nothing, and a flood must not become audit rows). Each path also gets an OPTIONS route answering CORS preflights
(`chalicelib/cors.py`). Each registration is
kept as a `RouteSpec`, from which `chalicelib.openapi` builds the OpenAPI document and
the tests enumerate every route.

Views look like `def view(ctx: RequestContext, session_id: str) -> dict | Response`;
`ctx.shape(data)` passes an answer through the route's declared response model.

Models are named lazily, as `"sessions.SessionOut"` (a class in `chalicelib.schemas.sessions`):
a route's schema module, and pydantic itself, load with the first request that needs them,
not at import. A cold Lambda (the API's, or the webhook dispatcher's, which needs none of
them) then imports only what it uses. A class may still be given directly.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, Union

from chalice import Chalice, Response
from chalice.app import ChaliceViewError

from chalicelib import cors, http_errors, security_headers
from chalicelib.errors import PayloadTooLarge, ValidationFailed, ZemeowError
from chalicelib.untrusted_input import check_parameters, decode_json_body, query_items
from chalicelib.services.auth import Principal

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel, ValidationError

ModelRef = Union[str, type, None]  # "module.Class" under chalicelib.schemas, a class, or nothing

PUBLIC = "public"
ADMIN = "admin"
SESSION = "session"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


@functools.lru_cache(maxsize=None)
def _load_model(ref: str) -> type:
    module, _, name = ref.rpartition(".")
    if not module:
        raise ValueError(f"model reference {ref!r} is not 'module.Class'")
    return getattr(importlib.import_module(f"chalicelib.schemas.{module}"), name)


def resolve_model(ref: ModelRef) -> Any:
    """The model class a reference names (None stays None)."""
    return _load_model(ref) if isinstance(ref, str) else ref


@dataclass
class RouteSpec:
    path: str
    method: str
    access: str
    name: str
    summary: str
    tags: list[str]
    body_ref: ModelRef = None
    query_ref: ModelRef = None
    response_refs: dict[int, ModelRef] = field(default_factory=dict)
    status: int = 200
    produces: list[str] = field(default_factory=lambda: ["application/json"])

    @property
    def body(self) -> type[BaseModel] | None:
        return resolve_model(self.body_ref)

    @property
    def query(self) -> type[BaseModel] | None:
        return resolve_model(self.query_ref)

    @property
    def responses(self) -> dict[int, Any]:
        return {status: resolve_model(ref) for status, ref in self.response_refs.items()}


@dataclass
class RequestContext:
    principal: Principal | None
    request_id: str | None
    body: Any
    query: Any
    raw_request: Any
    spec: RouteSpec | None = None

    def shape(self, data: dict[str, Any], *, status: int | None = None, exclude_none: bool = False,
              exclude_unset: bool = False) -> dict[str, Any]:
        """`data` through the route's response model for `status` (default: the route's
        status), as JSON-ready values: the one place an answer meets its documented shape.
        `exclude_unset`: a field the data does not give stays out of the answer (not null)."""
        assert self.spec is not None
        model = resolve_model(self.spec.response_refs[status or self.spec.status])
        return model.model_validate(data).model_dump(mode="json", exclude_none=exclude_none,
                                                     exclude_unset=exclude_unset)


def validation_details(exc: "ValidationError", *, tagged_union: bool = False) -> list[dict[str, Any]]:
    details = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        if tagged_union and loc:
            loc = loc[1:]  # drop the union's tag ("text", "image", ...): name the field itself
        location = ".".join(str(part) for part in loc) or "body"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        details.append({"field": location, "message": message, "type": error["type"]})
    return details


def parse_model(model: type[BaseModel], data: Any, *, where: str) -> BaseModel:
    from pydantic import RootModel, ValidationError  # noqa: PLC0415 - loaded with the first validation

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc, tagged_union=issubclass(model, RootModel))
        fields = ", ".join(sorted({d["field"] for d in details}))
        raise ValidationFailed(f"invalid {where}: {fields}", details=details) from exc


class Router:
    def __init__(self, app: Chalice, *, authenticate: Callable[[Any], Principal],
                 authorize: Callable[[Principal, str, str | None], None],
                 audit: Callable[[Principal | None, RouteSpec, dict[str, str], Response, str | None], None],
                 request_id: Callable[[], str | None], max_body_bytes: Callable[[], int],
                 on_unexpected: Callable[[BaseException], None],
                 rate_limit: Callable[[Principal], Mapping[str, str]] = lambda principal: {},
                 cors_origins: Callable[[], Sequence[str]] = lambda: ()):
        self.app = app
        self.specs: list[RouteSpec] = []
        self.methods_by_path: dict[str, list[str]] = {}
        self._rate_limit = rate_limit  # charges the key; its headers go on the answer (raises RateLimited)
        self._cors_origins = cors_origins
        self._authenticate = authenticate
        self._authorize = authorize
        self._audit = audit
        self._request_id = request_id
        self._max_body_bytes = max_body_bytes
        self._on_unexpected = on_unexpected

    def route(self, path: str, method: str, *, access: str, summary: str, tags: list[str] | None = None,
              body: ModelRef = None, query: ModelRef = None,
              responses: dict[int, ModelRef] | None = None, status: int = 200,
              produces: list[str] | None = None) -> Callable[[Callable[..., Any]], Any]:
        def register(view: Callable[..., Any]) -> Any:
            spec = RouteSpec(path=path, method=method, access=access, name=view.__name__,
                             summary=summary, tags=tags or [], body_ref=body, query_ref=query,
                             response_refs=responses or {}, status=status,
                             produces=produces or ["application/json"])
            self.specs.append(spec)
            handler = self._wrap(spec, view)
            self.app.route(path, methods=[method], name=f"{view.__name__}_{method.lower()}")(handler)
            if path not in self.methods_by_path:
                self.methods_by_path[path] = []
                self._add_preflight(path)
            self.methods_by_path[path].append(method)
            return view

        return register

    def _add_preflight(self, path: str) -> None:
        def preflight(**path_params: str) -> Response:
            return cors.preflight(self.app.current_request.headers, self.methods_by_path[path],
                                  self._cors_origins(), self._request_id())

        name = "preflight_" + "".join(c if c.isalnum() else "_" for c in path).strip("_")
        self.app.route(path, methods=["OPTIONS"], name=name or "preflight_root")(preflight)

    def _wrap(self, spec: RouteSpec, view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handler(**path_params: str) -> Response:
            request = self.app.current_request
            request_id = self._request_id()
            principal: Principal | None = None
            limit_headers: Mapping[str, str] = {}
            admitted = True  # False: refused by the key's rate limit (not audited: it did nothing)
            try:
                if spec.access != PUBLIC:
                    principal = self._authenticate(request)
                    request.context["zemeow_principal"] = principal  # for the access log
                    admitted = False
                    limit_headers = self._rate_limit(principal)
                    admitted = True
                    self._authorize(principal, spec.access, path_params.get("session_id"))
                check_parameters("path", path_params.items(), prefix="path.")
                ctx = RequestContext(principal, request_id, self._parse_body(spec, request),
                                     self._parse_query(spec, request), request, spec)
                result = view(ctx, **path_params)
                response = self._to_response(result, spec.status)
            except Exception as exc:  # noqa: BLE001 - every error becomes the contract's JSON
                if not isinstance(exc, (ZemeowError, ChaliceViewError)):
                    self._on_unexpected(exc)
                response = http_errors.error_response(exc, request_id)
            if spec.method in MUTATING and principal is not None and admitted:
                self._audit(principal, spec, path_params, response, request_id)
            if spec.access != PUBLIC:
                security_headers.no_store(response.headers)
            response.headers.update(limit_headers)
            return response

        return handler

    def _parse_body(self, spec: RouteSpec, request: Any) -> Any:
        raw = request.raw_body or b""
        if len(raw) > self._max_body_bytes():
            raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {self._max_body_bytes()}")
        if spec.body_ref is None:
            return None
        data: Any = decode_json_body(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            raise ValidationFailed("request body must be a JSON object",
                                   details=[{"field": "body", "message": "expected an object", "type": "type"}])
        return parse_model(spec.body, data, where="body")

    @staticmethod
    def _parse_query(spec: RouteSpec, request: Any) -> Any:
        if spec.query_ref is None:
            return None
        check_parameters("query", query_items(request.query_params))
        params = dict(request.query_params or {})
        return parse_model(spec.query, params, where="query")

    @staticmethod
    def _to_response(result: Any, status: int) -> Response:
        if isinstance(result, Response):
            return result
        if hasattr(result, "model_dump"):  # a pydantic model
            result = result.model_dump(mode="json")
        if result is None:
            return Response(body="", status_code=status if status != 200 else 204)
        return Response(body=result, status_code=status, headers={"Content-Type": "application/json"})

