"""Resources and executor of the code location (what every asset family shares)."""

import dagster as dg

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.storage.resource import WarehouseResource


@dg.definitions
def resources() -> dg.Definitions:
    """The Halo API and the data location, resolved at run time (``HALO_API_URL``, ``HALO_DATA_DIR``…). Steps run
    in the run's process: they are cheap and write their own files, and a process per step (≈1–2 s each) would
    dominate small syncs."""
    return dg.Definitions(resources={"halo_api": HaloApiResource(), "warehouse": WarehouseResource()},
                          executor=dg.in_process_executor)
