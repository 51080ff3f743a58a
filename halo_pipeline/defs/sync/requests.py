"""Turning a sync plan (:mod:`halo_pipeline.services.plan`) into Dagster run requests, shared by the delta
sensor, the daily schedule and ``halo-pipeline sync``."""

from __future__ import annotations

import asyncio

import dagster as dg

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.partitions import partition_range_of, partition_range_tags
from halo_pipeline.services.plan import PlayerPlan, follow_up_range, plan_player
from halo_pipeline.storage.warehouse import Warehouse

SYNC_KEY_TAG = "halo/sync_key"
#: Run tag naming the player (xuid) a run syncs: the instance allows one such run per player at a time.
PLAYER_TAG = "halo/player"
_UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]


def plan_players(halo_api: HaloApiResource, wh: Warehouse, xuids: list[int], bounded: bool = True) -> list[PlayerPlan]:
    """Plan ``xuids`` concurrently (the process-wide limiter paces the history calls); ``bounded``: see
    :func:`halo_pipeline.services.plan.plan_player`."""

    async def go() -> list[PlayerPlan]:
        async with halo_api.client() as api:
            return await asyncio.gather(*(plan_player(api, wh, x, bounded=bounded) for x in xuids))

    return run_api(go()) if xuids else []


def run_requests(plan: PlayerPlan, instance: dg.DagsterInstance, match_type: str = "all") -> list[dg.RunRequest]:
    """One ``sync_job`` run request per block of the plan, with a ``run_key`` that dedupes repeated ticks.

    The key names the block and the newest history match, plus the number of finished runs with that key:
    while a run is queued or running, repeated ticks give the same key (deduped); once it has finished and
    the plan still asks for the block (it failed, or a match could not be landed), the next tick gets a
    new key and retries — a failed run never leaves a gap behind.
    """
    requests = []
    for first, last in plan.blocks:
        key = f"{plan.xuid}:{first.label}:{last.label}:{plan.newest_match_id}"
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
    runs = instance.get_runs(dg.RunsFilter(statuses=_UNFINISHED))
    return {run.tags[PLAYER_TAG] for run in runs if PLAYER_TAG in run.tags}


def follow_up_request(wh: Warehouse, tags: dict[str, str], run_id: str) -> dg.RunRequest | None:
    """The ``analytics_job`` request that refreshes the analytics a finished run over a partition range
    made stale (see :func:`halo_pipeline.services.plan.follow_up_range`), or ``None``."""
    span = partition_range_of(tags)
    if span is None:
        return None
    xuid, first, last = span
    months = follow_up_range(wh, xuid, first, last)
    if months is None:
        return None
    return dg.RunRequest(run_key=f"follow-up:{run_id}",
                         tags=partition_range_tags(xuid, *months) | {PLAYER_TAG: str(xuid)})
