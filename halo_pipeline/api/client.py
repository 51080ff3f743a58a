"""The Halo API client used by assets, sensors and the CLI: spnkr + redirect + resilience, raw bodies out.

Every method returns the response body **as the API sent it** (bytes) so that it can be landed
byte-for-byte; parsing is the caller's choice. All API traffic of a process runs in one background event
loop (:func:`api_loop`), which is what makes the per-service limiters process-wide.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import orjson
import yarl
from spnkr import HaloInfiniteClient
from spnkr.models.discovery_ugc import Film
from spnkr.models.refdata import FilmChunkType

from halo_pipeline.api.auth import TokenRefresher
from halo_pipeline.api.redirect import HALO_HOST_SUFFIX, redirect_middleware
from halo_pipeline.api.resilience import RequestGate, RequestStats, resilience_middleware

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def api_loop() -> asyncio.AbstractEventLoop:
    """The process's API event loop, running in a daemon thread (started on first use)."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="halo-api-loop", daemon=True).start()
            _loop = loop
        return _loop


def run_api(coro: Awaitable[T]) -> T:
    """Run ``coro`` on the API loop and wait for its result (callable from any thread but the loop's)."""
    return asyncio.run_coroutine_threadsafe(coro, api_loop()).result()  # type: ignore[arg-type]


@dataclass(frozen=True)
class Download:
    """A file of a Halo Waypoint host (an image) as downloaded: its bytes and the answer's Content-Type."""

    data: bytes
    content_type: str


#: Where gamecms-hacs serves Waypoint files (the medal metadata, its sprite sheets) and images (career rank icons).
WAYPOINT_FILES = "https://gamecms-hacs.svc.halowaypoint.com/hi/Waypoint/file/"
GAMECMS_IMAGES = "https://gamecms-hacs.svc.halowaypoint.com/hi/images/file/"


@dataclass(frozen=True)
class FilmChunk:
    """The highlight-events chunk of a match's film: zlib bytes as downloaded, and the film major version."""

    data: bytes
    film_major_version: int


