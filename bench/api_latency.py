"""Latency of an authenticated `GET /sessions/{id}`, in-process and over chalice local.

    .venv/bin/python -m bench.api_latency [--requests 2000]

Baselines measured in the same run, on the same machine:
- in-process: a bare Chalice route that returns a constant (the framework's floor) and
  a single `SELECT 1` through our pool (the database's floor);
- over HTTP: the same bare route served by chalice local (the dev server's floor).
Prints p50/p99 in milliseconds and the ratios to the baselines.

The per-key rate limit (API_RATE_LIMIT, a token bucket charged in PostgreSQL) is on, with
a limit no run reaches; in-process, the same request is measured with it on and off in
alternating blocks, so what the limit adds is read from one run on one machine:
`rate limit adds` (p50).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack import PROJECT_ROOT  # noqa: E402
from devstack.processes import free_port  # noqa: E402
from devstack.stack import LocalStackEnvironment  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50 * 1000, p99 * 1000


def timed(n: int, call) -> list[float]:
    for _ in range(min(50, n)):  # warm-up
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def report(name: str, samples: list[float], baseline: tuple[float, float] | None = None) -> tuple[float, float]:
    p50, p99 = percentiles(samples)
    line = f"{name:<48} n={len(samples):>5}  p50={p50:7.3f} ms  p99={p99:7.3f} ms"
    if baseline:
        line += f"  (x{p50 / baseline[0]:.1f} / x{p99 / baseline[1]:.1f} of baseline)"
    print(line, flush=True)
    return p50, p99


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    n = args.requests

    env = {**os.environ, "DATA_DIR": str(PROJECT_ROOT / ".zemeow" / "bench"), "QUEUE_PREFIX": f"zb{os.getpid()}",
           "ADMIN_API_KEY": "bench-admin-key-0123456789abcdef", "ENCRYPTION_KEY": "bench-encryption-key",
           "LOG_LEVEL": "WARNING", "API_RATE_LIMIT": "1000000/1m"}
    stack = LocalStackEnvironment(env, database_name="zemeow_bench", fresh_database=True, log=lambda m: None)
    try:
        stack.start_database()
        stack.migrate()
        stack.start_localstack()
        stack.deploy_messaging()
        os.environ.update({k: v for k, v in stack.env.items() if k.startswith("AWS_") or k in (
            "DATABASE_URL", "QUEUE_PREFIX", "ADMIN_API_KEY", "ENCRYPTION_KEY", "LOG_LEVEL", "DATA_DIR", "API_RATE_LIMIT")})

        from chalice import Chalice
        from chalice.test import Client

        import app as app_module
        from chalicelib.bootstrap import get_container

        bare = Chalice(app_name="bare")

        @bare.route("/ping")
        def ping():
            return {"ok": True}

        admin = {"Authorization": f"Bearer {env['ADMIN_API_KEY']}", "Content-Type": "application/json"}
        with Client(app_module.app, stage_name="local") as client, Client(bare) as bare_client:
            created = client.http.post("/sessions", headers=admin, body=json.dumps({"name": "bench"})).json_body
            key_headers = {"Authorization": f"Bearer {created['api_key']}"}
            path = f"/sessions/{created['session_id']}"
            assert client.http.get(path, headers=key_headers).status_code == 200

            print(f"# in-process (chalice.test.Client), {n} requests each")
            floor = report("bare Chalice route (baseline)", timed(n, lambda: bare_client.http.get("/ping")))
            db = get_container().db

            def select_one():
                with db.connection() as conn:
                    conn.execute("SELECT 1")

            db_floor = report("SELECT 1 through the pool (baseline)", timed(n, select_one))
            limiter = get_container().api_limits
            get_key = lambda: client.http.get(path, headers=key_headers)  # noqa: E731
            assert "RateLimit-Limit" in get_key().headers
            report("GET /sessions/{id} with the session key", timed(n, get_key), floor)
            p50, p99 = percentiles(timed(n, get_key))
            print(f"{'  same, against the SELECT 1 floor':<48} p50 x{p50 / db_floor[0]:.1f}, p99 x{p99 / db_floor[1]:.1f}")
            # on and off in alternating blocks, so that the machine's noise falls on both alike
            limit, on, off = limiter.session_limit, [], []
            for _ in range(10):
                limiter.session_limit = None
                off += timed(max(1, n // 10), get_key)
                limiter.session_limit = limit
                on += timed(max(1, n // 10), get_key)
            on_p50, _ = report("  same, limit on (alternating blocks)", on, floor)
            off_p50, _ = report("  same, API_RATE_LIMIT=off (alternating blocks)", off, floor)
            print(f"{'  rate limit adds (p50)':<48} {on_p50 - off_p50:+.3f} ms")

        port, bare_port = free_port(), free_port()
        api = stack.start_api(port, stdout=subprocess.DEVNULL)
        bare_dir = Path(stack.data_dir) / "bare-app"
        (bare_dir / ".chalice").mkdir(parents=True, exist_ok=True)
        (bare_dir / "app.py").write_text(
            "from chalice import Chalice\napp = Chalice(app_name='bare')\n\n"
            "@app.route('/ping')\ndef ping():\n    return {'ok': True}\n")
        (bare_dir / ".chalice" / "config.json").write_text(json.dumps({"version": "2.0", "app_name": "bare"}))
        bare_server = subprocess.Popen([str(Path(sys.executable).parent / "chalice"), "local", "--port", str(bare_port),
                                        "--no-autoreload"], cwd=bare_dir, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        try:
            from devstack.processes import wait_http

            wait_http(f"http://127.0.0.1:{bare_port}/ping", timeout=30)

            def http_get(url, headers=None):
                request = urllib.request.Request(url, headers=headers or {})
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()

            print(f"# over HTTP (chalice local, one client), {n} requests each")
            http_floor = report("bare Chalice route (baseline)",
                                timed(n, lambda: http_get(f"http://127.0.0.1:{bare_port}/ping")))
            report("GET /sessions/{id} with the session key",
                   timed(n, lambda: http_get(f"http://127.0.0.1:{port}{path}", key_headers)), http_floor)
        finally:
            bare_server.terminate()
            bare_server.wait(timeout=10)
            api.stop()
    finally:
        stack.stop(delete_queues=True, drop_database=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
