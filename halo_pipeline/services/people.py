"""Player profiles, the ``players`` dimension and teammate analytics, from the API and the warehouse (no Dagster).

* **Profiles** (:func:`land_daily_profiles`): the user object (profile ``GET /users?xuids=…``, batched), the
  customization and the career rank (economy) of registered players and declared friends only — never of every
  stranger met in a match — **at most once per player per UTC day**: each is landed byte-for-byte under
  ``raw/profile/<xuid[:2]>/<xuid>.<part>.<YYYY-MM-DD>.json.gz`` (a 404 is remembered for the day, a failure is
  retried by the next run). The career reward track that names the ranks is landed once
  (``raw/career_track/``) and fetched again only when a player's rank is past its last rank. Everything
  derived from them (:func:`profile_snapshots`, :func:`players_table`) reads landing only: zero API calls.
* **players**: one row per xuid seen — registered owners, declared friends and every human participant of the
  warehouse — with the latest gamertag, the latest profile and when the player was first and last seen.
* **teammates** of an owner × month (:func:`month_teammates`): from that partition's ``match_participants`` and
  ``match_facts`` (:func:`halo_pipeline.transforms.people.teammates`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import orjson
import polars as pl

from halo_pipeline.api.client import HaloApiClient
from halo_pipeline.services.landing import PROFILE_BATCH
from halo_pipeline.storage.files import read_parquet, write_parquet_atomic
from halo_pipeline.storage.landing import CAREER_TRACK, PROFILE, PROFILE_PARTS, RawLanding, daily_key
from halo_pipeline.storage.warehouse import ARCHIVE_DIR, PARQUET_NAME, Warehouse
from halo_pipeline.tables import schema
from halo_pipeline.transforms import people as tp

PLAYER_PROFILES = "player_profiles"
CAREER_TRACK_KEY = "careerrank1"
#: Partition files read at a time when the ``players`` table scans the warehouse (Parquet reads release the GIL).
READ_THREADS = 4


def utc_today() -> date:
    """Today's date in UTC (profiles are fetched at most once per player per UTC day)."""
    return datetime.now(UTC).date()


# --------------------------------------------------------------------------------------------------- landing


def due_parts(landing: RawLanding, xuid: int, day: date) -> list[str]:
    """The parts of ``xuid``'s profile of ``day`` (:data:`~halo_pipeline.storage.landing.PROFILE_PARTS`) neither
    landed nor known absent: what a run still has to fetch today."""
    return [part for part in PROFILE_PARTS
            if not landing.has(PROFILE, key := daily_key(xuid, part, day)) and landing.absent_status(PROFILE, key)
            is None]


@dataclass
class ProfileFetch:
    """What :func:`land_daily_profiles` did: players it fetched something for, bodies landed, 404s remembered,
    failures (one line each: retried by the next run) and API calls made."""

    players: list[int] = field(default_factory=list)
    landed: int = 0
    absent: int = 0
    calls: int = 0
    failures: list[str] = field(default_factory=list)


