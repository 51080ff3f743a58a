"""Jobs over player × month partitions: what a sync, a re-derivation (backfill) and an analytics refresh run."""

from __future__ import annotations

import dagster as dg

from halo_pipeline.defs.analytics.assets import ANALYTICS_GROUP
from halo_pipeline.defs.matches.assets import MATCHES_GROUP
from halo_pipeline.defs.stats.assets import STATS_GROUP
from halo_pipeline.defs.sync.assets import SYNC_GROUP
from halo_pipeline.partitions import player_month_partitions

SYNC_SELECTION = dg.AssetSelection.groups(MATCHES_GROUP, STATS_GROUP, ANALYTICS_GROUP, SYNC_GROUP)
#: What a backfill re-derives from raw landing (everything partitioned but the API-calling assets).
REDERIVE_SELECTION = dg.AssetSelection.groups(STATS_GROUP, ANALYTICS_GROUP, SYNC_GROUP)

sync_job = dg.define_asset_job(
    "sync_job",
    selection=SYNC_SELECTION,
    partitions_def=player_month_partitions,
    description="Fetch the history and land the new matches of player × month partitions, then derive "
    "every table. Matches already landed cost no API call.",
)
full_sync = dg.define_asset_job(
    "full_sync",
    selection=SYNC_SELECTION,
    partitions_def=player_month_partitions,
    description="The first import, or repairing a whole history: select a player's months from the first one "
    "(or `since`) to now; config `ops.match_history.config`: match_type (all | matchmaking | custom), "
    "max_matches, since (YYYY-MM-DD). Matches already landed cost no API call.",
)
rederive_job = dg.define_asset_job(
    "rederive_job",
    selection=REDERIVE_SELECTION,
    partitions_def=player_month_partitions,
    description="Re-derive every table of player × month partitions from raw landing: zero API calls "
    "(a backfill).",
)
analytics_job = dg.define_asset_job(
    "analytics_job",
    selection=dg.AssetSelection.groups(ANALYTICS_GROUP) - dg.AssetSelection.assets("ugc_names"),
    partitions_def=player_month_partitions,
    description="Re-derive the analytics (sessions, performance scores, stats, report) of player × month "
    "partitions: zero API calls. Requested after a sync that changed months other analytics depend on.",
)
