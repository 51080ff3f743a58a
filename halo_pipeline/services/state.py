"""A player's sync state (LevelUp's ``sync_meta``) and its **watermark**, computed from the warehouse alone.

The watermark is the start time of the newest match such that every history match at or before it is
landed *and* derived. A match that failed (``raw_matches.stats_status``, ``skill_status`` or ``film_status`` is
``"failed"``) or whose derived row is missing holds the watermark just below it, so the next delta sync
re-requests its month: one failed run leaves no gap. A stats body the API answers 404 for (an expired match) is
final and does not hold it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from halo_pipeline import tables
from halo_pipeline.months import Month
from halo_pipeline.storage.files import read_parquet, write_parquet_atomic
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import SYNC_META_SCHEMA

SYNC_META = "sync_meta"
#: A player whose last sync is older than this is stale (the ``player_sync_fresh`` check warns).
SYNC_MAX_AGE = timedelta(hours=48)

def state_path(wh: Warehouse, xuid: int) -> Path:
    """``warehouse/sync_meta/player=<xuid>/data.parquet`` (one row)."""
    return wh.root / SYNC_META / f"player={xuid}" / "data.parquet"


def compute_state(wh: Warehouse, xuid: int, now: datetime | None = None) -> pl.DataFrame:
    """The sync_meta row of ``xuid`` from all its ``raw_matches`` and ``match_facts`` partitions."""
    index = wh.read_table("raw_matches", xuid, schema={"match_id": pl.Utf8, "start_time": pl.Datetime("us", "UTC"),
                                                          "stats_status": pl.Utf8, "skill_status": pl.Utf8,
                                                          "film_status": pl.Utf8})
    facts = wh.read_table("match_facts", xuid, schema={"match_id": pl.Utf8, "start_time": pl.Datetime("us", "UTC")})
    derived = set(facts["match_id"].to_list())
    blocking = index.filter(
        (pl.col("stats_status") == "failed") | (pl.col("skill_status") == "failed")
        | (pl.col("film_status") == "failed")
        | ((pl.col("stats_status") == "landed") & ~pl.col("match_id").is_in(list(derived)))
    )
    if blocking.height:
        oldest_gap = blocking["start_time"].min()
        before = index.filter(pl.col("start_time") < oldest_gap)["start_time"]
        watermark = before.max() if before.len() else None
    else:
        watermark = index["start_time"].max() if index.height else None
    newest = facts.sort("start_time").tail(1)
    failed = int((index["stats_status"] == "failed").sum())
    return pl.DataFrame({
        "xuid": [xuid],
        "last_sync_at": [now or datetime.now(UTC)],
        "last_match_id": [newest["match_id"][0] if newest.height else None],
        "last_match_at": [newest["start_time"][0] if newest.height else None],
        "total_matches": [facts.height],
        "failed_matches": [failed],
        "watermark": [watermark],
        "months_synced": [len(wh.partition_files("raw_matches", xuid))],
        "sync_status": ["incomplete" if blocking.height else ("ok" if index.height else "empty")],
    }, schema=SYNC_META_SCHEMA)


def write_state(wh: Warehouse, xuid: int) -> pl.DataFrame:
    """Recompute and store the sync_meta row of ``xuid`` (atomic); returns it."""
    row = compute_state(wh, xuid)
    write_parquet_atomic(row, state_path(wh, xuid))
    return row


def hold_watermark(wh: Warehouse, xuid: int, first: Month) -> datetime | None:
    """A run over the months of ``xuid`` from ``first`` on was interrupted (its process died): lower the stored
    watermark below ``first`` — to the newest ``raw_matches`` match before it, or none — so that the next delta
    sync plans these months again, and set ``sync_status`` to ``interrupted``. Returns the watermark in force.
    A player with no sync state is left alone (its next sync is a first import anyway). Idempotent."""
    path = state_path(wh, xuid)
    if not path.exists():
        return None
    row = read_parquet(path)
    watermark = row["watermark"][0]
    if watermark is not None and watermark < first.start:
        return watermark
    index = wh.read_table("raw_matches", xuid, schema={"start_time": pl.Datetime("us", "UTC")})
    before = index.filter(pl.col("start_time") < first.start)["start_time"]
    held = before.max() if before.len() else None
    write_parquet_atomic(row.with_columns(watermark=pl.lit(held, SYNC_META_SCHEMA["watermark"]),
                                          sync_status=pl.lit("interrupted")), path)
    return held


def read_watermark(wh: Warehouse, xuid: int) -> tuple[bool, datetime | None]:
    """``(known, watermark)``: ``known`` is False for a player never synced (a full import is due)."""
    path = state_path(wh, xuid)
    if not path.exists():
        return False, None
    return True, read_parquet(path, columns=["watermark"])["watermark"][0]


def last_syncs(wh: Warehouse, xuids: Iterable[int]) -> dict[int, datetime | None]:
    """When each player was last synced (UTC): ``sync_meta.last_sync_at`` when the sync state exists, else
    the newest ``raw_matches`` partition file's modification time; None when never synced."""
    out: dict[int, datetime | None] = {}
    for xuid in xuids:
        state = state_path(wh, xuid)
        when = None
        if state.exists():
            when = read_parquet(state)["last_sync_at"].max()
        if when is None:
            files = wh.partition_files("raw_matches", xuid)
            when = datetime.fromtimestamp(max(p.stat().st_mtime for p in files), UTC) if files else None
        out[xuid] = when
    return out


def stale_players(last: dict[int, datetime | None], now: datetime, max_age: timedelta = SYNC_MAX_AGE) -> dict:
    """``{xuid: last sync or None}`` of the players not synced within ``max_age`` before ``now``."""
    return {x: t for x, t in last.items() if t is None or now - t > max_age}


#: Reference tables older than this are refreshed by the next sync (the API's medal metadata may have changed).
REFERENCE_MAX_AGE = timedelta(days=1)


def reference_up_to_date(wh: Warehouse, source_dir: Path, now: datetime | None = None,
                         max_age: timedelta = REFERENCE_MAX_AGE) -> bool:
    """Whether every reference table was written less than ``max_age`` ago and after every reference file of
    ``source_dir`` last changed (so a sync can skip the reference job). Local warehouses only: ``False`` on
    object storage."""
    if wh.remote:
        return False
    written = [p.stat().st_mtime if p.exists() else None
               for p in map(wh.reference_path, tables.names(group="reference"))]
    if None in written:
        return False
    sources = [p.stat().st_mtime for p in source_dir.rglob("*.json")] if source_dir.is_dir() else []
    oldest = min(written)
    return (now or datetime.now(UTC)).timestamp() - oldest < max_age.total_seconds() and all(
        s < oldest for s in sources)