async def land_daily_profiles(api: HaloApiClient, landing: RawLanding, xuids: Iterable[int], day: date
                              ) -> ProfileFetch:
    """Land ``day``'s profile of each of ``xuids`` not fetched yet that day: the user objects in batches of
    :data:`~halo_pipeline.services.landing.PROFILE_BATCH` (an xuid the API does not return is absent), the
    customization and the career rank of each player (concurrently; the process-wide limiter paces them), and
    the career reward track when a rank is past the landed track's last rank (or none is landed). Never raises
    for an API failure: it is recorded in :attr:`ProfileFetch.failures` and asked again by the next run.
    """
    due = {x: parts for x in dict.fromkeys(xuids) if (parts := due_parts(landing, x, day))}
    out = ProfileFetch(players=sorted(due))

    def land(xuid: int, part: str, body: bytes | None) -> None:
        key = daily_key(xuid, part, day)
        if body is None:
            landing.mark_absent(PROFILE, key, 404)
            out.absent += 1
        else:
            landing.put(PROFILE, key, body)
            out.landed += 1

    def failed(what: str, exc: BaseException) -> None:
        status = getattr(exc, "status", None)
        out.failures.append(f"{what}: " + (f"HTTP {status}" if status else f"{type(exc).__name__}: {exc}")[:200])

    users = [x for x, parts in due.items() if "user" in parts]
    for i in range(0, len(users), PROFILE_BATCH):
        batch = users[i:i + PROFILE_BATCH]
        out.calls += 1
        try:
            found = {str(u.get("xuid")): u for u in await api.users_by_xuid(batch)}
        except aiohttp.ClientResponseError as exc:
            if exc.status != 404:
                failed(f"users {batch[0]}…", exc)
                continue
            found = {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            failed(f"users {batch[0]}…", exc)
            continue
        for xuid in batch:
            user = found.get(str(xuid))
            land(xuid, "user", orjson.dumps(user) if user is not None else None)

    async def economy(xuid: int, part: str) -> None:
        fetch = api.player_customization if part == "customization" else api.player_career_rank
        out.calls += 1
        try:
            body = await fetch(xuid)
            orjson.loads(body)  # a whole JSON document, or a failure (a truncated body is never landed)
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                land(xuid, part, None)
            else:
                failed(f"{part} {xuid}", exc)
            return
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            failed(f"{part} {xuid}", exc)
            return
        land(xuid, part, body)

    await asyncio.gather(*(economy(x, part) for x, parts in due.items() for part in parts if part != "user"))
    ranks = [r for x in due if (r := _career_rank(landing, x, day)) is not None]
    known = tp.career_track_ranks(_json(landing.get(CAREER_TRACK, CAREER_TRACK_KEY)))
    absent_key = f"{CAREER_TRACK_KEY}.{day.isoformat()}"
    if ranks and (not known or max(ranks) > max(known)) and landing.absent_status(CAREER_TRACK, absent_key) is None:
        out.calls += 1
        try:
            landing.put(CAREER_TRACK, CAREER_TRACK_KEY, orjson.dumps(orjson.loads(await api.career_reward_track())))
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:
                landing.mark_absent(CAREER_TRACK, absent_key, 404)
            else:
                failed("career track", exc)
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            failed("career track", exc)
    return out


def _json(body: bytes | None) -> dict | None:
    return orjson.loads(body) if body is not None else None


def _career_rank(landing: RawLanding, xuid: int, day: date) -> int | None:
    body = _json(landing.get(PROFILE, daily_key(xuid, "career_rank", day)))
    progress = (body or {}).get("CurrentProgress")
    return progress.get("Rank") if isinstance(progress, dict) and isinstance(progress.get("Rank"), int) else None


# --------------------------------------------------------------------------------------------------- profiles


def profile_snapshots(landing: RawLanding, xuid: int, ranks: dict | None = None) -> pl.DataFrame:
    """Every landed daily profile of ``xuid``, one row per day (:data:`~halo_pipeline.transforms.people.
    PLAYER_PROFILES_SCHEMA`), from raw landing only. ``ranks``: :func:`~halo_pipeline.transforms.people.
    career_track_ranks` of the landed track (read when not given)."""
    if ranks is None:
        ranks = tp.career_track_ranks(_json(landing.get(CAREER_TRACK, CAREER_TRACK_KEY)))
    days: dict[str, dict[str, dict | None]] = {}
    for key in landing.keys(PROFILE, f"{xuid}."):
        _, part, day = key.split(".", 2)
        if part in PROFILE_PARTS:
            days.setdefault(day, {})[part] = _json(landing.get(PROFILE, key))
    rows = [tp.profile_row(xuid, date.fromisoformat(day), bodies.get("user"), bodies.get("customization"),
                           bodies.get("career_rank"), ranks) for day, bodies in sorted(days.items())]
    return tp.profiles_frame(rows)


def profiles_path(wh: Warehouse, xuid: int) -> Path:
    """``warehouse/player_profiles/player=<xuid>/data.parquet``."""
    return wh.root / PLAYER_PROFILES / f"player={xuid}" / PARQUET_NAME


def write_profiles(wh: Warehouse, xuids: Iterable[int]) -> pl.DataFrame:
    """Rewrite the ``player_profiles`` file of each of ``xuids`` from its landed snapshots (a player with none
    keeps no file); returns the rows written."""
    landing = wh.landing
    ranks = tp.career_track_ranks(_json(landing.get(CAREER_TRACK, CAREER_TRACK_KEY)))
    frames = []
    for xuid in xuids:
        df = profile_snapshots(landing, xuid, ranks)
        if df.height:
            write_parquet_atomic(df, profiles_path(wh, xuid))
            frames.append(df)
    return pl.concat(frames) if frames else pl.DataFrame(schema=tp.PLAYER_PROFILES_SCHEMA)


def read_profiles(wh: Warehouse, xuid: int | None = None) -> pl.DataFrame:
    """The ``player_profiles`` table (of one player when given); empty with its columns when none is written."""
    return wh.read_table(PLAYER_PROFILES, xuid, schema=tp.PLAYER_PROFILES_SCHEMA)


def latest_profile(wh: Warehouse, xuid: int) -> dict | None:
    """The newest profile row of ``xuid`` (a dict of :data:`~halo_pipeline.transforms.people.
    PLAYER_PROFILES_SCHEMA`), or ``None``."""
    latest = tp.latest_profiles(read_profiles(wh, xuid))
    return latest.row(0, named=True) if latest.height else None


# --------------------------------------------------------------------------------------------------- players


def owners(wh: Warehouse, table: str) -> list[int]:
    """The owners (xuids) with partitions of ``table``, live or archived."""
    folders = [wh.root / table, wh.root / ARCHIVE_DIR / table]
    return sorted({int(p.name.split("=", 1)[1]) for base in folders if base.exists() for p in base.glob("player=*")})


def _month_files(wh: Warehouse, table: str) -> list[Path]:
    return [path for owner in owners(wh, table) for _, path in sorted(wh.player_files(table, owner).items())]


def _scan(wh: Warehouse, table: str, columns: list[str], with_path: bool = False) -> pl.LazyFrame:
    """``columns`` of every partition of ``table`` (live or archived; ``with_path``: plus ``_path``, the file),
    as one lazy frame: polars scans local files in parallel; object storage is read file by file (whole
    objects, :data:`READ_THREADS` at a time)."""
    files = _month_files(wh, table)
    if not files:
        return pl.LazyFrame(schema={c: schema(table)[c] for c in columns} | ({"_path": pl.Utf8} if with_path else {}))
    if not wh.remote:
        return pl.scan_parquet([str(p) for p in files], hive_partitioning=False, extra_columns="ignore",
                               missing_columns="insert", include_file_paths="_path" if with_path else None
                               ).select(*columns, *(["_path"] if with_path else []))
    with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="players-read") as pool:
        frames = list(pool.map(lambda p: read_parquet(p, columns=columns).with_columns(_path=pl.lit(str(p))), files))
    return pl.concat(frames, how="vertical_relaxed").lazy().select(*columns, *(["_path"] if with_path else []))


