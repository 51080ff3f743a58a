"""API-facing assets: the match history of a player × month, and the raw landing of its matches."""


import asyncio
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import dagster as dg
import orjson
import polars as pl
import pydantic
from spnkr.models.stats import MatchStats

from halo_pipeline.api.client import HaloApiClient, run_api
from halo_pipeline.api.resource import HaloApiResource, WarehouseResource
from halo_pipeline.defs.common import API_POOL, SINGLE_RUN, frame_metadata, run_partitions
from halo_pipeline.defs.matches.history import MATCH_TYPES, entries_by_month, fetch_history
from halo_pipeline.partitions import partition_key, player_month_partitions
from halo_pipeline.storage.landing import FILM, PROFILE, SKILL, STATS, RawLanding
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms.matches import HISTORY_SCHEMA, history_frame

MATCHES_GROUP = "matches"

#: Columns of ``raw_matches`` (the landing index of a partition), with dtypes.
RAW_MATCHES_SCHEMA: dict[str, pl.DataType] = {
    "match_id": pl.Utf8,
    "xuid": pl.Int64,
    "start_time": pl.Datetime("us", "UTC"),
    "stats_status": pl.Utf8,  # landed | failed | not_found
    "skill_status": pl.Utf8,  # landed | not_found | failed | skipped (no human player / stats missing)
    "film_status": pl.Utf8,  # landed | not_found | failed | skipped
    "spnkr_parse_ok": pl.Boolean,  # spnkr's MatchStats model accepted the stats body
    "fetched_in_run": pl.Boolean,  # an API call was made for this match in the run that wrote the row
    "error": pl.Utf8,  # why a body is missing or did not parse (one line), else null
}


class MatchHistoryConfig(dg.Config):
    """``match_type``: all | matchmaking | custom | local (LevelUp's ``--match-type``); ``max_matches``: keep
    only the player's newest N matches (``--max-matches``); ``since``: ignore matches before this UTC date
    (``YYYY-MM-DD``)."""

    match_type: str = "all"
    max_matches: int | None = None
    since: str | None = None


@dg.asset(
    group_name=MATCHES_GROUP,
    partitions_def=player_month_partitions,
    backfill_policy=SINGLE_RUN,
    pool=API_POOL,
    kinds={"api", "parquet"},
)
def match_history(
    context: dg.AssetExecutionContext, config: MatchHistoryConfig, halo_api: HaloApiResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """The player's matches of the month, from the match-history API (halostats
    ``GET /hi/players/{xuid}/matches``, 25 per page, newest first), one row per match.

    Columns: match_id (Utf8), xuid (Int64, the owner), start_time/end_time (Datetime UTC), lifecycle_mode
    (Int8: 1 custom, 3 matchmade), game_variant_category (Int16), playlist_id, map_id, map_mode_pair_id,
    game_variant_id (Utf8), team_id (Int8), outcome (Int8: 1 tie, 2 win, 3 loss, 4 left), rank (Int16),
    present_at_end (Boolean).

    A run covering several months of a player pages the history once, down to the oldest month.
    """
    if config.match_type.lower() not in MATCH_TYPES:
        raise dg.Failure(f"match_type {config.match_type!r} is not one of {', '.join(MATCH_TYPES)}")
    try:
        floor = datetime.fromisoformat(config.since).replace(tzinfo=UTC) if config.since else None
    except ValueError:
        raise dg.Failure(f"since {config.since!r} is not a date (YYYY-MM-DD)") from None
    wh = warehouse.warehouse()
    wanted = run_partitions(context)

    async def fetch() -> dict[int, list[dict]]:
        async with halo_api.client() as api:
            out = {}
            for xuid, months in wanted.items():
                since = datetime.fromisoformat(months[0]).replace(tzinfo=UTC)
                out[xuid] = await fetch_history(api, xuid, since=max(since, floor) if floor else since,
                                                match_type=config.match_type.lower(),
                                                max_matches=config.max_matches)
            return out

    history = run_api(fetch())
    frames, rows = [], {}
    for xuid, months in wanted.items():
        grouped = entries_by_month(history[xuid])
        for month in months:
            df = history_frame(grouped.get(month, []), xuid)
            wh.write_partition("match_history", xuid, month, df)
            rows[str(partition_key(xuid, month))] = df.height
            frames.append(df)
    context.log.info(f"match_history: {sum(rows.values())} matches over {len(rows)} partition(s)")
    all_rows = pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=HISTORY_SCHEMA)
    return dg.MaterializeResult(metadata=frame_metadata(all_rows, rows))


