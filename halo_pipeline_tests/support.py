"""What many tests share: the assets of a sync, the resources for an emulator, a comparable snapshot of tables."""

from __future__ import annotations

import dagster as dg
import polars as pl

from halo_pipeline import tables
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.definitions import defs
from halo_pipeline.defs.analytics.settings import AnalyticsSettings
from halo_pipeline.partitions import player_month_partitions
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse


def assets_of(*groups: str) -> list[dg.AssetsDefinition]:
    """The asset definitions of the code location whose assets belong to ``groups``."""
    return [a for a in defs().assets if isinstance(a, dg.AssetsDefinition)
            and set(a.group_names_by_key.values()) & set(groups)]


def checks(*names: str) -> list[dg.AssetChecksDefinition]:
    """The asset checks of the code location declared apart from their asset (all, or those named)."""
    return [c for c in defs().asset_checks or () if not names or {k.name for k in c.check_keys} & set(names)]


def player_month_assets() -> list[dg.AssetKey]:
    """Every asset partitioned by player × month (the people and reference families are not), sorted."""
    graph = defs().resolve_asset_graph()
    return sorted((k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def == player_month_partitions),
                  key=lambda k: k.to_user_string())


def asset(name: str) -> dg.AssetsDefinition:
    """The asset definition (as declared, no resource bound) that materializes asset ``name``."""
    [found] = [a for a in defs().assets if isinstance(a, dg.AssetsDefinition) and dg.AssetKey(name) in a.keys]
    return found


#: Their tables, in registry order.
SYNC_TABLES = tables.names(group="matches") + tables.names(group="stats")
#: What a sync run lands and derives from raw landing (the API-calling assets and the stats family), with the
#: per-partition checks of those tables.
SYNC_ASSETS = [*assets_of("matches", "stats"),
               *(c for c in checks() if {k.asset_key.path[-1] for k in c.check_keys} <= set(SYNC_TABLES)
                 and "player_sync_fresh" not in {k.name for k in c.check_keys})]


def resources(url: str, data_dir, reference_dir=None, **api) -> dict:
    """Every resource of the code location for an emulator at ``url`` and a data dir (``api``: more
    :class:`HaloApiResource` fields)."""
    return {"halo_api": HaloApiResource(api_url=url, **api),
            "warehouse": WarehouseResource(data_dir=str(data_dir), reference_dir=str(reference_dir or "")),
            "analytics": AnalyticsSettings()}


#: Every table a sync writes: matches, stats, analytics, people (friends, profiles, ``players``) and the sync state
#: (``sync_meta``).
WAREHOUSE_TABLES = tables.names(layout="player_month") + tables.names(layout="player") + tables.names(layout="global")
#: Columns that differ between two runs doing the same work: which run fetched a body, when a sync ended.
RUN_SPECIFIC = ["fetched_in_run", "last_sync_at"]


def fast_defs(**api) -> dg.Definitions:
    """The code location with the Halo API resource's ``api`` fields changed (default ``requests_per_second=400``:
    against a local emulator, the live API's 5 requests/s would only slow a test down), run in process; resources
    still resolved from the environment (``HALO_API_URL``, ``HALO_DATA_DIR``…)."""
    base = defs()
    return dg.Definitions(assets=base.assets, asset_checks=base.asset_checks, jobs=base.jobs,
                          resources={**base.resources,
                                     "halo_api": HaloApiResource(**{"requests_per_second": 400.0} | api)},
                          executor=dg.in_process_executor)


def snapshot(wh: Warehouse, names: list[str] = SYNC_TABLES) -> dict[str, pl.DataFrame]:
    """Every table of ``names``, run-specific columns dropped, rows sorted: two warehouses compare equal. A table
    with no partition (e.g. ``friends`` when none is declared) is empty, with its declared columns."""
    return {t: wh.read_table(t, schema=tables.schema(t)).drop(RUN_SPECIFIC, strict=False).sort(pl.all())
            for t in names}


def assert_same_warehouse(got: Warehouse, expected: Warehouse, names: list[str] = WAREHOUSE_TABLES) -> None:
    """Every table of ``names`` holds the same rows in both warehouses (run-specific columns aside), and
    neither is empty where the other is not."""
    left, right = snapshot(got, names), snapshot(expected, names)
    for table in names:
        assert left[table].height == right[table].height, (table, left[table].height, right[table].height)
        assert left[table].equals(right[table]), f"{table} differs"
