"""(d) Dagster overhead: a single-run backfill of the JSON-derived tables over ``players × months`` partitions
(one run per player, ``--partition-range`` style) vs the pure transform time of the same partitions, measured
in the same run (the same derive functions and Parquet writes, no Dagster). Target < 0.3 s per partition.

Dagster records two events per partition and asset (materialization planned, materialization), so the
overhead is the instance's storage. Measured on each kind of instance the project uses:

* **local SQLite** — the ``DAGSTER_HOME`` that ``halo-pipeline`` and ``dagster dev`` create
  (:data:`halo_pipeline.instance.DAGSTER_YAML`): the figure users see, and the one held to the target;
* **in memory** — ``DagsterInstance.ephemeral()``, as ``materialize()`` in tests;
* **PostgreSQL** — ``deploy/dagster.yaml`` on a server started here (full mode, when the server binaries of
  the ``pgserver`` wheel or Debian's package exist), without and with ``DAGSTER_EVENT_BATCH_SIZE``
  (Dagster then writes a step's materializations in one batch: ``store_event_batch``, which PostgreSQL
  implements and SQLite does not).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg

from benchmarks._common import REPO, Result, cloned_landing, require_success, timer
from benchmarks.bench_first_import import QUIET
from benchmarks.bench_rederive import JSON_TABLES, _derive_all
from halo_pipeline.defs.stats.assets import stats_tables, xuid_aliases
from halo_pipeline.instance import ensure_home
from halo_pipeline.partitions import PLAYERS, partition_range_tags
from halo_pipeline.services import parallel
from halo_pipeline.storage.resource import WarehouseResource

#: ``DAGSTER_EVENT_BATCH_SIZE`` for the batched PostgreSQL measurement (and deploy/README's advice).
EVENT_BATCH_SIZE = "1000"


@contextlib.contextmanager
def _in_memory() -> Iterator[dg.DagsterInstance]:
    yield dg.DagsterInstance.ephemeral()


@contextlib.contextmanager
def _local_sqlite() -> Iterator[dg.DagsterInstance]:
    with tempfile.TemporaryDirectory(prefix="halo-bench-home-") as home:
        with dg.DagsterInstance.from_config(str(ensure_home(Path(home)))) as instance:
            yield instance


def _postgres(batch: bool) -> Callable[[], contextlib.AbstractContextManager[dg.DagsterInstance]]:
    @contextlib.contextmanager
    def factory() -> Iterator[dg.DagsterInstance]:
        from halo_pipeline.testing import postgres_server

        saved = dict(os.environ)
        with postgres_server() as pg, tempfile.TemporaryDirectory(prefix="halo-bench-pg-home-") as home:
            os.environ.update(pg)
            if batch:
                os.environ["DAGSTER_EVENT_BATCH_SIZE"] = EVENT_BATCH_SIZE
            shutil.copy(REPO / "deploy" / "dagster.yaml", Path(home) / "dagster.yaml")
            try:
                with dg.DagsterInstance.from_config(home) as instance:
                    yield instance
            finally:
                os.environ.clear()
                os.environ.update(saved)
    return factory


def _postgres_available() -> str | None:
    """Why PostgreSQL cannot be measured here, or None."""
    from halo_pipeline.testing import Unavailable, postgres_binaries

    try:
        postgres_binaries()
    except Unavailable as exc:
        return str(exc)
    return None


def _backfill(instance: dg.DagsterInstance, data_dir: str, parts: list[tuple[int, str]]) -> float:
    """Seconds of one single-run backfill per player of ``JSON_TABLES`` over ``parts`` on ``instance``."""
    instance.add_dynamic_partitions(PLAYERS, sorted({str(x) for x, _ in parts}))
    selection = [dg.AssetKey(t) for t in JSON_TABLES]
    ok = True
    with timer() as t:
        for xuid in sorted({x for x, _ in parts}):
            months_of = sorted(m for x, m in parts if x == xuid)
            out = dg.materialize([stats_tables, xuid_aliases], selection=selection, instance=instance, run_config=QUIET,
                                 resources={"warehouse": WarehouseResource(data_dir=data_dir)},
                                 tags=partition_range_tags(xuid, months_of[0], months_of[-1]),
                                 raise_on_error=False)
            ok = ok and out.success
    require_success(ok, "a backfill run")
    return t[0]


def run(smoke: bool = False) -> Result:
    players, months, per_month = (1, 4, 10) if smoke else (4, 25, 100)
    result = Result(f"(d) Dagster overhead: backfill of {players * months} partitions × {len(JSON_TABLES)} tables")
    kinds: list[tuple[str, Callable, bool]] = [("local SQLite (DAGSTER_HOME)", _local_sqlite, True),
                                               ("in memory (ephemeral)", _in_memory, False)]
    why_not_pg = "smoke mode" if smoke else _postgres_available()
    if why_not_pg is None:
        kinds += [("PostgreSQL", _postgres(False), False),
                  (f"PostgreSQL, DAGSTER_EVENT_BATCH_SIZE={EVENT_BATCH_SIZE}", _postgres(True), False)]
    with tempfile.TemporaryDirectory(prefix="halo-bench-overhead-") as tmp:
        landing = cloned_landing(Path(tmp), players, months, per_month)
        parts = list(landing.partitions)
        if not smoke:
            parallel.start_workers()  # once per process, like the Dagster runs of this process
        with _in_memory() as instance:  # Dagster's own first-run costs (imports, job build), once per process
            _backfill(instance, tmp, parts[:1])
        pure = []
        for label, factory, target in kinds:
            with timer() as t_pure:
                _derive_all(landing.wh, parts, single_pass=True)
            pure.append(t_pure[0])
            with factory() as instance:
                seconds = _backfill(instance, tmp, parts)
            per_partition = (seconds - t_pure[0]) / len(parts)
            result.add(f"overhead/partition, {label}", per_partition, "s/partition",
                       target="< 0.3 s" if target else "", ok=per_partition < 0.3 if target and not smoke else None)
            result.notes.append(f"{label}: backfill {seconds:.1f} s vs pure transforms {t_pure[0]:.1f} s just before "
                                f"(= {per_partition / len(JSON_TABLES) * 1000:.0f} ms per partition × table)")
    if why_not_pg is not None:
        result.notes.append(f"PostgreSQL not measured: {why_not_pg}")
    result.notes.append(f"{len(parts)} partitions, {landing.matches:,} matches, {players} run(s) per instance; "
                        f"pure transforms {min(pure):.1f}–{max(pure):.1f} s")
    return result


if __name__ == "__main__":
    import sys

    run("--smoke" in sys.argv).print()
