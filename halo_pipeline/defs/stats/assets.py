"""Derived assets: each re-derives a player × month partition from raw landing with zero API calls, so a
backfill (UI, ``dagster asset materialize --partition-range``, ``halo-pipeline backfill``) is cheap."""

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import polars as pl

from halo_pipeline.defs.common import (
    FOLLOWS_UPSTREAM,
    FOLLOWS_UPSTREAM_AND_FRIENDS,
    SINGLE_RUN,
    each_partition,
    record_partitions,
)
from halo_pipeline.partitions import PLAYERS, player_month_partitions
from halo_pipeline.services import derive
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import STATS_TABLES

STATS_GROUP = "stats"
#: Threads writing one step's partition files (Parquet encoding releases the GIL, so writing overlaps deriving).
WRITER_THREADS = 4

_RAW = "Source: raw landing of halostats `GET /hi/matches/{id}/stats` (zero API calls)."
_SOURCE = _RAW + (" Column `source`: `api`, or `levelup` for a match imported from LevelUp whose API body is not "
                  "landed (`halo-pipeline import levelup`; the API's rows replace them once it is).")
_DESCRIPTIONS = {
    "match_facts": (
        "The owner's row of each match of the partition: when, where (playlist, map, map-mode pair, game "
        "variant), outcome (Int8: 1 tie, 2 win, 3 loss, 4 left), rank, and the owner's match totals over all "
        "their team entries: kills, deaths, assists (Int16), shots_fired/shots_hit (Int32), accuracy (Float32, %), "
        "kda = kills + assists/3 − deaths, kd_ratio = kills / max(deaths, 1), scores, damage, medal_count; "
        "start_time/end_time UTC, durations in seconds (Float32); who played with the owner: known_teammates "
        "(Int16: humans on the owner's team — a shared TeamId in any PlayerTeamStats entry — who are declared "
        "friends of the owner or registered players), with_friends (Boolean), friends_xuids (List(Int64): the "
        "owner's declared friends in the match, either team; from the `friends` table at derive time, so a "
        "changed friend list shows after a re-derive). " + _SOURCE),
    "match_participants": (
        "Every player (humans and bots) of each match of the partition: match_id, player_id, xuid (Int64, null "
        "for bots), team_id (last team), team_ids (List(Int8): every team the player was on), outcome, rank, "
        "kills, deaths, assists, shots_fired, shots_hit, accuracy, score, personal_score, damage, time played (s) "
        "— totals over each player's team entries. " + _SOURCE),
    "team_stats": (
        "One row per team of each match of the partition: team_id, outcome, rank, score, kills, deaths, "
        "assists, personal_score (the API's `Teams[]`). " + _RAW),
    "medals": (
        "Medals earned by every player of each match of the partition: match_id, player_id, xuid, name_id "
        "(Int64, join `medal_definitions`), count (Int16), total_personal_score (Int32). " + _SOURCE),
    "personal_scores": (
        "Personal-score awards of every player of each match (CoreStats.PersonalScores): match_id, player_id, "
        "xuid, name_id, count, total_personal_score. " + _SOURCE),
    "player_match_skill": (
        "Skill of each human player of each match (skill `GET /hi/matches/{id}/skill`, landed): team MMR and "
        "the enemy team's MMR (Float32), kills/deaths with their expected values and standard deviations, CSR "
        "before/after (Int32, null when unranked) with tier and sub-tier. Custom games have no skill. "
        "Zero API calls."),
}


def write_partitions(wh: Warehouse, frames: Iterable[tuple[int, str, dict[str, pl.DataFrame]]]
                     ) -> dict[str, list[tuple[int, str, pl.DataFrame]]]:
    """Replace each ``(xuid, month, {table: frame})`` partition file, from :data:`WRITER_THREADS` threads while
    the next partitions are derived; returns ``{table: [(xuid, month, frame), …]}`` in order. Every write is
    atomic; the first failed write is raised once all have ended."""
    out: dict[str, list[tuple[int, str, pl.DataFrame]]] = {}
    with ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="write-partitions") as writers:
        writes = []
        for xuid, month, tables in frames:
            for table, df in tables.items():
                writes.append(writers.submit(wh.write_partition, table, xuid, month, df))
                out.setdefault(table, []).append((xuid, month, df))
        for write in writes:
            write.result()
    return out


@dg.multi_asset(
    group_name=STATS_GROUP,
    partitions_def=player_month_partitions,
    backfill_policy=SINGLE_RUN,
    can_subset=True,
    specs=[dg.AssetSpec(name, deps=["raw_matches", *(["friends"] if name == "match_facts" else [])],
                        kinds={"polars", "parquet"}, description=_DESCRIPTIONS[name],
                        automation_condition=FOLLOWS_UPSTREAM_AND_FRIENDS if name == "match_facts"
                        else FOLLOWS_UPSTREAM) for name in STATS_TABLES],
)
def stats_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """The stats tables of each partition from ONE read and parse of each landed body (the selected tables
    only): in the process pool for a large run (:func:`halo_pipeline.services.derive.derive_stats_tables`)."""
    wh = warehouse.warehouse()
    selected = [key.path[-1] for key in context.selected_asset_keys]
    registered = context.instance.get_dynamic_partitions(PLAYERS)
    try:
        written = write_partitions(wh, derive.derive_stats_tables(wh, each_partition(context), selected, registered))
    except FileNotFoundError as exc:
        raise dg.Failure(str(exc)) from None
    for table in selected:
        yield record_partitions(context, table, written.get(table, []))


def _derived_asset(name: str, derive_one: Callable[[Warehouse, int, str], pl.DataFrame], description: str,
                   deps: list[str]) -> dg.AssetsDefinition:
    """A partitioned asset writing ``derive_one(warehouse, xuid, month)`` of each partition of the run."""

    @dg.asset(name=name, group_name=STATS_GROUP, partitions_def=player_month_partitions, backfill_policy=SINGLE_RUN,
              deps=deps, kinds={"polars", "parquet"}, description=description,
              automation_condition=FOLLOWS_UPSTREAM)
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.warehouse()
        try:
            written = write_partitions(wh, ((x, m, {name: derive_one(wh, x, m)}) for x, m in each_partition(context)))
        except FileNotFoundError as exc:
            raise dg.Failure(str(exc)) from None
        return record_partitions(context, name, written.get(name, []))

    return _asset


highlight_events = _derived_asset(
    "highlight_events",
    lambda wh, xuid, month: derive.partition_highlight_events(wh, xuid, month, warn=dg.get_dagster_logger().warning),
    "Highlight events of each match's theater film (the last film chunk, landed): match_id, xuid, "
    "gamertag, event_type (kill | death | medal | mode), time_ms (Int32, ms since match start), "
    "medal_value, medal_name — decoded as spnkr's film reader does (film_decoder, ~20× faster), in a process "
    "pool for many chunks; source `api`. A match imported from LevelUp whose film was never landed (expired) "
    "keeps LevelUp's events (source `levelup`). Zero API calls.",
    deps=["raw_matches"],
)
xuid_aliases = _derived_asset(
    "xuid_aliases", derive.derive_aliases,
    "Gamertags of the xuids seen in the partition (a gamertag is an alias that can change): xuid (Int64), "
    "gamertag (Utf8), source (`film`: highlight events; `profile`: landed profile look-ups). Zero API calls.",
    deps=["highlight_events", "match_participants"],
)
