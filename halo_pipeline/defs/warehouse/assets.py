"""The serving store asset (what users query), its check against the Parquet partitions, its job and the
sensor that keeps it current.

How it stays current without ever losing an update: each published snapshot records the Dagster event storage
id up to which it applied the warehouse tables' materializations (:func:`materialization_feed`). An update —
one ``warehouse_catalog`` step, serialized across runs by the pool ``serving`` (limit 1) — reads every table
materialization after that id (with an overlap, re-applying is free), stats those partitions' files and
reloads the changed ones. So two runs finishing together, a failed update or a killed one leave nothing
behind: the next update starts from the last *published* cursor. Declarative automation
(:data:`halo_pipeline.defs.common.FOLLOWS_UPSTREAM`, evaluated by the ``follow_upstream`` sensor) requests that
update whenever a table it reads was materialized since it last ran and none is running: a burst of runs coalesces
into one update.
"""


import random
import uuid

import dagster as dg

from halo_pipeline import tables
from halo_pipeline.defs.common import FOLLOWS_UPSTREAM
from halo_pipeline.partitions import split_key
from halo_pipeline.storage import serving
from halo_pipeline.storage.catalog import table_rows
from halo_pipeline.storage.resource import WarehouseResource

#: The pool that serializes updates of the serving store (the instance's default pool limit, 1, applies).
SERVING_POOL = "serving"
#: Event ids re-read before the recorded cursor: on PostgreSQL an event can commit after one with a larger id.
OVERLAP_EVENTS = 1000
#: The instance key-value entry holding this instance's id (a store records which instance its cursor is of).
INSTANCE_ID_KEY = "halo_pipeline/instance_id"
#: Partitions compared by the asset check beyond those the latest update applied (a rotating sample).
CHECK_SAMPLE = 200


def instance_id(instance: dg.DagsterInstance) -> str:
    """A random id stored once in the instance's key-value store: a cursor of event ids is only meaningful
    for the instance that numbered them (a wiped ``DAGSTER_HOME`` starts again from 1)."""
    found = instance.run_storage.get_cursor_values({INSTANCE_ID_KEY}).get(INSTANCE_ID_KEY)
    if found:
        return found
    instance.run_storage.set_cursor_values({INSTANCE_ID_KEY: uuid.uuid4().hex})
    return instance.run_storage.get_cursor_values({INSTANCE_ID_KEY})[INSTANCE_ID_KEY]


def latest_event_id(instance: dg.DagsterInstance) -> int:
    """The storage id of the newest materialization of any warehouse table (0 when none)."""
    records = instance.get_asset_records([dg.AssetKey(t) for t in tables.TABLES])
    return max((r.asset_entry.last_materialization_storage_id or 0 for r in records), default=0)


def _partition(table: str, key: str | None) -> serving.Partition:
    """The partition a materialization of ``table`` wrote; without a key (reference and global tables, and the
    unpartitioned assets that write one file per player: ``friends``, ``player_profiles``) the whole table."""
    layout = tables.TABLES[table].layout
    if layout in ("reference", "global") or not key:
        return serving.Partition(table)
    xuid, month = split_key(key)
    return serving.Partition(table, xuid) if layout == "player" else serving.Partition(table, xuid, month)


def materialization_feed(instance: dg.DagsterInstance) -> serving.Feed:
    """The serving store's change feed from this instance's materialization records: the partitions of the
    warehouse tables materialized after the store's cursor (minus :data:`OVERLAP_EVENTS`), and the new cursor.
    A store without a cursor, or with another instance's, gets ``partitions=None`` (scan every file)."""

    def feed(cursor: serving.Cursor | None) -> serving.Changes:
        me = instance_id(instance)
        if cursor is None or cursor.instance_id != me:
            return serving.Changes(None, serving.Cursor(me, latest_event_id(instance)))
        after, top, found = max(cursor.event_id - OVERLAP_EVENTS, 0), cursor.event_id, set()
        for table in tables.TABLES:
            page = None
            while True:
                result = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(table), after_storage_id=after),
                    limit=1000, cursor=page, ascending=True)
                for record in result.records:
                    found.add(_partition(table, record.partition_key))
                    top = max(top, record.storage_id)
                if not result.has_more:
                    break
                page = result.cursor
        return serving.Changes(sorted(found), serving.Cursor(me, top))

    return feed


class ServingConfig(dg.Config):
    """How ``warehouse_catalog`` updates the store: incrementally from Dagster's materialization records
    (default); ``reconcile``: compare every Parquet file's fingerprint with the store instead (finds files
    changed outside Dagster: restores, purges, hand edits); ``rebuild``: a new store from every file."""

    rebuild: bool = False
    reconcile: bool = False


