"""(d) Dagster overhead: a single-run backfill of the JSON-derived tables over ``players × months`` partitions
(one run per player, ``--partition-range`` style) vs the pure transform time of the same partitions, measured
in the same run (the same derive functions and Parquet writes, no Dagster). Target < 0.3 s per partition."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import dagster as dg

from benchmarks._common import Result, cloned_landing, require_success, timer
from benchmarks.bench_first_import import QUIET
from benchmarks.bench_rederive import JSON_TABLES, _derive_all
from halo_pipeline.api.resource import WarehouseResource
from halo_pipeline.defs.stats.assets import STATS_ASSETS
from halo_pipeline.partitions import PLAYERS, partition_range_tags


def run(smoke: bool = False) -> Result:
    players, months, per_month = (1, 4, 10) if smoke else (4, 25, 100)
    result = Result(f"(d) Dagster overhead: backfill of {players * months} partitions × {len(JSON_TABLES)} tables")
    with tempfile.TemporaryDirectory(prefix="halo-bench-overhead-") as tmp:
        landing = cloned_landing(Path(tmp), players, months, per_month)
        parts = list(landing.partitions)
        with timer() as t_pure:
            _derive_all(landing.wh, parts, f"pure-{uuid.uuid4()}")
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(PLAYERS, sorted({str(x) for x, _ in parts}))
        selection = [dg.AssetKey(t) for t in JSON_TABLES]
        ok = True
        with timer() as t_dagster:
            for xuid in sorted({x for x, _ in parts}):
                months_of = sorted(m for x, m in parts if x == xuid)
                out = dg.materialize(STATS_ASSETS, selection=selection, instance=instance, run_config=QUIET,
                                     resources={"warehouse": WarehouseResource(data_dir=tmp)},
                                     tags=partition_range_tags(xuid, months_of[0], months_of[-1]),
                                     raise_on_error=False)
                ok = ok and out.success
    require_success(ok, "a backfill run")
    n = len(parts)
    per_partition = (t_dagster[0] - t_pure[0]) / n
    result.add("pure transforms (same partitions)", t_pure[0], "s")
    result.add("Dagster backfill", t_dagster[0], "s", t_pure[0], t_dagster[0] / t_pure[0])
    result.add("overhead per partition", per_partition, "s/partition", target="< 0.3 s",
               ok=per_partition < 0.3)
    result.add("overhead per partition × table", per_partition / len(JSON_TABLES) * 1000, "ms")
    result.notes.append(f"{n} partitions, {landing.matches:,} matches, {players} run(s)")
    return result


if __name__ == "__main__":
    import sys

    run("--smoke" in sys.argv).print()
