"""The command outbox: API -> `commands` row (outbox + result store) -> SQS FIFO shard -> runner."""
from chalicelib.commands.outbox import COMMAND_TYPES, CommandOutbox, command_view
from chalicelib.commands.outcome import Outcome

__all__ = ["COMMAND_TYPES", "CommandOutbox", "Outcome", "command_view"]
