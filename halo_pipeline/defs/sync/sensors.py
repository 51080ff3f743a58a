"""Keeping up to date: the delta-sync sensor, the declared-players sensor and declarative automation."""

import hashlib
from pathlib import Path

import dagster as dg

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.people.jobs import people_job
from halo_pipeline.defs.sync.jobs import sync_job
from halo_pipeline.defs.sync.requests import busy_players, plan_players, run_requests
from halo_pipeline.ids import InvalidInput
from halo_pipeline.instance import registered
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.recovery import recover, replan_interrupted
from halo_pipeline.services.players import read_declared_friends, read_declared_players, resolve
from halo_pipeline.storage.landing import PROFILE
from halo_pipeline.storage.resource import WarehouseResource

#: Players planned per sensor tick (≤ MAX_PAGES_DELTA history calls each, 1 when nothing is new): a tick
#: stays short whatever the number of players; the cursor goes round-robin.
PLAYERS_PER_TICK = 50
#: Gamertags resolved per tick by the declared-players sensor.
RESOLVES_PER_TICK = 10


@dg.sensor(
    job=sync_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Delta sync: for each registered player (round-robin, a bounded number per tick), read the "
    "newest history page(s) down to the player's watermark and request sync_job runs for exactly the "
    "months that got new matches. run_key dedupes repeated ticks; a failed run is retried by the next tick.",
)
def delta_sync_sensor(context: dg.SensorEvaluationContext, halo_api: HaloApiResource,
                      warehouse: WarehouseResource) -> dg.SensorResult:
    players = sorted(context.instance.get_dynamic_partitions(PLAYERS))
    if not players:
        return dg.SensorResult(skip_reason="no player registered")
    offset = int(context.cursor or 0) % len(players)
    batch = (players[offset:] + players[:offset])[:PLAYERS_PER_TICK]
    recover(context.instance)  # a run whose process died is no longer "busy"
    replan_interrupted(context.instance, warehouse.warehouse())  # … and its months are planned again
    busy = busy_players(context.instance)
    plans = plan_players(halo_api, warehouse.warehouse(), [int(x) for x in batch if x not in busy])
    requests = [r for plan in plans for r in run_requests(plan, context.instance, warehouse.warehouse().landing)]
    calls = sum(p.history_calls for p in plans)
    context.log.info(f"{len(plans)} player(s) planned with {calls} history call(s); {len(requests)} run(s)")
    return dg.SensorResult(run_requests=requests, cursor=str((offset + len(batch)) % len(players)))


@dg.sensor(
    job=people_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Registers the players declared in $HALO_PLAYERS_FILE (default players.yaml): adds the "
    "missing dynamic partitions (gamertags resolved through the profile API, a few per tick), including the "
    "friends declared `register: true`; when the friends declared there change, requests a people_job run.",
)
def declared_players_sensor(context: dg.SensorEvaluationContext, halo_api: HaloApiResource,
                            warehouse: WarehouseResource) -> dg.SensorResult:
    path = Path(dg.EnvVar("HALO_PLAYERS_FILE").get_value() or "players.yaml")
    if not path.is_file():
        return dg.SensorResult(skip_reason=f"no players file at {path.resolve()}")
    landing = warehouse.warehouse().landing
    players = registered(context.instance, landing)
    known = {str(p.xuid) for p in players} | {p.gamertag.lower() for p in players if p.gamertag}
    added: list[str] = []
    resolved = 0
    for value in read_declared_players(path):
        if value.lower() in known or resolved >= RESOLVES_PER_TICK:
            continue
        try:
            player, profile = resolve(halo_api.client, value)
        except InvalidInput as exc:
            context.log.warning(f"{path}: {exc}")
            continue
        resolved += 1
        if str(player.xuid) in known or str(player.xuid) in added:
            continue
        if profile is not None:
            landing.put(PROFILE, str(player.xuid), profile)
        added.append(str(player.xuid))
    requests = [dg.AddDynamicPartitionsRequest(PLAYERS, added)] if added else []
    declared = read_declared_friends(path)
    runs = [dg.RunRequest(run_key="friends:" + hashlib.sha256(repr(declared).encode()).hexdigest()[:16])] \
        if declared else []  # the same declarations: the same run_key, deduped by Dagster
    return dg.SensorResult(dynamic_partitions_requests=requests, run_requests=runs,
                           skip_reason=None if added or runs else "every declared player is registered")


#: Declarative automation (every derived asset carries :data:`halo_pipeline.defs.common.FOLLOWS_UPSTREAM`): after
#: any run — a sync, a UI materialization, a backfill — the partitions that read what it changed are re-derived
#: (the sessions of the previous month, the performance scores of later months, stats, report, catalog). Zero API
#: calls but new UGC names. Running by default; the UI's Automation tab shows each evaluation and why.
follow_upstream = dg.AutomationConditionSensorDefinition(
    "follow_upstream", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Re-derives the partitions whose inputs changed since they were last materialized (declarative "
    "automation): the previous month's sessions, later months' performance scores, the stats, report and catalog.")
