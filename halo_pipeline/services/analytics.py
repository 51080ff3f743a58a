"""The analytics of a player × month from the warehouse: what each analytics asset writes, without Dagster.

Each is a pure function of the warehouse (``match_facts``, ``match_participants``, reference tables, landed UGC
bodies) — re-deriving costs zero API calls, and the result does not depend on the order in which months are
materialized:

* sessions of month M read the player's ``match_facts`` of every month up to M+1: a session belongs to the month
  of its first match and keeps its matches of the next month; its id is ``<xuid>:<first match id>``;
* performance scores of month M read every earlier month of the player (a match is scored against all the
  player's earlier matches);
* the materialized stats of month M read that month's facts, sessions and scores (and the next month's for
  sessions crossing the boundary).

The rules themselves are in :mod:`halo_pipeline.transforms.analytics`.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from halo_pipeline.months import Month
from halo_pipeline.services import images
from halo_pipeline.services.landing import UGC_KINDS, landed_ugc_name
from halo_pipeline.services.people_report import people_sections
from halo_pipeline.services.report import player_report_html, write_report
from halo_pipeline.storage.files import read_parquet
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import schema
from halo_pipeline.transforms import analytics as ta

#: The four materialized stats tables of a partition (one multi-asset).
STATS_TABLES = ("map_stats", "mode_category_stats", "session_stats", "global_stats")

UgcRef = tuple[str, str, str]


def ugc_refs(wh: Warehouse, xuid: int, month: str) -> list[UgcRef]:
    """``(kind, asset id, version id)`` of the maps, map-mode pairs and playlists played in the partition."""
    facts = wh.read_partition("match_facts", xuid, month, schema("match_facts"))
    return sorted({(kind, a, v) for kind, (ac, vc) in UGC_KINDS.items()
                   for a, v in facts.select(ac, vc).unique().iter_rows() if a and v})


def ugc_names(wh: Warehouse, refs: list[UgcRef]) -> pl.DataFrame:
    """``ugc_names`` rows of ``refs`` from the landed UGC bodies (``public_name`` null when none is landed)."""
    rows = [{"kind": k, "asset_id": a, "version_id": v, "public_name": landed_ugc_name(wh.landing, k, a, v)}
            for k, a, v in refs]
    return pl.DataFrame(rows, schema=ta.UGC_NAMES_SCHEMA)


def players_per_match(wh: Warehouse, xuid: int, until: str) -> pl.DataFrame:
    """``match_id, players`` (participants, bots included) of a player's matches up to ``until``."""
    df = wh.player_table("match_participants", xuid, {"match_id": pl.Utf8}, until=until)
    return df.group_by("match_id").agg(players=pl.len())


def month_sessions(wh: Warehouse, xuid: int, month: str, gap_minutes: float) -> pl.DataFrame:
    """The sessions of ``xuid`` starting in ``month`` (pauses ≤ ``gap_minutes``) from its match_facts of every
    month up to the next one."""
    facts = wh.player_table("match_facts", xuid, schema("match_facts"), until=Month(month).next())
    return ta.sessions(facts, gap_minutes).filter(ta.month_of() == month)


def month_scores(wh: Warehouse, xuid: int, month: str) -> pl.DataFrame:
    """Performance scores of ``xuid``'s matches of ``month``, against every earlier match (months ≤ M)."""
    facts = wh.player_table("match_facts", xuid, schema("match_facts"), until=month)
    scores = ta.performance_scores(facts, players_per_match(wh, xuid, month))
    return scores.filter(ta.month_of() == month)


def reference(wh: Warehouse, table: str) -> pl.DataFrame | None:
    """A reference table, or ``None`` when it was never materialized."""
    return read_parquet(p) if (p := wh.reference_path(table)).exists() else None


def month_stats(wh: Warehouse, xuid: int, month: str, game_modes: pl.DataFrame | None,
                categories: pl.DataFrame | None) -> dict[str, pl.DataFrame]:
    """The four materialized stats frames (:data:`STATS_TABLES`) of one partition, from the warehouse."""
    month = Month(month)
    facts = wh.read_partition("match_facts", xuid, month, schema("match_facts"))
    names = wh.player_table("ugc_names", xuid, ta.UGC_NAMES_SCHEMA).unique(["kind", "asset_id", "version_id"])
    scores = wh.player_table("performance_scores", xuid, ta.PERFORMANCE_SCHEMA, since=month, until=month.next())
    if scores.filter(ta.month_of() == month).height != facts.height:  # not materialized yet: compute
        scores = pl.concat([month_scores(wh, xuid, month), month_scores(wh, xuid, month.next())])
    labelled = ta.label_matches(facts, names, game_modes, categories)
    session_rows = wh.read_partition("sessions", xuid, month, ta.SESSIONS_SCHEMA)
    neighbours = wh.player_table("match_facts", xuid, schema("match_facts"), since=month, until=month.next())
    return {
        "map_stats": ta.map_stats(labelled, scores, month),
        "mode_category_stats": ta.mode_category_stats(labelled, scores, month),
        "session_stats": ta.session_stats(session_rows, neighbours, scores, month),
        "global_stats": ta.global_stats(facts, scores, month),
    }


