"""The table registry: every warehouse table, its columns and dtypes, its layout and its asset group.

One place answers "which tables exist and what do they hold" for the assets (their metadata and empty
partitions), the DuckDB catalog (one view per table), exports and the tests. Each schema is defined once,
beside the pure transform that produces it (``halo_pipeline.transforms``); tables with no transform (the
landing index, the sync state) are defined here.

Layouts:

* ``player_month`` — one Parquet file per player × month:
  ``warehouse/<table>/player=<xuid>/year=<yyyy>/month=<mm>/data.parquet``;
* ``player`` — one file per player: ``warehouse/<table>/player=<xuid>/data.parquet``;
* ``reference`` — one file: ``warehouse/reference/<table>.parquet``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from halo_pipeline.transforms import analytics as ta
from halo_pipeline.transforms import matches as tm
from halo_pipeline.transforms import reference as tr
from halo_pipeline.transforms.film import ALIASES_SCHEMA, HIGHLIGHT_EVENTS_SCHEMA
from halo_pipeline.transforms.skill import PLAYER_MATCH_SKILL_SCHEMA

Layout = Literal["player_month", "player", "reference"]
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

ALIASES_TABLE_SCHEMA: Schema = ALIASES_SCHEMA | {"source": pl.Utf8}


@dataclass(frozen=True)
class Table:
    """A warehouse table: ``name`` (also its asset key), ``schema`` (column → polars dtype), ``layout`` and
    ``group`` (the Dagster asset group of the asset that writes it)."""

    name: str
    schema: Schema
    layout: Layout
    group: str


def _tables(group: str, layout: Layout, **schemas: Schema) -> dict[str, Table]:
    return {name: Table(name, schema, layout, group) for name, schema in schemas.items()}


#: Every table, in dependency order.
TABLES: dict[str, Table] = {
    **_tables("reference", "reference", playlist_translations=tr.PLAYLISTS_SCHEMA,
              game_mode_translations=tr.GAME_MODES_SCHEMA, mode_categories=tr.MODE_CATEGORIES_SCHEMA,
              medal_definitions=tr.MEDAL_DEFINITIONS_SCHEMA),
    **_tables("matches", "player_month", match_history=tm.HISTORY_SCHEMA, raw_matches=RAW_MATCHES_SCHEMA),
    **_tables("stats", "player_month", match_facts=tm.MATCH_FACTS_SCHEMA,
              match_participants=tm.MATCH_PARTICIPANTS_SCHEMA, team_stats=tm.TEAM_STATS_SCHEMA,
              medals=tm.MEDALS_SCHEMA, personal_scores=tm.PERSONAL_SCORES_SCHEMA,
              player_match_skill=PLAYER_MATCH_SKILL_SCHEMA, highlight_events=HIGHLIGHT_EVENTS_SCHEMA,
              xuid_aliases=ALIASES_TABLE_SCHEMA),
    **_tables("analytics", "player_month", ugc_names=ta.UGC_NAMES_SCHEMA, sessions=ta.SESSIONS_SCHEMA,
              performance_scores=ta.PERFORMANCE_SCHEMA, map_stats=ta.MAP_STATS_SCHEMA,
              mode_category_stats=ta.MODE_CATEGORY_STATS_SCHEMA, session_stats=ta.SESSION_STATS_SCHEMA,
              global_stats=ta.GLOBAL_STATS_SCHEMA),
    **_tables("sync", "player", sync_meta=SYNC_META_SCHEMA),
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
