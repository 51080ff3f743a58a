"""A sync through Dagster: the runs that ``halo-pipeline sync`` launches (they show in the UI).

For each registered player: page the match history to find the months that hold matches, then one run of
``sync_job`` covering that player's months (a partition range: the run pages the history once, lands
only the matches not yet landed, and derives every table), then the reference and catalog jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.matches.history import entries_by_month, fetch_history
from halo_pipeline.partitions import PLAYERS, partition_key


@dataclass
class SyncReport:
    """What a sync did: runs launched (id, job, partitions, success) and players with no match."""

    runs: list[tuple[str, str, str, bool]] = field(default_factory=list)
    players_without_matches: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(success for *_, success in self.runs)


def months_with_matches(halo_api: HaloApiResource, xuid: int, since: datetime | None = None,
                        match_type: str = "all") -> list[str]:
    """Months (``YYYY-MM-01``, ascending) in which ``xuid`` has matches newer than ``since``."""

    async def probe() -> list[dict]:
        async with halo_api.client() as api:
            return await fetch_history(api, xuid, since=since, match_type=match_type)

    return sorted(entries_by_month(run_api(probe())))


def partition_range_tags(xuid: int, first_month: str, last_month: str) -> dict[str, str]:
    """Run tags selecting the partitions of ``xuid`` from ``first_month`` to ``last_month`` (one run)."""
    return {
        ASSET_PARTITION_RANGE_START_TAG: str(partition_key(xuid, first_month)),
        ASSET_PARTITION_RANGE_END_TAG: str(partition_key(xuid, last_month)),
    }


#: The console shows warnings and errors only; every event is in the instance (the UI's run page).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def execute(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, report: SyncReport,
            tags: dict[str, str] | None = None, label: str = "", run_config: dict | None = None) -> bool:
    """Run ``job`` in this process against ``instance`` (recorded there, visible in the UI)."""
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, tags=tags or {}, run_config={**QUIET, **(run_config or {})}, raise_on_error=False)
    report.runs.append((result.run_id, job, label, result.success))
    return result.success


def sync_players(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    halo_api: HaloApiResource,
    xuids: Iterable[int] | None = None,
    match_type: str = "all",
    log: Callable[[str], None] = print,
) -> SyncReport:
    """Sync ``xuids`` (default: every registered player) and refresh reference data and the catalog."""
    players = [int(x) for x in (xuids if xuids is not None else instance.get_dynamic_partitions(PLAYERS))]
    report = SyncReport()
    log(f"reference data: {'ok' if execute(defs, 'reference_job', instance, report, label='reference') else 'FAILED'}")
    for xuid in players:
        months = months_with_matches(halo_api, xuid, match_type=match_type)
        if not months:
            report.players_without_matches.append(xuid)
            log(f"{xuid}: no match in the history")
            continue
        label = f"{months[0][:7]}…{months[-1][:7]}|{xuid}"
        config = {"ops": {"match_history": {"config": {"match_type": match_type}}}}
        ok = execute(defs, "sync_job", instance, report, partition_range_tags(xuid, months[0], months[-1]),
                     label, run_config=config)
        log(f"{xuid}: months {months[0][:7]} → {months[-1][:7]}: {'ok' if ok else 'FAILED'}")
    log(f"catalog: {'ok' if execute(defs, 'catalog_job', instance, report, label='catalog') else 'FAILED'}")
    return report
