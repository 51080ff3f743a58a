"""The Halo API as a Dagster resource (the data location's is :mod:`halo_pipeline.storage.resource`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import dagster as dg
from pydantic import Field

from halo_pipeline.api.auth import MissingCredentials
from halo_pipeline.api.client import HaloApiClient
from halo_pipeline.api.resilience import process_gate

EMULATOR_TOKEN = "emulator"
__all__ = ["HaloApiResource", "MissingCredentials"]


class HaloApiResource(dg.ConfigurableResource):
    """The Halo Waypoint API through spnkr, live or redirected to the emulator.

    * ``api_url`` (or env ``HALO_API_URL``): when set, every request goes there (the emulator) through an
      aiohttp client middleware; when empty, the live hosts are used.
    * Tokens are read at run time from the environment variables named by ``spartan_token_env`` and
      ``clearance_token_env`` (``dg.EnvVar``); they never appear in run config, logs or metadata.
    * One limiter per API service for the whole process (``requests_per_second``), at most
      ``max_in_flight`` requests in flight, 429 → wait ``Retry-After``, 5xx/timeouts → bounded backoff.
    """

    api_url: str = Field(default="", description="Base URL of an emulator; empty: $HALO_API_URL or live.")
    spartan_token_env: str = "HALO_SPARTAN_TOKEN"
    clearance_token_env: str = "HALO_CLEARANCE_TOKEN"
    requests_per_second: float = Field(default=5.0, gt=0, description="Per API service, whole process.")
    max_in_flight: int = Field(default=8, ge=1)
    timeout_seconds: float = Field(default=30.0, gt=0, description="Per attempt: connect, and each read.")
    max_attempts: int = Field(default=6, ge=1, description="Attempts per request (429/5xx/timeouts).")
    backoff_max_seconds: float = Field(default=30.0, gt=0, description="Longest wait between two attempts.")

    def resolved_url(self) -> str | None:
        """The emulator URL in force, or ``None`` for the live API."""
        return self.api_url or dg.EnvVar("HALO_API_URL").get_value() or None

    def _tokens(self) -> tuple[str, str]:
        url = self.resolved_url()
        tokens = []
        for name in (self.spartan_token_env, self.clearance_token_env):
            value = dg.EnvVar(name).get_value()
            if not value:
                if url is None:
                    raise MissingCredentials(
                        f"environment variable {name} is not set: live mode needs Halo tokens "
                        "(run `halo-pipeline auth`), or set HALO_API_URL to use the emulator"
                    )
                value = EMULATOR_TOKEN
            tokens.append(value)
        return tokens[0], tokens[1]

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[HaloApiClient]:
        """An open :class:`HaloApiClient`; use inside :func:`halo_pipeline.api.client.run_api`.

        Raises:
            MissingCredentials: live mode without token variables.
        """
        spartan, clearance = self._tokens()
        api = await HaloApiClient.open(
            spartan_token=spartan,
            clearance_token=clearance,
            gate=process_gate(self.requests_per_second, self.max_in_flight),
            base_url=self.resolved_url(),
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_max_seconds=self.backoff_max_seconds,
        )
        try:
            yield api
        finally:
            await api.close()
