"""Keeping up to date: the delta-sync sensor, the daily schedule and the declared-players sensor."""

import asyncio
from pathlib import Path

import dagster as dg
import yaml

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource, WarehouseResource
from halo_pipeline.defs.sync.jobs import analytics_job, full_sync, rederive_job, sync_job
from halo_pipeline.defs.sync.plan import (
    PLAYER_TAG,
    PlayerPlan,
    busy_players,
    follow_up_range,
    plan_player,
    run_requests,
)
from halo_pipeline.ids import InvalidInput
from halo_pipeline.partitions import PLAYERS, partition_range_tags, split_key
from halo_pipeline.players import registered, resolve
from halo_pipeline.storage.landing import PROFILE

#: Players planned per sensor tick (≤ MAX_PAGES_DELTA history calls each, 1 when nothing is new): a tick
#: stays short whatever the number of players; the cursor goes round-robin.
PLAYERS_PER_TICK = 50
#: Gamertags resolved per tick by the declared-players sensor.
RESOLVES_PER_TICK = 10


def plan_players(halo_api: HaloApiResource, warehouse: WarehouseResource, xuids: list[int],
                 bounded: bool = True) -> list[PlayerPlan]:
    """Plan ``xuids`` concurrently (the process-wide limiter paces the history calls); ``bounded``: see
    :func:`halo_pipeline.defs.sync.plan.plan_player`."""
    wh = warehouse.warehouse()

    async def go() -> list[PlayerPlan]:
        async with halo_api.client() as api:
            return await asyncio.gather(*(plan_player(api, wh, x, bounded=bounded) for x in xuids))

    return run_api(go()) if xuids else []


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
    busy = busy_players(context.instance)
    plans = plan_players(halo_api, warehouse, [int(x) for x in batch if x not in busy])
    requests = [r for plan in plans for r in run_requests(plan, context.instance)]
    calls = sum(p.history_calls for p in plans)
    context.log.info(f"{len(plans)} player(s) planned with {calls} history call(s); {len(requests)} run(s)")
    return dg.SensorResult(run_requests=requests, cursor=str((offset + len(batch)) % len(players)))


def build_delta_schedule(cron: str = "0 4 * * *", timezone: str = "UTC") -> dg.ScheduleDefinition:
    """The daily delta sync of every registered player (a full check the sensor's round-robin may not have
    reached). Off by default; change the cron by building definitions with another ``cron``."""

    @dg.schedule(job=sync_job, cron_schedule=cron, execution_timezone=timezone,
                 default_status=dg.DefaultScheduleStatus.STOPPED, name="daily_delta_sync")
    def daily_delta_sync(context: dg.ScheduleEvaluationContext, halo_api: HaloApiResource,
                         warehouse: WarehouseResource):
        """Delta sync of every registered player, once a day."""
        busy = busy_players(context.instance)
        players = [int(x) for x in context.instance.get_dynamic_partitions(PLAYERS) if x not in busy]
        requests = [r for plan in plan_players(halo_api, warehouse, players)
                    for r in run_requests(plan, context.instance)]
        return requests or dg.SkipReason("no new match")

    return daily_delta_sync


def read_declared_players(path: Path) -> list[str]:
    """Entries of a players file: a YAML list of xuids/gamertags, or ``{players: [...]}`` whose items may be
    ``{xuid: …}`` / ``{gamertag: …}``.

    Raises:
        InvalidInput: unreadable YAML or an unexpected shape (one line naming the file).
    """
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: cannot read the players file: {str(exc).splitlines()[0]}") from None
    items = data.get("players") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InvalidInput(f"{path}: expected a list of players (xuid or gamertag), or players: [...]")
    out = []
    for i, item in enumerate(items):
        value = item.get("xuid") or item.get("gamertag") if isinstance(item, dict) else item
        if value is None or isinstance(value, (list, dict)):
            raise InvalidInput(f"{path}: players[{i}]: expected an xuid or a gamertag")
        out.append(str(value))
    return out


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Registers the players declared in $HALO_PLAYERS_FILE (default players.yaml): adds the "
    "missing dynamic partitions (gamertags resolved through the profile API, a few per tick).",
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
            player, profile = resolve(halo_api, value)
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
    return dg.SensorResult(dynamic_partitions_requests=requests,
                           skip_reason=None if added else "every declared player is registered")


def follow_up_request(wh, tags: dict[str, str], run_id: str) -> dg.RunRequest | None:
    """The ``analytics_job`` request that refreshes the analytics a finished run over a partition range
    made stale (see :func:`halo_pipeline.defs.sync.plan.follow_up_range`), or ``None``."""
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if not start or not end:
        return None
    xuid, first = split_key(start)
    _, last = split_key(end)
    span = follow_up_range(wh, xuid, first, last)
    if span is None:
        return None
    return dg.RunRequest(run_key=f"follow-up:{run_id}",
                         tags=partition_range_tags(xuid, *span) | {PLAYER_TAG: str(xuid)})


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[sync_job, full_sync, rederive_job],
    request_job=analytics_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a sync or backfill of a player's months succeeded, re-derives the analytics it made "
    "stale: the previous month's sessions (a session can cross the month boundary) and the performance "
    "scores of later months (they rank a match against the earlier ones). Zero API calls.",
)
def analytics_follow_up_sensor(context: dg.RunStatusSensorContext, warehouse: WarehouseResource):
    request = follow_up_request(warehouse.warehouse(), dict(context.dagster_run.tags), context.dagster_run.run_id)
    return request or dg.SkipReason("the run covered every month it changed")
