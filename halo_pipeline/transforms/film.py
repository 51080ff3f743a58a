"""Film highlight-event chunks → typed polars DataFrames.

Decoding uses :func:`halo_pipeline.transforms.film_decoder.read_highlight_events`: event-for-event the output
of spnkr's reader (:func:`spnkr.film.highlight_events.read`, the reference for these binary chunks, which the
tests compare against), failing on the same chunks, at ~5–12 ms of CPU per match instead of ~150 ms (callers
still keep the frame, so a re-derive never decodes twice).
"""

from __future__ import annotations

import polars as pl

from halo_pipeline.transforms._common import rows_frame
from halo_pipeline.transforms.film_decoder import HighlightEventsError, read_highlight_events

HIGHLIGHT_EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "xuid": pl.Int64,
    "gamertag": pl.Utf8,
    "event_type": pl.Utf8,
    "time_ms": pl.Int32,
    "medal_value": pl.Int16,
    "medal_name": pl.Utf8,
    "type_hint": pl.Int16,
    "is_medal": pl.Boolean,
}

ALIASES_SCHEMA: dict[str, pl.DataType] = {"xuid": pl.Int64, "gamertag": pl.Utf8}


class FilmDecodeError(ValueError):
    """A highlight-events chunk that cannot be read (exactly those spnkr's reader cannot read); the message is
    one line naming the match and the cause."""


def highlight_events(match_id: str, chunk: bytes, film_major_version: int) -> pl.DataFrame:
    """Decode one match's highlight-events chunk (the gzip/zlib-compressed bytes as downloaded).

    Args:
        match_id: The match the chunk belongs to (copied into every row).
        chunk: The compressed chunk bytes.
        film_major_version: ``FilmMajorVersion`` from the film manifest (the byte layout depends on it).

    Returns:
        One row per event, in spnkr's order (:data:`HIGHLIGHT_EVENTS_SCHEMA`): match_id Utf8; xuid Int64;
        gamertag Utf8 (as written in the film); event_type Utf8 (``kill``/``death``/``medal``/``mode``);
        time_ms Int32 (milliseconds since match start); medal_value Int16 (raw medal byte, meaningful for
        medal events); medal_name Utf8 (spnkr's name for medal events, else null); type_hint Int16 (raw byte
        from which the type is inferred); is_medal Boolean.

    Raises:
        FilmDecodeError: the chunk is not compressed data, is truncated, or holds an event that cannot be read
            (no end marker, shorter than 60 bytes, unknown type, gamertag not UTF-16): where spnkr's reader
            raises.
    """
    try:
        events = read_highlight_events(chunk, int(film_major_version))
    except Exception as exc:  # HighlightEventsError (its reason: zlib, no_end_marker, event_type…), or a bug
        if isinstance(exc, HighlightEventsError):
            kind = exc.reason
        else:
            kind = type(exc).__name__
            if type(exc).__module__ != "builtins":
                kind = f"{type(exc).__module__}.{kind}"
        detail = " ".join(str(exc).split()) or kind
        raise FilmDecodeError(
            f"match {match_id}: unreadable highlight-events chunk (film v{film_major_version}, "
            f"{len(chunk)} bytes): {kind}: {detail}"
        ) from exc
    rows = [
        {
            "match_id": match_id,
            "xuid": event.xuid,
            "gamertag": event.gamertag,
            "event_type": event.event_type,
            "time_ms": event.time_ms,
            "medal_value": event.medal_value,
            "medal_name": event.medal_name,
            "type_hint": event.type_hint,
            "is_medal": event.is_medal,
        }
        for event in events
    ]
    return rows_frame(rows, HIGHLIGHT_EVENTS_SCHEMA)


def highlight_events_or_error(job: tuple[str, bytes, int]) -> pl.DataFrame | str:
    """:func:`highlight_events` of ``(match_id, chunk, film_major_version)``, or the one-line
    :class:`FilmDecodeError` message. The worker function of the film decoding pool: it lives here, in a
    module that imports neither Dagster nor the pipeline, so that a spawned worker starts in ≈ 1 s."""
    try:
        return highlight_events(*job)
    except FilmDecodeError as exc:
        return str(exc)


def aliases_from_events(df: pl.DataFrame) -> pl.DataFrame:
    """Distinct ``(xuid Int64, gamertag Utf8)`` pairs seen in a highlight-events frame, sorted by xuid then
    gamertag (a player renamed between matches yields one row per name). Empty gamertags are dropped."""
    if df.is_empty():
        return pl.DataFrame(schema=ALIASES_SCHEMA)
    return (
        df.select(pl.col("xuid").cast(pl.Int64), pl.col("gamertag").cast(pl.Utf8))
        .filter(pl.col("xuid").is_not_null() & pl.col("gamertag").is_not_null() & (pl.col("gamertag") != ""))
        .unique()
        .sort("xuid", "gamertag")
    )
