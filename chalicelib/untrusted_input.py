"""What the API accepts as text from a caller, checked once before any view or SQL runs.

PostgreSQL refuses NUL in `text` and `jsonb` (psycopg raises `DataError`), a lone UTF-16
surrogate cannot be encoded back to UTF-8 (by psycopg, by the JSON logger), NaN and
Infinity are not JSON (and cannot be stored in `jsonb`), and a body nested thousands of
levels deep makes `json.loads`, pydantic or `json.dumps` raise `RecursionError`. Each of
these used to reach a view and end as a 500. `chalicelib.routing` calls `decode_json_body`
for every body and `check_parameters` for every path and query parameter, so every
route, present and future, answers 400 (not JSON we accept) or 422 naming the field.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

from chalicelib.errors import BadRequest, ValidationFailed

MAX_JSON_DEPTH = 64  # arrays and objects inside each other; metadata needs a handful
MAX_REPORTED = 20

# a JSON string literal (unrolled loop: linear, no backtracking), and what is not a bracket
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_NUL = "\x00"
_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotJsonConstant(ValueError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _refuse_constant(name: str) -> Any:
    raise _NotJsonConstant(name)


def json_depth(text: str) -> int:
    """How deep arrays and objects nest, counted without parsing (strings removed first),
    so a body too deep to parse is refused before the parser recurses."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    break
        else:
            depth -= 1
    return deepest


def text_problem(value: str) -> tuple[str, str] | None:
    """(message, type) when `value` holds a character we cannot store, else None."""
    if _NUL in value:
        return "must not contain the NUL character (U+0000)", "string_nul"
    if _SURROGATE.search(value):
        return "must not contain a lone surrogate (U+D800 to U+DFFF)", "string_surrogate"
    return None


def _shown(key: str) -> str:
    """A key as it can be printed and sent back: its bad characters escaped."""
    return key.encode("unicode_escape").decode("ascii") if text_problem(key) else key


def tree_problems(data: Any) -> list[dict[str, str]]:
    """Every string (object keys included) in a decoded JSON tree that we cannot store,
    each named by its path (`metadata.tags.2`). Iterative: depth is already bounded, but
    a recursion here would be one more place to hit the limit."""
    problems: list[dict[str, str]] = []
    stack: list[tuple[tuple[str, ...], Any]] = [((), data)]
    while stack and len(problems) < MAX_REPORTED:
        path, value = stack.pop()
        if isinstance(value, str):
            found = text_problem(value)
            if found:
                problems.append({"field": ".".join(path) or "body", "message": found[0], "type": found[1]})
        elif isinstance(value, dict):
            for key, item in value.items():
                key_path = (*path, _shown(key))
                found = text_problem(key)
                if found:
                    problems.append({"field": ".".join(key_path), "message": "key " + found[0], "type": found[1]})
                stack.append((key_path, item))
        elif isinstance(value, list):
            stack.extend(((*path, str(index)), item) for index, item in enumerate(value))
    return sorted(problems, key=lambda p: p["field"])


def decode_json_body(raw: bytes) -> Any:
    """The body as JSON we can store: UTF-8, no NaN/Infinity, at most MAX_JSON_DEPTH deep
    (400 `invalid_json` otherwise), no NUL or lone surrogate in any key or string (422)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not valid UTF-8 (byte {exc.start})", code="invalid_json") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise BadRequest(f"request body is nested too deep: more than {MAX_JSON_DEPTH} levels of arrays and objects",
                         code="invalid_json")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except _NotJsonConstant as exc:
        raise BadRequest(f"request body contains {exc.name}, which is not a JSON number", code="invalid_json") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    problems = tree_problems(data)
    if problems:
        raise ValidationFailed("invalid body: " + ", ".join(p["field"] for p in problems), details=problems)
    return data


def check_parameters(where: str, params: Iterable[tuple[str, str]], *, prefix: str = "") -> None:
    """422 naming each path or query parameter holding a character we cannot store or
    compare in SQL (API Gateway hands path parameters over URL-decoded: `%00` is a NUL)."""
    problems = []
    for name, value in params:
        found = text_problem(name) or (text_problem(value) if isinstance(value, str) else None)
        if found:
            problems.append({"field": prefix + _shown(name), "message": found[0], "type": found[1]})
    if problems:
        raise ValidationFailed(f"invalid {where}: " + ", ".join(p["field"] for p in problems), details=problems)


def query_items(query_params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Every (name, value) of a query, repeated names included (chalice's MultiDict)."""
    if not query_params:
        return []
    getlist = getattr(query_params, "getlist", None)
    return [(name, value) for name in query_params
            for value in (getlist(name) if getlist else [query_params[name]])]


_PRINTABLE = re.compile(r"[\x21-\x7e]+")


def printable_or_none(value: str | None) -> str | None:
    """A caller's `X-Request-Id` only when it is printable ASCII: it is echoed, logged and
    written to the audit log (where a NUL would fail the insert)."""
    return value if value and _PRINTABLE.fullmatch(value) else None
