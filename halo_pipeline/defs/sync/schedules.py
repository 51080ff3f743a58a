"""The daily delta sync schedule."""

import dagster as dg

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.sync.jobs import sync_job
from halo_pipeline.defs.sync.requests import busy_players, plan_players, run_requests
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.storage.resource import WarehouseResource


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
        requests = [r for plan in plan_players(halo_api, warehouse.warehouse(), players)
                    for r in run_requests(plan, context.instance, warehouse.warehouse().landing)]
        return requests or dg.SkipReason("no new match")

    return daily_delta_sync


daily_delta_sync = build_delta_schedule()
