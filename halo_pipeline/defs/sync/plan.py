"""Planning a delta sync: which player × month partitions got new matches, from one history page per player
(when nothing is new) and the player's watermark. Shared by the sensor, the schedule and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
import dagster as dg

from halo_pipeline.api.client import HaloApiClient
from halo_pipeline.defs.matches.history import PAGE_SIZE, start_time
from halo_pipeline.defs.sync.state import read_watermark
from halo_pipeline.ids import month_start
from halo_pipeline.partitions import FIRST_MONTH, partition_range_tags
from halo_pipeline.storage.warehouse import Warehouse

#: History pages a plan may read for a player already synced (25 matches a page): a tick stays short.
MAX_PAGES_DELTA = 4
#: History pages read for a player never synced before falling back to a full-range import.
MAX_PAGES_NEW = 8


@dataclass
class PlayerPlan:
    """What a player needs: ``blocks`` of contiguous months (``(first, last)``, ``YYYY-MM-01``) to sync."""

    xuid: int
    blocks: list[tuple[str, str]] = field(default_factory=list)
    newest_match_id: str | None = None
    history_calls: int = 0
    first_import: bool = False

    @property
    def months(self) -> list[str]:
        return [m for first, last in self.blocks for m in month_range(first, last)]


def next_month(month: str) -> str:
    year, mm = int(month[:4]), int(month[5:7])
    return f"{year + mm // 12:04d}-{mm % 12 + 1:02d}-01"


def month_range(first: str, last: str) -> list[str]:
    """Months from ``first`` to ``last`` inclusive."""
    out = [first]
    while out[-1] < last:
        out.append(next_month(out[-1]))
    return out


def month_blocks(months: list[str]) -> list[tuple[str, str]]:
    """Contiguous runs of ``months``: ``["2024-08-01", "2024-09-01", "2025-01-01"]`` →
    ``[("2024-08-01", "2024-09-01"), ("2025-01-01", "2025-01-01")]``."""
    blocks: list[tuple[str, str]] = []
    for month in sorted(set(months)):
        if blocks and next_month(blocks[-1][1]) == month:
            blocks[-1] = (blocks[-1][0], month)
        else:
            blocks.append((month, month))
    return blocks


async def plan_player(api: HaloApiClient, wh: Warehouse, xuid: int, match_type: str = "all",
                      bounded: bool = True) -> PlayerPlan:
    """Read the newest history pages of ``xuid`` down to its watermark and plan the months to sync.

    * synced before: pages until an entry at or before the watermark (1 call when nothing is new), at most
      :data:`MAX_PAGES_DELTA`; past that, every month from the watermark's to the newest is planned;
    * never synced: pages the history (at most :data:`MAX_PAGES_NEW`); a longer history is planned as one
      range from :data:`FIRST_MONTH` to the newest month (the run itself walks the whole history).

    ``bounded=False`` (the CLI, which has no tick to keep short) pages as far as needed, so a first import
    plans exactly the months that hold matches.
    """
    known, watermark = read_watermark(wh, xuid)
    plan = PlayerPlan(xuid, first_import=not known or watermark is None)
    limit = MAX_PAGES_NEW if plan.first_import else MAX_PAGES_DELTA
    months: list[str] = []
    reached_end = False
    start = 0
    while not bounded or plan.history_calls < limit:
        page = await api.match_history(xuid, start=start, count=PAGE_SIZE, match_type=match_type)
        plan.history_calls += 1
        results = page.get("Results") or []
        for entry in results:
            if watermark is not None and start_time(entry) <= watermark:
                reached_end = True
                break
            plan.newest_match_id = plan.newest_match_id or entry["MatchId"]
            months.append(month_start(start_time(entry)))
        if reached_end or len(results) < PAGE_SIZE:
            reached_end = True
            break
        start += len(results)
    if not months:
        return plan
    if reached_end:
        plan.blocks = month_blocks(months)
    else:
        oldest = month_start(watermark) if watermark is not None else FIRST_MONTH
        plan.blocks = [(oldest, max(months))]
    return plan


def synced_months(wh: Warehouse, xuid: int) -> list[str]:
    """Months of ``xuid`` whose ``raw_matches`` partition exists, ascending."""
    return sorted(f"{p.parent.parent.name[5:]}-{p.parent.name[6:]}-01" for p in wh.partition_files("raw_matches", xuid))


def follow_up_range(wh: Warehouse, xuid: int, first: str, last: str) -> tuple[str, str] | None:
    """The months whose analytics a run over ``first``…``last`` made stale, or ``None``.

    Sessions of the previous month may continue into ``first``, and performance scores of every later month
    read the earlier ones: so ``(previous month if synced, newest synced month)`` when that is wider than
    the run's own range.
    """
    months = synced_months(wh, xuid)
    if not months:
        return None
    previous = month_range(months[0], first)[-2] if months[0] < first else first
    start, end = (previous if previous in months else first), max(months[-1], last)
    return (start, end) if (start, end) != (first, last) else None


SYNC_KEY_TAG = "halo/sync_key"
PLAYER_TAG = "halo/player"


def run_requests(plan: PlayerPlan, instance: dg.DagsterInstance, match_type: str = "all") -> list[dg.RunRequest]:
    """One ``sync_job`` run request per block of the plan, with a ``run_key`` that dedupes repeated ticks.

    The key names the block and the newest history match, plus the number of finished runs with that key:
    while a run is queued or running, repeated ticks give the same key (deduped); once it has finished and
    the plan still asks for the block (it failed, or a match could not be landed), the next tick gets a
    new key and retries — a failed run never leaves a gap behind.
    """
    requests = []
    for first, last in plan.blocks:
        key = f"{plan.xuid}:{first[:7]}:{last[:7]}:{plan.newest_match_id}"
        finished = instance.get_runs_count(dg.RunsFilter(tags={SYNC_KEY_TAG: key}, statuses=[
            dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]))
        requests.append(dg.RunRequest(
            run_key=f"{key}:{finished}",
            run_config={"ops": {"match_history": {"config": {"match_type": match_type}}}},
            tags={**partition_range_tags(plan.xuid, first, last), SYNC_KEY_TAG: key, PLAYER_TAG: str(plan.xuid)},
        ))
    return requests


def busy_players(instance: dg.DagsterInstance) -> set[str]:
    """xuids with a sync run queued or in progress (a new request would race it on the same partitions)."""
    runs = instance.get_runs(dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED]))
    return {run.tags[PLAYER_TAG] for run in runs if PLAYER_TAG in run.tags}
