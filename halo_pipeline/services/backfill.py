"""Planning a backfill: a re-materialization of a player's months from raw landing (zero API calls), or — with
``refetch`` — a sync that fetches the matches again first (LevelUp's ``--force-*``). The run itself is
launched by :func:`halo_pipeline.runner.run_backfill`."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from halo_pipeline.ids import InvalidInput, parse_xuid
from halo_pipeline.months import FIRST_MONTH, Month
from halo_pipeline.services.history import WalkIndex
from halo_pipeline.storage.files import read_parquet
from halo_pipeline.storage.warehouse import Warehouse


@dataclass
class BackfillPlan:
    """The partitions (and their landed match ids) a backfill touches."""

    xuid: int
    first: Month
    last: Month
    assets: list[str] | None
    refetch: bool
    match_ids: dict[Month, list[str]] = field(default_factory=dict)

    @property
    def job(self) -> str:
        return "sync_job" if self.refetch else "rederive_job"

    def describe(self) -> list[str]:
        """Lines listing each partition (``YYYY-MM-01|xuid``) and the match ids it would touch."""
        action = "refetch from the API, then re-derive" if self.refetch else "re-derive from raw landing (0 API calls)"
        lines = [f"backfill {self.first.label} → {self.last.label} of {self.xuid}: {action}; job {self.job}"
                 + (f", assets {', '.join(self.assets)}" if self.assets else "")]
        for month, ids in self.match_ids.items():
            lines.append(f"  {month}|{self.xuid}: {len(ids)} match(es)")
            lines += [f"    {mid}" for mid in ids]
        return lines


def plan_backfill(wh: Warehouse, registered: Collection[str], known_assets: Collection[str], player: str,
                  first: str, last: str, assets: str | None = None, refetch: bool = False) -> BackfillPlan:
    """Validate the request and list what it touches (reads the ``raw_matches`` index; writes nothing).

    ``registered``: the registered xuids (text); ``known_assets``: the asset names a backfill may select.

    Raises:
        InvalidInput: unregistered player, malformed or reversed months, a month before the partitions, an
        unknown asset name, a month never synced (without ``refetch``).
    """
    xuid = parse_xuid(player)
    if str(xuid) not in registered:
        raise InvalidInput(f"player {xuid} is not registered")
    first_month, last_month = Month.parse(first), Month.parse(last)
    if first_month < FIRST_MONTH:
        raise InvalidInput(f"month {first!r} is before the first partition month {FIRST_MONTH.label}")
    if last_month < first_month:
        raise InvalidInput(f"--from {first} is after --to {last}")
    names = [a.strip() for a in assets.split(",") if a.strip()] if assets else None
    unknown = [n for n in names or () if n not in known_assets]
    if unknown:
        raise InvalidInput(f"unknown asset(s) {', '.join(unknown)}; known: {', '.join(sorted(known_assets))}")
    plan = BackfillPlan(xuid, first_month, last_month, names, refetch)
    never_synced = []
    walks = WalkIndex.load(wh.landing, xuid)
    for month in first_month.until(last_month):
        path = wh.partition_path("raw_matches", xuid, month)
        if path.exists():
            plan.match_ids[month] = read_parquet(path, columns=["match_id"])["match_id"].to_list()
        else:
            plan.match_ids[month] = []
            if not walks.settled(month):  # a month the history shows empty has nothing to re-derive: fine
                never_synced.append(month.label)
    if never_synced and not refetch:
        raise InvalidInput(f"month(s) {', '.join(never_synced)} of {xuid} were never synced: nothing to re-derive "
                           "(sync them, or backfill with --refetch)")
    return plan
