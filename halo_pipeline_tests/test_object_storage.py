"""The warehouse and raw landing on object storage (``HALO_DATA_DIR=s3://bucket/prefix``), against a real
S3-compatible server started here (moto's server mode on 127.0.0.1, spoken to over HTTP by s3fs/botocore).

A sync through Dagster writes every table and every raw body as S3 objects and nothing on the local disk but
the DuckDB catalog; its tables equal a local sync's row for row; the catalog's views read ``s3://`` paths.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from halo_pipeline.services.history import HISTORY_WALKS
from halo_pipeline.storage.warehouse import DEFAULT_REFERENCE_DIR

pytestmark = pytest.mark.system  # real components or separate processes: the full tier

REPO = Path(__file__).resolve().parents[1]
BUCKET = "halo-warehouse"
TABLES = ["match_history", "raw_matches", "match_facts", "match_participants", "team_stats", "medals",
          "personal_scores", "player_match_skill", "highlight_events", "xuid_aliases", "sessions",
          "performance_scores", "map_stats", "global_stats"]


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch):
    """A moto S3 server on 127.0.0.1 (a free port) with an empty bucket; the ``AWS_*`` variables point
    botocore/s3fs at it. Yields the endpoint URL."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[dev]')")
    pytest.importorskip("s3fs", reason="s3fs is not installed (a runtime dependency: pip install -e .)")
    import logging

    import boto3
    import s3fs

    monkeypatch.setattr(logging.getLogger("werkzeug"), "level", logging.WARNING)  # no line per request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # a cached client would keep another test's endpoint
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def _keys(endpoint: str, prefix: str = "") -> list[str]:
    import boto3

    pages = boto3.client("s3", endpoint_url=endpoint).get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_atomic_writes_and_landing_on_s3_are_single_objects(s3):
    from halo_pipeline.storage.files import data_root, is_remote, write_bytes_atomic, write_parquet_atomic
    from halo_pipeline.storage.warehouse import Warehouse

    root = data_root(f"s3://{BUCKET}/unit")
    assert is_remote(root) and not is_remote(data_root("data")) and not is_remote(Path("/tmp"))
    wh = Warehouse(root)
    assert wh.remote and str(wh.root) == f"s3://{BUCKET}/unit/warehouse"

    df = pl.DataFrame({"match_id": ["a", "b"], "kills": [3, 4]}, schema={"match_id": pl.Utf8, "kills": pl.Int16})
    path = wh.write_partition("match_facts", 42, "2025-01-01", df)
    assert str(path) == f"s3://{BUCKET}/unit/warehouse/match_facts/player=42/year=2025/month=01/data.parquet"
    assert wh.read_partition("match_facts", 42, "2025-01-01").equals(df)
    assert wh.read_table("match_facts", 42, months=["2025-01-01", "2025-02-01"]).equals(df)
    assert wh.partition_files("match_facts") == [path]
    write_bytes_atomic(wh.root / "x" / "blob.bin", b"payload")
    write_parquet_atomic(df.head(1), path)  # replaced whole
    assert wh.read_table("match_facts").height == 1

    landing = wh.landing
    body = b'{"MatchId": "0a1b"}'
    landing.put("stats", "0a1b", body)
    assert landing.has("stats", "0a1b") and landing.get("stats", "0a1b") == body and landing.get("stats", "ff") is None
    landing.put_film("0a1b", 31, b"zlib-chunk")
    assert landing.has_film("0a1b") and landing.get_film("0a1b") == (b"zlib-chunk", 31) and not landing.has_film("ff")
    landing.mark_absent("skill", "0a1b", 404)
    assert landing.absent_status("skill", "0a1b") == 404 and landing.absent_status("skill", "ff") is None

    keys = _keys(s3, "unit/")
    # One object per write, under the hive layout; no temp object is ever created on object storage.
    assert keys == sorted([
        "unit/raw/film/0a/0a1b.v31.gz", "unit/raw/skill/0a/0a1b.absent", "unit/raw/stats/0a/0a1b.json.gz",
        "unit/warehouse/match_facts/player=42/year=2025/month=01/data.parquet", "unit/warehouse/x/blob.bin"])
    import boto3

    obj = boto3.client("s3", endpoint_url=s3).get_object(Bucket=BUCKET, Key="unit/raw/stats/0a/0a1b.json.gz")
    assert gzip.decompress(obj["Body"].read()) == body  # byte-for-byte, gzip'd exactly as locally


