"""Deriving the warehouse tables of player × month partitions from raw landing: zero API calls, pure functions of
the landed bodies (no Dagster).

* The **stats tables** (:data:`halo_pipeline.tables.STATS_TABLES`: match_facts, match_participants, team_stats,
  medals, personal_scores, player_match_skill) come from ONE read and parse of each landed body
  (:func:`derive_stats_tables`): each table re-reading and re-parsing every body (gzip + JSON, ≈ 0.3 ms per 20 KB
  body) made a re-derive cost 5 parses per match. Bodies are parsed :data:`CHUNK` at a time (a parsed body is
  ≈ 10× its JSON), so peak memory does not grow with a partition's size. A run holding at least
  :data:`POOL_MIN_MATCHES` landed matches submits every partition, :data:`CHUNK` matches per task, to the
  process pool (:mod:`halo_pipeline.services.parallel`) up front: the cores derive ahead while the caller
  writes Parquet.
* **Highlight events** are decoded from the landed film chunks (:func:`decode_highlight_events`) by
  :mod:`halo_pipeline.transforms.film_decoder` (spnkr's reader's output, ~20× faster: ~1–15 ms of CPU per match),
  in the pool from :data:`FILM_POOL_THRESHOLD` chunks, and kept beside raw landing so a re-derive never decodes
  twice.
* **Legacy rows** (matches imported from LevelUp, :mod:`halo_pipeline.storage.legacy`) fill the partition where
  the API has nothing: every row says its ``source`` (``api`` or ``levelup``). A match whose stats body is landed
  is derived from it (the API wins); LevelUp's skill rows stay until a skill body is landed, its highlight
  events until a film chunk is decoded (an expired film never is).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import orjson
import polars as pl

from halo_pipeline.months import Month
from halo_pipeline.services import parallel
from halo_pipeline.services.friends import friend_xuids
from halo_pipeline.services.history import month_history
from halo_pipeline.storage.files import read_parquet, write_parquet_atomic
from halo_pipeline.storage.landing import PROFILE, SKILL, STATS, RawLanding
from halo_pipeline.storage.warehouse import Warehouse, month_of_path
from halo_pipeline.tables import ALIASES_TABLE_SCHEMA, STATS_TABLES, schema
from halo_pipeline.transforms.film import ALIASES_SCHEMA, HIGHLIGHT_EVENTS_SCHEMA, aliases_from_events
from halo_pipeline.transforms.levelup import API, LEGACY_SCHEMAS, LEVELUP, legacy_aliases, legacy_frames
from halo_pipeline.transforms.people import match_people_of_participants, with_match_people

#: Bodies parsed at a time, in this process or per pool task.
CHUNK = 256
#: A run with fewer landed matches derives in its own process (a pool's start-up ≈ 1–2 s is not worth it).
POOL_MIN_MATCHES = 1000
#: Below this many matches (a film chunk costs ≈ 5–10 ms to decode), decoding in the caller's process beats
#: starting a pool (≈ 1–2 s once per process).
FILM_POOL_THRESHOLD = 400
#: Decoded highlight events are kept under ``<raw>/FILM_EVENTS/<id[:2]>/<match_id>.v<NN>.<chunk digest>.parquet``.
FILM_EVENTS = "film_events"

_log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------- reads


def landed_match_ids(wh: Warehouse, xuid: int, month: str) -> list[str]:
    """Match ids of the partition whose stats body is landed, each once: those of the ``raw_matches`` index, then
    the partition's legacy matches whose stats body is landed (the API wins over LevelUp's rows); none for a month
    settled without matches (:func:`halo_pipeline.services.history.month_history`).

    Raises:
        FileNotFoundError: ``raw_matches`` was never materialized for this partition and it holds no legacy match
            (one line saying so).
    """
    legacy = wh.legacy.match_ids(xuid, month)
    path = wh.partition_path("raw_matches", xuid, month)
    if path.exists():
        index = read_parquet(path)
        ids = index.filter(pl.col("stats_status") == "landed")["match_id"].to_list()
    elif legacy or month_history(wh, xuid, month).is_empty():
        ids = []
    else:
        raise FileNotFoundError(f"raw_matches of {month}|{xuid} was never materialized: its matches are not landed "
                                "(materialize raw_matches, or `halo-pipeline sync`, first)")
    landing = wh.landing
    return list(dict.fromkeys([*ids, *(m for m in legacy if landing.has(STATS, m))]))


def with_legacy(wh: Warehouse, xuid: int, month: str, frames: dict[str, pl.DataFrame],
                people: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset())) -> dict[str, pl.DataFrame]:
    """``frames`` (derived from raw landing) with ``source`` = ``api``, plus the partition's legacy rows where the
    API has nothing: the stats tables of matches without a landed stats body, ``player_match_skill`` of matches
    without a landed skill body. Legacy ``match_facts`` rows get who played with the owner from LevelUp's
    participant rows (``people``: the owner's friends and known players, :func:`people_of`)."""
    out = {t: df.with_columns(source=pl.lit(API)) if t in LEGACY_SCHEMAS else df for t, df in frames.items()}
    docs = wh.legacy.documents(xuid, month)
    if not docs:
        return out
    landing = wh.landing
    for table, kind in [(t, SKILL if t == "player_match_skill" else STATS) for t in out if t in LEGACY_SCHEMAS]:
        missing = [doc for doc in docs if not landing.has(kind, doc["match_id"])]
        if not missing:
            continue
        legacy = legacy_frames(missing, [table, "match_participants"] if table == "match_facts" else [table])
        rows = legacy[table]
        if table == "match_facts":
            rows = with_match_people(rows, match_people_of_participants(legacy["match_participants"], xuid, *people))
        out[table] = pl.concat([out[table], rows.select(out[table].columns)], how="vertical")
    if "match_facts" in out:
        out["match_facts"] = out["match_facts"].sort("start_time", "match_id", nulls_last=True)
    return out


def profiles(wh: Warehouse, xuids: list[int]) -> list[dict]:
    """Landed profile user objects (``{"xuid", "gamertag", …}``) of ``xuids``."""
    landing = wh.landing
    return [orjson.loads(body) for x in xuids if (body := landing.get(PROFILE, str(x))) is not None]


# --------------------------------------------------------------------------------------------------- stats tables


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[start:start + CHUNK] for start in range(0, len(ids), CHUNK)] or [[]]


