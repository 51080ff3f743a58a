"""The warehouse catalog asset: the DuckDB file users query."""

import dagster as dg

from halo_pipeline.defs.common import FOLLOWS_UPSTREAM
from halo_pipeline.storage.catalog import build_catalog
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.tables import TABLES


@dg.asset(group_name="warehouse", deps=[*TABLES, "player_report"], kinds={"duckdb"},
          automation_condition=FOLLOWS_UPSTREAM)
def warehouse_catalog(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The DuckDB catalog ``$HALO_DATA_DIR/warehouse/halo.duckdb``: one view per table over all its Parquet
    partitions (``owner_xuid`` = the partition's player) and one per reference table. Query it with
    ``duckdb data/warehouse/halo.duckdb`` or ``halo-pipeline stats``. Rows per table as metadata."""
    wh = warehouse.warehouse()
    counts = build_catalog(wh)
    lines = ["| table | rows |", "|---|---|"] + [f"| {t} | {n} |" for t, n in counts.items()]
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(wh.catalog_path)),
        "tables": dg.MetadataValue.md("\n".join(lines)),
        **{f"rows/{t}": n for t, n in counts.items()},
    })


catalog_job = dg.define_asset_job(
    "catalog_job", selection=dg.AssetSelection.assets(warehouse_catalog),
    description="Refresh the DuckDB catalog's views over the warehouse.",
)
