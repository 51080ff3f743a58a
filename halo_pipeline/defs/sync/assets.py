"""The sync state asset (LevelUp's ``sync_meta``)."""

import dagster as dg

from halo_pipeline.defs.common import FOLLOWS_UPSTREAM, SINGLE_RUN, each_partition, record_partitions, run_partitions
from halo_pipeline.partitions import player_month_partitions
from halo_pipeline.services.state import write_state
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.tables import names

SYNC_GROUP = "sync"


@dg.asset(
    group_name=SYNC_GROUP,
    partitions_def=player_month_partitions,
    backfill_policy=SINGLE_RUN,
    deps=["raw_matches", *names(group="stats")],
    automation_condition=FOLLOWS_UPSTREAM,
    kinds={"parquet"},
)
def sync_meta(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Sync state per player (one row each, recomputed from the whole warehouse after every sync run):
    xuid, last_sync_at (UTC), last_match_id, last_match_at, total_matches, failed_matches, watermark (UTC:
    the newest match such that every older history match is landed and derived), months_synced,
    sync_status (ok | incomplete | empty). The delta-sync sensor reads the watermark. Zero API calls.
    Stored at ``warehouse/sync_meta/player=<xuid>/data.parquet``."""
    wh = warehouse.warehouse()
    state = {xuid: write_state(wh, xuid) for xuid in run_partitions(context)}
    written = [(xuid, month, state[xuid]) for xuid, month in each_partition(context)]
    return record_partitions(context, "sync_meta", written,
                             figures=lambda row: {"watermark": str(row["watermark"][0]),
                                                  "sync_status": str(row["sync_status"][0])})