# --------------------------------------------------------------------------------------------------- report


def report_path(wh: Warehouse, xuid: int) -> Path:
    """``<data_dir>/warehouse/reports/<xuid>.html``."""
    return wh.root / "reports" / f"{xuid}.html"


def player_rollups(wh: Warehouse, xuid: int) -> dict[str, pl.DataFrame]:
    """A player's stats summed over all months (the same figures as the catalog's mv views), for the
    report: ``maps``, ``categories``, ``sessions``, ``scores``."""
    def rollup(table: str, keys: list[str]) -> pl.DataFrame:
        df = wh.player_table(table, xuid, schema(table))
        return ta.with_ratios(df.group_by(keys).agg(pl.col(list(ta._SUMS)).sum())).sort("matches", descending=True)

    maps = rollup("map_stats", ["map_id", "map_name"]).with_columns(
        map=pl.coalesce("map_name", pl.col("map_id").str.slice(0, 8), pl.lit("custom/unknown")))
    return {
        "maps": maps,
        "categories": rollup("mode_category_stats", ["mode_category"]),
        "sessions": wh.player_table("session_stats", xuid, ta.SESSION_STATS_SCHEMA).sort("start_time"),
        "scores": wh.player_table("performance_scores", xuid, ta.PERFORMANCE_SCHEMA),
    }


#: Map thumbnails are embedded at most this wide (px) in the report.
THUMBNAIL_WIDTH = 160


def _landed_images(wh: Warehouse, family: str, role: str) -> dict[str, Path]:
    """``{asset_id: local file}`` of the landed images of ``family`` × ``role`` (``image_assets``); the first
    version listed when several are."""
    table = images.image_table(wh)
    if table is None:
        return {}
    rows = table.filter((pl.col("family") == family) & (pl.col("role") == role) & (pl.col("status") == "landed"))
    out: dict[str, Path] = {}
    for asset_id, local in rows.select("asset_id", "local_path").iter_rows():
        out.setdefault(asset_id, wh.data_dir / local)
    return out


def player_medals(wh: Warehouse, xuid: int) -> pl.DataFrame:
    """The player's medals over all their matches (as owner): name_id, name (``medal_definitions``' English
    name, else ``medal <name_id>``), count, icon (the landed icon as a data URI, or null); most earned first."""
    medals = wh.player_table("medals", xuid, schema("medals")).filter(pl.col("xuid") == xuid)
    counts = medals.group_by("name_id").agg(pl.col("count").sum().cast(pl.Int64)).sort(["count", "name_id"],
                                                                                      descending=[True, False])
    definitions = reference(wh, "medal_definitions")
    names = dict(definitions.select("name_id", "name_en").iter_rows()) if definitions is not None else {}
    icons = _landed_images(wh, "medal_icon", images.REPORT_MEDAL_SIZE)
    rows = [{"name_id": n, "name": names.get(n) or f"medal {n}", "count": c,
             "icon": images.data_uri(icons[str(n)]) if str(n) in icons else None} for n, c in counts.iter_rows()]
    return pl.DataFrame(rows, schema={"name_id": pl.Int64, "name": pl.Utf8, "count": pl.Int64, "icon": pl.Utf8})


def write_player_report(wh: Warehouse, xuid: int) -> Path:
    """Write the player's HTML report (all months) to :func:`report_path`; returns the path. Medal icons and map
    thumbnails come from the landed images (``image_assets``), embedded; without them the tables have no image."""
    aliases = wh.player_table("xuid_aliases", xuid, {"xuid": pl.Int64, "gamertag": pl.Utf8})
    tags = aliases.filter(pl.col("xuid") == xuid)["gamertag"].to_list()
    r = player_rollups(wh, xuid)
    profile, sections = people_sections(wh, xuid)
    thumbnails = _landed_images(wh, "maps", "thumbnail")
    maps = r["maps"].with_columns(thumbnail=pl.col("map_id").map_elements(
        lambda m: images.data_uri(thumbnails[m], THUMBNAIL_WIDTH) if m in thumbnails else None,
        return_dtype=pl.Utf8, skip_nulls=True))
    doc = player_report_html(xuid, tags[0] if tags else None, r["scores"], maps, r["categories"], r["sessions"],
                             profile, sections, player_medals(wh, xuid))
    return write_report(report_path(wh, xuid), doc)
