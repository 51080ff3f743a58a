"""API-facing assets: the match history of a player × month, and the raw landing of its matches."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.common import API_POOL, SINGLE_RUN, record_partitions, run_partitions
from halo_pipeline.partitions import player_month_partitions
from halo_pipeline.services.history import (
    MATCH_TYPES,
    HistoryWalk,
    WalkIndex,
    entries_by_month,
    fetch_history,
    month_history,
)
from halo_pipeline.services.landing import land_matches, land_profiles
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.tables import RAW_MATCHES_SCHEMA
from halo_pipeline.transforms.matches import history_frame

MATCHES_GROUP = "matches"


class MatchHistoryConfig(dg.Config):
    """``match_type``: all | matchmaking | custom | local (LevelUp's ``--match-type``); ``max_matches``: keep
    only the player's newest N matches (``--max-matches``); ``since``: ignore matches before this UTC date
    (``YYYY-MM-DD``); ``refresh``: walk the history again even for months already walked after they ended (a
    repair, ``halo-pipeline sync --full``)."""

    match_type: str = "all"
    max_matches: int | None = None
    since: str | None = None
    refresh: bool = False


@dg.asset(
    group_name=MATCHES_GROUP,
    partitions_def=player_month_partitions,
    backfill_policy=SINGLE_RUN,
    pool=API_POOL,
    kinds={"api", "parquet"},
)
def match_history(
    context: dg.AssetExecutionContext, config: MatchHistoryConfig, halo_api: HaloApiResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """The player's matches of the month, from the match-history API (halostats
    ``GET /hi/players/{xuid}/matches``, 25 per page, newest first), one row per match.

    Columns: match_id (Utf8), xuid (Int64, the owner), start_time/end_time (Datetime UTC), lifecycle_mode
    (Int8: 1 custom, 3 matchmade), game_variant_category (Int16), playlist_id, map_id, map_mode_pair_id,
    game_variant_id (Utf8), team_id (Int8), outcome (Int8: 1 tie, 2 win, 3 loss, 4 left), rank (Int16),
    present_at_end (Boolean).

    A run covering several months of a player pages the history once, down to the oldest month. A month whose
    history was walked completely after it ended (by a sync) is settled: it is written again from what that walk
    found — empty for a month without matches — with zero API calls (``refresh: true`` walks again).
    """
    match_type = config.match_type.lower()
    if match_type not in MATCH_TYPES:
        raise dg.Failure(f"match_type {config.match_type!r} is not one of {', '.join(MATCH_TYPES)}")
    try:
        floor = datetime.fromisoformat(config.since).replace(tzinfo=UTC) if config.since else None
    except ValueError:
        raise dg.Failure(f"since {config.since!r} is not a date (YYYY-MM-DD)") from None
    wh = warehouse.warehouse()
    wanted = run_partitions(context)
    indexes = {xuid: WalkIndex.load(wh.landing, xuid) for xuid in wanted}
    walk_every_month = config.refresh or config.max_matches is not None or floor is not None or match_type != "all"
    to_walk = {x: months for x, months in wanted.items()
               if walk_every_month or not all(indexes[x].settled(m) for m in months)}

    async def walk() -> dict[int, HistoryWalk]:
        async with halo_api.client() as api:
            out = {}
            for xuid, months in to_walk.items():
                since = months[0].start
                out[xuid] = await fetch_history(api, xuid, since=max(since, floor) if floor else since,
                                                match_type=match_type, max_matches=config.max_matches)
            return out

    walks = run_api(walk()) if to_walk else {}  # every month settled: no client, zero API calls
    written = []
    for xuid, months in wanted.items():
        if xuid in walks:
            grouped = entries_by_month(walks[xuid].entries)
            frames = {m: history_frame(grouped.get(m, []), xuid) for m in months}
        else:
            frames = {m: month_history(wh, xuid, m) for m in months}
        for month, df in frames.items():
            wh.write_partition("match_history", xuid, month, df)
            written.append((xuid, month, df))
        if xuid in walks and match_type == "all":
            walked = set(walks[xuid].walked_months())
            indexes[xuid].record(wh.landing, [m for m in months if m in walked], walks[xuid].started_at)
    calls = "walked" if walks else "settled: 0 API calls"
    return record_partitions(context, "match_history", written, figures=lambda df: {"history": calls})


class RawMatchesConfig(dg.Config):
    """``refetch``: call the API again for matches already landed (LevelUp's ``--force-*``); ``film`` and
    ``skill``: whether to land the highlight-events film chunk and the skill body."""

    refetch: bool = False
    skill: bool = True
    film: bool = True


@dg.asset(
    group_name=MATCHES_GROUP,
    partitions_def=player_month_partitions,
    backfill_policy=SINGLE_RUN,
    pool=API_POOL,
    deps=[match_history],
    kinds={"api", "parquet"},
)
def raw_matches(
    context: dg.AssetExecutionContext, config: RawMatchesConfig, halo_api: HaloApiResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Raw landing of the partition's matches: the stats (halostats ``/hi/matches/{id}/stats``), skill
    (skill ``/hi/matches/{id}/skill``) and film highlight-events chunk (discovery-infiniteugc
    ``/hi/films/matches/{id}/spectate`` + blob) bodies, kept byte-for-byte (gzip) under ``raw/``, keyed by
    match id: a match played by several registered players is fetched once, and a match already landed is
    never fetched again unless ``refetch: true``.

    The asset's table is the landing index, one row per history match: match_id, xuid, start_time (UTC),
    stats_status / skill_status / film_status (landed | not_found | failed | skipped), spnkr_parse_ok,
    fetched_in_run, error. A failed match is recorded, not dropped, and the next sync retries it.
    """
    wh = warehouse.warehouse()
    landing = wh.landing
    wanted = run_partitions(context)
    try:
        histories = {(x, m): month_history(wh, x, m) for x, months in wanted.items() for m in months}
    except FileNotFoundError as exc:
        raise dg.Failure(str(exc)) from None
    match_ids = [mid for df in histories.values() for mid in df["match_id"].to_list()]

    async def fetch():
        async with halo_api.client() as api:
            result = await land_matches(api, landing, match_ids, concurrency=halo_api.max_in_flight * 2,
                                        refetch=config.refetch, skill=config.skill, film=config.film)
            fetched = [m for m, row in result.items() if row["fetched_in_run"]]
            await land_profiles(api, landing, fetched)
            return result, api.stats

    # No match to land (months without matches): no client, zero API calls.
    statuses, request_stats = run_api(fetch()) if match_ids else ({}, None)
    written = []
    for (xuid, month), history in histories.items():
        status_rows = [statuses[mid] for mid in history["match_id"].to_list()]
        df = pl.DataFrame(
            {"match_id": history["match_id"], "xuid": history["xuid"], "start_time": history["start_time"],
             **{k: [r[k] for r in status_rows] for k in RAW_MATCHES_SCHEMA
                if k not in ("match_id", "xuid", "start_time")}},
            schema=RAW_MATCHES_SCHEMA,
        )
        wh.write_partition("raw_matches", xuid, month, df)
        written.append((xuid, month, df))
    if request_stats is not None:
        context.log.info(f"raw_matches: {len(match_ids)} matches, {request_stats.sent} requests "
                         f"({request_stats.retried} retried, {request_stats.rate_limited} answered 429)")
    return record_partitions(context, "raw_matches", written, figures=landing_figures)


def landing_figures(index: pl.DataFrame) -> dict:
    """What one partition's landing index says: matches fetched in this run, failed (a gap: no stats body),
    bodies that failed (stats, skill or film), unparsed by spnkr, and each failure with its error."""
    failed = index.filter(pl.col("stats_status") != "landed")
    failures = index.filter((pl.col("stats_status") != "landed") | (pl.col("skill_status") == "failed")
                            | (pl.col("film_status") == "failed"))
    figures = {
        "matches_fetched": int(index["fetched_in_run"].sum() or 0),
        "matches_failed": failed.height,
        "bodies_failed": failures.height,
        "unparsed_by_spnkr": int((~index["spnkr_parse_ok"].fill_null(True)).sum()),
    }
    if failures.height:
        figures["failed_matches"] = dg.MetadataValue.md("\n".join(
            f"- {r['match_id']} (player {r['xuid']}): {r['error'] or r['stats_status']}"
            for r in failures.unique("match_id", keep="first", maintain_order=True).iter_rows(named=True)))
    return figures
