"""Analytics assets (player × month): UGC names, sessions, performance scores, materialized stats, report.

Each partition is a pure function of the warehouse (``match_facts``, ``match_participants``, reference
tables, landed UGC bodies) — re-deriving costs zero API calls, and the result does not depend on the order
in which months are materialized:

* ``sessions`` of month M reads the player's ``match_facts`` of every month up to M+1: a session belongs to
  the month of its first match and keeps its matches of the next month; its id is ``<xuid>:<first match>``.
* ``performance_scores`` of month M reads every earlier month of the player (a match is scored against all
  the player's earlier matches).
The declared dependencies say so (month offsets −1…+1 for sessions), so the UI shows a month's analytics as
stale when a neighbouring month's ``match_facts`` changed.
"""


import aiohttp
import dagster as dg
import orjson
import polars as pl

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource, WarehouseResource
from halo_pipeline.defs.common import API_POOL, SINGLE_RUN, frame_metadata, run_partitions
from halo_pipeline.defs.stats.assets import match_facts, match_participants
from halo_pipeline.partitions import partition_key, player_month_partitions
from halo_pipeline.storage.files import read_parquet
from halo_pipeline.storage.warehouse import PARQUET_NAME, Warehouse
from halo_pipeline.transforms import analytics as ta
from halo_pipeline.transforms.matches import MATCH_FACTS_SCHEMA

ANALYTICS_GROUP = "analytics"
#: Raw-landing kind prefix of UGC bodies: ``raw/ugc_<kind>/<id[:2]>/<asset id>_<version id>.json.gz``.
UGC_LANDING = "ugc_"
UGC_KINDS = {"maps": ("map_id", "map_version_id"), "mapModePairs": ("map_mode_pair_id", "map_mode_pair_version_id"),
             "playlists": ("playlist_id", "playlist_version_id")}
ARCHIVE = "archive"

#: Declared columns of every analytics table (the catalog's empty views use them).
ANALYTICS_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "ugc_names": ta.UGC_NAMES_SCHEMA,
    "sessions": ta.SESSIONS_SCHEMA,
    "performance_scores": ta.PERFORMANCE_SCHEMA,
    "map_stats": ta.MAP_STATS_SCHEMA,
    "mode_category_stats": ta.MODE_CATEGORY_STATS_SCHEMA,
    "session_stats": ta.SESSION_STATS_SCHEMA,
    "global_stats": ta.GLOBAL_STATS_SCHEMA,
}


# --------------------------------------------------------------------------------------------------- reads


def _month_of_path(path) -> str:
    parts = {p.split("=", 1)[0]: p.split("=", 1)[1] for p in path.parts if "=" in p}
    return f"{parts['year']}-{parts['month']}-01"


def player_files(wh: Warehouse, table: str, xuid: int) -> dict[str, object]:
    """``{month: path}`` of a player's partition files of ``table``, the archive area's included (a live
    file wins over an archived one of the same month)."""
    out = {}
    archived = wh.root / ARCHIVE / table / f"player={xuid}"
    for base in (archived, wh.root / table / f"player={xuid}"):
        if base.exists():
            for path in sorted(base.glob(f"*/*/{PARQUET_NAME}")):
                out[_month_of_path(path)] = path
    return out


def player_table(wh: Warehouse, table: str, xuid: int, schema: dict, until: str | None = None,
                 since: str | None = None) -> pl.DataFrame:
    """A player's rows of ``table`` over the months ``since``…``until`` (inclusive, ``YYYY-MM-01``; None:
    unbounded), live and archived partitions; an empty frame with ``schema`` when there is none."""
    paths = [p for m, p in sorted(player_files(wh, table, xuid).items())
             if (until is None or m <= until) and (since is None or m >= since)]
    if not paths:
        return pl.DataFrame(schema=schema)
    return pl.concat([read_parquet(p) for p in paths], how="diagonal_relaxed")


def _next_month(month: str) -> str:
    year, mm = int(month[:4]), int(month[5:7])
    return f"{year + mm // 12:04d}-{mm % 12 + 1:02d}-01"


def _previous_month(month: str) -> str:
    year, mm = int(month[:4]), int(month[5:7])
    return f"{year - (mm == 1):04d}-{(mm - 2) % 12 + 1:02d}-01"


def players_per_match(wh: Warehouse, xuid: int, until: str) -> pl.DataFrame:
    """``match_id, players`` (participants, bots included) of a player's matches up to ``until``."""
    df = player_table(wh, "match_participants", xuid, {"match_id": pl.Utf8}, until=until)
    return df.group_by("match_id").agg(players=pl.len())


def _reference(wh: Warehouse, table: str) -> pl.DataFrame | None:
    return read_parquet(p) if (p := wh.reference_path(table)).exists() else None


