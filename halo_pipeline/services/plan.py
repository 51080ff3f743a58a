"""Planning a delta sync: which player × month partitions got new matches, from one history page per player
(when nothing is new) and the player's watermark. Shared by the sensor, the schedule and the CLI (no Dagster:
the run requests are built in :mod:`halo_pipeline.defs.sync.requests`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from halo_pipeline.api.client import HaloApiClient
from halo_pipeline.months import FIRST_MONTH, Month, month_blocks
from halo_pipeline.services.history import PAGE_SIZE, HistoryWalk, WalkIndex, start_time
from halo_pipeline.services.state import read_watermark
from halo_pipeline.storage.warehouse import Warehouse, month_of_path

#: History pages a plan may read for a player already synced (25 matches a page): a tick stays short.
MAX_PAGES_DELTA = 4
#: History pages read for a player never synced before falling back to a full-range import.
MAX_PAGES_NEW = 8


@dataclass
class PlayerPlan:
    """What a player needs: ``blocks`` of contiguous months (``(first, last)``, ``YYYY-MM-01``) to sync."""

    xuid: int
    blocks: list[tuple[Month, Month]] = field(default_factory=list)
    newest_match_id: str | None = None
    history_calls: int = 0
    first_import: bool = False

    @property
    def months(self) -> list[Month]:
        return [m for first, last in self.blocks for m in first.until(last)]


async def plan_player(api: HaloApiClient, wh: Warehouse, xuid: int, match_type: str = "all",
                      bounded: bool = True) -> PlayerPlan:
    """Read the newest history pages of ``xuid`` down to its watermark and plan the months to sync.

    * synced before: pages until an entry at or before the watermark (1 call when nothing is new), at most
      :data:`MAX_PAGES_DELTA`; past that, every month from the watermark's to the newest is planned;
    * never synced: pages the history (at most :data:`MAX_PAGES_NEW`); a longer history is planned as one
      range from :data:`FIRST_MONTH` to the newest month (the run itself walks the whole history).

    ``bounded=False`` (the CLI, which has no tick to keep short) pages as far as needed, so a first import
    plans exactly the months that hold matches.

    The months the pages covered whole and that hold no match are recorded as walked in the player's
    :class:`~halo_pipeline.services.history.WalkIndex` (``match_type`` all): a month without matches is then a real,
    empty partition that materializes with zero API calls.
    """
    known, watermark = read_watermark(wh, xuid)
    plan = PlayerPlan(xuid, first_import=not known or watermark is None)
    limit = MAX_PAGES_NEW if plan.first_import else MAX_PAGES_DELTA
    walk = HistoryWalk()
    months: list[Month] = []
    reached_end = False
    start = 0
    while not bounded or plan.history_calls < limit:
        page = await api.match_history(xuid, start=start, count=PAGE_SIZE, match_type=match_type)
        plan.history_calls += 1
        results = page.get("Results") or []
        for entry in results:
            if watermark is not None and start_time(entry) <= watermark:
                reached_end = True
                walk.complete_since = watermark
                break
            plan.newest_match_id = plan.newest_match_id or entry["MatchId"]
            months.append(Month.of(start_time(entry)))
            walk.complete_since = start_time(entry)  # every match from here on is seen
        if reached_end or len(results) < PAGE_SIZE:
            if not reached_end:
                walk.complete_since = FIRST_MONTH.start  # the history ended
            reached_end = True
            break
        start += len(results)
    if match_type == "all":
        _record_empty_months(wh, xuid, walk, set(months))
    if not months:
        return plan
    if reached_end:
        plan.blocks = month_blocks(months)
    else:
        oldest = Month.of(watermark) if watermark is not None else FIRST_MONTH
        plan.blocks = [(oldest, max(months))]
    return plan


def _record_empty_months(wh: Warehouse, xuid: int, walk: HistoryWalk, with_matches: set[Month]) -> None:
    """Record as walked the months ``walk`` covered whole that hold no match (and have no history partition)."""
    index = WalkIndex.load(wh.landing, xuid)
    empty = [m for m in walk.walked_months() if m not in with_matches and not index.settled(m)
             and not wh.partition_path("match_history", xuid, m).exists()]
    if empty:  # a player with nothing new writes nothing
        index.record(wh.landing, empty, walk.started_at)


def synced_months(wh: Warehouse, xuid: int) -> list[Month]:
    """Months of ``xuid`` whose ``raw_matches`` partition exists, ascending."""
    return sorted(month_of_path(p) for p in wh.partition_files("raw_matches", xuid))


def follow_up_range(wh: Warehouse, xuid: int, first: Month, last: Month) -> tuple[Month, Month] | None:
    """The months whose analytics a run over ``first``…``last`` made stale, or ``None``.

    Sessions of the previous month may continue into ``first``, and performance scores of every later month
    read the earlier ones: so ``(previous month if synced, newest synced month)`` when that is wider than
    the run's own range.
    """
    months = synced_months(wh, xuid)
    if not months:
        return None
    previous = first.previous()
    start, end = (previous if previous in months else first), max(months[-1], last)
    return (start, end) if (start, end) != (first, last) else None
