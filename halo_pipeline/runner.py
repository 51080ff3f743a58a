"""Runs launched by ``halo-pipeline sync`` and ``halo-pipeline backfill``, in this process, recorded in the
instance (they show in the UI).

The plan is the delta sensor's (:mod:`halo_pipeline.services.plan`): per player, the months with matches
newer than its watermark, as contiguous blocks, each one run of ``sync_job`` (a partition range: the run
pages the history once, lands only the matches not landed yet and derives every table). ``--full`` runs
``full_sync`` over every month from ``since`` (or the first partition month) to now instead. Around them: the
reference job (only when the reference tables are older than a day or their files changed), the people job's
friends and today's profiles before (``match_facts`` read the friends; skipped when neither the friends' sources
nor the registered players changed and every profile of today is landed), its ``players`` table after, then the
catalog — those two only when a run changed the warehouse (a sync with nothing new launches no run: one history
call per player).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.sync.requests import follow_up_request, plan_players, player_tags, run_requests
from halo_pipeline.instance import ensure_registered, registered_digest
from halo_pipeline.months import FIRST_MONTH, Month, month_blocks
from halo_pipeline.partitions import PLAYERS, partition_key, partition_range_of, partition_range_tags
from halo_pipeline.recovery import owner_tags, replan_interrupted
from halo_pipeline.services.backfill import BackfillPlan
from halo_pipeline.services.derive import partitions_sharing_matches
from halo_pipeline.services.friends import FriendsStore, players_file, read_friends
from halo_pipeline.services.people import profiles_up_to_date
from halo_pipeline.services.plan import synced_months
from halo_pipeline.services.state import reference_up_to_date
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import Warehouse

#: The console shows the steps' own lines (rows per table, the landing's progress: matches landed / total, rate,
#: ETA), warnings and errors; Dagster's own events are DEBUG: they are in the instance (the UI's run page).
CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
#: Warnings and errors only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
#: The people assets run before the sync runs (their friends flag match_facts) and after them (players).
PEOPLE_BEFORE = [dg.AssetKey("friends"), dg.AssetKey("player_profiles")]
PEOPLE_AFTER = [dg.AssetKey("players")]
#: The code location, or what builds it (``halo_pipeline.definitions.defs``): loaded only when a run is launched.
Defs = dg.Definitions | Callable[[], dg.Definitions]


def _definitions(defs: Defs) -> dg.Definitions:
    return defs if isinstance(defs, dg.Definitions) else defs()


def people_up_to_date(instance: dg.DagsterInstance, wh: Warehouse) -> bool:
    """Whether a sync may skip the people job's ``friends`` and ``player_profiles``: the last ``friends``
    materialization saw today's registered players and came after the last change of the players file and the
    friends store, and every registered player's and friend's profile of today (UTC) is landed and written."""
    event = instance.get_latest_materialization_event(dg.AssetKey("friends"))
    if wh.remote or event is None or event.asset_materialization is None:
        return False
    seen = event.asset_materialization.metadata.get("registered_digest")
    players = instance.get_dynamic_partitions(PLAYERS)
    if seen is None or seen.value != registered_digest(players):
        return False
    sources = (players_file(), FriendsStore(wh.data_dir).path)
    if any(p.exists() and p.stat().st_mtime >= event.timestamp for p in sources):
        return False
    return profiles_up_to_date(wh, {int(x) for x in players} | set(read_friends(wh)["friend_xuid"].to_list()))


@dataclass
class SyncReport:
    """What a sync did: runs launched (id, job, partitions, success)."""

    runs: list[tuple[str, str, str, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(success for *_, success in self.runs)


def execute(defs: Defs, job: str, instance: dg.DagsterInstance, report: SyncReport,
            tags: dict[str, str] | None = None, label: str = "", run_config: dict | None = None,
            asset_selection: list[dg.AssetKey] | None = None, warehouse: WarehouseResource | None = None) -> bool:
    """Run ``job`` in this process against ``instance`` (recorded there, visible in the UI).

    With ``warehouse``, a successful run over a partition range is followed, as declarative automation does where
    the daemon runs, by an ``analytics_job`` run over the months whose analytics it made stale. The run records
    this process as its owner (:mod:`halo_pipeline.recovery`)."""
    with _sigterm_kept():
        result = _definitions(defs).resolve_job_def(job).execute_in_process(
            instance=instance, tags={**(tags or {}), **owner_tags()}, run_config={**CONSOLE, **(run_config or {})},
            raise_on_error=False, asset_selection=asset_selection)
    report.runs.append((result.run_id, job, label, result.success))
    if result.success and warehouse is not None:
        follow_up = follow_up_request(warehouse.warehouse(), dict(tags or {}), result.run_id)
        if follow_up is not None:
            execute(defs, "analytics_job", instance, report, dict(follow_up.tags),
                    f"analytics {_label(follow_up.tags)}")
    return result.success


@contextmanager
def _sigterm_kept() -> Iterator[None]:
    """Give SIGTERM back the handling it had before a run: Dagster points SIGTERM at SIGINT's handler around an
    in-process run and leaves it so after (``dagster._utils.interrupts``). In a process started in the background,
    where SIGINT is ignored (cron, ``nohup``, ``&``), SIGTERM then stayed ignored: ``kill`` no longer stopped the
    sync, nor any process it started later (its pool workers inherit the disposition)."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def _label(tags: dict[str, str]) -> str:
    """``YYYY-MM…YYYY-MM|xuid`` of a run's partition range."""
    xuid, first, last = partition_range_of(tags)
    return f"{first.label}…{last.label}|{xuid}"


