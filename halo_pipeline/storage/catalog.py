"""The DuckDB catalog: one view per warehouse table over its Parquet files, and a summary of the warehouse.

DuckDB is the query engine, not the store: the catalog file ``warehouse/halo.duckdb`` only holds views
(and the empty typed tables that stand for tables with no file yet). DuckDB allows one writer per file, so
:func:`refresh_catalog` is only called by the ``warehouse_catalog`` asset; readers open it read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import duckdb
import polars as pl

from halo_pipeline.storage.warehouse import PARQUET_NAME, Warehouse


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def refresh_catalog(
    con: duckdb.DuckDBPyConnection,
    wh: Warehouse,
    partitioned: Mapping[str, Mapping[str, pl.DataType]],
    reference: list[str],
) -> dict[str, int]:
    """(Re)create a view per table; returns ``{table: row count}``.

    Partitioned tables read ``<table>/**/data.parquet`` with hive partitioning; their owner (the partition's
    player) is exposed as ``owner_xuid`` (BIGINT), the hive ``year``/``month`` folders are dropped (the data
    has ``start_time``). A table with no file yet gets an empty view with its declared columns.
    """
    counts: dict[str, int] = {}
    for table, schema in partitioned.items():
        files = wh.partition_files(table)
        if files:
            glob = _quote(str(wh.table_dir(table) / "**" / PARQUET_NAME))
            source = (f"SELECT * EXCLUDE (player, year, month), player AS owner_xuid FROM read_parquet({glob}, "
                      "hive_partitioning = true, union_by_name = true, hive_types = {'player': BIGINT})")
        else:
            empty = pl.DataFrame(schema=dict(schema))  # noqa: F841 - scanned by DuckDB by name
            con.execute(f'CREATE OR REPLACE TABLE "_empty_{table}" AS SELECT * FROM empty')
            source = f'SELECT *, CAST(NULL AS BIGINT) AS owner_xuid FROM "_empty_{table}"'
        con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {source}')
        counts[table] = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    for table in reference:
        path = wh.reference_path(table)
        if path.exists():
            con.execute(f'CREATE OR REPLACE VIEW "{table}" AS SELECT * FROM read_parquet({_quote(str(path))})')
            counts[table] = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    return counts


def summary(wh: Warehouse) -> str:
    """The text printed by ``halo-pipeline stats`` (LevelUp's ``sync.py --stats``): per table its row count
    and date range, then per player their matches, newest match and last sync (UTC)."""
    if not wh.catalog_path.exists():
        return f"no catalog at {wh.catalog_path}: run `halo-pipeline sync` first"
    lines = [f"warehouse: {wh.root}", "", f"{'table':<24}{'rows':>10}  date range (UTC)"]
    with duckdb.connect(str(wh.catalog_path), read_only=True) as con:
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
        if "match_facts" in tables:
            lines += ["", f"{'player':<18}{'gamertag':<18}{'matches':>8}  {'newest match':<18}last sync"]
            aliases = "xuid_aliases" in tables
            for xuid, matches, newest in con.execute(
                "SELECT owner_xuid, count(*), max(start_time) FROM match_facts GROUP BY 1 ORDER BY 1"
            ).fetchall():
                gamertag = ""
                if aliases:
                    found = con.execute("SELECT any_value(gamertag) FROM xuid_aliases WHERE xuid = ? "
                                        "AND owner_xuid = ?", [xuid, xuid]).fetchone()
                    gamertag = found[0] or "" if found else ""
                synced = [p.stat().st_mtime for p in wh.partition_files("raw_matches", xuid)]
                last = datetime.fromtimestamp(max(synced), UTC).strftime("%Y-%m-%d %H:%M") if synced else "never"
                lines.append(f"{xuid:<18}{gamertag:<18}{matches:>8}  {newest:%Y-%m-%d %H:%M}  {last}")
    return "\n".join(lines)
