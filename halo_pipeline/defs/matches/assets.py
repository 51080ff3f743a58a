"""API-facing assets: the match history of a player × month, and the raw landing of its matches."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.common import API_POOL, SINGLE_RUN, frame_metadata, run_partitions
from halo_pipeline.partitions import partition_key, player_month_partitions
from halo_pipeline.services.history import MATCH_TYPES, entries_by_month, fetch_history
from halo_pipeline.services.landing import land_matches, land_profiles
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.tables import RAW_MATCHES_SCHEMA
from halo_pipeline.transforms.matches import HISTORY_SCHEMA, history_frame

MATCHES_GROUP = "matches"


class MatchHistoryConfig(dg.Config):
    """``match_type``: all | matchmaking | custom | local (LevelUp's ``--match-type``); ``max_matches``: keep
    only the player's newest N matches (``--max-matches``); ``since``: ignore matches before this UTC date
    (``YYYY-MM-DD``)."""

    match_type: str = "all"
    max_matches: int | None = None
    since: str | None = None


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

    A run covering several months of a player pages the history once, down to the oldest month.
    """
    if config.match_type.lower() not in MATCH_TYPES:
        raise dg.Failure(f"match_type {config.match_type!r} is not one of {', '.join(MATCH_TYPES)}")
    try:
        floor = datetime.fromisoformat(config.since).replace(tzinfo=UTC) if config.since else None
    except ValueError:
        raise dg.Failure(f"since {config.since!r} is not a date (YYYY-MM-DD)") from None
    wh = warehouse.warehouse()
    wanted = run_partitions(context)

    async def fetch() -> dict[int, list[dict]]:
        async with halo_api.client() as api:
            out = {}
            for xuid, months in wanted.items():
                since = months[0].start
                out[xuid] = await fetch_history(api, xuid, since=max(since, floor) if floor else since,
                                                match_type=config.match_type.lower(),
                                                max_matches=config.max_matches)
            return out

    history = run_api(fetch())
    frames, rows = [], {}
    for xuid, months in wanted.items():
        grouped = entries_by_month(history[xuid])
        for month in months:
            df = history_frame(grouped.get(month, []), xuid)
            wh.write_partition("match_history", xuid, month, df)
            rows[str(partition_key(xuid, month))] = df.height
            frames.append(df)
    context.log.info(f"match_history: {sum(rows.values())} matches over {len(rows)} partition(s)")
    all_rows = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=HISTORY_SCHEMA)
    return dg.MaterializeResult(metadata=frame_metadata(all_rows, rows))


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
    check_specs=[dg.AssetCheckSpec("all_matches_landed", asset="raw_matches",
                                   description="Every match of the history has its stats body landed.")],
)
def raw_matches(
    context: dg.AssetExecutionContext, config: RawMatchesConfig, halo_api: HaloApiResource,
    warehouse: WarehouseResource,
):
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
    histories = {(x, m): wh.read_partition("match_history", x, m, HISTORY_SCHEMA)
                 for x, months in wanted.items() for m in months}
    match_ids = [mid for df in histories.values() for mid in df["match_id"].to_list()]

    async def fetch():
        async with halo_api.client() as api:
            result = await land_matches(api, landing, match_ids, concurrency=halo_api.max_in_flight * 2,
                                        refetch=config.refetch, skill=config.skill, film=config.film)
            fetched = [m for m, row in result.items() if row["fetched_in_run"]]
            await land_profiles(api, landing, fetched)
            return result, api.stats

    statuses, request_stats = run_api(fetch())
    frames, rows = [], {}
    for (xuid, month), history in histories.items():
        status_rows = [statuses[mid] for mid in history["match_id"].to_list()]
        df = pl.DataFrame(
            {"match_id": history["match_id"], "xuid": history["xuid"], "start_time": history["start_time"],
             **{k: [r[k] for r in status_rows] for k in RAW_MATCHES_SCHEMA
                if k not in ("match_id", "xuid", "start_time")}},
            schema=RAW_MATCHES_SCHEMA,
        )
        wh.write_partition("raw_matches", xuid, month, df)
        rows[str(partition_key(xuid, month))] = df.height
        frames.append(df)
    index = pl.concat(frames) if frames else pl.DataFrame(schema=RAW_MATCHES_SCHEMA)
    # A match of the history without its stats body is a gap, whether the API failed or answered 404.
    failed = index.filter(pl.col("stats_status") != "landed")
    # Every body that failed (stats, skill or film), with the error: which match, which fault.
    failures = index.filter((pl.col("stats_status") != "landed") | (pl.col("skill_status") == "failed")
                            | (pl.col("film_status") == "failed"))
    fetched = int(index["fetched_in_run"].sum() or 0)
    context.log.info(f"raw_matches: {index.height} matches, {fetched} fetched, {failed.height} failed, "
                     f"{request_stats.sent} requests ({request_stats.rate_limited} answered 429)")
    metadata = frame_metadata(index, rows) | {
        "matches_fetched": fetched,
        "matches_failed": failed.height,
        "unparsed_by_spnkr": int((index["spnkr_parse_ok"] == False).sum()),  # noqa: E712
        "api_requests": request_stats.sent,
        "api_retries": request_stats.retried,
        "api_429": request_stats.rate_limited,
        "bodies_failed": failures.height,
    }
    if failures.height:
        metadata["failed_matches"] = dg.MetadataValue.md("\n".join(
            f"- {r['match_id']} (player {r['xuid']}): {r['error'] or r['stats_status']}"
            for r in failures.unique("match_id", keep="first", maintain_order=True).iter_rows(named=True)))
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="all_matches_landed", asset_key="raw_matches", passed=failed.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failed": failed.height, "failed_match_ids": ", ".join(failed["match_id"].to_list()[:50])},
    )
