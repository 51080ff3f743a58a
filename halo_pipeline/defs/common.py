"""Helpers shared by the asset families: partitions of a run, metadata of a written frame."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import dagster as dg
import polars as pl
from dagster_polars.io_managers.utils import get_metadata_schema

from halo_pipeline.ids import InvalidInput
from halo_pipeline.partitions import split_key

#: Every partitioned asset lets one run cover many partitions (cheap backfills, `--partition-range`).
SINGLE_RUN = dg.BackfillPolicy.single_run()
#: Assets that call the Halo API share this concurrency pool (set its limit with `dagster instance
#: concurrency set halo_api 1`), so that runs in parallel never exceed the API's rate limit together.
API_POOL = "halo_api"


def run_partitions(context: dg.AssetExecutionContext) -> dict[int, list[str]]:
    """The partitions of this run as ``{xuid: [month, …]}`` (months ``YYYY-MM-01``, ascending)."""
    by_player: dict[int, list[str]] = defaultdict(list)
    for key in context.partition_keys:
        try:
            xuid, month = split_key(key)
        except InvalidInput as exc:
            raise dg.Failure(str(exc)) from None
        by_player[xuid].append(month)
    return {x: sorted(set(m)) for x, m in by_player.items()}


def preview_markdown(df: pl.DataFrame, rows: int = 5) -> str:
    """The first ``rows`` rows of ``df`` as a markdown table (the UI's preview)."""
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=rows, tbl_cols=12, fmt_str_lengths=40):
        return str(df.head(rows))


def frame_metadata(df: pl.DataFrame, per_partition: Mapping[str, int] | None = None) -> dict:
    """Row count, column schema and a markdown preview of ``df``; per-partition row counts when given."""
    metadata: dict = {
        "dagster/row_count": dg.MetadataValue.int(df.height),
        "dagster/column_schema": get_metadata_schema(df),
        "preview": dg.MetadataValue.md(preview_markdown(df)),
    }
    if per_partition is not None and len(per_partition) > 1:
        lines = ["| partition | rows |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(per_partition.items())]
        metadata["rows_per_partition"] = dg.MetadataValue.md("\n".join(lines))
    return metadata
