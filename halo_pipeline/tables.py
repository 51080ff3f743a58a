"""The table registry: every warehouse table, its columns and dtypes, its layout and its asset group.

One place answers "which tables exist and what do they hold" for the assets (their metadata and empty
partitions), the DuckDB catalog (one view per table), exports and the tests. Each schema is defined once,
beside the pure transform that produces it (``halo_pipeline.transforms``); tables with no transform (the
landing index, the sync state) are defined here.

Layouts:

* ``player_month`` — one Parquet file per player × month:
  ``warehouse/<table>/player=<xuid>/year=<yyyy>/month=<mm>/data.parquet``;
* ``player`` — one file per player: ``warehouse/<table>/player=<xuid>/data.parquet``;
* ``reference`` — one file: ``warehouse/reference/<table>.parquet``;
* ``global`` — one file for the whole warehouse, not per player: ``warehouse/<table>/data.parquet`` (``players``:
  one row per xuid, whichever owners met them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from halo_pipeline.transforms import analytics as ta
from halo_pipeline.transforms import matches as tm
from halo_pipeline.transforms import people as tp
from halo_pipeline.transforms import reference as tr
from halo_pipeline.transforms.film import ALIASES_SCHEMA
from halo_pipeline.transforms.levelup import DISAGREEMENTS_SCHEMA, LEGACY_SCHEMAS, SOURCE_SCHEMA

Layout = Literal["player_month", "player", "reference", "global"]
Schema = dict[str, pl.DataType]

#: The landing index of a partition (asset ``raw_matches``): one row per history match.
RAW_MATCHES_SCHEMA: Schema = {
    "match_id": pl.Utf8,
    "xuid": pl.Int64,
    "start_time": pl.Datetime("us", "UTC"),
    "stats_status": pl.Utf8,  # landed | failed | not_found
    "skill_status": pl.Utf8,  # landed | not_found | failed | skipped (no human player / stats missing)
    "film_status": pl.Utf8,  # landed | not_found | failed | skipped
    "spnkr_parse_ok": pl.Boolean,  # spnkr's MatchStats model accepted the stats body
    "fetched_in_run": pl.Boolean,  # an API call was made for this match in the run that wrote the row
    "error": pl.Utf8,  # why a body is missing or did not parse (one line), else null
}

#: A player's sync state (asset ``sync_meta``), one row per player. Times are UTC.
SYNC_META_SCHEMA: Schema = {
    "xuid": pl.Int64,
    "last_sync_at": pl.Datetime("us", "UTC"),  # when this row was computed (end of the player's last sync)
    "last_match_id": pl.Utf8,  # newest derived match
    "last_match_at": pl.Datetime("us", "UTC"),
    "total_matches": pl.Int32,  # rows of match_facts
    "failed_matches": pl.Int32,  # history matches whose stats could not be landed (retried by the next sync)
    "watermark": pl.Datetime("us", "UTC"),  # newest match such that every older one is landed and derived
    "months_synced": pl.Int32,
    "sync_status": pl.Utf8,  # ok | incomplete (failures waiting for the next sync) | empty | interrupted
}

ALIASES_TABLE_SCHEMA: Schema = ALIASES_SCHEMA | {"source": pl.Utf8}  # film | profile | levelup

#: The images landed by the ``image_assets`` asset (one row per image: a medal sprite sheet, a medal icon cut
#: from it, a UGC image of a map / map-mode pair / playlist / game variant version, a career rank icon).
IMAGE_ASSETS_SCHEMA: Schema = {
    "family": pl.Utf8,  # medal_sheet | medal_icon | maps | mapModePairs | playlists | ugcGameVariants | career_rank
    "asset_id": pl.Utf8,  # medal name_id, sheet size, UGC asset id, career rank number
    "version_id": pl.Utf8,  # UGC version id; null for medals and career ranks
    "role": pl.Utf8,  # small | medium | extra-large (medals), thumbnail | hero (UGC), RankIcon… (career ranks)
    "source_url": pl.Utf8,  # where it was fetched from (a medal icon: its sheet's)
    "local_path": pl.Utf8,  # relative to the data dir; null when not landed
    "size_bytes": pl.Int64,
    "content_type": pl.Utf8,  # image/png, image/jpeg…, from the bytes
    "width": pl.Int32,
    "height": pl.Int32,
    "status": pl.Utf8,  # landed | not_found (404, not asked again) | failed (retried by the next run)
}


@dataclass(frozen=True)
class Table:
    """A warehouse table: ``name`` (also its asset key), ``schema`` (column → polars dtype), ``layout``,
    ``group`` (the Dagster asset group of the asset that writes it) and ``preview`` (the columns a person reads
    first: the UI's preview of a partition)."""

    name: str
    schema: Schema
    layout: Layout
    group: str
    preview: tuple[str, ...] = ()


#: The columns each table's preview shows (the others are one click away in the catalog).
PREVIEW: dict[str, tuple[str, ...]] = {
    "playlist_translations": ("playlist_id", "name_en"),
    "game_mode_translations": ("name_en", "category"),
    "mode_categories": ("category", "parent"),
    "medal_definitions": ("name_id", "name_en", "type", "difficulty"),
    "match_history": ("start_time", "match_id", "lifecycle_mode", "outcome", "rank"),
    "raw_matches": ("start_time", "match_id", "stats_status", "skill_status", "film_status", "error"),
    "match_facts": ("start_time", "match_id", "outcome", "kills", "deaths", "assists", "kda", "accuracy"),
    "match_participants": ("match_id", "player_id", "team_id", "outcome", "kills", "deaths", "assists", "score"),
    "team_stats": ("match_id", "team_id", "outcome", "score", "kills", "deaths"),
    "medals": ("match_id", "player_id", "name_id", "count"),
    "personal_scores": ("match_id", "player_id", "name_id", "count", "total_personal_score"),
    "player_match_skill": ("match_id", "xuid", "team_mmr", "enemy_team_mmr", "kills", "kills_expected", "csr_post"),
    "highlight_events": ("match_id", "gamertag", "event_type", "time_ms", "medal_name"),
    "xuid_aliases": ("xuid", "gamertag", "source"),
    "ugc_names": ("kind", "public_name", "asset_id"),
    "sessions": ("start_time", "match_count", "wins", "losses", "kills", "deaths", "kd_ratio"),
    "performance_scores": ("start_time", "match_id", "history_matches", "performance_score"),
    "map_stats": ("map_name", "matches", "wins", "kd_ratio", "accuracy", "avg_performance_score"),
    "mode_category_stats": ("mode_category", "matches", "wins", "kd_ratio", "accuracy"),
    "session_stats": ("start_time", "match_count", "kd_ratio", "avg_performance_score"),
    "global_stats": ("matches", "wins", "losses", "kills", "deaths", "kd_ratio", "accuracy"),
    "sync_meta": ("xuid", "watermark", "total_matches", "failed_matches", "sync_status"),
}


def _tables(group: str, layout: Layout, **schemas: Schema) -> dict[str, Table]:
    return {name: Table(name, schema, layout, group, PREVIEW.get(name, tuple(schema)[:6]))
            for name, schema in schemas.items()}


#: Every table, in dependency order.
TABLES: dict[str, Table] = {
    **_tables("reference", "reference", playlist_translations=tr.PLAYLISTS_SCHEMA,
              game_mode_translations=tr.GAME_MODES_SCHEMA, mode_categories=tr.MODE_CATEGORIES_SCHEMA,
              medal_definitions=tr.MEDAL_DEFINITIONS_SCHEMA),
    **_tables("people", "player", friends=tp.FRIENDS_SCHEMA, player_profiles=tp.PLAYER_PROFILES_SCHEMA),
    **_tables("matches", "player_month", match_history=tm.HISTORY_SCHEMA, raw_matches=RAW_MATCHES_SCHEMA),
    # match_facts: the transform's columns, then who played with the owner (derived from the same parse); the
    # tables that can hold rows imported from LevelUp end with a `source` column (api | levelup).
    **_tables("stats", "player_month", match_facts=tm.MATCH_FACTS_SCHEMA | tp.MATCH_PEOPLE_SCHEMA | SOURCE_SCHEMA,
              match_participants=LEGACY_SCHEMAS["match_participants"], team_stats=tm.TEAM_STATS_SCHEMA,
              medals=LEGACY_SCHEMAS["medals"], personal_scores=LEGACY_SCHEMAS["personal_scores"],
              player_match_skill=LEGACY_SCHEMAS["player_match_skill"],
              highlight_events=LEGACY_SCHEMAS["highlight_events"], xuid_aliases=ALIASES_TABLE_SCHEMA,
              levelup_disagreements=DISAGREEMENTS_SCHEMA),
    **_tables("analytics", "player_month", ugc_names=ta.UGC_NAMES_SCHEMA, sessions=ta.SESSIONS_SCHEMA,
              performance_scores=ta.PERFORMANCE_SCHEMA, map_stats=ta.MAP_STATS_SCHEMA,
              mode_category_stats=ta.MODE_CATEGORY_STATS_SCHEMA, session_stats=ta.SESSION_STATS_SCHEMA,
              global_stats=ta.GLOBAL_STATS_SCHEMA, teammates=tp.TEAMMATES_SCHEMA),
    **_tables("sync", "player", sync_meta=SYNC_META_SCHEMA),
    **_tables("people", "global", players=tp.PLAYERS_SCHEMA),
    **_tables("images", "reference", image_assets=IMAGE_ASSETS_SCHEMA),
}

#: The tables derived from one parse of each landed stats body (and its skill body), in one step.
STATS_TABLES = ("match_facts", "match_participants", "team_stats", "medals", "personal_scores",
                "player_match_skill")


def schema(name: str) -> Schema:
    """The declared columns of table ``name``.

    Raises:
        KeyError: no such table.
    """
    return TABLES[name].schema


def names(layout: Layout | None = None, group: str | None = None) -> list[str]:
    """Table names, in registry order, optionally of one layout and/or asset group."""
    return [t.name for t in TABLES.values()
            if (layout is None or t.layout == layout) and (group is None or t.group == group)]
