"""What a service did with a request the runner carries out, without HTTP in it.

`Outcome.accepted(body)`: recorded and handed to the runner, which will do it (a view
answers 202); `Outcome.done(body)`: finished now (a view answers 200). The view in
`app.py` picks the status and shapes the body through the route's declared model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    body: dict[str, Any]
    done: bool

    @classmethod
    def accepted(cls, body: dict[str, Any]) -> "Outcome":
        return cls(body, done=False)

    @classmethod
    def finished(cls, body: dict[str, Any]) -> "Outcome":
        return cls(body, done=True)
