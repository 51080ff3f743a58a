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


#: Longest nickname a friend may be given (characters).
MAX_NICKNAME = 32


def check_nickname(value: str) -> str:
    """Return a friend's nickname stripped: 1–:data:`MAX_NICKNAME` printable characters (letters of any script,
    digits, punctuation, spaces).

    Raises:
        InvalidInput: empty, too long, or holding control characters (newlines, tabs, escapes…).
    """
    text = value.strip()
    if any(not ch.isprintable() for ch in text):
        raise InvalidInput(f"invalid nickname {value!r}: control characters are not allowed")
    if not 1 <= len(text) <= MAX_NICKNAME:
        raise InvalidInput(f"invalid nickname {value!r}: 1 to {MAX_NICKNAME} characters")
    return text
