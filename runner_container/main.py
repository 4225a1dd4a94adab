"""Entry point of the runner process: parse settings, prepare the schema, run until SIGTERM."""
from __future__ import annotations

import signal
import sys
import threading

from chalicelib.bootstrap import Container
from chalicelib.errors import ConfigError, DependencyUnavailable
from runner_container.bootstrap import build_runner


def main(argv: list[str] | None = None) -> int:
    try:
        container = Container(service="zemeow-runner")
        settings = container.settings
    except ConfigError as exc:
        print(f"zemeow runner: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        container.logger.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        container.ensure_schema()
        supervisor = build_runner(container)
        supervisor.run(stop)
    except DependencyUnavailable as exc:
        container.logger.error("runner cannot start", extra={"reason": exc.message})
        return 1
    except ConfigError as exc:
        print(f"zemeow runner: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a taken METRICS_PORT / EMULATOR_PORT
        container.logger.error("runner cannot start", extra={"reason": str(exc)})
        return 1
    finally:
        container.close()
    container.logger.info("runner stopped", extra={"driver": settings.whatsapp_driver})
    return 0
