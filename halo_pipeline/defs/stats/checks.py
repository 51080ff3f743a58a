"""Asset checks on the stats tables (Dagster asset checks: they show on each asset's "Checks" tab).

The data checks are partitioned like their asset (player × month): they run in the same run as the asset's
partitions (a sync or a backfill) and look at those partitions. Each failed check lists the offending rows
(first 50) in its metadata. The rules themselves are pure functions in
:mod:`halo_pipeline.transforms.analytics`.
"""

import dagster as dg
import polars as pl

from halo_pipeline.defs.common import preview_markdown, run_partitions
from halo_pipeline.partitions import player_month_partitions
from halo_pipeline.services.analytics import reference
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms import analytics as ta
from halo_pipeline.transforms.matches import (
    MATCH_FACTS_SCHEMA,
    MATCH_PARTICIPANTS_SCHEMA,
    MEDALS_SCHEMA,
    TEAM_STATS_SCHEMA,
)


def _read(context: dg.AssetCheckExecutionContext, wh: Warehouse, table: str, schema: dict) -> pl.DataFrame:
    """The rows of ``table`` in the run's partitions (each with ``owner_xuid``)."""
    frames = [wh.read_partition(table, x, m, schema).with_columns(owner_xuid=pl.lit(x, pl.Int64))
              for x, months in run_partitions(context).items() for m in months]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema=schema)


def _result(bad: pl.DataFrame, what: str, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    metadata = {"failures": bad.height}
    if bad.height:
        metadata["offending rows"] = dg.MetadataValue.md(preview_markdown(bad, rows=50))
    return dg.AssetCheckResult(passed=bad.height == 0, severity=severity,
                               description=f"{bad.height} {what}" if bad.height else None, metadata=metadata)


def _check(asset, name: str, description: str, **kwargs):
    return dg.asset_check(asset=asset, name=name, description=description,
                          partitions_def=player_month_partitions, blocking=False, **kwargs)


@_check("match_facts", "unique_match_id_per_owner",
        "Each match appears once per owner in match_facts (over all the owner's months).")
def unique_match_id_per_owner(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    frames = [wh.read_table("match_facts", x, schema=MATCH_FACTS_SCHEMA) for x in run_partitions(context)]
    facts = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema=MATCH_FACTS_SCHEMA)
    return _result(ta.duplicate_match_ids(facts), "duplicated owner rows")


@_check("match_facts", "owner_in_participants",
        "The owner of every match_facts row is among that match's match_participants.",
        additional_deps=["match_participants"])
def owner_in_participants(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    facts = _read(context, wh, "match_facts", MATCH_FACTS_SCHEMA)
    participants = _read(context, wh, "match_participants", MATCH_PARTICIPANTS_SCHEMA)
    return _result(ta.owners_missing_from_participants(facts, participants), "owner rows without participant row")


@_check("team_stats", "team_kills_match_participants",
        "Per team, the kills of its players (match_participants by last team) equal the team's kills "
        "(Teams[]). Matches without teams (infection, free-for-all) and with team changes are skipped.",
        additional_deps=["match_participants"])
def team_kills_match_participants(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    teams = _read(context, wh, "team_stats", TEAM_STATS_SCHEMA)
    participants = _read(context, wh, "match_participants", MATCH_PARTICIPANTS_SCHEMA)
    return _result(ta.team_kill_mismatches(participants, teams), "teams whose kills differ from their players'")


@_check("match_facts", "no_null_start_time", "Every match_facts row has a start_time (its month).")
def no_null_start_time(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    facts = _read(context, warehouse.warehouse(), "match_facts", MATCH_FACTS_SCHEMA)
    return _result(facts.filter(pl.col("start_time").is_null()).select("match_id", "owner_xuid"),
                   "rows without start_time")


@_check("match_facts", "accuracy_in_range",
        "accuracy (%) is within [0, 100] (or null: no shot fired) in match_facts and match_participants.",
        additional_deps=["match_participants"])
def accuracy_in_range(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    bad = [ta.accuracy_out_of_range(_read(context, wh, t, s)).select(
        "match_id", "xuid", "accuracy", "shots_fired", "shots_hit", table=pl.lit(t))
        for t, s in (("match_facts", MATCH_FACTS_SCHEMA), ("match_participants", MATCH_PARTICIPANTS_SCHEMA))]
    return _result(pl.concat(bad), "rows with accuracy outside [0, 100]")


@_check("medals", "medal_names_defined",
        "Every medal name_id seen has a row in medal_definitions (WARN: a new medal is not an error).",
        additional_deps=["medal_definitions"])
def medal_names_defined(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    wh = warehouse.warehouse()
    seen = _read(context, wh, "medals", MEDALS_SCHEMA)
    definitions = reference(wh, "medal_definitions")
    if definitions is None:
        definitions = pl.DataFrame(schema={"name_id": pl.Int64})
    unknown = ta.undefined_medals(seen, definitions)
    return dg.AssetCheckResult(
        passed=not unknown, severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(unknown)} medal name_id(s) without definition" if unknown else None,
        metadata={"undefined_name_ids": ", ".join(map(str, unknown[:100])), "failures": len(unknown)})
