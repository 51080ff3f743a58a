"""Helpers shared by the asset families: the partitions of a run, what each partition's materialization and asset
checks record.

**Per partition, in every kind of run.** A run may cover one partition (a UI click, ``dg launch --partition``) or
many (``sync_job`` over a player's months, a single-run backfill, ``--partition-range``). Dagster 1.13 gives an
``AssetCheckResult`` the step's single partition key, so a step over a range would record its one result without a
partition and leave every planned per-partition check Skipped; and a ``MaterializeResult``'s metadata is copied to
every partition's materialization. So:

* each partition's own figures (``dagster/row_count``, a preview of ITS rows, its counts) are attached to its own
  materialization with ``context.add_asset_metadata(…, partition_key=…)`` (:func:`record_partitions`); what is
  true of the whole run (rows over all partitions) goes to the run's log;
* each check evaluates each partition of the run and records one ``AssetCheckEvaluation`` per partition, targeting
  that partition's latest materialization (:func:`partition_check`) — what ``AssetCheckResult`` does for a
  single-partition step, done for every partition.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import dagster as dg
import polars as pl

# The one private Dagster name we use: what ``AssetCheckResult`` itself attaches to a partition's evaluation so that
# the UI counts it as current for that partition's latest materialization; Dagster 1.13 exports no public alias.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as TargetMaterialization,
)
from dagster_polars.io_managers.utils import get_metadata_schema

from halo_pipeline.ids import InvalidInput
from halo_pipeline.months import Month
from halo_pipeline.partitions import partition_key, player_month_partitions, split_key
from halo_pipeline.services.players import gamertag_of
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import TABLES

#: Every partitioned asset lets one run cover many partitions (cheap backfills, `--partition-range`).
SINGLE_RUN = dg.BackfillPolicy.single_run()
#: Assets that call the Halo API share this concurrency pool (set its limit with `dagster instance
#: concurrency set halo_api 1`), so that runs in parallel never exceed the API's rate limit together.
API_POOL = "halo_api"
#: Declarative automation of every derived asset (zero API calls but ``ugc_names``'s new asset versions): a
#: partition is requested when a partition it reads was updated since it was last requested or materialized, once
#: nothing it reads is still running. Re-materializing a month of ``match_facts`` by hand thus brings the sessions of
#: its neighbour months, the performance scores of every later month, the stats, report and catalog up to date
#: through the daemon, and the UI's Automation tab says why each was requested. (No ``any_deps_missing`` guard:
#: months without matches may never be materialized, and every derived table reads an absent month as empty.)
FOLLOWS_UPSTREAM = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("re-derive when what it reads changed")
#: ``match_facts`` also reads the ``friends`` table (``with_friends``, ``friends_xuids``), which every CLI sync and the
#: daily people schedule re-materialize but which rarely changes: only a new data version of it (the ``friends``
#: asset records a hash of its table) re-derives the partitions materialized so far (every month of every player
#: depends on the one table); its other dependencies as :data:`FOLLOWS_UPSTREAM`.
_FRIENDS = dg.AssetSelection.assets("friends")
FOLLOWS_UPSTREAM_AND_FRIENDS = (
    (dg.AutomationCondition.any_deps_updated().ignore(_FRIENDS)
     | (dg.AutomationCondition.any_deps_match(
         dg.AutomationCondition.newly_updated() & dg.AutomationCondition.data_version_changed()).allow(_FRIENDS)
        & ~dg.AutomationCondition.missing())
     ).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("re-derive when what it reads changed (friends: when its table changed)")
#: Rows shown by a partition's preview (and by a failed check's offending rows).
PREVIEW_ROWS = 10
OFFENDING_ROWS = 50

#: ``(xuid, month, frame)`` of one written partition.
Written = tuple[int, Month, pl.DataFrame]


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


def each_partition(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[tuple[int, Month]]:
    """The ``(xuid, month)`` partitions of this run, by player then month."""
    return [(x, m) for x, months in run_partitions(context).items() for m in months]


def preview_markdown(df: pl.DataFrame, columns: Sequence[str] = (), rows: int = PREVIEW_ROWS) -> str:
    """The first ``rows`` rows of ``df``'s ``columns`` (all when empty) as a markdown table, one line per row
    (cells are never wrapped)."""
    view = df.select([c for c in columns if c in df.columns]) if columns else df
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=rows, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=60_000):
        return str(view.head(rows))


def frame_metadata(table: str, df: pl.DataFrame) -> dict:
    """The metadata of one table's frame: ``dagster/row_count``, ``dagster/column_schema`` and a preview of the
    table's chosen columns (:data:`halo_pipeline.tables.TABLES`)."""
    return {
        "dagster/row_count": dg.MetadataValue.int(df.height),
        "dagster/column_schema": get_metadata_schema(df),
        "preview": dg.MetadataValue.md(preview_markdown(df, TABLES[table].preview if table in TABLES else ())),
    }


