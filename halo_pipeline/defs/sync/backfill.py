"""Backfills are re-materializations of a player's months from raw landing (zero API calls), or — with
``refetch`` — a sync that fetches the matches again first (LevelUp's ``--force-*``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
import polars as pl

from halo_pipeline.defs.sync.plan import PLAYER_TAG, month_range
from halo_pipeline.api.resource import WarehouseResource
from halo_pipeline.defs.sync.run import SyncReport, execute
from halo_pipeline.ids import InvalidInput, parse_month, parse_xuid
from halo_pipeline.partitions import FIRST_MONTH, PLAYERS, partition_key, partition_range_tags
from halo_pipeline.storage.files import read_parquet
from halo_pipeline.storage.warehouse import Warehouse


@dataclass
class BackfillPlan:
    """The partitions (and their landed match ids) a backfill touches."""

    xuid: int
    first: str
    last: str
    assets: list[str] | None
    refetch: bool
    match_ids: dict[str, list[str]] = field(default_factory=dict)

    @property
    def job(self) -> str:
        return "sync_job" if self.refetch else "rederive_job"

    def describe(self) -> list[str]:
        """Lines listing each partition and the match ids it would touch."""
        action = "refetch from the API, then re-derive" if self.refetch else "re-derive from raw landing (0 API calls)"
        lines = [f"backfill {self.first[:7]} → {self.last[:7]} of {self.xuid}: {action}; job {self.job}"
                 + (f", assets {', '.join(self.assets)}" if self.assets else "")]
        for month, ids in self.match_ids.items():
            lines.append(f"  {partition_key(self.xuid, month)}: {len(ids)} match(es)")
            lines += [f"    {mid}" for mid in ids]
        return lines


def plan_backfill(instance: dg.DagsterInstance, wh: Warehouse, player: str, first: str, last: str,
                  assets: str | None = None, refetch: bool = False) -> BackfillPlan:
    """Validate the request and list what it touches (reads the ``raw_matches`` index; writes nothing).

    Raises:
        InvalidInput: unregistered player, malformed or reversed months, a month before the partitions, an
        unknown asset name, a month never synced (without ``refetch``).
    """
    xuid = parse_xuid(player)
    if str(xuid) not in instance.get_dynamic_partitions(PLAYERS):
        raise InvalidInput(f"player {xuid} is not registered")
    first_month, last_month = parse_month(first), parse_month(last)
    if first_month < FIRST_MONTH:
        raise InvalidInput(f"month {first!r} is before the first partition month {FIRST_MONTH[:7]}")
    if last_month < first_month:
        raise InvalidInput(f"--from {first} is after --to {last}")
    names = [a.strip() for a in assets.split(",") if a.strip()] if assets else None
    if names:
        from halo_pipeline.definitions import defs

        known = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidInput(f"unknown asset(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    plan = BackfillPlan(xuid, first_month, last_month, names, refetch)
    never_synced = []
    for month in month_range(first_month, last_month):
        path = wh.partition_path("raw_matches", xuid, month)
        if path.exists():
            plan.match_ids[month] = read_parquet(path, columns=["match_id"])["match_id"].to_list()
        else:
            plan.match_ids[month] = []
            never_synced.append(month[:7])
    if never_synced and not refetch:
        raise InvalidInput(f"month(s) {', '.join(never_synced)} of {xuid} were never synced: nothing to re-derive "
                           "(sync them, or backfill with --refetch)")
    return plan


def run_backfill(defs: dg.Definitions, instance: dg.DagsterInstance, plan: BackfillPlan,
                 warehouse: WarehouseResource) -> SyncReport:
    """One run over the plan's partition range (recorded in ``instance``, visible in the UI), the analytics
    it made stale, then the catalog."""
    report = SyncReport()
    tags = partition_range_tags(plan.xuid, plan.first, plan.last) | {PLAYER_TAG: str(plan.xuid)}
    run_config = {"ops": {"raw_matches": {"config": {"refetch": True}}}} if plan.refetch else None
    selection = [dg.AssetKey(a) for a in plan.assets] if plan.assets else None
    execute(defs, plan.job, instance, report, tags, f"{plan.first[:7]}…{plan.last[:7]}|{plan.xuid}",
            run_config=run_config, asset_selection=selection, warehouse=warehouse)
    execute(defs, "catalog_job", instance, report, label="catalog")
    return report