@pytest.mark.timeout(300)
def test_sync_to_s3_equals_local_and_catalog_reads_s3(s3, tmp_path, monkeypatch):
    from halo_pipeline.api.resource import HaloApiResource
    from halo_pipeline.definitions import defs
    from halo_pipeline.emulator.server import Emulator
    from halo_pipeline.emulator.synthetic import SyntheticWorld
    from halo_pipeline.partitions import PLAYERS
    from halo_pipeline.runner import sync_players
    from halo_pipeline.storage.catalog import connect_catalog, summary
    from halo_pipeline.storage.files import data_root
    from halo_pipeline.storage.resource import WarehouseResource
    from halo_pipeline.storage.warehouse import Warehouse

    world = SyntheticWorld(seed=7, players=2, months=1, matches_per_month=5)  # 2 + 3 matches
    xuids = [p.xuid for p in world.players]
    catalog = tmp_path / "catalog" / "halo.duckdb"
    monkeypatch.setenv("HALO_REFERENCE_DIR", str(DEFAULT_REFERENCE_DIR))
    monkeypatch.setenv("HALO_CATALOG_PATH", str(catalog))
    monkeypatch.chdir(tmp_path)
    results = {}
    with Emulator(synthetic=world) as emulator:
        monkeypatch.setenv("HALO_API_URL", emulator.url)
        for name, location in (("s3", f"s3://{BUCKET}/halo"), ("local", str(tmp_path / "local"))):
            monkeypatch.setenv("HALO_DATA_DIR", location)
            instance = dg.DagsterInstance.ephemeral()
            instance.add_dynamic_partitions(PLAYERS, [str(x) for x in xuids])
            started = time.monotonic()
            report = sync_players(defs(), instance, HaloApiResource(), WarehouseResource(), log=lambda _: None)
            print(f"sync to {location}: {time.monotonic() - started:.1f} s")
            assert report.ok and sum(job == "sync_job" for _, job, _, _ in report.runs) == 2, report.runs
            results[name] = Warehouse(data_root(location))

    remote, local = results["s3"], results["local"]
    assert remote.remote and isinstance(remote.root.fs, __import__("s3fs").S3FileSystem)
    # Everything went to the bucket: tables, raw landing, sync state, reports; locally only the catalog file
    # (the local run's data dir aside).
    keys = _keys(s3, "halo/")
    assert any(k.startswith("halo/raw/stats/") for k in keys) and any(k.startswith("halo/raw/film/") for k in keys)
    assert any(k.startswith("halo/warehouse/sync_meta/player=") for k in keys)
    assert any(k.startswith("halo/warehouse/reports/") for k in keys)
    assert not any(".tmp" in k for k in keys)
    local_files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {f for f in local_files if not f.startswith("local/")} == {"catalog/halo.duckdb"}
    # The raw landing holds the same objects as the local one, byte for byte.
    local_raw = {p.relative_to(local.landing.root).as_posix(): p.read_bytes()
                 for p in local.landing.root.rglob("*") if p.is_file()}
    remote_raw = {k.removeprefix("halo/raw/"): None for k in keys if k.startswith("halo/raw/")}
    assert set(remote_raw) == set(local_raw)
    bodies = sorted(rel for rel in local_raw if not rel.startswith(HISTORY_WALKS))  # walk times differ by run
    assert len(bodies) < len(local_raw)
    for rel in bodies[:20]:
        assert (remote.landing.root / rel).read_bytes() == local_raw[rel]

    # Every table equals the local sync's, row for row.
    for table in TABLES:
        a = remote.read_table(table).drop("fetched_in_run", strict=False).sort(pl.all())
        b = local.read_table(table).drop("fetched_in_run", strict=False).sort(pl.all())
        assert a.equals(b), table
        assert a.height or table == "highlight_events", table  # synthetic films may hold no highlight event

    # The catalog (local file) reads s3:// through the warehouse's file system.
    assert remote.catalog_path == catalog and catalog.exists()
    with connect_catalog(remote) as con:
        sql = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'match_facts'").fetchone()[0]
        assert f"s3://{BUCKET}/halo/warehouse/match_facts/**/data.parquet" in sql
        rows = con.execute("SELECT owner_xuid, count(*) FROM match_facts GROUP BY 1 ORDER BY 1").fetchall()
        mv = con.execute("SELECT count(*) FROM mv_global_stats").fetchone()[0]
    with connect_catalog(local) as con:
        assert rows == con.execute("SELECT owner_xuid, count(*) FROM match_facts GROUP BY 1 ORDER BY 1").fetchall()
    assert [x for x, _ in rows] == sorted(xuids) and mv == len(xuids)
    text = summary(remote)
    assert f"warehouse: s3://{BUCKET}/halo/warehouse" in text and "failures: none" in text
