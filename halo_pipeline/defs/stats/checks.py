"""Asset checks on the stats tables (Dagster asset checks: each asset's "Checks" tab).

Each is partitioned like its asset (player × month), runs in the same run as the asset's partitions (a sync or a
backfill) and records one result per partition (:func:`halo_pipeline.defs.common.partition_check`). A failed check
lists the offending rows (first 50) in its metadata. The rules themselves are pure functions in
:mod:`halo_pipeline.transforms.analytics`.
"""

import dagster as dg
import polars as pl

from halo_pipeline.defs.common import Outcome, partition_check, per_month
from halo_pipeline.months import Month
from halo_pipeline.services.analytics import reference
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import schema
from halo_pipeline.transforms import analytics as ta


def _partition(wh: Warehouse, table: str, xuid: int, month: Month) -> pl.DataFrame:
    return wh.read_partition(table, xuid, month, schema(table))


def _unique_match_ids(wh: Warehouse, xuid: int, months: list[Month]) -> dict[Month, Outcome]:
    """Owner rows of a partition whose match also has an owner row elsewhere in the owner's months (or twice)."""
    every = wh.player_table("match_facts", xuid, schema("match_facts"))
    duplicated = ta.duplicate_match_ids(every)
    return {month: Outcome.of_rows(duplicated.join(_partition(wh, "match_facts", xuid, month).select("match_id")
                                                   .unique(), on="match_id", how="semi"), "duplicated owner rows")
            for month in months}


unique_match_id_per_owner = partition_check(
    "match_facts", "unique_match_id_per_owner",
    "Each match appears once per owner in match_facts (over all the owner's months).", _unique_match_ids)

owner_in_participants = partition_check(
    "match_facts", "owner_in_participants",
    "The owner of every match_facts row is among that match's match_participants.",
    per_month(lambda wh, x, m: Outcome.of_rows(ta.owners_missing_from_participants(
        _partition(wh, "match_facts", x, m), _partition(wh, "match_participants", x, m)),
        "owner rows without participant row")),
    additional_deps=["match_participants"])

team_kills_match_participants = partition_check(
    "team_stats", "team_kills_match_participants",
    "Per team, the kills of its players (match_participants by last team) equal the team's kills (Teams[]). "
    "Matches without teams (infection, free-for-all) and with team changes are skipped.",
    per_month(lambda wh, x, m: Outcome.of_rows(ta.team_kill_mismatches(
        _partition(wh, "match_participants", x, m), _partition(wh, "team_stats", x, m)),
        "teams whose kills differ from their players'")),
    additional_deps=["match_participants"])

no_null_start_time = partition_check(
    "match_facts", "no_null_start_time", "Every match_facts row has a start_time (its month).",
    per_month(lambda wh, x, m: Outcome.of_rows(
        _partition(wh, "match_facts", x, m).filter(pl.col("start_time").is_null()).select("match_id", "xuid"),
        "rows without start_time")))


def _accuracy(wh: Warehouse, xuid: int, month: Month) -> Outcome:
    bad = [ta.accuracy_out_of_range(_partition(wh, t, xuid, month)).select(
        "match_id", "xuid", "accuracy", "shots_fired", "shots_hit", table=pl.lit(t))
        for t in ("match_facts", "match_participants")]
    return Outcome.of_rows(pl.concat(bad), "rows with accuracy outside [0, 100]")


accuracy_in_range = partition_check(
    "match_facts", "accuracy_in_range",
    "accuracy (%) is within [0, 100] (or null: no shot fired) in match_facts and match_participants.",
    per_month(_accuracy), additional_deps=["match_participants"])


def _medal_names(wh: Warehouse, xuid: int, months: list[Month]) -> dict[Month, Outcome]:
    definitions = reference(wh, "medal_definitions")
    if definitions is None:
        definitions = pl.DataFrame(schema={"name_id": pl.Int64})
    out = {}
    for month in months:
        unknown = ta.undefined_medals(_partition(wh, "medals", xuid, month), definitions)
        out[month] = Outcome(not unknown, None, f"{len(unknown)} medal name_id(s) without definition" if unknown
                             else None, {"undefined_name_ids": ", ".join(map(str, unknown[:100])),
                                         "failures": len(unknown)})
    return out


medal_names_defined = partition_check(
    "medals", "medal_names_defined",
    "Every medal name_id seen has a row in medal_definitions (WARN: a new medal is not an error).", _medal_names,
    severity=dg.AssetCheckSeverity.WARN, additional_deps=["medal_definitions"])
