"""Importing LevelUp's stores (the system this project replaces) as a legacy source: no Dagster here (the
runs that derive the imported partitions are launched by :func:`halo_pipeline.runner.run_import`).

LevelUp keeps a player's history in DuckDB files under its data folder:

* ``players/<gamertag>/stats.duckdb`` — one store per player (LevelUp ≤ v4, and what its sync engine still writes
  per player): ``match_stats`` (one row per match: the owner's figures and the match's ids), ``match_participants``,
  ``medals_earned`` (the owner's), ``personal_score_awards``, ``highlight_events``, ``player_match_stats`` (skill)
  and ``sync_meta`` (key/value: ``xuid``, ``gamertag``…). Read from a real store (``../shared/legacy``).
* ``warehouse/shared_matches.duckdb`` — LevelUp v5+: the matches of every player in one file: ``match_registry``
  (one row per match), ``match_participants`` (every player, with skill columns), ``medals_earned`` and
  ``highlight_events`` keyed by xuid; the players are those of ``players/*/stats.duckdb`` (their ``sync_meta``)
  and of ``db_profiles.json`` beside ``data/``. Shape taken from LevelUp's schema and test fixtures, not from a
  real file (none was available).

Each match of each player becomes one legacy document (:mod:`halo_pipeline.transforms.levelup`) in the legacy
landing (:mod:`halo_pipeline.storage.legacy`), written only when its bytes change: a second import writes nothing.
Stores are read month by month, so memory does not grow with the length of a history.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import orjson
import polars as pl

from halo_pipeline.ids import InvalidInput
from halo_pipeline.months import Month
from halo_pipeline.storage.files import read_parquet
from halo_pipeline.storage.landing import STATS
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.transforms import levelup as tl

PLAYER_STORE, SHARED_STORE = "player_store", "shared_matches"
#: LevelUp tables keyed by match id that a document takes (when the store has them).
PLAYER_TABLES = ("match_stats", "match_participants", "medals_earned", "personal_score_awards", "highlight_events",
                 "player_match_stats")
SHARED_TABLES = ("match_registry", "match_participants", "medals_earned", "highlight_events")
#: Tables of a player's own store that stay there in the shared layout (keyed by the owner's matches).
OWN_TABLES = ("personal_score_awards", "player_match_stats")


@dataclass
class LevelUpPlayer:
    """A player found in LevelUp's data: xuid, gamertag, their store(s), and their matches
    (``{match_id: start time (UTC)}``)."""

    xuid: int
    gamertag: str | None
    store: Path | None
    shared: Path | None = None
    matches: dict[str, datetime] = field(default_factory=dict)
    has_match_stats: bool = False  # the player store has LevelUp ≤ v4's match_stats

    @property
    def layout(self) -> str:
        return SHARED_STORE if self.shared is not None and not self.has_match_stats else PLAYER_STORE

    def months(self) -> dict[Month, list[str]]:
        """Match ids by month (ascending)."""
        out: dict[Month, list[str]] = {}
        for match_id, start in sorted(self.matches.items(), key=lambda kv: (kv[1], kv[0])):
            out.setdefault(Month.of(start), []).append(match_id)
        return dict(sorted(out.items()))


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise InvalidInput(f"{path}: cannot open the LevelUp store: {' '.join(str(exc).split())[:200]}") from None


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sync_meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    if "sync_meta" not in _tables(con):
        return {}
    return {str(r["key"]): r["value"] for r in _rows(con, "SELECT key, value FROM sync_meta")}


def _data_folders(root: Path) -> list[Path]:
    """``root`` and ``root/data`` (a LevelUp checkout or its data folder)."""
    return [p for p in (root, root / "data") if p.is_dir()]


def find_players(root: Path, resolve: Callable[[str], int] | None = None) -> list[LevelUpPlayer]:
    """Every player of the LevelUp data under ``root`` (a LevelUp checkout, its ``data`` folder, or a folder
    holding ``players/…``), with their match ids and start times; rows are read later, month by month.

    The xuid and gamertag come from each store's ``sync_meta`` (else ``db_profiles.json``, else the xuid present
    in every match of the store, else ``resolve(gamertag)``: the profile API).

    Raises:
        InvalidInput: no LevelUp store under ``root``, a store that cannot be opened, or a store whose owner's xuid
            cannot be told.
    """
    root = Path(root)
    if not root.exists():
        raise InvalidInput(f"{root}: no such folder")
    stores = sorted({p for d in _data_folders(root) for p in (d / "players").glob("*/stats.duckdb")})
    shared = next((p for d in _data_folders(root) for p in sorted((d / "warehouse").glob("shared_matches*.duckdb"))),
                  None)
    if root.is_file() and root.suffix == ".duckdb":
        stores = [root]
    if not stores and shared is None:
        raise InvalidInput(f"{root}: no LevelUp store found (expected players/<gamertag>/stats.duckdb or "
                           "warehouse/shared_matches.duckdb under it, or under its data/ folder)")
    profiles = _profiles(root)
    players: dict[int, LevelUpPlayer] = {}
    for path in stores:
        with _connect(path) as con:
            meta = _sync_meta(con)
            gamertag = meta.get("gamertag") or path.parent.name
            xuid_text = meta.get("xuid") or profiles.get(gamertag.casefold())
            has_stats = "match_stats" in _tables(con)
            matches = {r["match_id"]: _utc(r["start_time"]) for r in _rows(
                con, "SELECT match_id, start_time FROM match_stats WHERE start_time IS NOT NULL")} if has_stats else {}
            if xuid_text is None and has_stats and "match_participants" in _tables(con):
                xuid_text = _common_xuid(con)
        xuid = _owner_xuid(xuid_text, gamertag, path, resolve)
        player = players.setdefault(xuid, LevelUpPlayer(xuid, gamertag, path))
        player.matches.update(matches)
        player.has_match_stats = player.has_match_stats or has_stats
    for gamertag, xuid_text in profiles.items():
        xuid = int(xuid_text)
        players.setdefault(xuid, LevelUpPlayer(xuid, gamertag, None))
    if shared is not None:
        with _connect(shared) as con:
            names = _tables(con)
            if {"match_registry", "match_participants"} <= names:
                for player in players.values():
                    player.shared = shared
                    for row in _rows(con, "SELECT r.match_id, r.start_time FROM match_registry r JOIN "
                                          "match_participants p ON p.match_id = r.match_id WHERE p.xuid = ? "
                                          "AND r.start_time IS NOT NULL", [str(player.xuid)]):
                        player.matches.setdefault(row["match_id"], _utc(row["start_time"]))
    return sorted((p for p in players.values() if p.matches or p.store is not None), key=lambda p: p.xuid)


def _profiles(root: Path) -> dict[str, str]:
    """``{gamertag (casefolded): xuid}`` of LevelUp's ``db_profiles.json`` (beside or above ``data/``)."""
    for folder in (root, root.parent):
        path = folder / "db_profiles.json"
        if path.is_file():
            try:
                profiles = json.loads(path.read_text()).get("profiles") or {}
            except (ValueError, AttributeError) as exc:
                raise InvalidInput(f"{path}: not LevelUp's profiles file: {exc}") from None
            return {str(gt).casefold(): str(p.get("xuid")) for gt, p in profiles.items()
                    if isinstance(p, dict) and str(p.get("xuid") or "").isdigit()}
    return {}


