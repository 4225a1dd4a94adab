"""Fuzzing at scale: schemathesis against the live local API, every route, both key kinds.

    .venv/bin/python bench/fuzz.py [--max-examples 60] [--workers 2] [--seed 20261130] [--max-steps 25]

Starts the API as `make run` does (`chalice local`, its own database, its own QUEUE_PREFIX
on the LocalStack at 127.0.0.1:4566, or one it starts), creates one target session, then
runs schemathesis twice, once with the admin key and once with that session's key, with
the examples, coverage, fuzzing and stateful phases (stateful: the links schemathesis
infers between operations, create -> read -> update -> delete through the ids the API
returns). tests/support/fuzz_hooks.py plants NUL, lone surrogates, NaN, deep nesting and bad UTF-8
in half the cases of the other phases (`--plain-every`), counts every request, and sends the
two calls that would end the target session (deleting it, rotating its key) to a spare
session made for the call, so every route is fuzzed with both key kinds.

A session key cannot create sessions, so its stateful run has fewer links to follow than the
admin run's (schemathesis prints how many links each run covered, kept in the work directory
with `--keep`).

Checks: no server error (5xx), status code / content type / response body as documented.
Prints, per key kind and in total: cases (requests) run, responses by status class, and
failures by kind (check name); exits 1 when any failure was found. The short run of the
same thing is tests/integration/test_fuzz.py (`make test`).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack import offline_env  # noqa: E402
from devstack.processes import free_port  # noqa: E402
from devstack.stack import LocalStackEnvironment  # noqa: E402

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def say(message: str) -> None:
    print(message, flush=True)


def bench_env(admin_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SERVER_PORT", "QUEUE_PREFIX", "MEDIA_BUCKET")}
    env.update({
        "ENVIRONMENT": "test", "DATA_DIR": str(ROOT / ".zemeow" / "bench-fuzz"), "QUEUE_PREFIX": f"zf{os.getpid()}",
        "ADMIN_API_KEY": admin_key, "ENCRYPTION_KEY": secrets.token_urlsafe(32),
        "WHATSAPP_DRIVER": "emulator", "EMULATOR_TOKEN": secrets.token_urlsafe(24), "LOG_LEVEL": "WARNING",
        "METRICS_PORT": str(free_port()), "EMULATOR_PORT": str(free_port()),
        # every request is still charged to its key, but the fuzzer's thousands must not hit 429
        "API_RATE_LIMIT": "1000000/1m", "API_ADMIN_RATE_LIMIT": "1000000/1m",
    })
    return offline_env(env)


def create_session(base: str, admin_key: str, name: str) -> dict:
    request = urllib.request.Request(
        f"{base}/sessions", method="POST", data=json.dumps({"name": name}).encode(),
        headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def config_text(key: str, session_id: str, who: str, args: argparse.Namespace) -> str:
    text = (f'headers = {{ Authorization = "Bearer {key}" }}\n'
            f"seed = {args.seed}\n"
            f"[generation]\nmax-examples = {args.max_examples}\n"
            f'[parameters]\n"path.session_id" = "{session_id}"\n'
            # chalice local's HTTP server answers 501 to TRACE itself (API Gateway: 403)
            '[phases.coverage]\nunexpected-methods = ["PATCH", "PUT", "DELETE", "POST"]\n'
            f"[phases.stateful]\nmax-steps = {args.max_steps}\n"
            # /health and /ready answer a documented 503 when a part is down: that is their job
            '[[operations]]\ninclude-path-regex = "^/(health|ready)$"\n'
            'checks.not_a_server_error.expected-statuses = ["2XX", "4XX", 503]\n')
    return text


def run_schemathesis(base: str, key: str, admin_key: str, session_id: str, who: str, args: argparse.Namespace,
                     work: Path) -> dict:
    config = work / f"{who}.toml"
    config.write_text(config_text(key, session_id, who, args))
    calls = work / f"{who}-calls.jsonl"
    report = work / f"{who}-report.json"
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(ROOT / "tests" / "support" / "fuzz_hooks.py"),
           "ZEMEOW_FUZZ_CALLS": str(calls), "ZEMEOW_FUZZ_LOG": str(work / f"{who}-planted.jsonl"),
           # deleting the target or rotating its key goes to a spare session (tests/support/fuzz_hooks.py)
           "ZEMEOW_FUZZ_API": base, "ZEMEOW_FUZZ_ADMIN_KEY": admin_key, "ZEMEOW_FUZZ_TARGET": session_id,
           "ZEMEOW_FUZZ_KEY_KIND": who, "ZEMEOW_FUZZ_PLAIN_EVERY": str(args.plain_every)}
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "schemathesis"), "--config-file", str(config), "run",
         f"{base}/openapi.json", "--checks", CHECKS, "--request-timeout", "30",
         "--phases", "examples,coverage,fuzzing,stateful", "--workers", str(args.workers), "--no-color",
         "--continue-on-failure", "--report", "json", "--report-json-path", str(report)],
        capture_output=True, text=True, cwd=str(work), env=env, timeout=args.timeout)
    elapsed = time.monotonic() - started
    (work / f"{who}-output.txt").write_text(result.stdout + result.stderr)
    lines = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return {"who": who, "rc": result.returncode, "elapsed": elapsed, "calls": lines,
            "failures": failures_by_kind(report, result.stdout), "output": result.stdout + result.stderr}


def failures_by_kind(report: Path, stdout: str) -> collections.Counter:
    """Check name -> unique failures, from schemathesis's JSON report."""
    kinds: collections.Counter = collections.Counter()
    if not report.exists():
        return kinds
    data = json.loads(report.read_text())
    for failure in _walk_failures(data):
        kinds[failure] += 1
    return kinds


