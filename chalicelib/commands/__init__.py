"""The command bus: API -> `commands` row (outbox + result store) -> SQS FIFO shard -> runner."""
from chalicelib.commands.bus import COMMAND_TYPES, CommandBus, command_view

__all__ = ["COMMAND_TYPES", "CommandBus", "command_view"]
