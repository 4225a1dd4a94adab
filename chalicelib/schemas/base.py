"""Base classes of every API model.

`defer_build=True`: a model builds its validator on first use, not at import, which keeps
a cold Lambda's `import app` short (most routes touch a handful of models).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)


class Strict(Model):
    """Request bodies: an unknown field is a 422 naming it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
