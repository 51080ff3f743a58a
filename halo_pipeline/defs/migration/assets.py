"""Moving in from LevelUp: where its imported figures disagree with the API's (the import and the re-derivation of
its rows are ``halo-pipeline import levelup``; the rows themselves are derived by the stats family)."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from halo_pipeline.defs.common import SINGLE_RUN, frame_metadata, run_partitions
from halo_pipeline.defs.stats.assets import STATS_GROUP, write_partitions
from halo_pipeline.partitions import partition_key, player_month_partitions
from halo_pipeline.services.levelup import partition_disagreements
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.tables import schema

TABLE = "levelup_disagreements"
CHECK = "levelup_agrees_with_api"
#: Disagreements listed in the check's metadata (the rest are counted).
MAX_LISTED = 30


@dg.asset(
    name=TABLE,
    group_name=STATS_GROUP,
    partitions_def=player_month_partitions,
    backfill_policy=SINGLE_RUN,
    deps=["raw_matches"],
    kinds={"polars", "parquet"},
    check_specs=[dg.AssetCheckSpec(CHECK, asset=TABLE, description=(
        "LevelUp's imported figures equal the API's for every imported match whose API body is landed (WARN: "
        "the API's figures are the ones kept; the differences are LevelUp's, e.g. the shots of a player who "
        "changed teams)."))],
)
def levelup_disagreements(context: dg.AssetExecutionContext, warehouse: WarehouseResource
                          ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Where figures imported from LevelUp (``raw/levelup/``) differ from the landed API body of the same match, one
    row per figure: match_id, xuid (whose figure), table_name (match_facts | match_participants | medals |
    personal_scores), column_name, name_id (the medal or award, for counts), levelup_value, api_value (Float64).
    The API's figures are the ones the warehouse keeps: LevelUp read only a player's first team entry, so a player
    who changed teams has wrong shots there. Empty for partitions with no imported match. Zero API calls."""
    wh = warehouse.warehouse()
    partitions = [(x, m) for x, months in run_partitions(context).items() for m in months]
    written = write_partitions(wh, ((x, m, {TABLE: partition_disagreements(wh, x, m)}) for x, m in partitions))
    frames = [df for *_, df in written.get(TABLE, [])]
    found = pl.concat(frames) if frames else pl.DataFrame(schema=schema(TABLE))
    rows = {str(partition_key(x, m)): df.height for x, m, df in written.get(TABLE, [])}
    yield dg.MaterializeResult(metadata=frame_metadata(found, rows) | {"disagreements": found.height})
    listed = "\n".join(f"- {r['match_id']} {r['table_name']}.{r['column_name']} (xuid {r['xuid']}"
                       + (f", name_id {r['name_id']}" if r["name_id"] is not None else "")
                       + f"): LevelUp {r['levelup_value']:g}, API {r['api_value']}"
                       for r in found.head(MAX_LISTED).iter_rows(named=True))
    yield dg.AssetCheckResult(
        check_name=CHECK, asset_key=TABLE, passed=found.height == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"disagreements": found.height,
                  "matches": found["match_id"].n_unique() if found.height else 0,
                  **({"listed": dg.MetadataValue.md(listed)} if listed else {})})
