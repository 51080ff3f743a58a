"""The warehouse catalog asset: the DuckDB file users query."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from halo_pipeline.api.resource import WarehouseResource
from halo_pipeline.defs.analytics.assets import ANALYTICS_ASSETS, ANALYTICS_SCHEMAS
from halo_pipeline.defs.matches.assets import RAW_MATCHES_SCHEMA, match_history, raw_matches
from halo_pipeline.defs.reference.assets import REFERENCE_TABLES, medal_definitions, playlist_modes
from halo_pipeline.defs.stats.assets import SCHEMAS, STATS_ASSETS
from halo_pipeline.defs.sync.assets import sync_meta
from halo_pipeline.defs.sync.state import SYNC_META, SYNC_META_SCHEMA
from halo_pipeline.storage.catalog import refresh_catalog
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms.matches import HISTORY_SCHEMA

#: Every partitioned table and its declared columns (the catalog's empty views use them).
TABLE_SCHEMAS = {"match_history": HISTORY_SCHEMA, "raw_matches": RAW_MATCHES_SCHEMA, **SCHEMAS, **ANALYTICS_SCHEMAS}


def build_catalog(wh: Warehouse) -> dict[str, int]:
    """(Re)create every view of the catalog file; returns ``{table: rows}``. Used by the asset and by
    maintenance commands that move files (a view whose glob no longer matches a file would fail)."""
    wh.root.mkdir(parents=True, exist_ok=True)
    wh.catalog_path.parent.mkdir(parents=True, exist_ok=True)  # local even when the warehouse is on S3
    # dagster-duckdb's resource retries while another process holds the file's write lock.
    with DuckDBResource(database=str(wh.catalog_path)).get_connection() as con:
        return refresh_catalog(con, wh, TABLE_SCHEMAS, REFERENCE_TABLES, per_player={SYNC_META: SYNC_META_SCHEMA})


@dg.asset(
    group_name="warehouse",
    deps=[match_history, raw_matches, *STATS_ASSETS, *ANALYTICS_ASSETS, sync_meta, playlist_modes, medal_definitions],
    kinds={"duckdb"},
)
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