def _common_xuid(con: duckdb.DuckDBPyConnection) -> str | None:
    """The xuid found in every match of ``match_stats`` (the owner's), when exactly one is."""
    rows = con.execute("SELECT p.xuid FROM match_participants p JOIN match_stats s ON s.match_id = p.match_id "
                       "GROUP BY p.xuid HAVING count(DISTINCT p.match_id) = (SELECT count(*) FROM match_stats)"
                       ).fetchall()
    return str(rows[0][0]) if len(rows) == 1 else None


def _owner_xuid(text: str | None, gamertag: str, path: Path, resolve: Callable[[str], int] | None) -> int:
    if text is not None and str(text).strip().isdigit():
        return int(str(text).strip())
    if resolve is not None:
        return resolve(gamertag)
    raise InvalidInput(f"{path}: the store does not say its owner's xuid (no sync_meta xuid): register the player "
                       f"first (`halo-pipeline players add {gamertag!r}`) and import again")


def select_player(players: list[LevelUpPlayer], value: str | None) -> list[LevelUpPlayer]:
    """``players``, or the one whose gamertag (any case) or xuid is ``value``.

    Raises:
        InvalidInput: no such player (the message lists those found).
    """
    if value is None:
        return players
    wanted = value.strip().casefold()
    chosen = [p for p in players if wanted in {str(p.xuid), (p.gamertag or "").casefold()}]
    if not chosen:
        found = ", ".join(f"{p.gamertag or '?'} ({p.xuid})" for p in players) or "none"
        raise InvalidInput(f"player {value!r} is not in the LevelUp data (found: {found})")
    return chosen


