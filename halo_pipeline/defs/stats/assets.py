"""Derived assets: each re-derives a player × month partition from raw landing with zero API calls, so a
backfill (UI, ``dagster asset materialize --partition-range``, ``halo-pipeline backfill``) is cheap."""


from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import polars as pl

from halo_pipeline.api.resource import WarehouseResource
from halo_pipeline.defs.common import SINGLE_RUN, frame_metadata, run_partitions
from halo_pipeline.defs.matches.assets import raw_matches
from halo_pipeline.defs.stats import raw, single_pass
from halo_pipeline.partitions import partition_key, player_month_partitions
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms import matches as tm
from halo_pipeline.transforms.film import ALIASES_SCHEMA, HIGHLIGHT_EVENTS_SCHEMA, aliases_from_events
from halo_pipeline.transforms.skill import PLAYER_MATCH_SKILL_SCHEMA

STATS_GROUP = "stats"

#: ``derive(warehouse, owner xuid, month) -> DataFrame`` of one partition
Derive = Callable[[Warehouse, int, str], pl.DataFrame]


#: Declared columns of every derived table, filled by :func:`derived_asset` (the catalog uses them).
SCHEMAS: dict[str, dict[str, pl.DataType]] = {}
#: The pure derivation of every derived table (what its asset runs per partition, without Dagster).
DERIVES: dict[str, Derive] = {}


def from_single_pass(table: str) -> Derive:
    """A :data:`Derive` of a table sharing one read and parse of the landed bodies with the run's other stats
    tables, in the process pool for a large run (:mod:`halo_pipeline.defs.stats.single_pass`)."""
    return lambda wh, xuid, month: single_pass.stats_table(wh, xuid, month, table)


def derive_partitions(wh: Warehouse, table: str, partitions: Iterable[tuple[int, str]]
                      ) -> list[tuple[int, str, pl.DataFrame]]:
    """Derive ``table`` for each ``(xuid, month)`` partition and replace its Parquet file; returns
    ``(xuid, month, frame)`` in order. Within a :func:`single_pass.run_scope`, a stats table of a large run is
    first submitted to the process pool (:func:`single_pass.prefetch`).

    Files are written by a few threads (Parquet encoding releases the GIL), so writing overlaps deriving the
    next partitions; every write is atomic, and the first failed write is raised once all have ended.
    """
    partitions = list(partitions)
    if table in single_pass.TABLES:
        single_pass.prefetch(wh, partitions)
    derive = DERIVES[table]
    out: list[tuple[int, str, pl.DataFrame]] = []
    with ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix=f"write-{table}") as writers:
        writes = []
        for xuid, month in partitions:
            df = derive(wh, xuid, month)
            writes.append(writers.submit(wh.write_partition, table, xuid, month, df))
            out.append((xuid, month, df))
        for write in writes:
            write.result()
    return out


#: Threads writing one asset's partition files.
WRITER_THREADS = 4


def derived_asset(name: str, schema: dict, derive: Derive, description: str, deps=(raw_matches,)):
    """A partitioned asset writing ``derive(…)`` of each partition of the run to its Parquet file."""
    SCHEMAS[name] = schema
    DERIVES[name] = derive

    @dg.asset(
        name=name,
        group_name=STATS_GROUP,
        partitions_def=player_month_partitions,
        backfill_policy=SINGLE_RUN,
        deps=list(deps),
        kinds={"polars", "parquet"},
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.warehouse()
        partitions = [(x, m) for x, months in run_partitions(context).items() for m in months]
        # The assets this run materializes (``context.run.asset_selection`` is empty for a whole-job run).
        selected = {key.path[-1] for key in context.job_def.asset_layer.selected_asset_keys}
        with single_pass.run_scope(context.run_id, selected):
            derived = derive_partitions(wh, name, partitions)
        rows = {str(partition_key(xuid, month)): df.height for xuid, month, df in derived}
        frames = [df for *_, df in derived]
        everything = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema)
        return dg.MaterializeResult(metadata=frame_metadata(everything, rows))

    return _asset


_SOURCE = "Source: raw landing of halostats `GET /hi/matches/{id}/stats` (zero API calls)."

