"""The DuckDB catalog: one view per warehouse table over its Parquet files, and a summary of the warehouse.

DuckDB is the query engine, not the store: the catalog file ``warehouse/halo.duckdb`` only holds views
(and the empty typed tables that stand for tables with no file yet). DuckDB allows one writer per file, so
:func:`refresh_catalog` is only called by the ``warehouse_catalog`` asset; readers open it read-only.

With the warehouse on object storage (``HALO_DATA_DIR=s3://…``) the catalog file is local
(:attr:`Warehouse.catalog_path`) and its views read ``s3://…`` paths. DuckDB's own S3 reader is the ``httpfs``
extension, which DuckDB downloads from its extension site on first use (``INSTALL httpfs``); nothing ships it for
the DuckDB release we use (PyPI's ``duckdb-extension-httpfs`` pins an older DuckDB and would downgrade it), and
that site is not reachable from every machine. So a connection reads ``s3://`` through the warehouse's own fsspec
file system instead (``con.register_filesystem``: the same s3fs client, endpoint and credentials that wrote the
files): open the catalog with :func:`connect_catalog`, or call :func:`attach_filesystem` on your connection.
Where httpfs can be installed, ``LOAD httpfs`` + an S3 secret reads the same views without fsspec.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

import duckdb
import polars as pl
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from halo_pipeline import tables
from halo_pipeline.pausepoint import pause_at
from halo_pipeline.storage.warehouse import PARQUET_NAME, Warehouse
from halo_pipeline.transforms.people import TEAMMATE_SUMS


def attach_filesystem(con: duckdb.DuckDBPyConnection, wh: Warehouse) -> duckdb.DuckDBPyConnection:
    """Let ``con`` read the warehouse's object storage (``s3://…``) through its fsspec file system; a no-op for
    a local warehouse or when that protocol is already registered on ``con``."""
    if wh.remote:
        fs = wh.data_dir.fs
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        if not protocols & set(con.list_filesystems()):
            con.register_filesystem(fs)
    return con


#: How long a connection waits for another process to release the catalog file's lock (DuckDB: one writer,
#: or several readers, per file).
LOCK_WAIT_SECONDS = 60.0
log = logging.getLogger(__name__)
#: Times this process found the catalog locked by another one and waited (see :func:`open_catalog`).
lock_waits = [0]


def _waiting_for_lock(state) -> None:
    lock_waits[0] += 1
    error = str(state.outcome.exception())
    holder = re.search(r"Conflicting lock is held in (.*?\(PID \d+\))", error)
    log.warning("catalog %s is locked by another process (%s); retry %d in %.2f s",
                state.args[0] if state.args else "", holder.group(1) if holder else error.splitlines()[0],
                state.attempt_number, state.next_action.sleep if state.next_action else 0.0)


def open_catalog(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect(path, read_only=…)``, waiting (exponential backoff, at most :data:`LOCK_WAIT_SECONDS`)
    while another process holds a conflicting lock on the file (a writer blocks everyone; a reader blocks
    writers). Each wait logs one warning line naming the other process and counts in :data:`lock_waits`.

    Raises:
        duckdb.IOException: the lock was still held after the wait.
    """
    return Retrying(retry=retry_if_exception(_is_lock_conflict), reraise=True, before_sleep=_waiting_for_lock,
                    stop=stop_after_delay(LOCK_WAIT_SECONDS), wait=wait_exponential(0.05, max=2.0))(
        duckdb.connect, path, read_only=read_only)


def _is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "Could not set lock" in str(exc)


