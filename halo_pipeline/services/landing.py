"""Landing API bodies byte-for-byte (raw landing), keyed by match id: the stats, skill and film highlight chunk
of each match, the profiles of the players met, the UGC bodies (maps, map-mode pairs, playlists) played.

Only complete bodies are landed (a whole JSON object, a whole zlib stream); every failure is recorded, never
raised, so that a match is retried by the next sync instead of being lost. No Dagster here.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import orjson
import pydantic
from spnkr.models.stats import MatchStats

from halo_pipeline.api.client import HaloApiClient
from halo_pipeline.services.derive import keep_decoded_events
from halo_pipeline.storage.landing import FILM, PROFILE, SKILL, STATS, RawLanding


class IncompleteBody(ValueError):
    """A 200 answer whose body is not a complete JSON document of the expected shape (truncated, an HTML
    error page…) or a film chunk that is not a complete zlib stream: never landed, recorded as failed."""


def _checked_json(kind: str, body: bytes, required: tuple[str, ...]) -> dict:
    """``body`` parsed, when it is a JSON object holding ``required`` keys, else :class:`IncompleteBody`."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IncompleteBody(f"{kind} body is not valid JSON ({len(body)} bytes, truncated or malformed): "
                             f"{' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict) or any(k not in doc for k in required):
        raise IncompleteBody(f"{kind} body ({len(body)} bytes) lacks {', '.join(required)}")
    return doc


def _check_film_chunk(data: bytes) -> None:
    """A highlight chunk is a zlib stream: it must decompress to its end (cheap next to spnkr's decoding)."""
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(data)
    except zlib.error as exc:
        raise IncompleteBody(f"film chunk ({len(data)} bytes) is not zlib data: {exc}") from None
    if not inflater.eof:
        raise IncompleteBody(f"film chunk ({len(data)} bytes) is truncated: the zlib stream does not end")


def _status_of(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, IncompleteBody):
        return "failed", str(exc)
    if isinstance(exc, aiohttp.ClientResponseError):
        if exc.status == 404:
            return "not_found", "404 Not Found"
        return "failed", f"HTTP {exc.status} {exc.message}".strip()
    return "failed", f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]


async def land_match(
    api: HaloApiClient, landing: RawLanding, match_id: str, *, refetch: bool, skill: bool, film: bool
) -> dict:
    """Land the stats, skill and film highlight chunk of one match (each only if missing or ``refetch``).

    Returns the status fields of a ``raw_matches`` row (and ``humans``: the xuids of its human players). Never
    raises for an API failure: the failure is
    recorded (status ``failed`` + ``error``) and the match is retried by the next sync; a 404 is recorded as
    ``not_found`` in the landing so that it is not asked again (stats: retried, as the match is in the
    history). Only complete bodies are landed: a stats/skill body that is not a whole JSON object, or a film
    chunk that is not a whole zlib stream, is a failure (:class:`IncompleteBody`), not a landing.
    """
    row = {"stats_status": "landed", "skill_status": "skipped", "film_status": "skipped",
           "spnkr_parse_ok": None, "fetched_in_run": False, "error": None, "humans": []}
    body = None if refetch else landing.get(STATS, match_id)
    stats = None
    if body is not None:
        try:
            stats = _checked_json("stats", body, ("MatchInfo", "Players"))
        except IncompleteBody:
            body = None  # landed by an older version without the check: fetch it again
    if body is None:
        row["fetched_in_run"] = True
        try:
            body = await api.match_stats(match_id)
            stats = _checked_json("stats", body, ("MatchInfo", "Players"))
            landing.put(STATS, match_id, body)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is lost
            row["stats_status"], error = _status_of(exc)
            row["error"] = f"stats: {error}"
            return row
    try:
        MatchStats(**stats)
        row["spnkr_parse_ok"] = True
    except pydantic.ValidationError as exc:
        row["spnkr_parse_ok"] = False
        row["error"] = f"spnkr cannot parse the stats body: {exc.error_count()} error(s), first: " + \
            str(exc.errors()[0]["loc"]) + " " + exc.errors()[0]["msg"]
    humans = [int(p["PlayerId"][5:-1]) for p in stats.get("Players", [])
              if p.get("PlayerType") == 1 and str(p.get("PlayerId", "")).startswith("xuid(")]
    row["humans"] = humans

    async def land_optional(kind: str, column: str, wanted: bool, landed: Callable[[], bool],
                            fetch: Callable[[], Awaitable[bool]]) -> None:
        """Land the skill or film body unless landed or known absent; ``fetch`` returns False for none."""
        if not wanted or not humans:
            return
        if not refetch and (landed() or landing.absent_status(kind, match_id)):
            row[column] = "landed" if landed() else "not_found"
            return
        row["fetched_in_run"] = True
        try:
            row[column] = "landed" if await fetch() else "not_found"
        except Exception as exc:  # noqa: BLE001 - recorded, retried by the next sync
            row[column], error = _status_of(exc)
            if row[column] == "not_found":
                landing.mark_absent(kind, match_id, 404)
            else:
                row["error"] = "; ".join(filter(None, [f"{kind}: {error}", row["error"]]))

    async def fetch_skill() -> bool:
        skill_body = await api.match_skill(match_id, humans)
        _checked_json("skill", skill_body, ("Value",))
        landing.put(SKILL, match_id, skill_body)
        return True

    async def fetch_film() -> bool:
        chunk = await api.film_highlights(match_id)
        if chunk is None:
            landing.mark_absent(FILM, match_id, 204)
            return False
        _check_film_chunk(chunk.data)
        landing.put_film(match_id, chunk.film_major_version, chunk.data)
        # Decoded now, in a thread, while the next matches are fetched: highlight_events then decodes nothing.
        await asyncio.to_thread(keep_decoded_events, landing, match_id, chunk.data, chunk.film_major_version)
        return True

    await asyncio.gather(
        land_optional(SKILL, "skill_status", skill, lambda: landing.has(SKILL, match_id), fetch_skill),
        land_optional(FILM, "film_status", film, lambda: landing.has_film(match_id), fetch_film),
    )
    return row