class RawMatchesConfig(dg.Config):
    """``refetch``: call the API again for matches already landed (LevelUp's ``--force-*``); ``film`` and
    ``skill``: whether to land the highlight-events film chunk and the skill body."""

    refetch: bool = False
    skill: bool = True
    film: bool = True


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

    Returns the status fields of a ``raw_matches`` row. Never raises for an API failure: the failure is
    recorded (status ``failed`` + ``error``) and the match is retried by the next sync; a 404 is recorded as
    ``not_found`` in the landing so that it is not asked again (stats: retried, as the match is in the
    history). Only complete bodies are landed: a stats/skill body that is not a whole JSON object, or a film
    chunk that is not a whole zlib stream, is a failure (:class:`IncompleteBody`), not a landing.
    """
    row = {"stats_status": "landed", "skill_status": "skipped", "film_status": "skipped",
           "spnkr_parse_ok": None, "fetched_in_run": False, "error": None}
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
        return True

    await asyncio.gather(
        land_optional(SKILL, "skill_status", skill, lambda: landing.has(SKILL, match_id), fetch_skill),
        land_optional(FILM, "film_status", film, lambda: landing.has_film(match_id), fetch_film),
    )
    return row


async def land_matches(api: HaloApiClient, landing: RawLanding, match_ids: list[str], *, concurrency: int,
                       refetch: bool = False, skill: bool = True, film: bool = True) -> dict[str, dict]:
    """:func:`land_match` for many matches, ``concurrency`` at a time (the API limiter paces the calls)."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(match_id: str) -> tuple[str, dict]:
        async with semaphore:
            return match_id, await land_match(api, landing, match_id, refetch=refetch, skill=skill, film=film)

    return dict(await asyncio.gather(*(one(m) for m in dict.fromkeys(match_ids))))


PROFILE_BATCH = 50


async def land_profiles(api: HaloApiClient, landing: RawLanding, match_ids: list[str]) -> int:
    """Land the profile (xuid → gamertag) of every human of ``match_ids`` not landed yet, in batches of
    :data:`PROFILE_BATCH` (profile ``GET /users?xuids=…``). Best effort: an xuid the API does not return is
    marked absent (not asked again); a failed batch is asked again by the next sync. Returns profiles landed.
    """
    wanted: set[int] = set()
    for match_id in match_ids:
        body = landing.get(STATS, match_id)
        if body is None:
            continue
        for player in orjson.loads(body).get("Players") or ():
            player_id = str(player.get("PlayerId", ""))
            if player.get("PlayerType") == 1 and player_id.startswith("xuid("):
                wanted.add(int(player_id[5:-1]))
    missing = sorted(x for x in wanted if not landing.has(PROFILE, str(x)) and not landing.absent_status(PROFILE, str(x)))
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