def humans_seen(wh: Warehouse) -> pl.DataFrame:
    """``xuid, first_seen, last_seen, matches_seen`` of every human participant of the warehouse (every owner's
    ``match_participants``, the start time of each match from ``match_facts``; a match shared by owners counts
    once)."""
    starts = _scan(wh, "match_facts", ["match_id", "start_time"]).unique("match_id")
    return (_scan(wh, "match_participants", ["match_id", "xuid"]).drop_nulls("xuid").unique(["match_id", "xuid"])
            .join(starts, on="match_id", how="left").group_by("xuid")
            .agg(first_seen=pl.col("start_time").min(), last_seen=pl.col("start_time").max(),
                 matches_seen=pl.len().cast(pl.Int32))
            .collect())


def latest_aliases(wh: Warehouse) -> pl.DataFrame:
    """``xuid, gamertag``: each xuid's gamertag in the newest month of ``xuid_aliases`` naming it (a landed
    profile look-up preferred to a film's name within a month)."""
    month = pl.col("_path").str.extract(r"year=(\d{4})[/\\]month=(\d{2})", 0)
    return (_scan(wh, "xuid_aliases", ["xuid", "gamertag", "source"], with_path=True)
            .drop_nulls(["xuid", "gamertag"]).with_columns(_month=month)
            .sort(["_month", pl.col("source") == "profile", "gamertag"], descending=[True, True, False])
            .unique("xuid", keep="first").select("xuid", "gamertag").collect())


def players_table(wh: Warehouse, registered: Iterable[int], friends: Iterable[int]) -> pl.DataFrame:
    """The ``players`` table (:data:`~halo_pipeline.transforms.people.PLAYERS_SCHEMA`, sorted by xuid): every
    human participant of the warehouse, every registered player and declared friend, with the gamertag of the
    newest profile snapshot (else of :func:`latest_aliases`), the newest profile and first/last seen."""
    registered = pl.Series("xuid", sorted({int(x) for x in registered}), pl.Int64)
    friends = pl.Series("xuid", sorted({int(x) for x in friends}), pl.Int64)
    seen = humans_seen(wh)
    profiles = tp.latest_profiles(read_profiles(wh)).rename({"gamertag": "_profile_gamertag"})
    base = pl.concat([seen["xuid"], registered, friends, profiles["xuid"]]).unique().sort().to_frame()
    out = (base.join(latest_aliases(wh), on="xuid", how="left").join(profiles, on="xuid", how="left")
           .join(seen, on="xuid", how="left")
           .with_columns(gamertag=pl.coalesce("_profile_gamertag", "gamertag"),
                         is_registered=pl.col("xuid").is_in(registered.implode()),
                         is_friend=pl.col("xuid").is_in(friends.implode()),
                         matches_seen=pl.col("matches_seen").fill_null(0)))
    return out.select([pl.col(c).cast(t) for c, t in tp.PLAYERS_SCHEMA.items()]).sort("xuid")


def players_path(wh: Warehouse) -> Path:
    """The one file of the ``players`` table."""
    return wh.global_path("players")


def read_players(wh: Warehouse) -> pl.DataFrame:
    """The ``players`` table; empty with its columns before its first materialization."""
    path = players_path(wh)
    return read_parquet(path) if path.exists() else pl.DataFrame(schema=tp.PLAYERS_SCHEMA)


# --------------------------------------------------------------------------------------------------- teammates


def month_teammates(wh: Warehouse, owner: int, month: str) -> pl.DataFrame:
    """Who ``owner`` played with and against in ``month`` (:data:`~halo_pipeline.transforms.people.
    TEAMMATES_SCHEMA`), from that partition's ``match_participants`` and ``match_facts``. A partition derived
    before ``team_ids`` existed uses each player's last team."""
    participants = wh.read_partition("match_participants", owner, month, schema("match_participants"))
    if "team_ids" not in participants.columns:
        participants = participants.with_columns(team_ids=pl.concat_list(pl.col("team_id")))
    facts = wh.read_partition("match_facts", owner, month, schema("match_facts"))
    return tp.teammates(participants, facts, owner, month)
