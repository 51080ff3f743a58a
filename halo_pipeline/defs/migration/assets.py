"""Moving in from LevelUp: where its imported figures disagree with the API's (the import and the re-derivation of
its rows are ``halo-pipeline import levelup``; the rows themselves are derived by the stats family)."""

import dagster as dg

from halo_pipeline.defs.common import (
    FOLLOWS_UPSTREAM,
    SINGLE_RUN,
    Outcome,
    each_partition,
    partition_check,
    per_month,
    record_partitions,
)
from halo_pipeline.defs.stats.assets import STATS_GROUP, write_partitions
from halo_pipeline.months import Month
from halo_pipeline.partitions import player_month_partitions
from halo_pipeline.services.levelup import partition_disagreements
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import schema

TABLE = "levelup_disagreements"
CHECK = "levelup_agrees_with_api"


@dg.asset(
    name=TABLE,
    group_name=STATS_GROUP,
    partitions_def=player_month_partitions,
    backfill_policy=SINGLE_RUN,
    deps=["raw_matches"],
    kinds={"polars", "parquet"},
    automation_condition=FOLLOWS_UPSTREAM,
)
def levelup_disagreements(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Where figures imported from LevelUp (``raw/levelup/``) differ from the landed API body of the same match, one
    row per figure: match_id, xuid (whose figure), table_name (match_facts | match_participants | medals |
    personal_scores), column_name, name_id (the medal or award, for counts), levelup_value, api_value (Float64).
    The API's figures are the ones the warehouse keeps: LevelUp read only a player's first team entry, so a player
    who changed teams has wrong shots there. Empty for partitions with no imported match. Zero API calls."""
    wh = warehouse.warehouse()
    written = write_partitions(wh, ((x, m, {TABLE: partition_disagreements(wh, x, m)})
                                    for x, m in each_partition(context)))
    return record_partitions(context, TABLE, written.get(TABLE, []),
                             lambda df: {"disagreements": df.height,
                                         "matches": df["match_id"].n_unique() if df.height else 0})


def _agrees(wh: Warehouse, xuid: int, month: Month) -> Outcome:
    found = wh.read_partition(TABLE, xuid, month, schema(TABLE))
    matches = found["match_id"].n_unique() if found.height else 0
    return Outcome(found.height == 0, found,
                   f"{found.height} LevelUp figure(s) differ from the API's in {matches} match(es)" if found.height
                   else None, {"matches": matches})


levelup_agrees_with_api = partition_check(
    TABLE, CHECK, "LevelUp's imported figures equal the API's for every imported match whose API body is landed "
    "(WARN: the API's figures are the ones kept; the differences are LevelUp's, e.g. the shots of a player who "
    "changed teams). Offending rows: the figures that differ.", per_month(_agrees),
    severity=dg.AssetCheckSeverity.WARN)
