"""The code location's assets in a ``sync_job`` of the landing and stats families run by Dagster's multiprocess
executor (one process per step), for ``test_assets.py::test_multiprocess_executor_gives_the_same_warehouse``: steps
share nothing but files."""

import dagster as dg

from halo_pipeline import definitions
from halo_pipeline.partitions import player_month_partitions


@dg.definitions
def defs() -> dg.Definitions:
    base = definitions.defs()
    return dg.Definitions(
        assets=base.assets, asset_checks=base.asset_checks, resources=base.resources,
        jobs=[dg.define_asset_job("sync_job", selection=dg.AssetSelection.groups("matches", "stats"),
                                  partitions_def=player_month_partitions, executor_def=dg.multiprocess_executor)])
