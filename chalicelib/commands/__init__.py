"""The command outbox: API -> `commands` row (outbox + result store) -> the SQS FIFO queue of the runner holding the session -> runner."""
from chalicelib.commands.outbox import COMMAND_TYPES, CommandOutbox, command_view
from chalicelib.commands.outcome import Outcome

__all__ = ["COMMAND_TYPES", "CommandOutbox", "Outcome", "command_view"]