def connect_catalog(wh: Warehouse, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection to the catalog file that can read every view, the warehouse local or on object storage
    (waiting while another process writes it: :func:`open_catalog`)."""
    return attach_filesystem(open_catalog(str(wh.catalog_path), read_only), wh)


@contextlib.contextmanager
def writable_catalog(wh: Warehouse) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to the catalog file (:func:`open_catalog`: it waits while another process holds
    the file), closed on exit.

    Raises:
        duckdb.IOException: the lock was still held after :data:`LOCK_WAIT_SECONDS`.
    """
    wh.catalog_path.parent.mkdir(parents=True, exist_ok=True)  # local even when the warehouse is on S3
    con = open_catalog(str(wh.catalog_path), read_only=False)
    try:
        yield attach_filesystem(con, wh)
        pause_at("catalog_write", str(wh.catalog_path))  # test hook: views written, file still open and locked
    finally:
        con.close()


def build_catalog(wh: Warehouse) -> dict[str, int]:
    """(Re)create every view of the catalog file from the table registry (:data:`halo_pipeline.tables.TABLES`);
    returns ``{table: rows}``. Used by the ``warehouse_catalog`` asset and by maintenance commands that move
    files (a view whose glob no longer matches a file would fail)."""
    wh.root.mkdir(parents=True, exist_ok=True)
    with writable_catalog(wh) as con:
        return refresh_catalog(con, wh)


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


#: The hive folders of each layout, dropped from the views (``owner_xuid`` stands for ``player``).
_HIVE_COLUMNS = {"player_month": "player, year, month", "player": "player"}


def refresh_catalog(con: duckdb.DuckDBPyConnection, wh: Warehouse) -> dict[str, int]:
    """(Re)create a view per registered table on ``con``; returns ``{table: row count}``.

    Player × month tables read ``<table>/**/data.parquet`` with hive partitioning; their owner (the partition's
    player) is exposed as ``owner_xuid`` (BIGINT), the hive ``year``/``month`` folders are dropped (the data
    has ``start_time``). Per-player tables (one file per player, ``<table>/player=<xuid>/data.parquet``)
    are read whole. A table with no file yet gets an empty view with its declared columns.
    """
    attach_filesystem(con, wh)
    counts: dict[str, int] = {}
    for spec in tables.TABLES.values():
        if spec.layout == "reference":
            continue
        if spec.layout == "global":  # one file (players): read whole, or an empty view with its columns
            counts[spec.name] = _global_view(con, wh, spec.name, spec.schema)
            continue
        table, schema, hive = spec.name, spec.schema, _HIVE_COLUMNS[spec.layout]
        files = wh.partition_files(table)
        archived = wh.archived_files(table)
        if files or archived:
            globs = ([_quote(str(wh.table_dir(table) / "**" / PARQUET_NAME))] if files else []) + (
                ["[" + ", ".join(_quote(str(p)) for p in archived) + "]"] if archived else [])
            source = " UNION ALL BY NAME ".join(
                f"SELECT * EXCLUDE ({hive}), player AS owner_xuid FROM read_parquet({glob}, "
                "hive_partitioning = true, union_by_name = true, hive_types = {'player': BIGINT})"
                for glob in globs)
        else:
            source = f'SELECT *, CAST(NULL AS BIGINT) AS owner_xuid FROM "{_empty_table(con, table, schema)}"'
        con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {source}')
        counts[table] = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    for table in tables.names(layout="reference"):
        path = wh.reference_path(table)
        if path.exists():
            con.execute(f'CREATE OR REPLACE VIEW "{table}" AS SELECT * FROM read_parquet({_quote(str(path))})')
            counts[table] = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    counts.update(create_mv_views(con))
    return counts


def _empty_table(con: duckdb.DuckDBPyConnection, table: str, schema: tables.Schema) -> str:
    """An empty typed table standing for ``table`` before it has a file; returns its name."""
    empty = pl.DataFrame(schema=dict(schema))  # noqa: F841 - scanned by DuckDB by name
    con.execute(f'CREATE OR REPLACE TABLE "_empty_{table}" AS SELECT * FROM empty')
    return f"_empty_{table}"


def _global_view(con: duckdb.DuckDBPyConnection, wh: Warehouse, table: str, schema: tables.Schema) -> int:
    """(Re)create the view of a ``global`` table (one file); returns its row count."""
    path = wh.global_path(table)
    source = f"read_parquet({_quote(str(path))})" if path.exists() else f'"{_empty_table(con, table, schema)}"'
    con.execute(f'CREATE OR REPLACE VIEW "{table}" AS SELECT * FROM {source}')
    return con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


_MV_SUMS = ("count(*) AS months, sum(matches) AS matches, sum(wins) AS wins, sum(losses) AS losses, "
            "sum(ties) AS ties, sum(kills) AS kills, sum(deaths) AS deaths, sum(assists) AS assists, "
            "sum(shots_fired) AS shots_fired, sum(shots_hit) AS shots_hit, "
            "sum(time_played_seconds) AS time_played_seconds, sum(performance_score_sum) AS performance_score_sum, "
            "sum(performance_score_count) AS performance_score_count")
# The same formulas as halo_pipeline.transforms.analytics.with_ratios.
_MV_RATIOS = ("wins / matches AS win_rate, kills / greatest(deaths, 1) AS kd_ratio, "
              "(kills + assists / 3 - deaths) / matches AS kda, "
              "CASE WHEN shots_fired > 0 THEN shots_hit / shots_fired * 100 END AS accuracy, "
              "CASE WHEN performance_score_count > 0 THEN performance_score_sum / performance_score_count END "
              "AS avg_performance_score")
#: ``mv_top_teammates``: per owner × teammate over every month (teammates met on the owner's team at least once),
#: the additive figures summed, the ratios of ``transforms.people.with_teammate_ratios``, the teammate's latest
#: gamertag (players), the owner's nickname for them (friends), ``name`` (nickname (gamertag), else gamertag,
#: else xuid) and ``teammate_rank`` (1 = most matches on the same team, then most wins, then xuid).
_TOP_TEAMMATES = (
    "SELECT s.*, (owner_kills + teammate_kills) / greatest(owner_deaths + teammate_deaths, 1) AS combined_kd, "
    "CASE WHEN matches_same_team > 0 THEN wins_together / matches_same_team END AS win_rate_together, "
    "p.gamertag, f.nickname, f.friend_xuid IS NOT NULL AS is_friend, "
    "CASE WHEN f.nickname IS NOT NULL AND p.gamertag IS NOT NULL THEN f.nickname || ' (' || p.gamertag || ')' "
    "ELSE coalesce(f.nickname, p.gamertag, CAST(s.teammate_xuid AS VARCHAR)) END AS name, "
    "row_number() OVER (PARTITION BY s.xuid ORDER BY matches_same_team DESC, wins_together DESC, s.teammate_xuid) "
    "AS teammate_rank "
    "FROM (SELECT owner_xuid AS xuid, teammate_xuid, count(*) AS months, "
    + ", ".join(f"sum({c}) AS {c}" for c in TEAMMATE_SUMS) +
    ", min(first_match_at) AS first_match_at, max(last_match_at) AS last_match_at FROM teammates "
    "GROUP BY owner_xuid, teammate_xuid HAVING sum(matches_same_team) > 0) s "
    "LEFT JOIN (SELECT owner_xuid, friend_xuid, any_value(nickname) AS nickname FROM friends GROUP BY ALL) f "
    "ON f.owner_xuid = s.xuid AND f.friend_xuid = s.teammate_xuid "
    "LEFT JOIN (SELECT xuid, any_value(gamertag) AS gamertag FROM players GROUP BY xuid) p "
    "ON p.xuid = s.teammate_xuid")
#: Roll-up views over every month of the materialized stats (the analytics assets' tables): always current,
#: since they are views over the Parquet views; nothing to refresh separately. ``(source view, SQL)``: no SQL is
#: the source's rows; SQL with ``{sums}`` sums the additive stats columns and adds their ratios; other SQL is
#: the view's whole query.
MV_VIEWS = {
    "mv_map_stats": ("map_stats", "SELECT owner_xuid AS xuid, map_id, any_value(map_name) AS map_name, {sums} "
                     "FROM map_stats GROUP BY owner_xuid, map_id"),
    "mv_mode_category_stats": ("mode_category_stats",
                               "SELECT owner_xuid AS xuid, mode_category, {sums} FROM mode_category_stats "
                               "GROUP BY owner_xuid, mode_category"),
    "mv_session_stats": ("session_stats", None),
    "mv_global_stats": ("global_stats", "SELECT owner_xuid AS xuid, min(month_start) AS first_month, "
                        "max(month_start) AS last_month, {sums} FROM global_stats GROUP BY owner_xuid"),
    "mv_top_teammates": ("teammates", _TOP_TEAMMATES),
}


def create_mv_views(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """(Re)create the ``mv_*`` views whose source view exists; returns their row counts.

    ``mv_map_stats`` (per player × map), ``mv_mode_category_stats`` (per player × mode category, with the
    reference ``mode_categories.parent`` group when loaded), ``mv_global_stats`` (per player) sum the
    additive columns of every month and derive win_rate, kd_ratio, kda, accuracy and avg_performance_score;
    ``mv_session_stats`` is one row per session (all months); ``mv_top_teammates`` per owner × teammate.
    """
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    counts = {}
    for name, (source, sql) in MV_VIEWS.items():
        if source not in views:
            continue
        if sql is None:
            body = f'SELECT * EXCLUDE (owner_xuid) FROM "{source}"'
        elif "{sums}" not in sql:
            body = sql
        else:
            body = f"SELECT *, {_MV_RATIOS} FROM ({sql.format(sums=_MV_SUMS)})"
            if name == "mv_mode_category_stats" and "mode_categories" in views:
                body = (f"SELECT s.*, c.parent AS category_group FROM ({body}) s "
                        "LEFT JOIN mode_categories c ON c.category = s.mode_category")
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {body}')
        counts[name] = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
    return counts


def summary(wh: Warehouse) -> str:
    """The text printed by ``halo-pipeline stats`` (LevelUp's ``sync.py --stats``): per table its row count
    and date range, then per player (from ``sync_meta``) their matches, newest match, last sync, status and
    watermark (UTC), then the failures waiting for the next sync."""
    if not wh.catalog_path.exists():
        return f"no catalog at {wh.catalog_path}: run `halo-pipeline sync` first"
    lines = [f"warehouse: {wh.root}", "", f"{'table':<24}{'rows':>10}  date range (UTC)"]
    with connect_catalog(wh) as con:
        tables = [r[0] for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name").fetchall()]
        for table in tables:
            rows = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            columns = {r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()}
            span = ""
            if "start_time" in columns and rows:
                lo, hi = con.execute(f'SELECT min(start_time), max(start_time) FROM "{table}"').fetchone()
                span = f"{lo:%Y-%m-%d} → {hi:%Y-%m-%d}" if lo else ""
            lines.append(f"{table:<24}{rows:>10}  {span}")
        if {"match_facts", "sync_meta"} <= set(tables):
            lines += ["", f"{'player':<18}{'gamertag':<16}{'matches':>8}  {'newest match':<18}{'last sync':<18}"
                      "status      watermark"]
            gamertags = "(SELECT any_value(gamertag) FROM xuid_aliases a WHERE a.xuid = f.owner_xuid)" \
                if "xuid_aliases" in tables else "NULL"
            for xuid, gamertag, matches, newest, synced, status, watermark in con.execute(f"""
                SELECT f.owner_xuid, {gamertags}, count(*), max(f.start_time), any_value(s.last_sync_at),
                       any_value(s.sync_status), any_value(s.watermark)
                FROM match_facts f LEFT JOIN sync_meta s ON s.xuid = f.owner_xuid GROUP BY 1 ORDER BY 1
            """).fetchall():
                stamp = "%Y-%m-%d %H:%M"
                lines.append(f"{xuid:<18}{(gamertag or '')[:15]:<16}{matches:>8}  {newest:{stamp}}  "
                             f"{synced.strftime(stamp) if synced else 'never':<18}{status or '?':<12}"
                             f"{watermark.strftime(stamp) if watermark else '-'}")
        if "raw_matches" in tables:
            lines += _failures(con)
    return "\n".join(lines)


#: Failures listed by ``halo-pipeline stats`` (the rest are counted).
MAX_LISTED_FAILURES = 20


def _failures(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The failures of the latest sync of each partition (``raw_matches`` rows whose stats body is missing or
    whose skill/film fetch failed): which match, whose, and the error — the fault. They are retried by the
    next sync."""
    where = "stats_status <> 'landed' OR skill_status = 'failed' OR film_status = 'failed'"
    total = con.execute(f"SELECT count(DISTINCT match_id) FROM raw_matches WHERE {where}").fetchone()[0]
    if not total:
        return ["", "failures: none (every match of the history is landed)"]
    rows = con.execute(
        f"SELECT match_id, min(owner_xuid), any_value(stats_status), any_value(error) FROM raw_matches "
        f"WHERE {where} GROUP BY match_id ORDER BY match_id LIMIT {MAX_LISTED_FAILURES}").fetchall()
    lines = ["", f"failures: {total} match(es), retried by the next sync"]
    lines += [f"  {match_id}  player {owner}  stats {status}: {error or ''}" for match_id, owner, status, error in rows]
    if total > len(rows):
        lines.append(f"  … and {total - len(rows)} more (SELECT * FROM raw_matches WHERE {where})")
    return lines
