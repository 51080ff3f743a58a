"""The DuckDB catalog: the roll-up definitions, views over the Parquet files, and the warehouse summary.

What people query is the *serving store* (:mod:`halo_pipeline.storage.serving`): ``warehouse/halo.duckdb`` is a
link to its published snapshot, which holds every table and ``mv_*`` roll-up materialized. This module keeps
what does not depend on how the tables are stored:

* :data:`ROLLUPS`, the ``mv_*`` roll-ups as SQL over the tables (materialized by the serving store, re-aggregated
  per touched player; adding a roll-up is one entry);
* :func:`refresh_catalog`, a catalog of *views* over the Parquet files (always current, nothing to refresh, but
  every query opens every file: ≈ 1 s per query at 1,200 files; the benchmarks' baseline, handy on a
  connection of your own over a few partitions);
* :func:`summary`, the text of ``halo-pipeline stats``, read from the serving store.

With the warehouse on object storage (``HALO_DATA_DIR=s3://…``) the catalog and its snapshots are local files
(:attr:`Warehouse.catalog_path`), filled from ``s3://…`` files. DuckDB's own S3 reader is the ``httpfs``
extension, which DuckDB downloads from its extension site on first use (``INSTALL httpfs``); nothing ships it for
the DuckDB release we use (PyPI's ``duckdb-extension-httpfs`` pins an older DuckDB and would downgrade it), and
that site is not reachable from every machine. So a connection reads ``s3://`` through the warehouse's own fsspec
file system instead (``con.register_filesystem``: the same s3fs client, endpoint and credentials that wrote the
files): call :func:`attach_filesystem` on your connection. Where httpfs can be installed, ``LOAD httpfs`` + an S3
secret reads the same files without fsspec.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from halo_pipeline import tables
from halo_pipeline import tables as registry
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


def connect_catalog(wh: Warehouse) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published snapshot of the serving store (see
    :func:`halo_pipeline.storage.serving.connect`)."""
    from halo_pipeline.storage.serving import connect

    return connect(wh)


def build_catalog(wh: Warehouse) -> dict[str, int]:
    """Bring the serving store up to date with every Parquet file (a reconcile: files scanned, changed
    partitions reloaded, removed ones dropped; the first call builds it) and publish it; returns
    ``{table: rows}``. For commands that change files outside Dagster (archive, restore, purge)."""
    from halo_pipeline.storage.serving import update

    update(wh)
    return table_rows(wh)


def table_rows(wh: Warehouse) -> dict[str, int]:
    """``{table or roll-up: rows}`` of the published serving store."""
    with connect_catalog(wh) as con:
        names = [*tables.TABLES, *ROLLUPS]
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


#: The hive folders of each layout, dropped from the views (``owner_xuid`` stands for ``player``).
_HIVE_COLUMNS = {"player_month": "player, year, month", "player": "player"}
#: The types of the hive folders of each layout (``month=03`` → 3).
HIVE_TYPES = {"player_month": "{'player': BIGINT, 'year': INTEGER, 'month': INTEGER}", "player": "{'player': BIGINT}"}
#: The partition's month as a column (``partition_month``, DATE) of player × month tables.
_MONTH_COLUMN = {"player_month": ", make_date(year, month, 1) AS partition_month", "player": ""}


