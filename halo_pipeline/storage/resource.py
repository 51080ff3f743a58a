"""The data location as a Dagster resource: where the warehouse, raw landing and reference files are."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from halo_pipeline.storage.warehouse import Warehouse, data_location, reference_location


class WarehouseResource(dg.ConfigurableResource):
    """Where data lives: ``data_dir`` (or env ``HALO_DATA_DIR``, default ``data``) holds ``warehouse/``
    (Parquet + ``halo.duckdb``) and ``raw/`` (raw landing); ``reference_dir`` (or env ``HALO_REFERENCE_DIR``,
    default: the reference files shipped with the package) holds the reference JSON files. ``data_dir`` may be
    object storage, ``s3://bucket/prefix`` (a ``UPath``; s3fs reads the usual ``AWS_*`` variables, e.g.
    ``AWS_ENDPOINT_URL`` for a non-AWS store). Both are resolved at run time, never at import."""

    data_dir: str = Field(default="", description="Empty: $HALO_DATA_DIR, else 'data'.")
    reference_dir: str = Field(default="", description="Empty: $HALO_REFERENCE_DIR, else the packaged files.")

    def data_path(self) -> Path:
        """The absolute local folder, or a ``UPath`` for an ``s3://…`` (any fsspec URL) location."""
        return data_location(self.data_dir)

    def reference_path(self) -> Path:
        """The folder of the reference JSON files (absolute)."""
        return reference_location(self.reference_dir)

    def warehouse(self) -> Warehouse:
        """The :class:`Warehouse` under :meth:`data_path`."""
        return Warehouse(self.data_path())