def _combine(parts: list[dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    frames = {name: pl.concat([part[name] for part in parts], how="vertical") for name in parts[0]}
    if "match_facts" in frames and len(parts) > 1:  # its rows are in time order
        frames["match_facts"] = frames["match_facts"].sort("start_time", "match_id", nulls_last=True)
    return frames


def people_of(wh: Warehouse, owner: int, registered: Iterable[int] = ()) -> tuple[frozenset[int], frozenset[int]]:
    """``(friends, known players)`` of ``owner`` for ``match_facts``: the owner's declared friends (the
    ``friends`` table), and those plus every other ``registered`` player."""
    friends = friend_xuids(wh, owner)
    return friends, (friends | frozenset(int(x) for x in registered)) - {owner}


def derive_partition(wh: Warehouse, xuid: int, month: str, tables: Iterable[str] = STATS_TABLES,
                     registered: Iterable[int] = ()) -> dict[str, pl.DataFrame]:
    """``{table: frame}`` of ``tables`` (some of :data:`STATS_TABLES`) for one partition's landed bodies, in this
    process, parsing :data:`CHUNK` bodies at a time (``registered``: see :func:`people_of`).

    Raises:
        FileNotFoundError: ``raw_matches`` was never materialized for this partition.
    """
    names = list(tables)
    ids = landed_match_ids(wh, xuid, month)
    people = people_of(wh, xuid, registered)
    frames = _combine([parallel.derive_stats(wh.landing, xuid, chunk, names, *people) for chunk in _chunks(ids)])
    return with_legacy(wh, xuid, month, frames, people)


def derive_stats_tables(wh: Warehouse, partitions: Iterable[tuple[int, str]], tables: Iterable[str] = STATS_TABLES,
                        registered: Iterable[int] = ()) -> Iterator[tuple[int, str, dict[str, pl.DataFrame]]]:
    """``(xuid, month, {table: frame})`` for each partition, in order, every table from one parse of each body
    (``match_facts`` with who played with the owner: see :func:`people_of`; ``registered``: the registered
    players).

    When the partitions hold at least :data:`POOL_MIN_MATCHES` landed matches, every partition is submitted to
    the process pool first (:data:`CHUNK` matches per task) and collected in order; a worker that dies
    (an OOM kill…) costs that partition a derive in this process, not the run.

    Raises:
        FileNotFoundError: ``raw_matches`` was never materialized for one of the partitions.
    """
    names = sorted(set(tables) & set(STATS_TABLES))
    partitions = list(partitions)
    registered = frozenset(int(x) for x in registered)
    people = {x: people_of(wh, x, registered) for x in dict.fromkeys(x for x, _ in partitions)}
    landed = {(x, m): landed_match_ids(wh, x, m) for x, m in partitions}
    if sum(len(ids) for ids in landed.values()) < POOL_MIN_MATCHES:
        for xuid, month in partitions:
            chunks = _chunks(landed[(xuid, month)])
            frames = _combine([parallel.derive_stats(wh.landing, xuid, c, names, *people[xuid]) for c in chunks])
            yield xuid, month, with_legacy(wh, xuid, month, frames, people[xuid])
        return
    tasks: dict[tuple[int, str], list[Future]] = {
        (x, m): [parallel.submit(parallel.derive_stats, wh.landing, x, chunk, names, *people[x])
                 for chunk in _chunks(ids)]
        for (x, m), ids in landed.items()}
    try:
        for xuid, month in partitions:
            try:
                frames = with_legacy(wh, xuid, month, _combine([task.result() for task in tasks.pop((xuid, month))]),
                                     people[xuid])
            except BrokenProcessPool:  # this partition again, here (the next submit starts a new pool)
                frames = derive_partition(wh, xuid, month, names, registered)
            yield xuid, month, frames
    finally:
        for futures in tasks.values():  # the caller stopped early (an error): drop the rest
            for future in futures:
                future.cancel()


# --------------------------------------------------------------------------------------------------- film


def _events_path(landing: RawLanding, match_id: str, chunk: bytes, version: int):
    digest = hashlib.blake2b(chunk, digest_size=8).hexdigest()
    return landing.root / FILM_EVENTS / match_id[:2] / f"{match_id}.v{version}.{digest}.parquet"


def keep_decoded_events(landing: RawLanding, match_id: str, chunk: bytes, version: int) -> bool:
    """Decode a film chunk just landed and keep its events beside raw landing (what :func:`decode_highlight_events`
    reads instead of decoding again): the landing of the next matches overlaps the decoding. Returns whether events
    were kept (an undecodable chunk is left to :func:`decode_highlight_events`, which reports it)."""
    path = _events_path(landing, match_id, chunk, version)
    return path.exists() or not isinstance(_decode_and_keep(match_id, chunk, version, path), str)


def _decode_and_keep(match_id: str, chunk: bytes, version: int, path) -> pl.DataFrame | str:
    """The chunk's highlight events, written to ``path`` (atomically), or the error line of an undecodable one."""
    decoded = parallel.decode_film((match_id, chunk, version))
    if not isinstance(decoded, str):
        write_parquet_atomic(decoded, path)
    return decoded


def decode_highlight_events(wh: Warehouse, match_ids: list[str],
                            warn: Callable[[str], None] = _log.warning) -> pl.DataFrame:
    """Highlight events (:data:`HIGHLIGHT_EVENTS_SCHEMA`) of the landed film chunks of ``match_ids``.

    Decoded events are kept beside raw landing, keyed by match id and a digest of the chunk
    (:data:`FILM_EVENTS`), so re-deriving never decodes a chunk twice (a re-landed, different chunk is decoded
    again). A chunk that cannot be decoded does not fail the partition: ``warn`` gets one line naming the match,
    and the other matches' events are kept.
    """
    landing = wh.landing
    jobs = [(landing, mid) for mid in match_ids]
    if len(jobs) >= FILM_POOL_THRESHOLD:
        frames = parallel.map_in_pool(_events_of, jobs)
    else:
        frames = [_events_of(job) for job in jobs]
    for error in (f for f in frames if isinstance(f, str)):
        warn(f"highlight_events: skipped {error}")
    kept = [f for f in frames if isinstance(f, pl.DataFrame)]
    return pl.concat(kept, how="vertical") if kept else pl.DataFrame(schema=HIGHLIGHT_EVENTS_SCHEMA)


def _events_of(job: tuple[RawLanding, str]) -> pl.DataFrame | str | None:
    """One match's highlight events: the kept ones, else its landed chunk decoded and the events kept; the error
    line of a chunk that cannot be decoded; ``None`` without a landed chunk. Large runs call it in the process
    pool: reading, decoding and keeping all run on every core."""
    landing, match_id = job
    film = landing.get_film(match_id)
    if film is None:
        return None
    path = _events_path(landing, match_id, *film)
    return read_parquet(path) if path.exists() else _decode_and_keep(match_id, *film, path)


def partition_highlight_events(wh: Warehouse, xuid: int, month: str,
                               warn: Callable[[str], None] = _log.warning) -> pl.DataFrame:
    """The partition's highlight events: decoded from the landed film chunks (``source`` = ``api``), plus
    LevelUp's events of the legacy matches that have none decoded (an expired film, never landed)."""
    events = decode_highlight_events(wh, landed_match_ids(wh, xuid, month), warn).with_columns(source=pl.lit(API))
    decoded = set(events["match_id"].to_list())
    kept = [doc for doc in wh.legacy.documents(xuid, month) if doc["match_id"] not in decoded]
    if not kept:
        return events
    return pl.concat([events, legacy_frames(kept, ["highlight_events"])["highlight_events"]], how="vertical")


# --------------------------------------------------------------------------------------------------- aliases


def derive_aliases(wh: Warehouse, owner: int, month: str) -> pl.DataFrame:
    """xuid → gamertag seen in the partition (:data:`ALIASES_TABLE_SCHEMA`): from its film highlight events
    (source ``film``), from landed profile look-ups of its human participants (source ``profile``) and from the
    LevelUp rows kept in it (source ``levelup``: its highlight events, the store's owner and participants)."""
    events = wh.read_partition("highlight_events", owner, month, schema("highlight_events"))
    if "source" not in events.columns:  # written before the column existed: every event was decoded
        events = events.with_columns(source=pl.lit(API))
    participants = wh.read_partition("match_participants", owner, month, schema("match_participants"))
    humans = sorted({x for x in participants["xuid"].to_list() if x is not None} | {owner})
    from_levelup = pl.col("source") == LEVELUP
    film = aliases_from_events(events.filter(~from_levelup)).with_columns(source=pl.lit("film"))
    profile = pl.DataFrame(
        [{"xuid": int(u["xuid"]), "gamertag": u["gamertag"]} for u in profiles(wh, humans)],
        schema=ALIASES_SCHEMA,
    ).with_columns(source=pl.lit("profile"))
    legacy = pl.concat([aliases_from_events(events.filter(from_levelup)),
                        legacy_aliases(wh.legacy.documents(owner, month))]).with_columns(source=pl.lit(LEVELUP))
    return (pl.concat([film, profile, legacy]).unique().sort("xuid", "source", "gamertag")
            .select(list(ALIASES_TABLE_SCHEMA)))


def partitions_sharing_matches(wh: Warehouse, players: Iterable[int], others: Iterable[int]) -> dict[int, set[Month]]:
    """``{xuid: months}`` of the ``others``' ``raw_matches`` partitions that list a match one of ``players`` also
    played: registering ``players`` changes those partitions' ``match_facts.known_teammates`` (a registered player
    is a known one), so they are re-derived with them."""
    players, others = set(players), set(others) - set(players)
    theirs = {m for x in players for path in wh.partition_files("raw_matches", x)
              for m in read_parquet(path, columns=["match_id"])["match_id"].to_list()}
    out: dict[int, set[Month]] = {}
    for xuid in sorted(others) if theirs else ():
        for path in wh.partition_files("raw_matches", xuid):
            if not theirs.isdisjoint(read_parquet(path, columns=["match_id"])["match_id"].to_list()):
                out.setdefault(xuid, set()).add(month_of_path(path))
    return out
