"""Small, fast parsers shared by the transforms (no polars/pydantic per value)."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

import polars as pl

UTC_US = pl.Datetime("us", "UTC")

# ISO-8601 duration as the Halo API writes it: "PT9M9.4211615S", "PT0S", "P1DT2H" (days are allowed, years/months
# are not: they have no fixed length in seconds).
_DURATION_RE = re.compile(
    r"^(-)?P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


@lru_cache(maxsize=65536)
def _duration_cached(text: str) -> float | None:
    match = _DURATION_RE.match(text)
    if match is None or text in ("P", "PT", "-P", "-PT"):
        return None
    sign, days, hours, minutes, seconds = match.groups()
    total = 0.0
    if days:
        total += float(days) * 86400.0
    if hours:
        total += float(hours) * 3600.0
    if minutes:
        total += float(minutes) * 60.0
    if seconds:
        total += float(seconds)
    return -total if sign else total


def duration_seconds(text: str | None) -> float | None:
    """Seconds in an ISO-8601 duration (``"PT9M9.4211615S"`` → 549.4211615); None for None or unparseable text.

    A regular expression plus an LRU cache (Halo durations repeat a lot: ``PT0S``…), no generic parser.
    """
    if not text or not isinstance(text, str):
        return None
    return _duration_cached(text)


def parse_time(text: str | None) -> datetime | None:
    """A UTC ``datetime`` from the API's ISO-8601 timestamps (``2025-01-29T04:20:33.441Z``, up to 7 fraction
    digits); None for None or unparseable text."""
    if not text or not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def unwrap_player_id(player_id: str | None) -> int | None:
    """The xuid of ``"xuid(2535…)"``; None for bots (``"bid(…)"``) or anything else."""
    if player_id and player_id.startswith("xuid(") and player_id.endswith(")"):
        digits = player_id[5:-1]
        if digits.isdigit():
            return int(digits)
    return None


def frame(columns: dict[str, list], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """One DataFrame from plain column lists with the declared dtypes.

    Built strictly; if a value does not fit its declared type (e.g. an enum value outside Int8 sent by a newer
    API), the frame is rebuilt non-strictly so that value becomes null instead of losing the whole batch (the raw
    landing keeps the original body).
    """
    try:
        return pl.DataFrame(columns, schema=schema)
    except (TypeError, OverflowError, pl.exceptions.PolarsError):
        return pl.DataFrame(columns, schema=schema, strict=False)


def rows_frame(rows: list[dict], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """One DataFrame from row dicts (missing keys → null, extra keys ignored) with the declared dtypes.

    Same overflow rule as :func:`frame`: a value that does not fit its dtype becomes null.
    """
    try:
        return pl.DataFrame(rows, schema=schema)
    except (TypeError, OverflowError, pl.exceptions.PolarsError):
        return pl.DataFrame({name: [row.get(name) for row in rows] for name in schema}, schema=schema, strict=False)


def empty_columns(schema: dict[str, pl.DataType]) -> dict[str, list]:
    """A dict of empty lists, one per column of ``schema`` (in order)."""
    return {name: [] for name in schema}