def _by_match(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["match_id"], []).append(row)
    for match_rows in out.values():  # a stable order, whatever order the store returned
        match_rows.sort(key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS, default=str))
    return out


#: Matches whose rows are read in one query per table (memory is bounded by this many matches' rows).
BATCH = 512


class _Store:
    """An open LevelUp store: its tables and their columns, read once."""

    def __init__(self, path: Path) -> None:
        self.con = _connect(path)
        self.columns: dict[str, set[str]] = {}
        for table, column in self.con.execute(
                "SELECT table_name, column_name FROM information_schema.columns").fetchall():
            self.columns.setdefault(table, set()).add(column)

    def read(self, tables: tuple[str, ...], match_ids: list[str], xuid: int | None = None
             ) -> dict[str, dict[str, list[dict]]]:
        """``{table: {match_id: rows}}`` of ``tables`` (those the store has) for ``match_ids``; ``xuid``: only the
        rows of that player for :data:`OWN_TABLES` with an ``xuid`` column."""
        out = {}
        for table in tables:
            if table not in self.columns:
                continue
            sql = f'SELECT * FROM "{table}" WHERE list_contains(?, match_id)'
            params: list = [match_ids]
            if xuid is not None and table in OWN_TABLES and "xuid" in self.columns[table]:
                sql += " AND xuid = ?"
                params.append(str(xuid))
            out[table] = _by_match(_rows(self.con, sql, params))
        return out


def documents(player: LevelUpPlayer, match_ids: list[str]) -> Iterator[dict]:
    """The legacy document of each of ``match_ids`` (matches of ``player``), in that order, read :data:`BATCH`
    matches at a time (one query per table and batch, the stores kept open)."""
    stores = [(_Store(path), tables, xuid) for path, tables, xuid in (
        (player.store, PLAYER_TABLES, player.xuid), (player.shared, SHARED_TABLES, None)) if path is not None]
    try:
        for start in range(0, len(match_ids), BATCH):
            batch = match_ids[start:start + BATCH]
            rows: dict[str, dict[str, list[dict]]] = {}
            for store, tables, xuid in stores:  # the shared file's rows (every player's) replace the store's
                for table, by_match in store.read(tables, batch, xuid).items():
                    rows.setdefault(table, {}).update(by_match)
            for match_id in batch:
                tables = {t: by_match[match_id] for t, by_match in rows.items() if match_id in by_match}
                doc = {"source": tl.LEVELUP, "layout": player.layout, "match_id": match_id,
                       "owner": {"xuid": player.xuid, "gamertag": player.gamertag}, "tables": tables}
                yield orjson.loads(orjson.dumps(doc, default=str))  # JSON values only: what the landing stores
    finally:
        for store, *_ in stores:
            store.con.close()


# --------------------------------------------------------------------------------------------------- import


