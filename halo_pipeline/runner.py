"""Runs launched by ``halo-pipeline sync`` and ``halo-pipeline backfill``, in this process, recorded in the
instance (they show in the UI).

The plan is the delta sensor's (:mod:`halo_pipeline.services.plan`): per player, the months with matches
newer than its watermark, as contiguous blocks, each one run of ``sync_job`` (a partition range: the run
pages the history once, lands only the matches not landed yet and derives every table). ``--full`` runs
``full_sync`` over every month from ``since`` (or the first partition month) to now instead. Then the
reference and catalog jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dagster as dg

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.sync.requests import PLAYER_TAG, follow_up_request, plan_players, run_requests
from halo_pipeline.months import FIRST_MONTH, Month
from halo_pipeline.partitions import PLAYERS, partition_range_of, partition_range_tags
from halo_pipeline.recovery import owner_tags, replan_interrupted
from halo_pipeline.services.backfill import BackfillPlan
from halo_pipeline.storage.resource import WarehouseResource

#: The console shows warnings and errors only; every event is in the instance (the UI's run page).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class SyncReport:
    """What a sync did: runs launched (id, job, partitions, success)."""

    runs: list[tuple[str, str, str, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(success for *_, success in self.runs)


def execute(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, report: SyncReport,
            tags: dict[str, str] | None = None, label: str = "", run_config: dict | None = None,
            asset_selection: list[dg.AssetKey] | None = None, warehouse: WarehouseResource | None = None) -> bool:
    """Run ``job`` in this process against ``instance`` (recorded there, visible in the UI).

    With ``warehouse``, a successful run over a partition range is followed, like the
    ``analytics_follow_up_sensor`` does for launched runs, by an ``analytics_job`` run over the months whose
    analytics it made stale. The run records this process as its owner (:mod:`halo_pipeline.recovery`)."""
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags={**(tags or {}), **owner_tags()}, run_config={**QUIET, **(run_config or {})},
        raise_on_error=False, asset_selection=asset_selection)
    report.runs.append((result.run_id, job, label, result.success))
    if result.success and warehouse is not None:
        follow_up = follow_up_request(warehouse.warehouse(), dict(tags or {}), result.run_id)
        if follow_up is not None:
            execute(defs, "analytics_job", instance, report, dict(follow_up.tags),
                    f"analytics {_label(follow_up.tags)}")
    return result.success


def _label(tags: dict[str, str]) -> str:
    """``YYYY-MM…YYYY-MM|xuid`` of a run's partition range."""
    xuid, first, last = partition_range_of(tags)
    return f"{first.label}…{last.label}|{xuid}"


def sync_players(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    halo_api: HaloApiResource,
    warehouse: WarehouseResource,
    xuids: Iterable[int] | None = None,
    match_type: str = "all",
    full: bool = False,
    since: str | None = None,
    max_matches: int | None = None,
    log: Callable[[str], None] = print,
) -> SyncReport:
    """Sync ``xuids`` (default: every registered player), then refresh reference data and the catalog."""
    players = [int(x) for x in (xuids if xuids is not None else instance.get_dynamic_partitions(PLAYERS))]
    report = SyncReport()
    ok = execute(defs, "reference_job", instance, report, label="reference")
    log(f"reference data: {'ok' if ok else 'FAILED'}")
    if full:
        first = Month.parse(since) if since else FIRST_MONTH
        config = {"ops": {"match_history": {"config": {
            "match_type": match_type, "max_matches": max_matches,
            "since": (since if len(since) > 7 else f"{since}-01") if since else None}}}}
        for xuid in players:
            tags = partition_range_tags(xuid, first, Month.current()) | {PLAYER_TAG: str(xuid)}
            ok = execute(defs, "full_sync", instance, report, tags, _label(tags), run_config=config,
                         warehouse=warehouse)
            log(f"{xuid}: full sync {_label(tags)}: {'ok' if ok else 'FAILED'}")
    else:
        replan_interrupted(instance, warehouse.warehouse())  # months of runs that died are planned again
        for plan in plan_players(halo_api, warehouse.warehouse(), players, bounded=False):
            requests = run_requests(plan, instance, match_type)
            if not requests:
                log(f"{plan.xuid}: up to date ({plan.history_calls} history call)")
            for request in requests:
                ok = execute(defs, "sync_job", instance, report, dict(request.tags), _label(request.tags),
                             run_config=request.run_config, warehouse=warehouse)
                log(f"{plan.xuid}: {_label(request.tags)}: {'ok' if ok else 'FAILED'}")
    ok = execute(defs, "catalog_job", instance, report, label="catalog")
    log(f"catalog: {'ok' if ok else 'FAILED'}")
    return report


def run_backfill(defs: dg.Definitions, instance: dg.DagsterInstance, plan: BackfillPlan,
                 warehouse: WarehouseResource) -> SyncReport:
    """One run over the plan's partition range (recorded in ``instance``, visible in the UI), the analytics
    it made stale, then the catalog."""
    report = SyncReport()
    tags = partition_range_tags(plan.xuid, plan.first, plan.last) | {PLAYER_TAG: str(plan.xuid)}
    run_config = {"ops": {"raw_matches": {"config": {"refetch": True}}}} if plan.refetch else None
    selection = [dg.AssetKey(a) for a in plan.assets] if plan.assets else None
    execute(defs, plan.job, instance, report, tags, _label(tags), run_config=run_config, asset_selection=selection,
            warehouse=warehouse)
    execute(defs, "catalog_job", instance, report, label="catalog")
    return report
