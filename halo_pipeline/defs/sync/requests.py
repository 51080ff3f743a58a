"""Turning a sync plan (:mod:`halo_pipeline.services.plan`) into Dagster run requests, shared by the delta
sensor, the daily schedule and ``halo-pipeline sync``."""

from __future__ import annotations

import asyncio

import dagster as dg

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.partitions import partition_range_of, partition_range_tags
from halo_pipeline.services.plan import PlayerPlan, follow_up_range, plan_player
from halo_pipeline.services.players import gamertag_of
from halo_pipeline.storage.landing import RawLanding
from halo_pipeline.storage.warehouse import Warehouse

SYNC_KEY_TAG = "halo/sync_key"
#: Run tag naming the player (xuid) a run syncs: the instance allows one such run per player at a time.
PLAYER_TAG = "halo/player"
#: Run tag with the player's gamertag (from the landed profile): the runs list reads as people, not numbers.
GAMERTAG_TAG = "halo/gamertag"
_UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]


def plan_players(halo_api: HaloApiResource, wh: Warehouse, xuids: list[int], bounded: bool = True) -> list[PlayerPlan]:
    """Plan ``xuids`` concurrently (the process-wide limiter paces the history calls); ``bounded``: see
    :func:`halo_pipeline.services.plan.plan_player`."""

    async def go() -> list[PlayerPlan]:
        async with halo_api.client() as api:
            return await asyncio.gather(*(plan_player(api, wh, x, bounded=bounded) for x in xuids))

    return run_api(go()) if xuids else []


def player_tags(landing: RawLanding, xuid: int) -> dict[str, str]:
    """The run tags of a run over ``xuid``'s partitions: its xuid and, when a profile is landed, its gamertag."""
    gamertag = gamertag_of(landing, xuid)
    return {PLAYER_TAG: str(xuid)} | ({GAMERTAG_TAG: gamertag} if gamertag else {})


def run_requests(plan: PlayerPlan, instance: dg.DagsterInstance, landing: RawLanding,
                 match_type: str = "all") -> list[dg.RunRequest]:
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
            # The plan saw new matches in these months: walk them (never trust them settled).
            run_config={"ops": {"match_history": {"config": {"match_type": match_type, "refresh": True}}}},
            tags={**partition_range_tags(plan.xuid, first, last), SYNC_KEY_TAG: key,
                  **player_tags(landing, plan.xuid)},
        ))
    return requests


def busy_players(instance: dg.DagsterInstance) -> set[str]:
    """xuids with a sync run queued or in progress (a new request would race it on the same partitions)."""
    runs = instance.get_runs(dg.RunsFilter(statuses=_UNFINISHED))
    return {run.tags[PLAYER_TAG] for run in runs if PLAYER_TAG in run.tags}


def follow_up_request(wh: Warehouse, tags: dict[str, str], run_id: str) -> dg.RunRequest | None:
    """The ``analytics_job`` request that refreshes the analytics a finished run over a partition range
    made stale (see :func:`halo_pipeline.services.plan.follow_up_range`), or ``None``. Used by ``halo-pipeline
    sync``, which runs without the daemon (where the daemon runs, declarative automation does the same)."""
    span = partition_range_of(tags)
    if span is None:
        return None
    xuid, first, last = span
    months = follow_up_range(wh, xuid, first, last)
    if months is None:
        return None
    return dg.RunRequest(run_key=f"follow-up:{run_id}",
                         tags=partition_range_tags(xuid, *months) | player_tags(wh.landing, xuid))
