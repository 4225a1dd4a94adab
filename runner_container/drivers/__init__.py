"""WhatsApp drivers behind one small interface (`base.Driver` / `base.SessionClient`)."""
from __future__ import annotations

from typing import Any

from runner_container.drivers.base import Driver, DriverError, SessionClient, SessionConfig


def make_driver(name: str, container: Any, **options: Any) -> Driver:
    if name == "emulator":
        from runner_container.drivers.emulator import EmulatorDriver

        return EmulatorDriver(container.db, token=container.settings.emulator_token,
                              media_policy=container.outbound_policy,
                              media_store=container.media_store, media_max_bytes=container.settings.media_max_bytes,
                              wire_log=container.settings.emulator_wire_log, **options)
    from runner_container.drivers.neonize_driver import NeonizeDriver  # imports neonize (only here)

    return NeonizeDriver(container.database_url, container.db,
                         media_policy=container.outbound_policy,
                         media_store=container.media_store, media_max_bytes=container.settings.media_max_bytes)


__all__ = ["Driver", "DriverError", "SessionClient", "SessionConfig", "make_driver"]