def _walk_failures(node) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        if "failures" in node and isinstance(node["failures"], list):
            for item in node["failures"]:
                if isinstance(item, dict):
                    found.append(str(item.get("check") or item.get("title") or item.get("name") or item))
        for key, value in node.items():
            if key != "failures":
                found += _walk_failures(value)
    elif isinstance(node, list):
        for value in node:
            found += _walk_failures(value)
    return found


def summarise(run: dict) -> str:
    calls = run["calls"]
    classes = collections.Counter(f"{c['status'] // 100}xx" for c in calls)
    phases = collections.Counter(c.get("phase") or "?" for c in calls)
    planted = sum(1 for c in calls if c.get("planted"))
    fails = ", ".join(f"{k}: {n}" for k, n in sorted(run["failures"].items())) or "none"
    return (f"[{run['who']} key] {len(calls):,} cases in {run['elapsed']:.0f}s; responses {dict(sorted(classes.items()))}; "
            f"by phase {dict(sorted(phases.items()))}; {planted:,} with a planted hostile value; "
            f"failures by kind: {fails}; schemathesis exit {run['rc']}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-examples", type=int, default=60, help="per operation, fuzzing and stateful phases")
    parser.add_argument("--max-steps", type=int, default=25, help="stateful: steps per scenario")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--timeout", type=float, default=5400.0, help="per schemathesis run, seconds")
    parser.add_argument("--plain-every", type=int, default=2,
                        help="one case in N goes out as generated, the others with a planted hostile value")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (reports, outputs)")
    args = parser.parse_args()

    admin_key = "zadm_fuzz_" + secrets.token_urlsafe(24)
    stack = LocalStackEnvironment(bench_env(admin_key), database_name=f"zemeow_fuzz_{os.getpid()}",
                                  fresh_database=True, log=lambda m: None)
    work = Path(tempfile.mkdtemp(prefix="zemeow-fuzz-"))
    try:
        stack.start_database()
        stack.migrate()
        stack.start_localstack()
        stack.deploy_messaging()
        stack.deploy_media()
        port = free_port()
        api_log = open(work / "api.log", "w")
        stack.start_api(port, stdout=api_log)
        # as `make run`: a runner (emulator driver) executes the commands, the bridge runs the
        # queue handlers, so /health and /ready answer 200 and commands are really carried out
        stack.start_runner(stdout=api_log)
        stack.start_bridge(stdout=api_log)
        base = f"http://127.0.0.1:{port}"
        say(f"API (chalice local) on {base}; LocalStack {stack.env['AWS_ENDPOINT_URL']}, queue prefix "
            f"{stack.env['QUEUE_PREFIX']}; work dir {work}")
        runs = []
        for who in ("admin", "session"):
            target = create_session(base, admin_key, f"fuzz target ({who})")
            key = admin_key if who == "admin" else target["api_key"]
            run = run_schemathesis(base, key, admin_key, target["session_id"], who, args, work)
            say(summarise(run))
            if run["rc"] != 0:
                say("    " + "\n    ".join(run["output"].splitlines()[-80:]))
            run["target"] = target["session_id"]
            runs.append(run)
        total = sum(len(r["calls"]) for r in runs)
        server_errors = sum(1 for r in runs for c in r["calls"] if c["status"] >= 500)
        spares = sum(1 for r in runs for c in r["calls"] if c.get("session_id") not in (None, r["target"]))
        failures = sum((r["failures"] for r in runs), collections.Counter())
        say(f"TOTAL: {total:,} cases (target >= 10,000); server errors (5xx) {server_errors}; "
            f"failures by kind: {dict(failures) or 'none'}; {spares} call(s) sent to a spare session")
        return 0 if not failures and server_errors == 0 and all(r["rc"] == 0 for r in runs) else 1
    finally:
        stack.stop(delete_queues=True, drop_database=True)
        if not args.keep:
            import shutil  # noqa: PLC0415
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
