"""The Dagster resources of the project: the Halo API and the data location."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import dagster as dg
from pydantic import Field

from halo_pipeline.api.auth import MissingCredentials
from halo_pipeline.api.client import HaloApiClient
from halo_pipeline.api.resilience import process_gate
from halo_pipeline.storage.files import data_root
from halo_pipeline.storage.warehouse import Warehouse

EMULATOR_TOKEN = "emulator"
__all__ = ["HaloApiResource", "MissingCredentials", "WarehouseResource"]


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


class WarehouseResource(dg.ConfigurableResource):
    """Where data lives: ``data_dir`` (or env ``HALO_DATA_DIR``, default ``data``) holds ``warehouse/``
    (Parquet + ``halo.duckdb``) and ``raw/`` (raw landing); ``reference_dir`` (or env
    ``HALO_REFERENCE_DIR``, default ``static/reference``) holds the reference JSON files. ``data_dir`` may be
    object storage, ``s3://bucket/prefix`` (a ``UPath``; s3fs reads the usual ``AWS_*`` variables, e.g.
    ``AWS_ENDPOINT_URL`` for a non-AWS store)."""

    data_dir: str = Field(default="", description="Empty: $HALO_DATA_DIR, else 'data'.")
    reference_dir: str = Field(default="", description="Empty: $HALO_REFERENCE_DIR, else 'static/reference'.")

    def data_path(self) -> Path:
        """The absolute local folder, or a ``UPath`` for an ``s3://…`` (any fsspec URL) location."""
        return data_root(self.data_dir or dg.EnvVar("HALO_DATA_DIR").get_value() or "data")

    def reference_path(self) -> Path:
        return Path(self.reference_dir or dg.EnvVar("HALO_REFERENCE_DIR").get_value() or "static/reference").resolve()

    def warehouse(self) -> Warehouse:
        """The :class:`Warehouse` under :meth:`data_path`."""
        return Warehouse(self.data_path())
