"""Recipients: phone digits, `+E.164`, or a WhatsApp JID -> one canonical JID string.

Phone numbers are checked against libphonenumber's country calling codes and the
possible lengths of each one's national numbers (the `is_possible_number` rule), from a
table generated out of the `phonenumbers` package (`calling_codes.py`), so that an
impossible number is a 422 at the API, not a silent failure in the runner, without
shipping the 48 MB library in the Lambda.
"""
from __future__ import annotations

import re

from chalicelib.messaging.calling_codes import NATIONAL_NUMBER_LENGTHS

USER_SERVER = "s.whatsapp.net"
GROUP_SERVER = "g.us"
LID_SERVER = "lid"
NEWSLETTER_SERVER = "newsletter"
_JID = re.compile(r"^(?P<user>[0-9A-Za-z.:_-]{1,64})@(?P<server>s\.whatsapp\.net|g\.us|lid|newsletter|broadcast)$")
_DIGITS = re.compile(r"^\+?[0-9][0-9 ().-]{5,24}$")


class InvalidRecipient(ValueError):
    pass


def normalise_phone(text: str) -> str:
    """'+55 (11) 91234-5678' / '5511912345678' -> '5511912345678' (E.164 digits, no '+')."""
    raw = text.strip()
    if not _DIGITS.match(raw):
        raise InvalidRecipient("expected phone digits, +E.164 or a JID such as 5511912345678@s.whatsapp.net")
    digits = re.sub(r"\D", "", raw)
    if not 7 <= len(digits) <= 15:
        raise InvalidRecipient("a phone number has 7 to 15 digits including the country code")
    if not is_possible_e164(digits):
        raise InvalidRecipient("not a possible phone number for its country code")
    return digits


def is_possible_e164(digits: str) -> bool:
    """libphonenumber's `is_possible_number` for '+<digits>'.

    Country calling codes are prefix-free: the first 1-3 digits that form one are it. A
    national prefix written after the code ("+1 1 415 ...") is stripped when what remains
    has a possible length, as libphonenumber's parser does."""
    for size in (1, 2, 3):
        entry = NATIONAL_NUMBER_LENGTHS.get(int(digits[:size]))
        if entry is None:
            continue
        lengths, local_only, national_prefix = entry
        national = digits[size:]
        if national_prefix:
            match = re.match(national_prefix, national)
            if match and match.end() and len(national) - match.end() in lengths:
                return True
        return len(national) in lengths or len(national) in local_only
    return False


def normalise_recipient(text: str) -> str:
    """Any accepted form -> a JID string (`<digits>@s.whatsapp.net`, `<id>@g.us`, ...)."""
    value = text.strip()
    match = _JID.match(value)
    if match:
        user, server = match.group("user"), match.group("server")
        if server == USER_SERVER:
            user = normalise_phone(user.split(":")[0].split(".")[0])
        return f"{user}@{server}"
    if "@" in value:
        raise InvalidRecipient("unknown JID server; expected @s.whatsapp.net, @g.us, @lid or @newsletter")
    return f"{normalise_phone(value)}@{USER_SERVER}"