@dg.asset(
    group_name=MATCHES_GROUP,
    partitions_def=player_month_partitions,
    backfill_policy=SINGLE_RUN,
    pool=API_POOL,
    deps=[match_history],
    kinds={"api", "parquet"},
    check_specs=[dg.AssetCheckSpec("all_matches_landed", asset="raw_matches",
                                   description="Every match of the history has its stats body landed.")],
)
def raw_matches(
    context: dg.AssetExecutionContext, config: RawMatchesConfig, halo_api: HaloApiResource,
    warehouse: WarehouseResource,
):
    """Raw landing of the partition's matches: the stats (halostats ``/hi/matches/{id}/stats``), skill
    (skill ``/hi/matches/{id}/skill``) and film highlight-events chunk (discovery-infiniteugc
    ``/hi/films/matches/{id}/spectate`` + blob) bodies, kept byte-for-byte (gzip) under ``raw/``, keyed by
    match id: a match played by several registered players is fetched once, and a match already landed is
    never fetched again unless ``refetch: true``.

    The asset's table is the landing index, one row per history match: match_id, xuid, start_time (UTC),
    stats_status / skill_status / film_status (landed | not_found | failed | skipped), spnkr_parse_ok,
    fetched_in_run, error. A failed match is recorded, not dropped, and the next sync retries it.
    """
    wh = warehouse.warehouse()
    landing = wh.landing
    wanted = run_partitions(context)
    histories = {(x, m): wh.read_partition("match_history", x, m, HISTORY_SCHEMA)
                 for x, months in wanted.items() for m in months}
    match_ids = [mid for df in histories.values() for mid in df["match_id"].to_list()]

    async def fetch():
        async with halo_api.client() as api:
            result = await land_matches(api, landing, match_ids, concurrency=halo_api.max_in_flight * 2,
                                        refetch=config.refetch, skill=config.skill, film=config.film)
            fetched = [m for m, row in result.items() if row["fetched_in_run"]]
            await land_profiles(api, landing, fetched)
            return result, api.stats

    statuses, request_stats = run_api(fetch())
    frames, rows = [], {}
    for (xuid, month), history in histories.items():
        status_rows = [statuses[mid] for mid in history["match_id"].to_list()]
        df = pl.DataFrame(
            {"match_id": history["match_id"], "xuid": history["xuid"], "start_time": history["start_time"],
             **{k: [r[k] for r in status_rows] for k in RAW_MATCHES_SCHEMA if k not in ("match_id", "xuid", "start_time")}},
            schema=RAW_MATCHES_SCHEMA,
        )
        wh.write_partition("raw_matches", xuid, month, df)
        rows[str(partition_key(xuid, month))] = df.height
        frames.append(df)
    index = pl.concat(frames) if frames else pl.DataFrame(schema=RAW_MATCHES_SCHEMA)
    # A match of the history without its stats body is a gap, whether the API failed or answered 404.
    failed = index.filter(pl.col("stats_status") != "landed")
    # Every body that failed (stats, skill or film), with the error: which match, which fault.
    failures = index.filter((pl.col("stats_status") != "landed") | (pl.col("skill_status") == "failed")
                            | (pl.col("film_status") == "failed"))
    fetched = int(index["fetched_in_run"].sum() or 0)
    context.log.info(f"raw_matches: {index.height} matches, {fetched} fetched, {failed.height} failed, "
                     f"{request_stats.sent} requests ({request_stats.rate_limited} answered 429)")
    metadata = frame_metadata(index, rows) | {
        "matches_fetched": fetched,
        "matches_failed": failed.height,
        "unparsed_by_spnkr": int((index["spnkr_parse_ok"] == False).sum()),  # noqa: E712
        "api_requests": request_stats.sent,
        "api_retries": request_stats.retried,
        "api_429": request_stats.rate_limited,
        "bodies_failed": failures.height,
    }
    if failures.height:
        metadata["failed_matches"] = dg.MetadataValue.md("\n".join(
            f"- {r['match_id']} (player {r['xuid']}): {r['error'] or r['stats_status']}"
            for r in failures.unique("match_id", keep="first", maintain_order=True).iter_rows(named=True)))
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="all_matches_landed", asset_key="raw_matches", passed=failed.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failed": failed.height, "failed_match_ids": ", ".join(failed["match_id"].to_list()[:50])},
    )