def _write_all(context: dg.AssetExecutionContext, wh: Warehouse, name: str, schema: dict, derive) -> dict:
    """Write ``derive(xuid, month)`` for each partition of the run; returns the materialization metadata."""
    frames, rows = [], {}
    for xuid, months in run_partitions(context).items():
        for month in months:
            df = derive(xuid, month)
            wh.write_partition(name, xuid, month, df)
            rows[str(partition_key(xuid, month))] = df.height
            frames.append(df)
    everything = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame(schema=schema)
    return frame_metadata(everything, rows)


_NEIGHBOUR_MONTHS = dg.MultiPartitionMapping({
    "month": dg.DimensionPartitionMapping("month", dg.TimeWindowPartitionMapping(
        start_offset=-1, end_offset=1, allow_nonexistent_upstream_partitions=True)),
    "player": dg.DimensionPartitionMapping("player", dg.IdentityPartitionMapping()),
})


def _asset(name: str, description: str, deps: list, **kwargs):
    return dg.asset(name=name, group_name=ANALYTICS_GROUP, partitions_def=player_month_partitions,
                    backfill_policy=SINGLE_RUN, deps=deps, description=description, **kwargs)


# --------------------------------------------------------------------------------------------------- UGC names


async def _land_ugc(api, landing, kind: str, asset_id: str, version_id: str) -> str | None:
    """Land the UGC body of one asset version (once: cached by asset id + version); its PublicName."""
    key = f"{asset_id}_{version_id}"
    body = landing.get(UGC_LANDING + kind, key)
    if body is None and landing.absent_status(UGC_LANDING + kind, key) is None:
        fetch = {"maps": api.spnkr.discovery_ugc.get_map,
                 "mapModePairs": api.spnkr.discovery_ugc.get_map_mode_pair,
                 "playlists": api.spnkr.discovery_ugc.get_playlist}[kind]
        try:
            body = await (await fetch(asset_id, version_id)).read()
            landing.put(UGC_LANDING + kind, key, body)
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                landing.mark_absent(UGC_LANDING + kind, key, 404)
            return None
    return orjson.loads(body).get("PublicName") if body else None


@_asset("ugc_names", (
    "Names of the maps, map-mode pairs and playlists played in the partition: kind (maps | mapModePairs | "
    "playlists), asset_id, version_id, public_name (null when the API has no such version). Source: "
    "discovery-infiniteugc `GET /hi/{kind}/{asset}/versions/{version}`, landed once per asset version under "
    "raw/ugc_<kind>/ (a re-derive or another player's month costs no call)."),
    deps=[match_facts], pool=API_POOL, kinds={"api", "parquet"})
def ugc_names(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
              halo_api: HaloApiResource) -> dg.MaterializeResult:
    wh = warehouse.warehouse()
    wanted = {(x, m): wh.read_partition("match_facts", x, m, MATCH_FACTS_SCHEMA)
              for x, months in run_partitions(context).items() for m in months}
    refs = {(x, m): sorted({(kind, a, v) for kind, (ac, vc) in UGC_KINDS.items()
                            for a, v in df.select(ac, vc).unique().iter_rows() if a and v})
            for (x, m), df in wanted.items()}
    every = sorted({r for rs in refs.values() for r in rs})
    landing = wh.landing
    missing = [r for r in every if landing.get(UGC_LANDING + r[0], f"{r[1]}_{r[2]}") is None]

    async def names_of() -> dict:
        if not missing:  # everything landed: no client (no token needed), zero API calls
            return {}
        async with halo_api.client() as api:
            return {r: await _land_ugc(api, landing, *r) for r in missing}

    fetched = run_api(names_of())

    def name(ref) -> str | None:
        if ref in fetched:
            return fetched[ref]
        body = landing.get(UGC_LANDING + ref[0], f"{ref[1]}_{ref[2]}")
        return orjson.loads(body).get("PublicName") if body else None

    def derive(xuid: int, month: str) -> pl.DataFrame:
        rows = [{"kind": k, "asset_id": a, "version_id": v, "public_name": name((k, a, v))}
                for k, a, v in refs[(xuid, month)]]
        return pl.DataFrame(rows, schema=ta.UGC_NAMES_SCHEMA)

    metadata = _write_all(context, wh, "ugc_names", ta.UGC_NAMES_SCHEMA, derive)
    return dg.MaterializeResult(metadata=metadata | {"api_lookups": len(missing)})


# --------------------------------------------------------------------------------------------------- sessions


class SessionsConfig(dg.Config):
    """``gap_minutes``: the largest pause between a match's end and the next match's start in a session."""

    gap_minutes: float = ta.GAP_MINUTES