@dataclass
class PlayerImport:
    """What an import did (or, dry, would do) for one player."""

    player: LevelUpPlayer
    months: dict[Month, int] = field(default_factory=dict)
    written: int = 0  # documents new or changed
    unchanged: int = 0
    api_landed: int = 0  # matches whose API stats body is landed (the API wins there)
    stale: list[Month] = field(default_factory=list)  # partitions to derive (documents changed or not derived yet)
    unresolved_awards: Counter = field(default_factory=Counter)
    disagreements: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=tl.DISAGREEMENTS_SCHEMA))

    def describe(self, dry_run: bool) -> list[str]:
        """The lines ``halo-pipeline import levelup`` prints for the player: counts, months, unknown award names,
        the disagreements with the API per table and column."""
        p = self.player
        verb = "would write" if dry_run else "written"
        lines = [f"player {p.xuid} ({p.gamertag or 'gamertag unknown'}), {p.layout}: {sum(self.months.values())} "
                 f"match(es), {self.written} {verb}, {self.unchanged} unchanged, {self.api_landed} with the API's body "
                 "landed (the API's figures are kept there)"]
        lines += [f"  {m.label}: {n} match(es)" for m, n in self.months.items()]
        if self.unresolved_awards:
            names = ", ".join(f"{k} ×{v}" for k, v in self.unresolved_awards.most_common(10))
            lines.append(f"  personal-score awards with an unknown name (kept, name_id null): {names}")
        if self.disagreements.height:
            lines.append(f"  LevelUp figures that disagree with the API ({self.disagreements['match_id'].n_unique()} "
                         f"match(es), the API's are kept):")
            counts = self.disagreements.group_by("table_name", "column_name").len().sort("table_name", "column_name")
            lines += [f"    {t}.{c}: {n}" for t, c, n in counts.iter_rows()]
        return lines


def _derived_ids(wh: Warehouse, xuid: int, month: Month) -> set[str]:
    path = wh.partition_path("match_facts", xuid, month)
    return set(read_parquet(path, columns=["match_id"])["match_id"].to_list()) if path.exists() else set()


def import_player(wh: Warehouse, player: LevelUpPlayer, dry_run: bool = False) -> PlayerImport:
    """Land ``player``'s legacy documents (unless ``dry_run``); count what changed per month, the matches whose
    API body is already landed and where LevelUp disagrees with it; list the months to derive (documents changed,
    or matches not derived yet)."""
    legacy, landing = wh.legacy, wh.landing
    result = PlayerImport(player)
    disagreements = []
    if not dry_run:
        legacy.put_player(player.xuid, player.gamertag)
    by_month = player.months()
    month_of = {match_id: month for month, ids in by_month.items() for match_id in ids}
    changed: set[Month] = set()
    for doc in documents(player, [m for ids in by_month.values() for m in ids]):
        match_id = doc["match_id"]
        month = month_of[match_id]
        if legacy.holds(player.xuid, month, match_id, doc):
            result.unchanged += 1
        else:
            result.written += 1
            changed.add(month)
            if not dry_run:
                legacy.put(player.xuid, month, match_id, doc)
        result.unresolved_awards.update(tl.unresolved_awards(doc))
        body = landing.get(STATS, match_id)
        if body is not None:
            result.api_landed += 1
            disagreements.append(tl.disagreements(doc, orjson.loads(body)))
    for month, match_ids in by_month.items():
        result.months[month] = len(match_ids)
        if month in changed or not set(match_ids) <= _derived_ids(wh, player.xuid, month):
            result.stale.append(month)
    if disagreements:
        result.disagreements = pl.concat(disagreements)
    return result


def partition_disagreements(wh: Warehouse, xuid: int, month: str) -> pl.DataFrame:
    """LevelUp's figures that differ from the landed API bodies of the same matches, for the legacy documents
    of one partition (:data:`halo_pipeline.transforms.levelup.DISAGREEMENTS_SCHEMA`; empty without any)."""
    frames = [tl.disagreements(doc, orjson.loads(body)) for doc in wh.legacy.documents(xuid, month)
              if (body := wh.landing.get(STATS, doc["match_id"])) is not None]
    return pl.concat(frames) if frames else pl.DataFrame(schema=tl.DISAGREEMENTS_SCHEMA)
