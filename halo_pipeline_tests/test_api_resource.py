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


# --- bounded retries: endpoints that always fail, the real middleware on a virtual clock ---------------------
class VirtualClock:
    """A :class:`RequestGate` clock + sleep that records each wait and advances time without waiting."""

    def __init__(self):
        self.now, self.waits = 1000.0, []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.waits.append(round(seconds, 6))
            self.now += seconds
        await asyncio.sleep(0)


def _always_failing(faults: str, call: str, **client) -> tuple[BaseException, dict, list[float], object, float]:
    """One call of ``call`` (``stats``: a match's stats; ``history``: a history page) against an emulator
    answering ``faults``, through the real client (spnkr + resilience middleware) with default retry settings
    and a virtual clock: the error raised, the emulator's counters, the waits, the client's stats, wall time."""
    import time

    from halo_pipeline.api.client import HaloApiClient
    from halo_pipeline.api.resilience import RequestGate

    world = SyntheticWorld(seed=7, players=1, months=1, matches_per_month=2)
    clock = VirtualClock()
    with Emulator(synthetic=world, faults=faults) as emulator:
        async def go():
            gate = RequestGate(requests_per_second=1000, clock=clock.clock, sleep=clock.sleep)
            api = await HaloApiClient.open(spartan_token="a", clearance_token="b", gate=gate, base_url=emulator.url,
                                           **client)
            try:
                if call == "stats":
                    await api.match_stats(world.match_ids()[0])
                else:
                    await api.match_history(world.players[0].xuid, 0, 5)
            except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
                return exc, api.stats
            finally:
                await api.close()
            raise AssertionError("the call succeeded against an endpoint that always fails")

        started = time.monotonic()
        error, stats = run_api(go())
        return error, emulator.counts(), clock.waits, stats, time.monotonic() - started


def test_5xx_forever_is_tried_max_attempts_times_with_capped_backoff(monkeypatch):
    import random

    import aiohttp

    defaults = HaloApiResource()
    assert (defaults.max_attempts, defaults.backoff_max_seconds) == (6, 30.0)
    # tenacity's jitter draws uniform(0, bound): take the bound, so each wait IS the computed ceiling.
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    error, counts, waits, stats, wall = _always_failing("5xx:rate=1,codes=503", "stats")
    assert isinstance(error, aiohttp.ClientResponseError) and error.status == 503
    assert counts["requests"]["match_stats"] == 6 == stats.sent  # exactly max_attempts, then the error
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0]  # 0.5 s · 2ⁿ between the attempts
    assert wall < 10  # nothing waited for real

    # The 30 s cap: with more attempts the exponential reaches it and stays there.
    error, counts, waits, stats, _ = _always_failing("5xx:rate=1", "stats", max_attempts=10)
    assert counts["requests"]["match_stats"] == 10
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]  # 32, 64, 128 capped


def test_429_forever_with_a_huge_retry_after_waits_the_120_s_cap():
    error, counts, waits, stats, wall = _always_failing("429:burst=1000000,every=1,retry_after=86400", "history")
    assert getattr(error, "status", None) == 429
    assert counts["faults"]["429"] == 6 == counts["rate_limited"] == stats.rate_limited == stats.sent
    assert waits == [120.0] * 5  # Retry-After 86400 s honoured as 120 s, the whole service paused
    assert wall < 10


def test_401_that_persists_after_the_refresh_is_tried_twice():
    error, counts, waits, stats, wall = _always_failing("401:after=0", "stats")
    assert getattr(error, "status", None) == 401
    assert counts["unauthorized"] == 2 == stats.sent  # once, and once more with the refreshed token
    assert stats.refreshed == 1 and waits == []
    assert wall < 10
