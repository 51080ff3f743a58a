"""The Dagster code location: ``dagster dev -m halo_pipeline.definitions`` (or ``-w workspace.yaml``).

Nothing here reads the environment: resources resolve ``HALO_API_URL``, ``HALO_DATA_DIR``,
``HALO_REFERENCE_DIR`` and the token variables at run time.
"""

from __future__ import annotations

import dagster as dg

from halo_pipeline.api.resource import HaloApiResource, WarehouseResource
from halo_pipeline.defs.analytics.assets import ANALYTICS_ASSETS
from halo_pipeline.defs.analytics.checks import ANALYTICS_CHECKS
from halo_pipeline.defs.matches.assets import match_history, raw_matches
from halo_pipeline.defs.reference.assets import medal_definitions, playlist_modes
from halo_pipeline.defs.stats.assets import STATS_ASSETS
from halo_pipeline.defs.sync.assets import sync_meta
from halo_pipeline.defs.sync.jobs import JOBS
from halo_pipeline.defs.sync.sensors import (
    analytics_follow_up_sensor,
    build_delta_schedule,
    declared_players_sensor,
    delta_sync_sensor,
)
from halo_pipeline.defs.warehouse.assets import warehouse_catalog

ASSETS = [playlist_modes, medal_definitions, match_history, raw_matches, *STATS_ASSETS, *ANALYTICS_ASSETS, sync_meta,
          warehouse_catalog]

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=ANALYTICS_CHECKS,
    jobs=JOBS,
    sensors=[delta_sync_sensor, declared_players_sensor, analytics_follow_up_sensor],
    schedules=[build_delta_schedule()],
    resources={"halo_api": HaloApiResource(), "warehouse": WarehouseResource()},
    # Steps are cheap and write their own files: running them in the run's process avoids a process start
    # per step (≈1–2 s each), which dominates small syncs.
    executor=dg.in_process_executor,
)
