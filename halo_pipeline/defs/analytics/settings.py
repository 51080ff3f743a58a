"""The analytics settings: one value per setting for every run of the code location, so that every month of
every player is derived the same way (a sync, its follow-up runs, a backfill and a UI run all read them)."""

import os

import dagster as dg
from pydantic import Field

from halo_pipeline.transforms.analytics import GAP_MINUTES

GAP_ENV = "HALO_SESSION_GAP_MINUTES"


class AnalyticsSettings(dg.ConfigurableResource):
    """``session_gap_minutes``: the longest pause (minutes, between a match's end and the next one's start)
    within a play session. 0 (the default): ``$HALO_SESSION_GAP_MINUTES`` (read at run time), else 35."""

    session_gap_minutes: float = Field(default=0.0, ge=0.0, description="0: $HALO_SESSION_GAP_MINUTES, else 35.")

    def gap_minutes(self) -> float:
        """The session gap in force, in minutes.

        Raises:
            ValueError: ``$HALO_SESSION_GAP_MINUTES`` is not a positive number (one line naming it).
        """
        if self.session_gap_minutes:
            return self.session_gap_minutes
        text = os.environ.get(GAP_ENV)
        if not text:
            return GAP_MINUTES
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if value <= 0:
            raise ValueError(f"{GAP_ENV}={text!r} is not a positive number of minutes")
        return value


@dg.definitions
def analytics_resources() -> dg.Definitions:
    """Binds the ``analytics`` resource for every asset of the code location."""
    return dg.Definitions(resources={"analytics": AnalyticsSettings()})
