"""Regenerates chalicelib/messaging/calling_codes.py from libphonenumber's metadata.

    .venv/bin/python -m devstack.generate_calling_codes

The API checks phone numbers against this table instead of importing `phonenumbers`
(48 MB installed; too big for the Lambda package and slow to import). The runner, which
has `phonenumbers` anyway (neonize needs it), is where the full library is used.
tests/unit/test_recipients.py fails when the table drifts from the installed library.
"""
from __future__ import annotations

from pathlib import Path

import phonenumbers
from phonenumbers import PhoneMetadata

TARGET = Path(__file__).resolve().parent.parent / "chalicelib" / "messaging" / "calling_codes.py"


def table() -> dict[int, tuple[tuple[int, ...], tuple[int, ...], str]]:
    result = {}
    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        # as libphonenumber does: the calling code's main region decides
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(
            code, phonenumbers.region_code_for_country_code(code))
        if metadata is None:
            continue
        lengths = tuple(sorted(n for n in (metadata.general_desc.possible_length or ()) if n > 0))
        local_only = tuple(sorted(metadata.general_desc.possible_length_local_only or ()))
        # a number written with its national prefix after the calling code ("+1 1 415...")
        # is possible once the prefix is stripped, as libphonenumber's parser does
        prefix = metadata.national_prefix_for_parsing or metadata.national_prefix or ""
        result[code] = (lengths, local_only, prefix)
    return result


def render() -> str:
    rows = "\n".join(f"    {code}: {lengths!r}," for code, lengths in table().items())
    return (
        '"""Country calling codes and the possible lengths of their national numbers.\n\n'
        f"Generated from libphonenumber {phonenumbers.__version__} by devstack/generate_calling_codes.py;\n"
        'do not edit by hand."""\n\n'
        f"LIBPHONENUMBER_VERSION = {phonenumbers.__version__!r}\n\n"
        "# calling code: (possible national-number lengths, lengths possible only locally,\n"
        "#                national prefix pattern, stripped when present)\n"
        f"NATIONAL_NUMBER_LENGTHS: dict[int, tuple[tuple[int, ...], tuple[int, ...], str]] = {{\n{rows}\n}}\n"
    )


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")