@_asset("sessions", (
    "Play sessions of the player that START in the month: consecutive matches with pauses ≤ gap_minutes "
    "(config, default 35). session_id = '<xuid>:<first match id>' (stable); start_time/end_time UTC, "
    "match_count, wins, losses, ties, kills, deaths, assists, kda = kills + assists/3 − deaths, kd_ratio, "
    "accuracy (%), shots, time_played_seconds, duration_seconds (wall clock). A session crossing a month "
    "boundary is whole, in the month of its first match (the next month's match_facts are read)."),
    deps=[dg.AssetDep(match_facts, partition_mapping=_NEIGHBOUR_MONTHS)], kinds={"polars", "parquet"})
def sessions(context: dg.AssetExecutionContext, config: SessionsConfig,
             warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.warehouse()

    def derive(xuid: int, month: str) -> pl.DataFrame:
        return month_sessions(wh, xuid, month, config.gap_minutes)

    return dg.MaterializeResult(metadata=_write_all(context, wh, "sessions", ta.SESSIONS_SCHEMA, derive)
                                | {"gap_minutes": config.gap_minutes})


def month_sessions(wh: Warehouse, xuid: int, month: str, gap_minutes: float = ta.GAP_MINUTES) -> pl.DataFrame:
    """The sessions of ``xuid`` starting in ``month`` from the warehouse's match_facts (months ≤ M+1)."""
    facts = player_table(wh, "match_facts", xuid, MATCH_FACTS_SCHEMA, until=_next_month(month))
    out = ta.sessions(facts, gap_minutes)
    return out.filter(ta.month_of() == month)


def month_scores(wh: Warehouse, xuid: int, month: str) -> pl.DataFrame:
    """Performance scores of ``xuid``'s matches of ``month``, against every earlier match (months ≤ M)."""
    facts = player_table(wh, "match_facts", xuid, MATCH_FACTS_SCHEMA, until=month)
    scores = ta.performance_scores(facts, players_per_match(wh, xuid, month))
    return scores.filter(ta.month_of() == month)


@_asset("performance_scores", (
    "Performance score (0–100) of each match of the month, relative to the player's own earlier matches "
    "(all earlier months are read; null with fewer than 10 earlier matches): the weighted mid-rank "
    "percentile of kills, deaths (inverted), assists, personal score and damage per minute, KDA, accuracy "
    "and rank vs expected. Formula and weights: halo_pipeline.transforms.analytics.PERFORMANCE_METRICS. "
    "Columns: match_id, xuid, start_time, history_matches, the metrics, performance_score (Float32)."),
    deps=[match_facts, match_participants], kinds={"polars", "parquet"})
def performance_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    wh = warehouse.warehouse()
    metadata = _write_all(context, wh, "performance_scores", ta.PERFORMANCE_SCHEMA,
                          lambda x, m: month_scores(wh, x, m))
    return dg.MaterializeResult(metadata=metadata)


# --------------------------------------------------------------------------------------------------- stats

_STATS_COLUMNS = ("matches, wins, losses, ties, kills, deaths, assists, shots_fired, shots_hit, "
                  "time_played_seconds, performance_score_sum/count (additive), win_rate, kd_ratio, kda (mean "
                  "per match), accuracy (%), avg_performance_score")

_STATS_DEPS = ["sessions", "performance_scores", "ugc_names", "game_mode_translations", "mode_categories",
               dg.AssetDep(match_facts, partition_mapping=_NEIGHBOUR_MONTHS)]


@dg.multi_asset(
    group_name=ANALYTICS_GROUP,
    partitions_def=player_month_partitions,
    backfill_policy=SINGLE_RUN,
    specs=[
        dg.AssetSpec("map_stats", deps=_STATS_DEPS, kinds={"polars", "parquet"}, description=(
            f"Per map of the player × month (name from ugc_names): {_STATS_COLUMNS}. Catalog roll-up: "
            "mv_map_stats.")),
        dg.AssetSpec("mode_category_stats", deps=_STATS_DEPS, kinds={"polars", "parquet"}, description=(
            "Per mode category (the reference game_mode_translations category of the map-mode pair's name, "
            f"else its prefix before ':', else 'Other'): {_STATS_COLUMNS}. Catalog roll-up: "
            "mv_mode_category_stats.")),
        dg.AssetSpec("session_stats", deps=_STATS_DEPS, kinds={"polars", "parquet"}, description=(
            "The month's sessions with avg_performance_score of their matches. Catalog: mv_session_stats.")),
        dg.AssetSpec("global_stats", deps=_STATS_DEPS, kinds={"polars", "parquet"}, description=(
            f"One row per player × month: {_STATS_COLUMNS}. Catalog roll-up: mv_global_stats.")),
    ],
)
def materialized_stats(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Materialized stats of each partition; the catalog's ``mv_*`` views sum them over months."""
    wh = warehouse.warehouse()
    game_modes, categories = _reference(wh, "game_mode_translations"), _reference(wh, "mode_categories")
    tables = {name: ([], {}) for name in ("map_stats", "mode_category_stats", "session_stats", "global_stats")}
    for xuid, months in run_partitions(context).items():
        for month in months:
            for name, df in month_stats(wh, xuid, month, game_modes, categories).items():
                wh.write_partition(name, xuid, month, df)
                tables[name][0].append(df)
                tables[name][1][str(partition_key(xuid, month))] = df.height
    for name, (frames, rows) in tables.items():
        schema = ANALYTICS_SCHEMAS[name]
        df = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame(schema=schema)
        yield dg.MaterializeResult(asset_key=name, metadata=frame_metadata(df, rows))


def month_stats(wh: Warehouse, xuid: int, month: str, game_modes: pl.DataFrame | None,
                categories: pl.DataFrame | None) -> dict[str, pl.DataFrame]:
    """The four materialized stats frames of one partition, from the warehouse."""
    facts = wh.read_partition("match_facts", xuid, month, MATCH_FACTS_SCHEMA)
    names = player_table(wh, "ugc_names", xuid, ta.UGC_NAMES_SCHEMA).unique(["kind", "asset_id", "version_id"])
    scores = player_table(wh, "performance_scores", xuid, ta.PERFORMANCE_SCHEMA,
                          since=month, until=_next_month(month))
    if scores.filter(ta.month_of() == month).height != facts.height:  # not materialized yet: compute
        scores = pl.concat([month_scores(wh, xuid, month), month_scores(wh, xuid, _next_month(month))])
    labelled = ta.label_matches(facts, names, game_modes, categories)
    session_rows = wh.read_partition("sessions", xuid, month, ta.SESSIONS_SCHEMA)
    neighbours = player_table(wh, "match_facts", xuid, MATCH_FACTS_SCHEMA, since=month, until=_next_month(month))
    return {
        "map_stats": ta.map_stats(labelled, scores, month),
        "mode_category_stats": ta.mode_category_stats(labelled, scores, month),
        "session_stats": ta.session_stats(session_rows, neighbours, scores, month),
        "global_stats": ta.global_stats(facts, scores, month),
    }


ANALYTICS_ASSETS = [ugc_names, sessions, performance_scores, materialized_stats]


# --------------------------------------------------------------------------------------------------- report


def report_path(wh: Warehouse, xuid: int):
    """``<data_dir>/warehouse/reports/<xuid>.html``."""
    return wh.root / "reports" / f"{xuid}.html"


def player_rollups(wh: Warehouse, xuid: int) -> dict[str, pl.DataFrame]:
    """A player's stats summed over all months (the same figures as the catalog's mv views), for the
    report: ``maps``, ``categories``, ``sessions``, ``scores``."""
    def rollup(table: str, keys: list[str]) -> pl.DataFrame:
        df = player_table(wh, table, xuid, ANALYTICS_SCHEMAS[table])
        sums = [c for c in ta._SUMS]
        return ta.with_ratios(df.group_by(keys).agg(pl.col(sums).sum())).sort("matches", descending=True)

    maps = rollup("map_stats", ["map_id", "map_name"]).with_columns(
        map=pl.coalesce("map_name", pl.col("map_id").str.slice(0, 8), pl.lit("custom/unknown")))
    return {
        "maps": maps,
        "categories": rollup("mode_category_stats", ["mode_category"]),
        "sessions": player_table(wh, "session_stats", xuid, ta.SESSION_STATS_SCHEMA).sort("start_time"),
        "scores": player_table(wh, "performance_scores", xuid, ta.PERFORMANCE_SCHEMA),
    }


@_asset("player_report", (
    "Per-player HTML report (plotly): performance score over time, K/D by map and by mode category, session "
    "history — written to warehouse/reports/<xuid>.html (all the player's months; the path is in the "
    "metadata)."), deps=["map_stats", "mode_category_stats", "session_stats", "performance_scores"],
    kinds={"plotly", "html"})
def player_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    from halo_pipeline.report import player_report_html, write_report

    wh = warehouse.warehouse()
    paths = {}
    for xuid in run_partitions(context):
        aliases = player_table(wh, "xuid_aliases", xuid, {"xuid": pl.Int64, "gamertag": pl.Utf8})
        tags = aliases.filter(pl.col("xuid") == xuid)["gamertag"].to_list()
        r = player_rollups(wh, xuid)
        doc = player_report_html(xuid, tags[0] if tags else None, r["scores"], r["maps"], r["categories"],
                                 r["sessions"])
        paths[xuid] = write_report(report_path(wh, xuid), doc)
    metadata = {f"report/{x}": dg.MetadataValue.path(str(p)) for x, p in paths.items()}
    if len(paths) == 1:
        metadata["path"] = dg.MetadataValue.path(str(next(iter(paths.values()))))
    return dg.MaterializeResult(metadata=metadata)


ANALYTICS_ASSETS = [*ANALYTICS_ASSETS, player_report]