def refresh_catalog(con: duckdb.DuckDBPyConnection, wh: Warehouse) -> dict[str, int]:
    """(Re)create a view per registered table on ``con``; returns ``{table: row count}``.

    Player × month tables read ``<table>/**/data.parquet`` with hive partitioning; their owner (the partition's
    player) is exposed as ``owner_xuid`` (BIGINT) and their month as ``partition_month`` (DATE), the hive
    folders are dropped. Per-player tables (one file per player, ``<table>/player=<xuid>/data.parquet``)
    are read whole. A table with no file yet gets an empty view with its declared columns. Then one view per
    roll-up of :data:`ROLLUPS` — the same columns as the serving store's tables.
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
                f"SELECT * EXCLUDE ({hive}), player AS owner_xuid{_MONTH_COLUMN[spec.layout]} FROM read_parquet("
                f"{glob}, hive_partitioning = true, union_by_name = true, hive_types = {HIVE_TYPES[spec.layout]})"
                for glob in globs)
        else:
            month = ", CAST(NULL AS DATE) AS partition_month" if spec.layout == "player_month" else ""
            source = f'SELECT *, CAST(NULL AS BIGINT) AS owner_xuid{month} FROM "{_empty_table(con, table, schema)}"'
        con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {source}')
        counts[table] = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    for table in tables.names(layout="reference"):
        path = wh.reference_path(table)
        if path.exists():
            source = f"SELECT * FROM read_parquet({_quote(str(path))})"
        else:
            empty = pl.DataFrame(schema=dict(tables.schema(table)))  # noqa: F841 - scanned by DuckDB by name
            con.execute(f'CREATE OR REPLACE TABLE "_empty_{table}" AS SELECT * FROM empty')
            source = f'SELECT * FROM "_empty_{table}"'
        con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {source}')
        counts[table] = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    for rollup in ROLLUPS.values():
        con.execute(f'CREATE OR REPLACE VIEW "{rollup.name}" AS {rollup.sql}')
        counts[rollup.name] = con.execute(f'SELECT count(*) FROM "{rollup.name}"').fetchone()[0]
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


def _summed(select: str) -> str:
    """``select`` (which sums :data:`_MV_SUMS` over its groups) with the ratios derived from the sums."""
    return f"SELECT *, {_MV_RATIOS} FROM ({select.format(sums=_MV_SUMS)})"


@dataclass(frozen=True)
class Rollup:
    """An ``mv_*`` roll-up: ``sql`` selects its rows from the store's tables, with the player they belong to in
    a column ``xuid``; ``sources`` are the tables it reads. The serving store materializes it and, after an
    update, re-runs ``sql`` filtered on ``xuid`` for the players whose partitions of a source changed (the
    whole roll-up when a reference table among the sources changed) — so ``xuid`` must be the partitions'
    owner (``owner_xuid``) and the filter must push down to it (group by it, or select it)."""

    name: str
    sql: str
    sources: tuple[str, ...]


#: The roll-ups over every month of the materialized stats (the analytics assets' tables). Add one here and
#: the serving store creates it at its next update: per player × map, per player × mode category (with the
#: reference group ``mode_categories.parent``), one row per session, per player, per owner × teammate (the teammate's
#: gamertag from ``players``, the owner's nickname from ``friends``: a change of ``players``, one file for every
#: owner, re-aggregates the whole roll-up).
ROLLUPS: dict[str, Rollup] = {r.name: r for r in (
    Rollup("mv_map_stats", _summed("SELECT owner_xuid AS xuid, map_id, any_value(map_name) AS map_name, {sums} "
                                   "FROM map_stats GROUP BY owner_xuid, map_id"), ("map_stats",)),
    Rollup("mv_mode_category_stats",
           "SELECT s.*, c.parent AS category_group FROM (" + _summed(
               "SELECT owner_xuid AS xuid, mode_category, {sums} FROM mode_category_stats "
               "GROUP BY owner_xuid, mode_category") + ") s "
           "LEFT JOIN mode_categories c ON c.category = s.mode_category",
           ("mode_category_stats", "mode_categories")),
    Rollup("mv_session_stats", "SELECT * EXCLUDE (owner_xuid, partition_month) FROM session_stats",
           ("session_stats",)),
    Rollup("mv_global_stats", _summed("SELECT owner_xuid AS xuid, min(month_start) AS first_month, "
                                      "max(month_start) AS last_month, {sums} FROM global_stats GROUP BY owner_xuid"),
           ("global_stats",)),
    Rollup("mv_top_teammates", _TOP_TEAMMATES, ("teammates", "friends", "players")),
)}


def summary(wh: Warehouse) -> str:
    """The text printed by ``halo-pipeline stats`` (LevelUp's ``sync.py --stats``): per table its row count
    and date range, then per player (from ``sync_meta``) their matches, newest match, last sync, status and
    watermark (UTC), then the failures waiting for the next sync."""
    if not wh.catalog_path.exists():
        return f"no serving store at {wh.catalog_path}: run `halo-pipeline sync` (or `halo-pipeline serve`) first"
    with connect_catalog(wh) as con:
        return summary_of(con, wh)


def summary_of(con: duckdb.DuckDBPyConnection, wh: Warehouse) -> str:
    """:func:`summary` over any connection holding the tables (the serving store, or :func:`refresh_catalog`'s
    views)."""
    lines = [f"warehouse: {wh.root}", "", f"{'table':<24}{'rows':>10}  date range (UTC)"]
    present = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()").fetchall()}
    tables = sorted(t for t in (*registry.TABLES, *ROLLUPS) if t in present)
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