def sync_players(
    defs: Defs,
    instance: dg.DagsterInstance,
    halo_api: HaloApiResource,
    warehouse: WarehouseResource,
    xuids: Iterable[int] | None = None,
    match_type: str = "all",
    full: bool = False,
    since: str | None = None,
    max_matches: int | None = None,
    log: Callable[[str], None] = print,
    all_months: bool = False,
    with_assets: bool = False,
) -> SyncReport:
    """Sync ``xuids`` (default: every registered player), then refresh reference data and the catalog.

    ``all_months``: then materialize every month of each player not materialized yet (:func:`fill_missing_months`:
    months without matches, walked by the sync, cost zero API calls but Dagster's bookkeeping, ≈ 0.5–1 s each).
    ``with_assets``: land the images not landed yet (``images_job``) and write the players' reports again so
    they show them."""
    players = [int(x) for x in (xuids if xuids is not None else instance.get_dynamic_partitions(PLAYERS))]
    report = SyncReport()
    wh = warehouse.warehouse()
    if reference_up_to_date(wh, warehouse.reference_path()):
        log("reference data: up to date")
    else:
        ok = execute(defs, "reference_job", instance, report, label="reference")
        log(f"reference data: {'ok' if ok else 'FAILED'}")
    if people_up_to_date(instance, wh):
        log("friends and profiles: up to date")
    else:
        ok = execute(defs, "people_job", instance, report, label="friends and profiles",
                     asset_selection=PEOPLE_BEFORE)
        log(f"friends and profiles: {'ok' if ok else 'FAILED'}")
    if full:
        first = Month.parse(since) if since else FIRST_MONTH
        config = {"ops": {"match_history": {"config": {
            "match_type": match_type, "max_matches": max_matches, "refresh": True,
            "since": (since if len(since) > 7 else f"{since}-01") if since else None}}}}
        for xuid in players:
            tags = partition_range_tags(xuid, first, Month.current()) | player_tags(warehouse.warehouse().landing, xuid)
            ok = execute(defs, "full_sync", instance, report, tags, _label(tags), run_config=config,
                         warehouse=warehouse)
            log(f"{xuid}: full sync {_label(tags)}: {'ok' if ok else 'FAILED'}")
    else:
        replan_interrupted(instance, warehouse.warehouse())  # months of runs that died are planned again
        for plan in plan_players(halo_api, warehouse.warehouse(), players, bounded=False):
            requests = run_requests(plan, instance, warehouse.warehouse().landing, match_type)
            if not requests:
                log(f"{plan.xuid}: up to date ({plan.history_calls} history call)")
            for request in requests:
                ok = execute(defs, "sync_job", instance, report, dict(request.tags), _label(request.tags),
                             run_config=request.run_config, warehouse=warehouse)
                log(f"{plan.xuid}: {_label(request.tags)}: {'ok' if ok else 'FAILED'}")
    if all_months:
        fill_missing_months(defs, instance, warehouse, players, report, log)
    if report.runs or not (wh.root / "players").exists():
        ok = execute(defs, "people_job", instance, report, label="players", asset_selection=PEOPLE_AFTER)
        log(f"players: {'ok' if ok else 'FAILED'}")
    if with_assets:
        land_assets(defs, instance, warehouse, players, report, log)
    if report.runs or not wh.catalog_path.exists():
        ok = execute(defs, "catalog_job", instance, report, label="catalog")
        log(f"catalog: {'ok' if ok else 'FAILED'}")
    return report


def fill_missing_months(defs: Defs, instance: dg.DagsterInstance, warehouse: WarehouseResource,
                        xuids: Iterable[int], report: SyncReport, log: Callable[[str], None] = print) -> None:
    """Materialize, with ``sync_job``, every month of each player (first partition month → this month) whose
    ``match_history`` is not materialized yet, one run per block of contiguous months: months the history walk
    found empty are real, empty partitions (zero API calls); a month never walked is walked."""
    done = instance.get_materialized_partitions(dg.AssetKey("match_history"))
    landing = warehouse.warehouse().landing
    for xuid in xuids:
        missing = [m for m in FIRST_MONTH.until(Month.current()) if str(partition_key(xuid, m)) not in done]
        for first, last in month_blocks(missing):
            tags = partition_range_tags(xuid, first, last) | player_tags(landing, xuid)
            ok = execute(defs, "sync_job", instance, report, tags, f"fill {_label(tags)}", warehouse=warehouse)
            log(f"{xuid}: months without a partition {_label(tags)}: {'ok' if ok else 'FAILED'}")


