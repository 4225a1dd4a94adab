"""QR code rendering for `GET /sessions/{id}/qr`: PNG (qrcode + pypng, pure Python), a
data URI for JSON answers, and text for terminals."""
from __future__ import annotations

import base64
import io
from typing import Any


def _make(text: str) -> Any:
    import qrcode  # noqa: PLC0415 - imported on first use: it is most of a cold start's import time

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=4)
    code.add_data(text)
    code.make(fit=True)
    return code


def png_bytes(text: str) -> bytes:
    from qrcode.image.pure import PyPNGImage  # noqa: PLC0415

    image = _make(text).make_image(image_factory=PyPNGImage)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


def data_uri(text: str) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(text)).decode()


def terminal_text(text: str) -> str:
    buffer = io.StringIO()
    _make(text).print_ascii(out=buffer, invert=True)
    return buffer.getvalue()


def module_matrix(text: str) -> list[list[bool]]:
    """The QR modules (without the quiet zone) that `png_bytes(text)` draws."""
    code = _make(text)
    border = code.border
    return [row[border:len(row) - border] for row in code.get_matrix()[border:-border]]
