"""Identifiers of the field: xuid and gamertag (months: :mod:`halo_pipeline.months`).

Every function here raises :class:`InvalidInput` (a ``ValueError``) with a one-line message on bad input.
"""

from __future__ import annotations

import re

XUID_RE = re.compile(r"^\d{15,17}$")
_WRAPPED_XUID_RE = re.compile(r"^xuid\((\d+)\)$", re.IGNORECASE)
# Xbox gamertags: 1-15 characters of letters, digits and single spaces (modern gamertags may carry a #suffix).
GAMERTAG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9 ]{0,14}(#\d{1,4})?$")


class InvalidInput(ValueError):
    """Bad user input: the message is one line that says what is wrong and with which value."""


def parse_xuid(value: str | int) -> int:
    """Return the xuid of ``value`` (``2535445291321133``, ``"2535445291321133"`` or ``"xuid(2535…)"``).

    Raises:
        InvalidInput: not 15–17 digits.
    """
    text = str(value).strip()
    wrapped = _WRAPPED_XUID_RE.match(text)
    if wrapped:
        text = wrapped.group(1)
    if not XUID_RE.match(text):
        raise InvalidInput(f"invalid xuid {value!r}: expected 15 to 17 digits, e.g. 2535445291321133")
    return int(text)


def looks_like_xuid(value: str) -> bool:
    """True when ``value`` is written as an xuid (digits or ``xuid(…)``), whether valid or not."""
    text = value.strip()
    return text.isdigit() or bool(_WRAPPED_XUID_RE.match(text))


def check_gamertag(value: str) -> str:
    """Return ``value`` stripped when it is a well-formed gamertag.

    Raises:
        InvalidInput: empty, too long, or with characters a gamertag cannot hold (``/``, ``..``, ``|``…).
    """
    text = value.strip()
    if not GAMERTAG_RE.match(text):
        raise InvalidInput(
            f"invalid gamertag {value!r}: 1-15 letters, digits or spaces, starting with a letter"
        )
    return text