def record_partitions(context: dg.AssetExecutionContext, table: str, written: Iterable[Written],
                      figures: Callable[[pl.DataFrame], dict] | None = None) -> dg.MaterializeResult:
    """Attach each written partition's own metadata to its materialization (row count, preview of its rows, the
    player's gamertag, ``figures(frame)``), log the run's totals, and return the asset's result.

    The result's own metadata is what every partition shares: the column schema.
    """
    written = list(written)
    landing = None
    gamertags: dict[int, str | None] = {}
    for xuid, month, df in written:
        if xuid not in gamertags:
            landing = landing or _landing(context)
            gamertags[xuid] = gamertag_of(landing, xuid) if landing else None
        player = f"{xuid} ({gamertags[xuid]})" if gamertags[xuid] else str(xuid)
        metadata = frame_metadata(table, df) | {"player": player} | (figures(df) if figures else {})
        metadata.pop("dagster/column_schema")
        context.add_asset_metadata(metadata, asset_key=table, partition_key=str(partition_key(xuid, month)))
    rows = sum(df.height for *_, df in written)
    context.log.info(f"{table}: {rows} row(s) over {len(written)} partition(s)")
    schema = TABLES[table].schema if table in TABLES else {}
    return dg.MaterializeResult(asset_key=table, metadata={
        "dagster/column_schema": get_metadata_schema(pl.DataFrame(schema=schema))})


def _landing(context: dg.AssetExecutionContext):
    warehouse = getattr(context.resources, "warehouse", None)
    return warehouse.warehouse().landing if isinstance(warehouse, WarehouseResource) else None


# --------------------------------------------------------------------------------------------------- checks


@dataclass
class Outcome:
    """What a check found in one partition: ``passed``, the offending rows (shown, first
    :data:`OFFENDING_ROWS`), a one-line ``description`` and more ``metadata``."""

    passed: bool
    offending: pl.DataFrame | None = None
    description: str | None = None
    metadata: dict = field(default_factory=dict)

    @classmethod
    def of_rows(cls, bad: pl.DataFrame, what: str) -> "Outcome":
        """Passed when ``bad`` is empty; else ``"<n> <what>"`` with the rows."""
        return cls(bad.height == 0, bad, f"{bad.height} {what}" if bad.height else None)


#: ``evaluate(warehouse, xuid, months) -> {month: Outcome}``: one player's partitions of the run at once (a check
#: that reads all the player's months reads them once).
Evaluate = Callable[[Warehouse, int, list[Month]], dict[Month, Outcome]]


def per_month(evaluate: Callable[[Warehouse, int, Month], Outcome]) -> Evaluate:
    """An :data:`Evaluate` from a function of one partition."""
    return lambda wh, xuid, months: {month: evaluate(wh, xuid, month) for month in months}


def _latest_materialization(instance: dg.DagsterInstance, asset: str, key: str
                            ) -> TargetMaterialization | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1).records
    if not records:
        return None
    record = records[0]
    return TargetMaterialization(storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp)


def partition_check(asset: str, name: str, description: str, evaluate: Evaluate,
                    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
                    additional_deps: Sequence[str] = ()) -> dg.AssetChecksDefinition:
    """A non-blocking asset check on ``asset`` (player × month) that evaluates every partition of its run and
    records one evaluation per partition (Passed or Failed, never Skipped), each targeting that partition's latest
    materialization. ``evaluate`` is called once per player of the run."""

    @dg.asset_check(asset=asset, name=name, description=description, partitions_def=player_month_partitions,
                    blocking=False, additional_deps=list(additional_deps))
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> None:
        wh = warehouse.warehouse()
        failed = 0
        for xuid, months in run_partitions(context).items():
            for month, outcome in evaluate(wh, xuid, months).items():
                failed += not _record(context, asset, name, severity, str(partition_key(xuid, month)), outcome)
        context.log.info(f"{name}: {failed} of {len(context.partition_keys)} partition(s) failed")

    return _check


def _record(context: dg.AssetCheckExecutionContext, asset: str, name: str, severity: dg.AssetCheckSeverity,
            key: str, outcome: Outcome) -> bool:
    """Record ``outcome`` as the evaluation of check ``name`` on partition ``key``; returns whether it passed."""
    offending = outcome.offending if outcome.offending is not None else pl.DataFrame()
    metadata = {"failures": offending.height, **outcome.metadata}
    if offending.height:
        metadata["offending rows"] = dg.MetadataValue.md(preview_markdown(offending, rows=OFFENDING_ROWS))
    context.op_execution_context.log_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset), check_name=name, passed=outcome.passed, partition=key, severity=severity,
        description=outcome.description, metadata=metadata,
        target_materialization_data=_latest_materialization(context.instance, asset, key)))
    return outcome.passed