class HaloApiClient:
    """Async access to the Halo Waypoint API endpoints the pipeline uses.

    Errors: :class:`aiohttp.ClientResponseError` (``.status`` 401/404/429/5xx once retries are spent),
    :class:`asyncio.TimeoutError` and :class:`aiohttp.ClientConnectionError` after retries.
    """

    def __init__(self, session: aiohttp.ClientSession, spnkr_client: HaloInfiniteClient, stats: RequestStats):
        self.session = session
        self.spnkr = spnkr_client
        self.stats = stats

    @classmethod
    async def open(
        cls,
        *,
        spartan_token: str,
        clearance_token: str,
        gate: RequestGate,
        base_url: str | None = None,
        timeout_seconds: float = 30.0,
        max_attempts: int = 6,
        backoff_max_seconds: float = 30.0,
    ) -> HaloApiClient:
        """Open a session: live when ``base_url`` is ``None``, else redirected there (the emulator)."""
        stats = RequestStats()
        refresher: list[TokenRefresher] = []  # bound once the spnkr client exists

        async def refresh_auth(expired):
            return await refresher[0](expired)

        middlewares = [resilience_middleware(gate, stats, max_attempts=max_attempts, refresh_auth=refresh_auth,
                                             backoff_max_seconds=backoff_max_seconds)]
        if base_url:
            middlewares.append(redirect_middleware(base_url))
        session = aiohttp.ClientSession(
            middlewares=tuple(middlewares),
            # Per attempt, not per call: a total timeout would also count the retries and Retry-After waits.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout_seconds, sock_read=timeout_seconds),
            connector=aiohttp.TCPConnector(limit=gate.max_in_flight * 2),
        )
        # spnkr's own limiter acquires after sending; ours (in the middleware) is the one that counts.
        spnkr_client = HaloInfiniteClient(session, spartan_token, clearance_token, requests_per_second=1000)
        refresher.append(TokenRefresher(spnkr_client, emulated=bool(base_url)))
        return cls(session, spnkr_client, stats)

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> HaloApiClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def match_history(self, player: int | str, start: int = 0, count: int = 25, match_type: str = "all") -> dict:
        """One page of ``/hi/players/{player}/matches`` (halostats) as parsed JSON:
        ``{"Start", "Count", "ResultCount", "Results": [...]}``, newest first."""
        response = await self.spnkr.stats.get_match_history(player, start, count, match_type)  # type: ignore[arg-type]
        return orjson.loads(await response.read())

    async def match_stats(self, match_id: str) -> bytes:
        """Body of ``/hi/matches/{id}/stats`` (halostats)."""
        return await (await self.spnkr.stats.get_match_stats(match_id)).read()

    async def match_skill(self, match_id: str, xuids: Iterable[int]) -> bytes:
        """Body of ``/hi/matches/{id}/skill?players=xuid(…)…`` (skill) for human ``xuids``."""
        return await (await self.spnkr.skill.get_match_skill(match_id, list(xuids))).read()

    async def film_highlights(self, match_id: str) -> FilmChunk | None:
        """The highlight-events chunk of a match's film (discovery-infiniteugc manifest, then the blob).

        Returns ``None`` when the film has no highlight-events chunk. A 404 (no film) raises
        :class:`aiohttp.ClientResponseError`.
        """
        manifest = await self.spnkr.discovery_ugc.get_film_by_match_id(match_id)
        film = Film(**orjson.loads(await manifest.read()))
        chunk, url = film.get_chunks_and_urls()[-1]
        if chunk.chunk_type is not FilmChunkType.HIGHLIGHT_EVENTS:
            return None
        response = await self.session.get(url)
        response.raise_for_status()
        return FilmChunk(await response.read(), film.custom_data.film_major_version)

    async def medal_metadata(self) -> bytes:
        """Body of gamecms-hacs ``/hi/Waypoint/file/medals/metadata.json``."""
        return await (await self.spnkr.gamecms_hacs.get_medal_metadata()).read()

    async def ugc_asset(self, kind: str, asset_id: str, version_id: str) -> bytes:
        """Body of discovery-infiniteugc ``/hi/{kind}/{asset_id}/versions/{version_id}``, ``kind`` one of
        ``maps``, ``mapModePairs``, ``playlists``, ``ugcGameVariants``.

        Raises:
            KeyError: an unknown kind.
        """
        ugc = self.spnkr.discovery_ugc
        fetch = {"maps": ugc.get_map, "mapModePairs": ugc.get_map_mode_pair, "playlists": ugc.get_playlist,
                 "ugcGameVariants": ugc.get_ugc_game_variant}[kind]
        return await (await fetch(asset_id, version_id)).read()

    async def download(self, url: str) -> Download:
        """GET a file of a Halo Waypoint host (``https://*.halowaypoint.com/…``) with the API's limits and retries:
        a medal sprite sheet (:data:`WAYPOINT_FILES` + ``sprites.<size>.path``), a UGC image (``Files.Prefix`` + a
        relative path, blob host), a career rank icon (:data:`GAMECMS_IMAGES` + its path). The redirect middleware
        sends these hosts to the emulator like every API host.

        Raises:
            ValueError: ``url`` is not an https URL of a ``*.halowaypoint.com`` host (URLs come from API bodies:
                nothing else is fetched).
            aiohttp.ClientResponseError: 404 (no such file), or 429/5xx once retries are spent.
        """
        parsed = yarl.URL(url)
        if parsed.scheme != "https" or not (parsed.host or "").endswith(HALO_HOST_SUFFIX):
            raise ValueError(f"not a Halo Waypoint file URL: {url!r}")
        response = await self.session.get(parsed)
        response.raise_for_status()
        return Download(await response.read(), response.content_type)

    async def user_by_gamertag(self, gamertag: str) -> dict:
        """``{"xuid", "gamertag", …}`` from profile ``/users/gt({gamertag})``; 404 when unknown."""
        return orjson.loads(await (await self.spnkr.profile.get_user_by_gamertag(gamertag)).read())

    async def users_by_xuid(self, xuids: Iterable[int]) -> list[dict]:
        """``[{"xuid", "gamertag", …}]`` from profile ``/users?xuids=…``."""
        return orjson.loads(await (await self.spnkr.profile.get_users_by_id(list(xuids))).read())

    async def player_customization(self, xuid: int) -> bytes:
        """Body of economy ``GET /hi/players/xuid({xuid})/customization?view=public`` (spnkr's
        ``PlayerCustomization``: ``Appearance.ServiceTag``, ``.Emblem.EmblemPath``, ``.BackdropImagePath``…); 404
        for an unknown player."""
        return await (await self.spnkr.economy.get_player_customization(xuid, "public")).read()

    async def player_career_rank(self, xuid: int) -> bytes:
        """Body of economy ``GET /hi/players/xuid({xuid})/rewardtracks/careerranks/careerrank1`` (spnkr's
        ``PlayerCareerRank``: ``CurrentProgress.Rank``, ``.PartialProgress``, ``.HasReachedMaxRank``)."""
        return await (await self.spnkr.economy.get_player_career_rank(xuid)).read()

    async def career_reward_track(self) -> bytes:
        """Body of gamecms-hacs ``GET /hi/Progression/file/RewardTracks/CareerRanks/careerRank1.json`` (spnkr's
        ``CareerRewardTrack``: ``Ranks[]`` with titles, tier types, icon paths and the XP each rank takes)."""
        return await (await self.spnkr.gamecms_hacs.get_career_reward_track()).read()
