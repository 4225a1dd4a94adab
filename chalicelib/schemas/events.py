"""Models of the events read API (`GET /sessions/{session_id}/events`)."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import ConfigDict, Field

from chalicelib.schemas.base import Model


class EventsQuery(Model):
    model_config = ConfigDict(extra="ignore")
    after: Optional[str] = Field(default=None, max_length=200,
                                 description="the `cursor` of an earlier answer: only newer events")
    limit: int = Field(default=50, ge=1, le=200)


class EventOut(Model):
    """The envelope exactly as the webhook receives it."""

    id: str
    session_id: str
    event: str
    timestamp: str
    data: dict[str, Any]
    metadata: dict[str, Any] = Field(description="`sequence` (per session, increasing) and `session_uid`")


class EventList(Model):
    events: list[EventOut] = Field(description="oldest first (ascending `metadata.sequence`)")
    cursor: str = Field(description="pass as `after` to get only newer events (opaque)")
    has_more: bool = Field(description="more events after these are waiting: ask again with `after=cursor`")
