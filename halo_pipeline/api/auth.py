"""Halo tokens: the live OAuth flow (``halo-pipeline auth``) and the refresh done on a 401.

Live mode refreshes with spnkr's ``refresh_player_tokens`` from an Azure AD app and an OAuth refresh token,
all read from environment variables at run time (``dg.EnvVar``): ``HALO_AZURE_CLIENT_ID``,
``HALO_AZURE_CLIENT_SECRET``, ``HALO_AZURE_REDIRECT_URI`` (default ``https://localhost``) and
``HALO_OAUTH_REFRESH_TOKEN``. Tokens are never logged, put in run config or in metadata.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

import aiohttp
import dagster as dg

SPARTAN_HEADER = "x-343-authorization-spartan"
CLEARANCE_HEADER = "343-clearance"
AZURE_VARS = ("HALO_AZURE_CLIENT_ID", "HALO_AZURE_CLIENT_SECRET", "HALO_OAUTH_REFRESH_TOKEN")


class MissingCredentials(RuntimeError):
    """A credential variable is not set; the message names it."""


def env(name: str, purpose: str) -> str:
    """The value of ``name``. Raises :class:`MissingCredentials` naming it when unset."""
    value = dg.EnvVar(name).get_value()
    if not value:
        raise MissingCredentials(f"environment variable {name} is not set: {purpose}")
    return value


def azure_app():
    """spnkr's ``AzureApp`` from the environment (raises :class:`MissingCredentials`)."""
    from spnkr import AzureApp

    purpose = "needed to authenticate with Xbox Live (see README, 'Live API')"
    return AzureApp(env("HALO_AZURE_CLIENT_ID", purpose), env("HALO_AZURE_CLIENT_SECRET", purpose),
                    dg.EnvVar("HALO_AZURE_REDIRECT_URI").get_value() or "https://localhost")


async def refresh_live_tokens() -> tuple[str, str]:
    """New (spartan, clearance) tokens through spnkr's refresh (Xbox Live + Halo Waypoint)."""
    from spnkr import refresh_player_tokens

    app = azure_app()
    refresh_token = env("HALO_OAUTH_REFRESH_TOKEN", "run `halo-pipeline auth` to get one")
    async with aiohttp.ClientSession() as session:
        player = await refresh_player_tokens(session, app, refresh_token)
    return player.spartan_token.token, player.clearance_token.token


class TokenRefresher:
    """Refreshes the tokens of one client once for all the requests that got a 401 with the same token.

    ``emulated``: against the emulator without Azure credentials, a refresh mints a new opaque token (the
    emulator accepts any token it has not expired).
    """

    def __init__(self, spnkr_client, emulated: bool):
        self._client = spnkr_client
        self._emulated = emulated
        self._lock = asyncio.Lock()
        self._current: dict[str, str] = {}

    async def __call__(self, expired: Mapping[str, str]) -> Mapping[str, str]:
        async with self._lock:
            if self._current and self._current[SPARTAN_HEADER] != expired.get(SPARTAN_HEADER):
                return self._current  # another request already refreshed
            if self._emulated and not all(dg.EnvVar(v).get_value() for v in AZURE_VARS):
                spartan, clearance = f"emulator-{uuid.uuid4().hex}", expired.get(CLEARANCE_HEADER, "emulator")
            else:
                spartan, clearance = await refresh_live_tokens()
            self._client.set_tokens(spartan, clearance)
            self._current = {SPARTAN_HEADER: spartan, CLEARANCE_HEADER: clearance}
            return self._current


async def authenticate() -> str:
    """The interactive OAuth flow (spnkr ``authenticate_player``): returns the OAuth refresh token."""
    from spnkr import authenticate_player

    app = azure_app()
    async with aiohttp.ClientSession() as session:
        return await authenticate_player(session, app)
