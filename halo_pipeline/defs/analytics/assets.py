"""Analytics assets (player × month): UGC names, sessions, performance scores, materialized stats, report.

Each partition is a pure function of the warehouse (:mod:`halo_pipeline.services.analytics`): re-deriving costs
zero API calls and the result does not depend on the order in which months are materialized. The declared
dependencies say which neighbouring months each reads (month offsets −1…+1 for sessions), so the UI shows a
month's analytics as stale when a neighbouring month's ``match_facts`` changed.
"""

from collections.abc import Callable

import dagster as dg
import polars as pl

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.analytics.settings import AnalyticsSettings
from halo_pipeline.defs.common import (
    API_POOL,
    FOLLOWS_UPSTREAM,
    SINGLE_RUN,
    each_partition,
    record_partitions,
    run_partitions,
)
from halo_pipeline.partitions import player_month_partitions
from halo_pipeline.services import analytics as sa
from halo_pipeline.services.landing import UGC_LANDING, land_ugc
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse

ANALYTICS_GROUP = "analytics"


def _write_all(context: dg.AssetExecutionContext, wh: Warehouse, name: str,
               derive: Callable[[int, str], pl.DataFrame], **figures) -> dg.MaterializeResult:
    """Write ``derive(xuid, month)`` for each partition of the run; returns the asset's result, each partition's
    own metadata attached (``figures``: more metadata of every partition)."""
    written = []
    for xuid, month in each_partition(context):
        df = derive(xuid, month)
        wh.write_partition(name, xuid, month, df)
        written.append((xuid, month, df))
    return record_partitions(context, name, written, figures=lambda df: figures)


def _months(start_offset: int, end_offset: int) -> dg.MultiPartitionMapping:
    """The same player's months ``start_offset``…``end_offset`` around a month."""
    return dg.MultiPartitionMapping({
        "month": dg.DimensionPartitionMapping("month", dg.TimeWindowPartitionMapping(
            start_offset=start_offset, end_offset=end_offset, allow_nonexistent_upstream_partitions=True)),
        "player": dg.DimensionPartitionMapping("player", dg.IdentityPartitionMapping()),
    })


#: What each analytics month reads: the neighbour months (a session crossing a month boundary), this month and the
#: next, every earlier month (a match is scored against all the player's earlier ones: 50 years back is all).
_NEIGHBOUR_MONTHS, _THIS_AND_NEXT, _EARLIER_MONTHS = _months(-1, 1), _months(0, 1), _months(-600, 0)


def _asset(name: str, description: str, deps: list, **kwargs):
    return dg.asset(name=name, group_name=ANALYTICS_GROUP, partitions_def=player_month_partitions,
                    backfill_policy=SINGLE_RUN, deps=deps, description=description,
                    automation_condition=FOLLOWS_UPSTREAM, **kwargs)


@_asset("ugc_names", (
    "Names of the maps, map-mode pairs and playlists played in the partition: kind (maps | mapModePairs | "
    "playlists), asset_id, version_id, public_name (null when the API has no such version). Source: "
    "discovery-infiniteugc `GET /hi/{kind}/{asset}/versions/{version}`, landed once per asset version under "
    "raw/ugc_<kind>/ (a re-derive or another player's month costs no call)."),
    deps=["match_facts"], pool=API_POOL, kinds={"api", "parquet"})
def ugc_names(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
              halo_api: HaloApiResource) -> dg.MaterializeResult:
    wh = warehouse.warehouse()
    refs = {(x, m): sa.ugc_refs(wh, x, m) for x, months in run_partitions(context).items() for m in months}
    landing = wh.landing
    missing = sorted({r for rs in refs.values() for r in rs
                      if landing.get(UGC_LANDING + r[0], f"{r[1]}_{r[2]}") is None})

    async def land_missing() -> None:
        if not missing:  # everything landed: no client (no token needed), zero API calls
            return
        async with halo_api.client() as api:
            for ref in missing:
                await land_ugc(api, landing, *ref)

    run_api(land_missing())
    context.log.info(f"ugc_names: {len(missing)} asset version(s) looked up")
    return _write_all(context, wh, "ugc_names", lambda x, m: sa.ugc_names(wh, refs[(x, m)]))


@_asset("sessions", (
    "Play sessions of the player that START in the month: consecutive matches with pauses ≤ the analytics "
    "setting session_gap_minutes (default 35, the same for every month). session_id = '<xuid>:<first match id>' "
    "(stable); start_time/end_time UTC, match_count, wins, losses, ties, kills, deaths, assists, kda = kills + "
    "assists/3 − deaths, kd_ratio, accuracy (%), shots, time_played_seconds, duration_seconds (wall clock). A "
    "session crossing a month boundary is whole, in the month of its first match (the next month's match_facts "
    "are read)."),
    deps=[dg.AssetDep("match_facts", partition_mapping=_NEIGHBOUR_MONTHS)], kinds={"polars", "parquet"})
