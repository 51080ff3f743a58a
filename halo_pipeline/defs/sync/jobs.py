"""Jobs: what a sync, a re-derivation (backfill), the reference refresh and the catalog refresh run."""

from __future__ import annotations

import dagster as dg

from halo_pipeline.defs.matches.assets import MATCHES_GROUP
from halo_pipeline.defs.reference.assets import REFERENCE_GROUP
from halo_pipeline.defs.stats.assets import STATS_GROUP
from halo_pipeline.partitions import player_month_partitions

sync_job = dg.define_asset_job(
    "sync_job",
    selection=dg.AssetSelection.groups(MATCHES_GROUP, STATS_GROUP),
    partitions_def=player_month_partitions,
    description="Fetch the history and land the new matches of player × month partitions, then derive "
    "every table. Matches already landed cost no API call.",
)
rederive_job = dg.define_asset_job(
    "rederive_job",
    selection=dg.AssetSelection.groups(STATS_GROUP),
    partitions_def=player_month_partitions,
    description="Re-derive every table of player × month partitions from raw landing: zero API calls "
    "(a backfill).",
)
reference_job = dg.define_asset_job(
    "reference_job", selection=dg.AssetSelection.groups(REFERENCE_GROUP),
    description="Load playlists, game modes, mode categories and medal definitions.",
)
catalog_job = dg.define_asset_job(
    "catalog_job", selection=dg.AssetSelection.assets("warehouse_catalog"),
    description="Refresh the DuckDB catalog's views over the warehouse.",
)

JOBS = [sync_job, rederive_job, reference_job, catalog_job]
