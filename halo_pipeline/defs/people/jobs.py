"""The people job and its daily schedule."""

import dagster as dg

from halo_pipeline.defs.people.assets import PEOPLE_GROUP

people_job = dg.define_asset_job(
    "people_job", selection=dg.AssetSelection.groups(PEOPLE_GROUP),
    description="Declared friends, today's profiles of the registered players and friends (at most one fetch per "
    "player per UTC day), then the players table. `halo-pipeline sync` runs friends + player_profiles before the "
    "sync runs (match_facts read the friends) and players after them.",
)


@dg.schedule(job=people_job, cron_schedule="0 5 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def daily_people_refresh(context: dg.ScheduleEvaluationContext):
    """Friends, profiles and players once a day (05:00 UTC, after ``daily_delta_sync``), for a daemon-driven
    setup; off by default."""
    return dg.RunRequest(run_key=f"people:{context.scheduled_execution_time:%Y-%m-%d}")