def sessions(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
             analytics: AnalyticsSettings) -> dg.MaterializeResult:
    wh = warehouse.warehouse()
    gap = analytics.gap_minutes()
    return _write_all(context, wh, "sessions", lambda x, m: sa.month_sessions(wh, x, m, gap), gap_minutes=gap)


@_asset("performance_scores", (
    "Performance score (0–100) of each match of the month, relative to the player's own earlier matches "
    "(all earlier months are read; null with fewer than 10 earlier matches): the weighted mid-rank "
    "percentile of kills, deaths (inverted), assists, personal score and damage per minute, KDA, accuracy "
    "and rank vs expected. Formula and weights: halo_pipeline.transforms.analytics.PERFORMANCE_METRICS. "
    "Columns: match_id, xuid, start_time, history_matches, the metrics, performance_score (Float32)."),
    deps=[dg.AssetDep("match_facts", partition_mapping=_EARLIER_MONTHS),
          dg.AssetDep("match_participants", partition_mapping=_EARLIER_MONTHS)], kinds={"polars", "parquet"})
def performance_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.warehouse()
    return _write_all(context, wh, "performance_scores", lambda x, m: sa.month_scores(wh, x, m))


_STATS_COLUMNS = ("matches, wins, losses, ties, kills, deaths, assists, shots_fired, shots_hit, "
                  "time_played_seconds, performance_score_sum/count (additive), win_rate, kd_ratio, kda (mean "
                  "per match), accuracy (%), avg_performance_score")
_STATS_DEPS = ["sessions", dg.AssetDep("performance_scores", partition_mapping=_THIS_AND_NEXT), "ugc_names",
               "game_mode_translations", "mode_categories",
               dg.AssetDep("match_facts", partition_mapping=_NEIGHBOUR_MONTHS)]
_STATS_DESCRIPTIONS = {
    "map_stats": f"Per map of the player × month (name from ugc_names): {_STATS_COLUMNS}. Catalog roll-up: "
                 "mv_map_stats.",
    "mode_category_stats": "Per mode category (the reference game_mode_translations category of the map-mode "
                           f"pair's name, else its prefix before ':', else 'Other'): {_STATS_COLUMNS}. Catalog "
                           "roll-up: mv_mode_category_stats.",
    "session_stats": "The month's sessions with avg_performance_score of their matches. Catalog: mv_session_stats.",
    "global_stats": f"One row per player × month: {_STATS_COLUMNS}. Catalog roll-up: mv_global_stats.",
}


@dg.multi_asset(
    group_name=ANALYTICS_GROUP,
    partitions_def=player_month_partitions,
    backfill_policy=SINGLE_RUN,
    specs=[dg.AssetSpec(name, deps=_STATS_DEPS, kinds={"polars", "parquet"}, description=_STATS_DESCRIPTIONS[name],
                        automation_condition=FOLLOWS_UPSTREAM) for name in sa.STATS_TABLES],
)
def materialized_stats(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Materialized stats of each partition; the catalog's ``mv_*`` views sum them over months."""
    wh = warehouse.warehouse()
    game_modes, categories = sa.reference(wh, "game_mode_translations"), sa.reference(wh, "mode_categories")
    written: dict[str, list] = {name: [] for name in sa.STATS_TABLES}
    for xuid, month in each_partition(context):
        for name, df in sa.month_stats(wh, xuid, month, game_modes, categories).items():
            wh.write_partition(name, xuid, month, df)
            written[name].append((xuid, month, df))
    for name, frames in written.items():
        yield record_partitions(context, name, frames)


@_asset("player_report", (
    "Per-player HTML report (plotly): the player's service tag, emblem and career rank, performance score over "
    "time, K/D by map and by mode category, session history, top teammates (by nickname for friends), the "
    "sessions played with friends, maps with their thumbnails and medals with their icons (embedded from "
    "image_assets when images are landed: the file opens offline) — written to warehouse/reports/<xuid>.html (all "
    "the player's months; the path is in the metadata)."),
    deps=["map_stats", "mode_category_stats", "session_stats", "performance_scores", "teammates", "friends",
          "player_profiles", "medals", "image_assets"],
    kinds={"plotly", "html"})
def player_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.warehouse()
    paths = {xuid: sa.write_player_report(wh, xuid) for xuid in run_partitions(context)}
    metadata = {f"report/{x}": dg.MetadataValue.path(str(p)) for x, p in paths.items()}
    if len(paths) == 1:
        metadata["path"] = dg.MetadataValue.path(str(next(iter(paths.values()))))
    return dg.MaterializeResult(metadata=metadata)
