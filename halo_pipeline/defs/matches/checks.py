"""Checks on the matches family: every history match landed (per partition), every player synced lately."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from halo_pipeline.defs.common import Outcome, PartitionCheck, partition_checks, per_month
from halo_pipeline.months import Month
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.services.state import SYNC_MAX_AGE, last_syncs, stale_players
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import RAW_MATCHES_SCHEMA


def _unlanded(wh: Warehouse, xuid: int, month: Month) -> Outcome:
    """Fails on the partition's history matches whose stats body is not landed and can be: ``failed`` (the next
    sync fetches them again); those the API answers 404 for (``not_found``: an expired or deleted match, asked
    again by each sync all the same) are counted in the metadata, not failed — no sync can land them."""
    rows = (wh.read_partition("raw_matches", xuid, month, RAW_MATCHES_SCHEMA).filter(pl.col("stats_status") != "landed")
            .select("match_id", "start_time", "stats_status", "error"))
    missing = rows.filter(pl.col("stats_status") != "not_found")
    outcome = Outcome.of_rows(missing, "history match(es) without a landed stats body")
    outcome.metadata["not_found_by_the_api"] = rows.height - missing.height
    return outcome


matches_checks = partition_checks("matches_checks", [PartitionCheck(
    "raw_matches", "all_matches_landed",
    "Every match of the history has its stats body landed (a failed or missing one is fetched by the next sync). "
    "Matches the API answers 404 for (expired) do not fail it: metadata not_found_by_the_api counts them.",
    per_month(_unlanded))])


@dg.asset_check(asset="raw_matches", name="player_sync_fresh", blocking=False, description=(
    f"Every registered player was synced within the last {SYNC_MAX_AGE.total_seconds() / 3600:.0f} hours "
    "(sync_meta.last_sync_at, else raw landing's newest write). WARN."))
def player_sync_fresh(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    xuids = sorted(int(x) for x in context.instance.get_dynamic_partitions(PLAYERS))
    last = last_syncs(warehouse.warehouse(), xuids)
    stale = stale_players(last, datetime.now(UTC))
    return dg.AssetCheckResult(
        passed=not stale, severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(stale)} player(s) not synced for {SYNC_MAX_AGE}" if stale else None,
        metadata={"players": len(xuids), "stale": dg.MetadataValue.json(
            {str(x): t.isoformat() if t else "never" for x, t in stale.items()})})
