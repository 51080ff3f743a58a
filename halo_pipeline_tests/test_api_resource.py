"""The API resource against the running emulator: redirect, limiter, Retry-After, film, credentials."""

from __future__ import annotations

import asyncio

import pytest

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource, MissingCredentials
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline_tests.conftest import OWNER_XUID

ODDBALL = "63391382-6b88-43f9-9ff4-6313404c419c"


def test_history_stats_and_film_through_the_redirect(recorded_emulator, halo_api_dir):
    api = HaloApiResource(api_url=recorded_emulator.url)

    async def go():
        async with api.client() as client:
            page = await client.match_history(OWNER_XUID, 0, 25)
            stats = await client.match_stats(ODDBALL)
            film = await client.film_highlights(ODDBALL)
            return page, stats, film

    page, stats, film = run_api(go())
    assert page["ResultCount"] == 8
    assert stats == (halo_api_dir / "responses" / "get_match_stats_oddball.json").read_bytes()
    assert film.film_major_version == 38
    assert film.data == (halo_api_dir / "film" / f"38_{ODDBALL}.gzip").read_bytes()


def test_rate_limit_429_is_honoured_and_nothing_is_lost():
    world = SyntheticWorld(seed=7, players=1, months=1, matches_per_month=10)
    xuid = world.players[0].xuid
    with Emulator(synthetic=world, rate_limit=4) as emulator:
        # The client is configured faster than the server allows: the server answers 429 + Retry-After.
        api = HaloApiResource(api_url=emulator.url, requests_per_second=50, max_in_flight=8)

        async def go():
            async with api.client() as client:
                pages = await asyncio.gather(*(client.match_history(xuid, 0, 5) for _ in range(12)))
                return pages, client.stats

        pages, stats = run_api(go())
        counts = emulator.counts()
    assert len(pages) == 12 and all(p["ResultCount"] == 5 for p in pages)
    assert counts["rate_limited"] > 0 and stats.rate_limited == counts["rate_limited"]
    assert counts["requests"]["match_history"] == 12


def test_limiter_keeps_under_the_server_limit():
    world = SyntheticWorld(seed=7, players=1, months=1, matches_per_month=10)
    xuid = world.players[0].xuid
    with Emulator(synthetic=world, rate_limit=10) as emulator:
        api = HaloApiResource(api_url=emulator.url, requests_per_second=8)

        async def go():
            async with api.client() as client:
                await asyncio.gather(*(client.match_history(xuid, 0, 1) for _ in range(12)))

        run_api(go())
        assert emulator.counts()["rate_limited"] == 0


def test_live_mode_without_tokens_names_the_variable(monkeypatch):
    monkeypatch.delenv("HALO_API_URL", raising=False)
    monkeypatch.delenv("HALO_SPARTAN_TOKEN", raising=False)

    async def go():
        async with HaloApiResource().client():
            pass

    with pytest.raises(MissingCredentials, match="HALO_SPARTAN_TOKEN"):
        run_api(go())


def test_expired_token_is_refreshed_once_and_requests_succeed():
    world = SyntheticWorld(seed=7, players=1, months=1, matches_per_month=10)
    xuid = world.players[0].xuid
    with Emulator(synthetic=world, faults="401:after=3") as emulator:
        api = HaloApiResource(api_url=emulator.url)

        async def go():
            async with api.client() as client:
                pages = [await client.match_history(xuid, 0, 5) for _ in range(10)]
                return pages, client.stats

        pages, stats = run_api(go())
        counts = emulator.counts()
    assert all(p["ResultCount"] == 5 for p in pages)
    assert counts["unauthorized"] >= 1 and stats.refreshed == counts["unauthorized"]


def test_auth_without_azure_app_names_the_variable(monkeypatch):
    import subprocess
    import sys

    for name in ("HALO_AZURE_CLIENT_ID", "HALO_AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    result = subprocess.run([sys.executable, "-m", "halo_pipeline.cli", "auth"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()] and "HALO_AZURE_CLIENT_ID" in result.stderr
