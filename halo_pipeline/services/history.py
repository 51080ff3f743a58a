"""Walking a player's match history (halostats ``/hi/players/{xuid}/matches``), newest first, and remembering
which months a walk covered.

**The walk index** (:class:`WalkIndex`, kept in raw landing as ``history_walks/<xuid[:2]>/<xuid>.json.gz``) records,
per month of a player, when its history was last walked completely (every match of the month seen, with
``match_type`` all): by a ``match_history`` run that wrote the month's partition, or by the sync planner that paged
the whole history and saw no match in the month. A month walked after it ended is settled: its history is the
``match_history`` partition, or empty when there is none — so materializing it again, or any of its derived tables,
costs zero API calls, and a month without matches is still a real partition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import polars as pl

from halo_pipeline.api.client import HaloApiClient
from halo_pipeline.months import FIRST_MONTH, Month
from halo_pipeline.storage.files import read_parquet
from halo_pipeline.storage.landing import RawLanding
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms.matches import HISTORY_SCHEMA

PAGE_SIZE = 25  # the API's maximum
#: A month is settled once walked this long after it ended: a match started before the end of the month shows in the
#: history once it is over (hours at most), so a walk right after midnight could miss it.
SETTLE_GRACE = timedelta(days=1)
MATCH_TYPES = ("all", "matchmaking", "custom", "local")
#: Raw-landing kind of the walk index.
HISTORY_WALKS = "history_walks"


def start_time(entry: dict) -> datetime:
    """UTC start time of a history entry or stats body (``MatchInfo.StartTime``)."""
    return datetime.fromisoformat(entry["MatchInfo"]["StartTime"])


@dataclass
class HistoryWalk:
    """What a walk of the history returned: ``entries`` (newest first, each match once), when it started (UTC),
    and ``complete_since``: the earliest time down to which every match is in ``entries`` (``since`` when the
    walk stopped at an older entry, the first month when the history ended; ``None`` when ``max_matches`` cut it
    short)."""

    entries: list[dict] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    complete_since: datetime | None = None

    def walked_months(self) -> list[Month]:
        """The months this walk saw whole and settled (from ``complete_since``, ended at least
        :data:`SETTLE_GRACE` before the walk started)."""
        if self.complete_since is None:
            return []
        first = Month.of(self.complete_since)
        if first.start < self.complete_since:
            first = first.next()
        return [m for m in first.until(Month.of(self.started_at)) if m.end + SETTLE_GRACE <= self.started_at]


async def fetch_history(
    api: HaloApiClient,
    xuid: int,
    since: datetime | None = None,
    match_type: str = "all",
    max_matches: int | None = None,
) -> HistoryWalk:
    """History entries of ``xuid`` newer than or at ``since`` (all when ``None``), newest first, deduplicated.

    Pages by 25 until a short page, an entry older than ``since``, or ``max_matches`` entries.
    One API call per 25 matches.
    """
    walk = HistoryWalk()
    seen: set[str] = set()
    start = 0
    while True:
        page = await api.match_history(xuid, start=start, count=PAGE_SIZE, match_type=match_type)
        results = page.get("Results") or []
        for entry in results:
            if since is not None and start_time(entry) < since:
                walk.complete_since = since
                return walk
            if entry["MatchId"] not in seen:
                seen.add(entry["MatchId"])
                walk.entries.append(entry)
                if max_matches is not None and len(walk.entries) >= max_matches:
                    return walk
        if len(results) < PAGE_SIZE:
            walk.complete_since = since if since is not None else FIRST_MONTH.start
            return walk
        start += len(results)


def entries_by_month(entries: list[dict]) -> dict[Month, list[dict]]:
    """History entries grouped by the month partition key (``YYYY-MM-01``) of their UTC start time."""
    grouped: dict[Month, list[dict]] = defaultdict(list)
    for entry in entries:
        grouped[Month.of(start_time(entry))].append(entry)
    return dict(grouped)


@dataclass
class WalkIndex:
    """When each month of a player's history was last walked completely (``{month: UTC time}``); see the module
    docstring. Read and written with :meth:`load` / :meth:`record`."""

    xuid: int
    walked: dict[Month, datetime] = field(default_factory=dict)

    @classmethod
    def load(cls, landing: RawLanding, xuid: int) -> WalkIndex:
        """The index of ``xuid`` (empty when none was recorded)."""
        body = landing.get(HISTORY_WALKS, str(xuid))
        walked = orjson.loads(body) if body else {}
        return cls(xuid, {Month(m): datetime.fromisoformat(t) for m, t in walked.items()})

    def settled(self, month: str) -> bool:
        """Whether ``month`` was walked (:data:`SETTLE_GRACE`) after it ended: its history is known and cannot
        change."""
        when = self.walked.get(Month(month))
        return when is not None and when >= Month(month).end + SETTLE_GRACE

    def record(self, landing: RawLanding, months: Iterable[Month], at: datetime) -> None:
        """Mark ``months`` walked at ``at`` (a later mark wins) and store the index (atomic write)."""
        for month in months:
            if month not in self.walked or self.walked[month] < at:
                self.walked[month] = at
        self._store(landing)

    def _store(self, landing: RawLanding) -> None:
        landing.put(HISTORY_WALKS, str(self.xuid), orjson.dumps(
            {str(m): t.isoformat() for m, t in sorted(self.walked.items())}))


    def union(self, landing: RawLanding, other: WalkIndex, write: bool = True) -> bool:
        """Add ``other``'s walks (per month, the later walk wins) and store the index unless ``write`` is false;
        returns whether anything changed (a warehouse merge)."""
        newer = {m: t for m, t in other.walked.items() if m not in self.walked or self.walked[m] < t}
        if newer and write:
            self.walked |= newer
            self._store(landing)
        return bool(newer)


class NeverWalked(FileNotFoundError):
    """A month whose history was never walked (no ``match_history`` partition, not settled): its matches are
    unknown until ``match_history`` (a sync) walks it. The message is one line naming the partition."""


def month_history(wh: Warehouse, xuid: int, month: str) -> pl.DataFrame:
    """The ``match_history`` rows of a partition: its file; an empty frame when the month is settled without
    matches (see the module docstring).

    Raises:
        NeverWalked: no partition file and the month was never walked after it ended.
    """
    path = wh.partition_path("match_history", xuid, month)
    if path.exists():
        return read_parquet(path)
    if WalkIndex.load(wh.landing, xuid).settled(month):
        return pl.DataFrame(schema=HISTORY_SCHEMA)
    raise NeverWalked(f"match_history of {month}|{xuid} was never materialized and the month was never walked: "
                      "materialize match_history (or `halo-pipeline sync`) first")
