"""Schemathesis hooks (loaded by tests/integration/test_fuzz.py through SCHEMATHESIS_HOOKS) that make
the fuzzer send what its JSON generator never produces on its own (issue 11, finding 6).

Schemathesis generates valid UTF-8 JSON: never NaN/Infinity, never a lone surrogate,
never thousands of nested arrays, and a NUL only by chance. `before_call` therefore takes
the generated case and, for most cases in turn, serialises its body itself with one of
these planted in it (a string leaf, an object key or a whole leaf replaced), or puts one
in a query value or name. Every planted case is written to ZEMEOW_FUZZ_LOG with the status the
API answered, so the test can prove each class was sent and answered 4xx; with ZEMEOW_FUZZ_CALLS
set (bench/fuzz.py), every call is written there (status, phase, planted kind) to count the cases.

Two operations would end the run's target session (its id is fixed in the config so the
fuzzer reaches past 404): deleting it, and rotating its key. With ZEMEOW_FUZZ_API,
ZEMEOW_FUZZ_ADMIN_KEY and ZEMEOW_FUZZ_TARGET set, such a call goes to a spare session made
for it (with the spare's own key when the run uses a session key), so both key kinds
fuzz every route. The stateful phase's cases go out as generated: its point is the links
(create -> read -> delete), which a planted hostile value would break at the first step.
"""
from __future__ import annotations

import ast
import itertools
import json
import os
import random
import threading
import urllib.request
from typing import Any

import schemathesis

KINDS = ("nul", "surrogate", "nan", "infinity", "deep", "bad_utf8", "nul_key", "surrogate_key")
# a query travels as percent-encoded UTF-8: a lone surrogate cannot be sent there (the API
# decodes %ED%A0%80 to U+FFFD; tests/security/test_bad_input.py covers it under API Gateway)
QUERY_KINDS = {"nul": "\x00", "nul_key": "a\x00b"}
# one case in PLAIN_EVERY goes out as generated, so ordinary fuzzing still happens
PLAIN_EVERY = int(os.environ.get("ZEMEOW_FUZZ_PLAIN_EVERY") or 4)
SPARE_ROUTES = {("DELETE", "/sessions/{session_id}"), ("POST", "/sessions/{session_id}/rotate-key")}
DEEP = 5000

_turn = itertools.count()
_kind_turn = itertools.count()  # its own counter, so every kind comes round whatever PLAIN_EVERY is
_planted: dict[int, str] = {}
_lock = threading.Lock()
_MARK = "__zemeow_fuzz_mark__"


def _serialise_ast_parse() -> None:
    """CPython 3.11 up to 3.11.7 keeps the AST constructor's recursion depth in state shared by
    every thread (python/cpython#106905), and `--workers 2` runs two generator threads: two
    `ast.parse` calls at once (Hypothesis describing a strategy's lambda) end in "SystemError:
    AST constructor recursion depth mismatch", which stopped a CI run of the coverage phase.
    The API under test never parses Python; only the fuzzer's own process does, so one lock here
    is the whole fix."""
    parse, lock = ast.parse, threading.Lock()

    def parse_one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return parse(*args, **kwargs)

    ast.parse = parse_one_at_a_time


_serialise_ast_parse()


def _leaves(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, key))] or [path]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in _leaves(item, (*path, index))] or [path]
    return [path]


def _replace(tree: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[path[0]] = _replace(copy[path[0]], path[1:], new)
    return copy


def _plant(body: Any, kind: str, rng: random.Random) -> bytes:
    """The body as bytes with one `kind` planted in it."""
    if kind in ("nul_key", "surrogate_key"):
        key = "k\x00" if kind == "nul_key" else "k\ud800"
        objects = [p for p in _leaves(body) if p and isinstance(_at(body, p[:-1]), dict)]
        parent = rng.choice(objects)[:-1] if objects else ()
        target = _at(body, parent)
        if isinstance(target, dict):
            return json.dumps(_replace(body, parent, {**target, key: "v"})).encode()
        kind = "nul"
    path = rng.choice(_leaves(body))
    current = _at(body, path)
    if kind in ("nul", "surrogate"):
        char = "\x00" if kind == "nul" else "\ud800"
        text = current[: len(current) // 2] + char + current[len(current) // 2:] if isinstance(current, str) else char
        return json.dumps(_replace(body, path, text)).encode()  # ensure_ascii: sent as \u0000 / \ud800
    if kind in ("nan", "infinity"):
        return json.dumps(_replace(body, path, float("nan") if kind == "nan" else float("-inf"))).encode()
    text = json.dumps(_replace(body, path, _MARK))
    if kind == "deep":
        return text.replace(f'"{_MARK}"', "[" * DEEP + "]" * DEEP).encode()
    return text.encode().replace(_MARK.encode(), b"\xed\xa0\x80")  # bad_utf8: a surrogate as raw bytes


def _at(tree: Any, path: tuple) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _phase(case: Any) -> str | None:
    meta = getattr(case, "_meta", None)
    return getattr(getattr(getattr(meta, "phase", None), "name", None), "value", None)


def _to_spare_session(case: Any) -> None:
    """Point a call that would delete the target session or rotate its key at a spare one."""
    api, admin, target = (os.environ.get(name) for name in
                          ("ZEMEOW_FUZZ_API", "ZEMEOW_FUZZ_ADMIN_KEY", "ZEMEOW_FUZZ_TARGET"))
    if not (api and admin and target) or (case.method.upper(), case.path) not in SPARE_ROUTES:
        return
    if (case.path_parameters or {}).get("session_id") != target:
        return
    request = urllib.request.Request(
        f"{api}/sessions", method="POST", data=json.dumps({"name": "fuzz spare"}).encode(),
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        spare = json.loads(response.read())
    case.path_parameters["session_id"] = spare["session_id"]
    if os.environ.get("ZEMEOW_FUZZ_KEY_KIND") == "session":
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {spare['api_key']}"}


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    _to_spare_session(case)
    if _phase(case) == "stateful":
        return
    turn = next(_turn)
    if turn % PLAIN_EVERY == 0:
        return
    rng = random.Random(turn)
    kind = KINDS[next(_kind_turn) % len(KINDS)]
    body = case.body
    if isinstance(body, (dict, list)) and "data" not in kwargs and "json" not in kwargs:
        kwargs["data"] = _plant(body, kind, rng)
    elif isinstance(case.query, dict) and case.query and kind in QUERY_KINDS:
        name = rng.choice(sorted(case.query))
        if kind.endswith("_key"):
            case.query[QUERY_KINDS[kind]] = case.query.pop(name)
            kind = "query_" + kind
        else:
            case.query[name] = f"{case.query[name]}{QUERY_KINDS[kind]}"
            kind = "query_" + kind
    else:
        return
    with _lock:
        _planted[id(case)] = kind


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    with _lock:
        kind = _planted.pop(id(case), None)
    log = os.environ.get("ZEMEOW_FUZZ_LOG")
    if kind and log:
        line = json.dumps({"kind": kind, "method": case.method, "path": case.path, "status": response.status_code})
        with _lock, open(log, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    calls = os.environ.get("ZEMEOW_FUZZ_CALLS")
    if calls:
        line = json.dumps({"method": case.method, "path": case.path, "status": response.status_code,
                           "phase": _phase(case), "planted": kind,
                           "session_id": (case.path_parameters or {}).get("session_id")})
        with _lock, open(calls, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
