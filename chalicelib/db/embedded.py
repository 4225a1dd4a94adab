"""The embedded PostgreSQL server used when neither DATABASE_URL nor POSTGRES_HOST is set.

`pgserver` ships PostgreSQL 16 inside its wheel, so a fresh machine needs nothing but
pip. It is a development dependency only: the Lambda package never contains it, and in
AWS the database comes from DATABASE_URL or POSTGRES_*.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from chalicelib.errors import ConfigError


def start_embedded(pgdata: Path, *, keep_running: bool = False) -> Any:
    """Start (or attach to) the server whose data lives in `pgdata`; return its handle.

    `keep_running=False` stops the server when the last process using it exits.
    """
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import pgserver  # noqa: PLC0415 - development dependency, imported on demand
    except ImportError as exc:  # pragma: no cover - only without the dev requirements
        raise ConfigError(
            ["DATABASE_URL: not set and the embedded server (pgserver) is not installed; "
             "set DATABASE_URL=postgresql://... or install requirements-dev.txt"]
        ) from exc
    pgdata = pgdata.resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        return pgserver.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
    except Exception as exc:
        raise ConfigError([f"DATA_DIR: embedded PostgreSQL could not start in {pgdata}: {exc}"]) from exc
