"""Recipient parsing, and the calling-code table kept equal to libphonenumber's rule."""
from __future__ import annotations

import random

import phonenumbers
import pytest

from chalicelib.messaging import calling_codes
from chalicelib.messaging.recipients import InvalidRecipient, is_possible_e164, normalise_recipient
from devstack.generate_calling_codes import render


def test_the_generated_table_matches_the_installed_library():
    assert calling_codes.LIBPHONENUMBER_VERSION == phonenumbers.__version__
    assert (calling_codes.__file__ and open(calling_codes.__file__).read()) == render(), \
        "run: .venv/bin/python -m devstack.generate_calling_codes"


def test_same_verdict_as_libphonenumber_on_random_numbers():
    rng = random.Random(20261129)
    samples = ["".join(rng.choice("0123456789") for _ in range(rng.randint(7, 15))) for _ in range(20000)]
    samples = [s for s in samples if s[0] != "0"]

    def library(digits):
        try:
            return phonenumbers.is_possible_number(phonenumbers.parse("+" + digits, None))
        except phonenumbers.NumberParseException:
            return False

    verdicts = [(s, is_possible_e164(s), library(s)) for s in samples]
    assert sum(1 for _, ours, _ in verdicts if ours) > 1000  # the sample has both kinds
    assert [v for v in verdicts if v[1] != v[2]] == []


@pytest.mark.parametrize("text,jid", [
    ("5511912345678", "5511912345678@s.whatsapp.net"),
    ("+55 (11) 91234-5678", "5511912345678@s.whatsapp.net"),
    ("+1 415 555 2671", "14155552671@s.whatsapp.net"),
    ("5511912345678@s.whatsapp.net", "5511912345678@s.whatsapp.net"),
    ("5511912345678:12@s.whatsapp.net", "5511912345678@s.whatsapp.net"),
    ("120363041234567890@g.us", "120363041234567890@g.us"),
    ("123456789012345@lid", "123456789012345@lid"),
])
def test_accepted_forms(text, jid):
    assert normalise_recipient(text) == jid


@pytest.mark.parametrize("text", ["12", "+999 1234", "abc", "5511@example.com", "+55 11 9", "0044 20 7946 0958"])
def test_refused_forms(text):
    with pytest.raises(InvalidRecipient):
        normalise_recipient(text)
