"""The reference refresh job."""

import dagster as dg

from halo_pipeline.defs.reference.assets import REFERENCE_GROUP

reference_job = dg.define_asset_job(
    "reference_job", selection=dg.AssetSelection.groups(REFERENCE_GROUP),
    description="Load playlists, game modes, mode categories and medal definitions.",
)