match_facts = derived_asset(
    "match_facts", tm.MATCH_FACTS_SCHEMA,
    from_single_pass("match_facts"),
    "The owner's row of each match of the partition: when, where (playlist, map, map-mode pair, game "
    "variant), outcome (Int8: 1 tie, 2 win, 3 loss, 4 left), rank, and the owner's match totals over all "
    "their team entries: kills, deaths, assists (Int16), shots_fired/shots_hit (Int32), accuracy (Float32, %), "
    "kda = kills + assists/3 − deaths, kd_ratio = kills / max(deaths, 1), scores, damage, medal_count; "
    "start_time/end_time UTC, durations in seconds (Float32). " + _SOURCE,
)
match_participants = derived_asset(
    "match_participants", tm.MATCH_PARTICIPANTS_SCHEMA,
    from_single_pass("match_participants"),
    "Every player (humans and bots) of each match of the partition: match_id, player_id, xuid (Int64, null "
    "for bots), team_id, outcome, rank, kills, deaths, assists, shots_fired, shots_hit, accuracy, score, "
    "personal_score, damage, time played (s) — totals over each player's team entries. " + _SOURCE,
)
team_stats = derived_asset(
    "team_stats", tm.TEAM_STATS_SCHEMA,
    from_single_pass("team_stats"),
    "One row per team of each match of the partition: team_id, outcome, rank, score, kills, deaths, "
    "assists, personal_score (the API's `Teams[]`). " + _SOURCE,
)
medals = derived_asset(
    "medals", tm.MEDALS_SCHEMA,
    from_single_pass("medals"),
    "Medals earned by every player of each match of the partition: match_id, player_id, xuid, name_id "
    "(Int64, join `medal_definitions`), count (Int16), total_personal_score (Int32). " + _SOURCE,
)
personal_scores = derived_asset(
    "personal_scores", tm.PERSONAL_SCORES_SCHEMA,
    from_single_pass("personal_scores"),
    "Personal-score awards of every player of each match (CoreStats.PersonalScores): match_id, player_id, "
    "xuid, name_id, count, total_personal_score. " + _SOURCE,
)
player_match_skill = derived_asset(
    "player_match_skill", PLAYER_MATCH_SKILL_SCHEMA,
    from_single_pass("player_match_skill"),
    "Skill of each human player of each match (skill `GET /hi/matches/{id}/skill`, landed): team MMR and "
    "the enemy team's MMR (Float32), kills/deaths with their expected values and standard deviations, CSR "
    "before/after (Int32, null when unranked) with tier and sub-tier. Custom games have no skill. "
    "Zero API calls.",
)
highlight_events = derived_asset(
    "highlight_events", HIGHLIGHT_EVENTS_SCHEMA,
    lambda wh, xuid, month: raw.decode_highlight_events(wh, raw.landed_match_ids(wh, xuid, month)),
    "Highlight events of each match's theater film (the last film chunk, landed): match_id, xuid, "
    "gamertag, event_type (kill | death | medal | mode), time_ms (Int32, ms since match start), "
    "medal_value, medal_name — decoded as spnkr's film reader does (film_decoder, ~20× faster), in a process "
    "pool for many chunks. Zero API calls.",
)


def derive_aliases(wh: Warehouse, owner: int, month: str) -> pl.DataFrame:
    """xuid → gamertag seen in the partition: from its film highlight events (source ``film``) and from
    landed profile look-ups of its human participants (source ``profile``)."""
    events = wh.read_partition("highlight_events", owner, month, HIGHLIGHT_EVENTS_SCHEMA)
    participants = wh.read_partition("match_participants", owner, month, tm.MATCH_PARTICIPANTS_SCHEMA)
    humans = sorted({x for x in participants["xuid"].to_list() if x is not None} | {owner})
    film = aliases_from_events(events).with_columns(source=pl.lit("film"))
    profile = pl.DataFrame(
        [{"xuid": int(u["xuid"]), "gamertag": u["gamertag"]} for u in raw.profiles(wh, humans)],
        schema=ALIASES_SCHEMA,
    ).with_columns(source=pl.lit("profile"))
    return pl.concat([film, profile]).unique().sort("xuid", "source", "gamertag")


xuid_aliases = derived_asset(
    "xuid_aliases", ALIASES_SCHEMA | {"source": pl.Utf8}, derive_aliases,
    "Gamertags of the xuids seen in the partition (a gamertag is an alias that can change): xuid (Int64), "
    "gamertag (Utf8), source (`film`: highlight events; `profile`: landed profile look-ups). Zero API calls.",
    deps=(highlight_events, match_participants),
)


STATS_ASSETS = [match_facts, match_participants, team_stats, medals, personal_scores, player_match_skill,
                highlight_events, xuid_aliases]