@dataclass
class Progress:
    """How far a landing is: ``report`` gets a line (matches done / total, matches/s, ETA) at most every ``every``
    seconds, and once at the end."""

    total: int
    report: Callable[[str], None]
    every: float = 10.0
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    reported: float = field(default_factory=time.monotonic)

    def advance(self) -> None:
        """One more match landed (or found landed already)."""
        self.done += 1
        now = time.monotonic()
        if self.done < self.total and now - self.reported < self.every:
            return
        self.reported = now
        rate = self.done / max(now - self.started, 1e-9)
        eta = (self.total - self.done) / rate if rate else 0.0
        self.report(f"landed {self.done}/{self.total} matches, {rate:.1f} matches/s, "
                    f"ETA {int(eta // 60)} min {int(eta % 60):02d} s" if self.done < self.total else
                    f"landed {self.done}/{self.total} matches in {now - self.started:.0f} s, {rate:.1f} matches/s")


async def land_matches(api: HaloApiClient, landing: RawLanding, match_ids: list[str], *, concurrency: int,
                       refetch: bool = False, skill: bool = True, film: bool = True,
                       progress: Progress | None = None) -> dict[str, dict]:
    """:func:`land_match` for many matches, ``concurrency`` at a time (the API limiter paces the calls);
    ``progress`` advances as each match is done."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(match_id: str) -> tuple[str, dict]:
        async with semaphore:
            row = await land_match(api, landing, match_id, refetch=refetch, skill=skill, film=film)
        if progress is not None:
            progress.advance()
        return match_id, row

    return dict(await asyncio.gather(*(one(m) for m in dict.fromkeys(match_ids))))


PROFILE_BATCH = 50


async def land_profiles(api: HaloApiClient, landing: RawLanding, wanted: set[int]) -> int:
    """Land the profile (xuid → gamertag) of every human xuid of ``wanted`` not landed yet, in batches of
    :data:`PROFILE_BATCH` (profile ``GET /users?xuids=…``). Best effort: an xuid the API does not return is
    marked absent (not asked again); a failed batch is asked again by the next sync. Returns profiles landed.
    """
    missing = sorted(x for x in wanted
                     if not landing.has(PROFILE, str(x)) and not landing.absent_status(PROFILE, str(x)))
    landed = 0
    for i in range(0, len(missing), PROFILE_BATCH):
        batch = missing[i:i + PROFILE_BATCH]
        try:
            users = await api.users_by_xuid(batch)
        except aiohttp.ClientResponseError as exc:
            if exc.status != 404:
                continue
            users = []
        except (aiohttp.ClientError, TimeoutError):
            continue
        found = {str(u.get("xuid")): u for u in users}
        for xuid in batch:
            if str(xuid) in found:
                landing.put(PROFILE, str(xuid), orjson.dumps(found[str(xuid)]))
                landed += 1
            else:
                landing.mark_absent(PROFILE, str(xuid), 404)
    return landed


#: Raw-landing kind prefix of UGC bodies: ``raw/ugc_<kind>/<id[:2]>/<asset id>_<version id>.json.gz``.
UGC_LANDING = "ugc_"
#: UGC kinds whose names are looked up, with the history/facts columns holding their asset and version ids.
UGC_KINDS = {"maps": ("map_id", "map_version_id"), "mapModePairs": ("map_mode_pair_id", "map_mode_pair_version_id"),
             "playlists": ("playlist_id", "playlist_version_id")}


def landed_ugc_name(landing: RawLanding, kind: str, asset_id: str, version_id: str) -> str | None:
    """``PublicName`` of a landed UGC body, or ``None`` when it is not landed (or has none)."""
    body = landing.get(UGC_LANDING + kind, f"{asset_id}_{version_id}")
    return orjson.loads(body).get("PublicName") if body else None


async def land_ugc(api: HaloApiClient, landing: RawLanding, kind: str, asset_id: str, version_id: str) -> str | None:
    """Land the UGC body of one asset version (discovery-infiniteugc ``GET /hi/{kind}/{asset}/versions/{version}``)
    once: cached by asset id + version, a 404 remembered; returns its ``PublicName`` (``None``: no such version,
    or a failure, retried by the next run)."""
    key = f"{asset_id}_{version_id}"
    body = landing.get(UGC_LANDING + kind, key)
    if body is None and landing.absent_status(UGC_LANDING + kind, key) is None:
        try:
            body = await api.ugc_asset(kind, asset_id, version_id)
            landing.put(UGC_LANDING + kind, key, body)
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                landing.mark_absent(UGC_LANDING + kind, key, 404)
            return None
    return orjson.loads(body).get("PublicName") if body else None
