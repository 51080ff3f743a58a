"""Walking a player's match history (halostats ``/hi/players/{xuid}/matches``), newest first."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from halo_pipeline.api.client import HaloApiClient
from halo_pipeline.months import Month

PAGE_SIZE = 25  # the API's maximum
MATCH_TYPES = ("all", "matchmaking", "custom", "local")


def start_time(entry: dict) -> datetime:
    """UTC start time of a history entry or stats body (``MatchInfo.StartTime``)."""
    return datetime.fromisoformat(entry["MatchInfo"]["StartTime"])


async def fetch_history(
    api: HaloApiClient,
    xuid: int,
    since: datetime | None = None,
    match_type: str = "all",
    max_matches: int | None = None,
) -> list[dict]:
    """History entries of ``xuid`` newer than or at ``since`` (all when ``None``), newest first, deduplicated.

    Pages by 25 until a short page, an entry older than ``since``, or ``max_matches`` entries.
    One API call per 25 matches.
    """
    entries: list[dict] = []
    seen: set[str] = set()
    start = 0
    while True:
        page = await api.match_history(xuid, start=start, count=PAGE_SIZE, match_type=match_type)
        results = page.get("Results") or []
        for entry in results:
            if since is not None and start_time(entry) < since:
                return entries
            if entry["MatchId"] not in seen:
                seen.add(entry["MatchId"])
                entries.append(entry)
                if max_matches is not None and len(entries) >= max_matches:
                    return entries
        if len(results) < PAGE_SIZE:
            return entries
        start += len(results)


def entries_by_month(entries: list[dict]) -> dict[Month, list[dict]]:
    """History entries grouped by the month partition key (``YYYY-MM-01``) of their UTC start time."""
    grouped: dict[Month, list[dict]] = defaultdict(list)
    for entry in entries:
        grouped[Month.of(start_time(entry))].append(entry)
    return dict(grouped)
