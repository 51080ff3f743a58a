"""export / backup / restore / archive on a small warehouse written with the project's own writers, and the
CLI's one-line errors."""

from __future__ import annotations

import io
import os
import tarfile
from datetime import UTC, date, datetime

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from halo_pipeline.cli import main
from halo_pipeline.ids import InvalidInput
from halo_pipeline.services.maintenance import archive, backup, export_table, restore
from halo_pipeline.storage.catalog import refresh_catalog
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline_tests.analytics_data import XUID, fact, facts

MONTHS = ("2025-01-01", "2025-02-01", "2025-03-01")


def _warehouse(tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path / "data")
    for i, month in enumerate(MONTHS):
        start = datetime.fromisoformat(month).replace(day=10, tzinfo=UTC)
        wh.write_partition("match_facts", XUID, month, facts([fact(f"0{i}abc", start)]))
        wh.write_partition("raw_matches", XUID, month, pl.DataFrame({"match_id": [f"0{i}abc"]}))
        wh.landing.put("stats", f"0{i}abc", b'{"MatchId": "0%dabc"}' % i)
    (wh.root / "sync_meta" / f"player={XUID}").mkdir(parents=True)
    pl.DataFrame({"xuid": [XUID]}).write_parquet(wh.root / "sync_meta" / f"player={XUID}" / "data.parquet")
    return wh


def _snapshot(wh: Warehouse) -> dict[str, bytes]:
    return {str(p.relative_to(wh.data_dir)): p.read_bytes() for p in wh.data_dir.rglob("*") if p.is_file()}


def test_backup_delete_restore_is_byte_identical(tmp_path):
    wh = _warehouse(tmp_path)
    before = _snapshot(wh)
    manifest = backup(wh, str(XUID), tmp_path / "b.tar")
    assert len(manifest["files"]) == len(before) == 3 + 3 + 3 + 1  # facts, raw index, landing, sync state
    for path in wh.data_dir.rglob("*.*"):
        path.unlink()
    result = restore(wh, tmp_path / "b.tar")
    assert result["written"] == len(before) and _snapshot(wh) == before
    assert restore(wh, tmp_path / "b.tar")["written"] == 0  # idempotent


def test_corrupt_backup_is_refused_with_one_line(tmp_path):
    wh = _warehouse(tmp_path)
    backup(wh, str(XUID), tmp_path / "b.tar")
    with tarfile.open(tmp_path / "b.tar") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        for member, data in members:
            flipped = data[:-9] + b"X" + data[-8:] if member.name.endswith(".parquet") else data  # one byte
            tar.addfile(member, io.BytesIO(flipped))
    before = _snapshot(wh)
    with pytest.raises(InvalidInput, match="corrupt: checksum mismatch for warehouse/"):
        restore(wh, tmp_path / "bad.tar")
    (tmp_path / "trunc.tar").write_bytes((tmp_path / "b.tar").read_bytes()[:700])
    with pytest.raises(InvalidInput, match="corrupt"):
        restore(wh, tmp_path / "trunc.tar")
    assert _snapshot(wh) == before  # nothing written
    result = CliRunner().invoke(main, ["restore", str(tmp_path / "bad.tar")], env={"HALO_DATA_DIR": str(wh.data_dir)})
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "checksum mismatch" in result.output


def test_restore_refuses_newer_data_without_force(tmp_path):
    wh = _warehouse(tmp_path)
    backup(wh, str(XUID), tmp_path / "b.tar", now=datetime(2000, 1, 1, tzinfo=UTC))
    path = wh.partition_path("match_facts", XUID, MONTHS[0])
    newer = facts([fact("new", datetime(2025, 1, 11, tzinfo=UTC))])
    wh.write_partition("match_facts", XUID, MONTHS[0], newer)
    with pytest.raises(InvalidInput, match=r"newer than the backup.*--force"):
        restore(wh, tmp_path / "b.tar")
    assert pl.read_parquet(path)["match_id"].to_list() == ["new"]
    restore(wh, tmp_path / "b.tar", force=True)
    assert pl.read_parquet(path)["match_id"].to_list() == ["00abc"]


def test_export_csv_and_parquet_with_player_and_since(tmp_path):
    wh = _warehouse(tmp_path)
    assert export_table(wh, "match_facts", tmp_path / "all.parquet") == 3
    assert export_table(wh, "match_facts", tmp_path / "x.csv", "csv", str(XUID), "2025-02") == 2
    assert pl.read_csv(tmp_path / "x.csv")["match_id"].to_list() == ["01abc", "02abc"]
    with pytest.raises(InvalidInput, match="unknown table"):
        export_table(wh, "nope", tmp_path / "n.csv")
    result = CliRunner().invoke(main, ["export", "--table", "match_facts", "--since", "2025-13",
                                       "--out", str(tmp_path / "e.csv")], env={"HALO_DATA_DIR": str(wh.data_dir)})
    assert result.exit_code == 2 and "invalid --since" in result.output


def test_archive_moves_old_months_and_the_catalog_still_reads_them(tmp_path):
    wh = _warehouse(tmp_path)
    moved = archive(wh, 30, today=date(2025, 4, 15))  # Jan and Feb ended > 30 days before 15 April
    assert sorted(m.split("/")[0] for m in moved) == ["match_facts"] * 2 + ["raw_matches"] * 2
    assert len(wh.partition_files("match_facts")) == 1
    with duckdb.connect(str(tmp_path / "c.duckdb")) as con:
        counts = refresh_catalog(con, wh)
    assert counts["match_facts"] == 3
    assert export_table(wh, "match_facts", tmp_path / "a.parquet") == 3  # exports read the archive too
    os.utime(wh.partition_path("match_facts", XUID, MONTHS[2]))
