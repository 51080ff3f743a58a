"""Helpers shared by the asset families: partitions of a run, metadata of a written frame."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import dagster as dg
import polars as pl
from dagster_polars.io_managers.utils import get_metadata_schema

from halo_pipeline.ids import InvalidInput
from halo_pipeline.months import Month
from halo_pipeline.partitions import split_key

#: Every partitioned asset lets one run cover many partitions (cheap backfills, `--partition-range`).
SINGLE_RUN = dg.BackfillPolicy.single_run()
#: Assets that call the Halo API share this concurrency pool (set its limit with `dagster instance
#: concurrency set halo_api 1`), so that runs in parallel never exceed the API's rate limit together.
API_POOL = "halo_api"


def run_partitions(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> dict[int, list[Month]]:
    """The partitions of this run as ``{xuid: [month, …]}`` (months ascending)."""
    by_player: dict[int, list[Month]] = defaultdict(list)
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


#: A run over more partitions lists only the partitions with the most rows (the metadata is attached to every
#: partition's materialization event: keep it small).
MAX_LISTED_PARTITIONS = 12


def frame_metadata(df: pl.DataFrame, per_partition: Mapping[str, int] | None = None) -> dict:
    """Column schema and a markdown preview of ``df``, and its row count: ``dagster/row_count`` for a single
    partition; for a run over several partitions (one materialization event each, sharing this metadata)
    ``rows_in_run`` and the rows of the largest partitions instead."""
    metadata: dict = {
        "dagster/column_schema": get_metadata_schema(df),
        "preview": dg.MetadataValue.md(preview_markdown(df)),
    }
    if per_partition is None or len(per_partition) <= 1:
        metadata["dagster/row_count"] = dg.MetadataValue.int(df.height)
        return metadata
    metadata["rows_in_run"] = dg.MetadataValue.int(df.height)
    metadata["partitions_in_run"] = dg.MetadataValue.int(len(per_partition))
    largest = sorted(per_partition.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LISTED_PARTITIONS]
    lines = ["| partition | rows |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(largest)]
    metadata["rows_per_partition"] = dg.MetadataValue.md("\n".join(lines))
    return metadata
