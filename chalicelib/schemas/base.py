"""Base classes of every API model.

`defer_build=True`: a model builds its validator on first use, not at import, which keeps
a cold Lambda's `import app` short (most routes touch a handful of models).
"""
from __future__ import annotations

import base64
import binascii
from typing import Optional

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)


class Strict(Model):
    """Request bodies: an unknown field is a 422 naming it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def check_base64(value: Optional[str]) -> Optional[str]:
    """A field validator's body: strict base64 (no stray characters, right padding) or a 422."""
    if value is None:
        return None
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64") from None
    return value
