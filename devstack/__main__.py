"""`python -m devstack run|test|bridge` (what `make run` and `make test` call)."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from chalicelib.config import ConfigError, load_settings
from devstack import PROJECT_ROOT


def _say(message: str) -> None:
    print(message, flush=True)


REDEPLOY_CHECK_EVERY = 5.0  # seconds between checks that the stack's queues still exist


def _redeploy_if_missing(stack) -> None:
    """A restarted LocalStack has no queues: deploy the stacks again (the outboxes then
    resend what SQS did not take). A failure here is reported and tried again later."""
    try:
        stack.redeploy_if_missing()
    except Exception as exc:  # noqa: BLE001 - the stack keeps running; the next check retries
        _say(f"zemeow: redeploying the messaging stack failed ({exc.__class__.__name__}: {exc}); retrying")


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def cmd_run(_args: argparse.Namespace) -> int:
    from devstack.local_env import load_local_env, queue_prefix_for
    from devstack.processes import port_in_use, wait_http
    from devstack.stack import LocalStackEnvironment, timed

    started = time.monotonic()
    env = dict(os.environ)
    data_dir = Path(env.get("DATA_DIR") or ".zemeow")
    data_dir = data_dir if data_dir.is_absolute() else PROJECT_ROOT / data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        local_values = load_local_env(data_dir / "local.env")
    except OSError as exc:
        _say(f"zemeow: DATA_DIR={data_dir} is not usable: {exc.strerror or exc}")
        return 1
    for key, value in local_values.items():
        env.setdefault(key, value)
    if not (env.get("QUEUE_PREFIX") or "").strip():
        env["QUEUE_PREFIX"] = queue_prefix_for(data_dir)  # two data dirs, two sets of queues
    env.setdefault("LOG_PRETTY", "true")
    env.setdefault("WEBHOOK_ALLOW_PRIVATE", "true")  # local receivers live on 127.0.0.1
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        _say(f"zemeow: {exc}")
        return 2
    if port_in_use(settings.server_port):
        _say(f"zemeow: port {settings.server_port} is already in use "
             "(another `make run`?); set SERVER_PORT to use another port")
        return 1

    signal.signal(signal.SIGTERM, _raise_interrupt)
    # A shell runs a background job (`make run &` in a script, CI steps) with SIGINT ignored,
    # and Python keeps an ignored SIGINT: Ctrl-C (or the group's SIGINT) would do nothing
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stack = LocalStackEnvironment(env, log=_say)
    step = timed(_say)
    try:
        with step("PostgreSQL (" + ("DATABASE_URL" if settings.database_url else
                                    f"embedded, data in {data_dir / 'pgdata'}") + ")"):
            stack.start_database()
        with step("migrations"):
            applied = stack.migrate()
            _say(f"    applied {applied}" if applied else "    schema up to date")
        with step("LocalStack"):
            stack.start_localstack()
        with step(f"messaging stack {stack.settings.messaging_stack_name} (infra/messaging.yaml)"):
            stack.deploy_messaging()
        with step("media bucket (infra/media.yaml)"):
            _say(f"    MEDIA_BUCKET={stack.deploy_media()}")
        with step(f"API (chalice local on 127.0.0.1:{settings.server_port})"):
            api = stack.start_api(settings.server_port)
        with step("runner and SQS bridge"):
            stack.start_runner()
            stack.start_bridge()
            wait_http(f"http://127.0.0.1:{settings.server_port}/health", timeout=60,
                      accept=lambda status: status == 200, child=api)
        _say("")
        _say(f"zemeow is up in {time.monotonic() - started:.1f}s")
        _say(f"  API:        http://127.0.0.1:{settings.server_port}")
        _say(f"  console:    http://127.0.0.1:{settings.server_port}/console  (sign in with the admin key)")
        _say(f"  admin key:  {env['ADMIN_API_KEY']}")
        _say(f"  emulator:   X-Emulator-Token: {env.get('EMULATOR_TOKEN')}"
             + (f" (control API on 127.0.0.1:{settings.emulator_port})"
                if settings.whatsapp_driver == "emulator" else " (for WHATSAPP_DRIVER=emulator)"))
        _say(f"  queues:     QUEUE_PREFIX={stack.settings.queue_prefix}")
        _say(f"  try:        curl -s http://127.0.0.1:{settings.server_port}/health")
        _say("  Ctrl-C stops everything.")
        next_check = time.monotonic() + REDEPLOY_CHECK_EVERY
        while True:
            for child in stack.children:
                if not child.alive():
                    _say(f"zemeow: {child.name} exited with code {child.process.returncode}; stopping")
                    return 1
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + REDEPLOY_CHECK_EVERY
                _redeploy_if_missing(stack)
            time.sleep(1)
    except KeyboardInterrupt:
        _say("\nstopping ...")
        return 0
    except Exception as exc:  # noqa: BLE001 - one line naming the cause, then clean up
        _say(f"zemeow: {exc.__class__.__name__}: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        _say("stopped")


def cmd_test(args: argparse.Namespace) -> int:
    argv = [sys.executable, "-m", "pytest", *args.pytest_args]
    code = subprocess.call(argv, cwd=str(PROJECT_ROOT))
    if code == 5:
        _say("zemeow: pytest collected no tests; that is a failure, not a pass")
        return 1
    return code


def cmd_bridge(_args: argparse.Namespace) -> int:
    """Run the SQS bridge for app.py's `@app.on_sqs_message` handlers, and the schedule bridge
    for its `@app.schedule` handlers (devstack/schedule_bridge.py), until SIGTERM."""
    sys.path.insert(0, str(PROJECT_ROOT))
    import app as app_module  # noqa: PLC0415 - app.py is the project's Chalice app

    from chalicelib.aws_clients import make_client
    from chalicelib.queues import QueueDirectory
    from devstack.schedule_bridge import ScheduleBridge
    from devstack.sqs_bridge import SqsBridge

    settings = load_settings()
    sqs = make_client("sqs", settings)
    queues = QueueDirectory(sqs, settings)
    bridge = SqsBridge(app_module.app, app_module, sqs, queue_url_for=queues.url,
                       region=settings.aws_region, log=_say)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    names = [source.name for source in bridge.sources()]
    _say(f"sqs bridge: polling for {', '.join(names)}" if names
         else "sqs bridge: app.py has no @app.on_sqs_message handler yet; idle")
    threads = bridge.run(stop)
    schedules = ScheduleBridge(app_module.app, app_module, region=settings.aws_region, log=_say)
    _say("schedule bridge: " + ", ".join(f"{s.name} every {s.schedule_expression.to_string()}"
                                         for s in schedules.sources()))
    threads += schedules.run(stop)
    stop.wait()
    for thread in threads:
        thread.join(timeout=bridge.wait_seconds + 5)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the whole local stack").set_defaults(func=cmd_run)
    commands.add_parser("test", help="run the test suite (sets up its own stack); "
                                     "every further argument goes to pytest").set_defaults(func=cmd_test)
    commands.add_parser("bridge", help="SQS -> @app.on_sqs_message, schedules -> @app.schedule handlers").set_defaults(func=cmd_bridge)
    # `test`'s arguments are pytest's, options first included (`make test ARGS="-x -q"`):
    # argparse's REMAINDER refuses a leading option, so they are not parsed here at all
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.pytest_args = rest
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