def check_store(wh) -> dg.AssetCheckResult:
    """The ``serving_matches_parquet`` check: the partitions of the latest update and a random sample of
    :data:`CHECK_SAMPLE` others compared with their Parquet files (:func:`halo_pipeline.storage.serving.compare`);
    fails on any mismatch, reports pending partitions (written since the update)."""
    with serving.connect(wh) as con:
        latest = con.execute("SELECT max(seq) FROM serving_partitions").fetchone()[0]
        rows = con.execute("SELECT table_name, owner, month, seq FROM serving_partitions "
                           "WHERE fingerprint IS NOT NULL").fetchall()
    known = [(serving.Partition(t, o, m), s) for t, o, m, s in rows if t in tables.TABLES]
    recent = [p for p, s in known if s == latest]
    others = [p for p, s in known if s != latest]
    result = serving.compare(wh, recent + random.sample(others, min(CHECK_SAMPLE, len(others))))
    listed = "\n".join(f"- {m.partition.table} {m.partition.month}|{m.partition.owner}: {m.what} store={m.store} "
                       f"parquet={m.parquet}" for m in result.mismatches[:20])
    return dg.AssetCheckResult(check_name=CHECK_NAME, passed=not result.mismatches, metadata={
        "partitions_compared": result.compared, "mismatches": len(result.mismatches),
        "pending": len(result.pending), **({"first_mismatches": dg.MetadataValue.md(listed)} if listed else {})})


CHECK_NAME = "serving_matches_parquet"


@dg.asset(group_name="warehouse", deps=[*tables.TABLES, "player_report"], kinds={"duckdb"}, pool=SERVING_POOL,
          automation_condition=FOLLOWS_UPSTREAM,
          check_specs=[dg.AssetCheckSpec(CHECK_NAME, asset="warehouse_catalog", blocking=False, description=(
              "The serving store equals the Parquet partitions: per partition (the latest update's and a random "
              f"sample of {CHECK_SAMPLE}) the row count and the sum of every numeric column. Partitions written "
              "since the update are reported as pending, not compared."))])
def warehouse_catalog(context: dg.AssetExecutionContext, config: ServingConfig,
                      warehouse: WarehouseResource) -> dg.MaterializeResult:
    """The serving store ``$HALO_DATA_DIR/warehouse/halo.duckdb`` (a link to its published snapshot): every
    warehouse table materialized as a DuckDB table (``owner_xuid`` = the partition's player,
    ``partition_month`` its month) and the ``mv_*`` roll-ups (per player × map, × mode category, per session,
    per player). Updated incrementally: only the partitions materialized since the last update (Dagster's
    materialization records) are reloaded, in one transaction, and the roll-ups re-aggregated for those
    players; readers keep the previous snapshot until they reconnect and are never blocked. Query it with
    ``duckdb -readonly data/warehouse/halo.duckdb`` or ``halo-pipeline stats``; rebuild it with
    ``halo-pipeline serve --rebuild``."""
    wh = warehouse.warehouse()
    feed = materialization_feed(context.instance)
    if config.reconcile:  # every file examined; the cursor still moves to the newest materialization
        top = feed(None).cursor
        feed = lambda _cursor: serving.Changes(None, top)  # noqa: E731
    report = serving.update(wh, feed=feed, rebuild=config.rebuild)
    counts = table_rows(wh)
    context.log.info(f"serving store: {report.mode}, {report.changed} partition(s) changed, "
                     f"{report.rows_inserted} rows in, {report.rows_deleted} out, {report.seconds:.2f} s")
    lines = ["| table | rows |", "|---|---|"] + [f"| {t} | {n} |" for t, n in counts.items()]
    return dg.MaterializeResult(check_results=[check_store(wh)], metadata={
        "path": dg.MetadataValue.path(str(wh.catalog_path)),
        "snapshot": report.slot, "update": report.mode, "seq": report.seq,
        "partitions_changed": report.changed, "partitions_caught_up": report.caught_up,
        "rows_inserted": report.rows_inserted, "rows_deleted": report.rows_deleted,
        "players_rolled_up": report.players_rolled_up, "seconds": round(report.seconds, 3),
        "event_cursor": report.cursor.event_id if report.cursor else -1,
        "tables": dg.MetadataValue.md("\n".join(lines)),
        **{f"rows/{t}": n for t, n in counts.items()},
    })


catalog_job = dg.define_asset_job(
    "catalog_job", selection=dg.AssetSelection.assets(warehouse_catalog),
    description="Update the serving store (halo.duckdb) with the partitions materialized since its last update "
    "and check it against the Parquet partitions.",
)