def run_backfill(defs: Defs, instance: dg.DagsterInstance, plan: BackfillPlan,
                 warehouse: WarehouseResource) -> SyncReport:
    """One run over the plan's partition range (recorded in ``instance``, visible in the UI), the analytics
    it made stale, then the catalog."""
    report = SyncReport()
    landing = warehouse.warehouse().landing
    tags = partition_range_tags(plan.xuid, plan.first, plan.last) | player_tags(landing, plan.xuid)
    run_config = {"ops": {"raw_matches": {"config": {"refetch": True}}}} if plan.refetch else None
    selection = [dg.AssetKey(a) for a in plan.assets] if plan.assets else None
    execute(defs, plan.job, instance, report, tags, _label(tags), run_config=run_config, asset_selection=selection,
            warehouse=warehouse)
    execute(defs, "catalog_job", instance, report, label="catalog")
    return report


def refresh_friends(defs: dg.Definitions, instance: dg.DagsterInstance, warehouse: WarehouseResource,
                    owner: int | None = None, rederive: bool = False) -> SyncReport:
    """After the friends changed: the ``friends`` table; with ``rederive``, every synced month of ``owner``
    re-derived from raw landing (one ``rederive_job`` run per block of contiguous months, zero API calls: the
    ``with_friends`` flags of past matches and sessions follow); then the catalog."""
    report = SyncReport()
    execute(defs, "people_job", instance, report, label="friends", asset_selection=[dg.AssetKey("friends")])
    if rederive and owner is not None and report.ok:
        for first, last in month_blocks(synced_months(warehouse.warehouse(), owner)):
            tags = partition_range_tags(owner, first, last) | player_tags(warehouse.warehouse().landing, owner)
            execute(defs, "rederive_job", instance, report, tags, _label(tags), warehouse=warehouse)
    execute(defs, "catalog_job", instance, report, label="catalog")
    return report


# ---- images, LevelUp import, warehouse merge ---------------------------------------------------------------------


def land_assets(defs: dg.Definitions, instance: dg.DagsterInstance, warehouse: WarehouseResource,
                players: Iterable[int], report: SyncReport, log: Callable[[str], None] = print) -> None:
    """Run ``images_job`` (images not landed yet), then each player's ``player_report`` again (its newest
    partition) so that the report embeds them."""
    ok = execute(defs, "images_job", instance, report, label="images")
    log(f"images: {'ok' if ok else 'FAILED'}")
    wh = warehouse.warehouse()
    for xuid in players:
        months = sorted(wh.player_files("match_facts", xuid))
        if ok and months:
            tags = partition_range_tags(xuid, months[-1], months[-1]) | player_tags(wh.landing, xuid)
            execute(defs, "analytics_job", instance, report, tags, f"report {xuid}",
                    asset_selection=[dg.AssetKey("player_report")])


def rederive(defs: dg.Definitions, instance: dg.DagsterInstance, warehouse: WarehouseResource,
             touched: dict[int, Iterable[Month]], report: SyncReport, log: Callable[[str], None] = print) -> None:
    """Register the players of ``touched`` (no API call) and re-derive their months from the landing: one
    ``rederive_job`` run per block of contiguous months (zero API calls), the analytics they made stale, then the
    catalog. Players newly registered here make the other registered players' matches with them change
    (``known_teammates``): those partitions are re-derived too."""
    wh = warehouse.warehouse()
    before = {int(x) for x in instance.get_dynamic_partitions(PLAYERS)}
    new = set(touched) - before
    touched = dict(touched)
    for xuid, months in partitions_sharing_matches(wh, new, before).items():
        touched[xuid] = set(touched.get(xuid, ())) | months
    ensure_registered(instance, sorted(touched))
    landing = wh.landing
    for xuid, months in sorted(touched.items()):
        for first, last in month_blocks(months):
            tags = partition_range_tags(xuid, first, last) | player_tags(landing, xuid)
            ok = execute(defs, "rederive_job", instance, report, tags, _label(tags), warehouse=warehouse)
            log(f"{xuid}: re-derived {_label(tags)}: {'ok' if ok else 'FAILED'}")
    if new:  # the new players' friends, profiles (from their landing: no API call) and the players table
        offline = {"ops": {"player_profiles": {"config": {"offline": True}}}}
        ok = execute(defs, "people_job", instance, report, label="people", run_config=offline)
        log(f"people: {'ok' if ok else 'FAILED'}")
    if report.runs:
        execute(defs, "catalog_job", instance, report, label="catalog")
