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


# --- crafted backups: restore writes only the manifest player's own files, streams, bounds the size ------------
def _craft(path, manifest_xuid: int, files: dict[str, bytes], listed: dict[str, bytes] | None = None,
           links: dict[str, tuple[bytes, str]] = ()) -> None:
    """A tar shaped like a backup of ``manifest_xuid``: ``files`` as members, ``listed`` (default: ``files``) in
    its manifest with their true sizes and checksums, ``links``: members of a link type (``tarfile.SYMTYPE`` or
    ``LNKTYPE``) to a target."""
    import hashlib
    import json

    listed = files if listed is None else listed
    manifest = {"format": 1, "xuid": manifest_xuid, "created_at": "2000-01-01T00:00:00+00:00",
                "files": [{"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "mtime": 0}
                          for name, data in listed.items()]}
    with tarfile.open(path, "w") as tar:
        for name, data in [("MANIFEST.json", json.dumps(manifest).encode()), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (kind, target) in dict(links).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)


OTHER = XUID + 1


@pytest.mark.parametrize("case, words", [
    ("other player", "is not a file of player"),
    ("instance", "is not a file of player"),
    ("raw of a match not listed", "is not a file of player"),
    ("dotdot", "unsafe path"),
    ("absolute", "unsafe path"),
    ("symlink", "is a symlink"),
    ("hardlink", "is a hard link"),
    ("unlisted member", "is not in its manifest"),
    ("size lies", "bytes, not"),
])
def test_a_crafted_backup_is_refused_in_one_line_and_writes_nothing(tmp_path, case, words):
    wh = _warehouse(tmp_path)
    backup(wh, str(XUID), tmp_path / "b.tar")
    with tarfile.open(tmp_path / "b.tar") as tar:
        own = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.name != "MANIFEST.json"}
    parquet = next(data for name, data in own.items() if "/match_facts/" in name)
    crafted = {
        "other player": {f"warehouse/match_facts/player={OTHER}/year=2025/month=01/data.parquet": parquet},
        "instance": {"dagster_home/dagster.yaml": b"run_launcher: {module: evil}\n"},
        "raw of a match not listed": {"raw/stats/ff/ffffffff-0000.json.gz": b"{}"},
        "dotdot": {"warehouse/../../outside.txt": b"x"},
        "absolute": {str(tmp_path / "outside.txt"): b"x"},
    }
    files, listed, links = dict(own), None, {}
    if case in crafted:
        files |= crafted[case]
    elif case == "symlink":
        links = {f"warehouse/match_facts/player={XUID}/year=2025/month=04/data.parquet": (tarfile.SYMTYPE, "/etc")}
    elif case == "hardlink":
        links = {f"warehouse/reports/{XUID}.html": (tarfile.LNKTYPE, "MANIFEST.json")}
    elif case == "unlisted member":
        listed = dict(own)
        files |= {f"warehouse/reports/{XUID}.html": b"<html>smuggled</html>"}
    elif case == "size lies":
        name = next(iter(own))
        listed = {**own, name: own[name] + b"more"}
    _craft(tmp_path / "crafted.tar", XUID, files, listed, links)
    for path in wh.data_dir.rglob("*.*"):
        path.unlink()  # restore would have everything to write
    before = _snapshot(wh)
    with pytest.raises(InvalidInput, match=words) as info:
        restore(wh, tmp_path / "crafted.tar")
    assert "\n" not in str(info.value)
    assert _snapshot(wh) == before and not (tmp_path / "outside.txt").exists()  # nothing written
    assert not list(tmp_path.rglob("*.tmp"))


def test_restore_streams_members_and_bounds_the_total_size(tmp_path):
    import os
    import tracemalloc

    wh = _warehouse(tmp_path)
    big = os.urandom(24 * 2**20)  # a 24 MiB raw body of one of the player's matches
    wh.landing.root.joinpath("stats", "00").mkdir(parents=True, exist_ok=True)
    (wh.landing.root / "stats" / "00" / "00abc.json.gz").write_bytes(big)
    manifest = backup(wh, str(XUID), tmp_path / "b.tar")
    total = sum(e["size"] for e in manifest["files"])
    del big

    with pytest.raises(InvalidInput, match=rf"it holds {total} bytes, more than the {total - 1} bytes allowed"):
        restore(wh, tmp_path / "b.tar", max_bytes=total - 1)

    for path in wh.data_dir.rglob("*.*"):
        path.unlink()
    tracemalloc.start()
    try:
        result = restore(wh, tmp_path / "b.tar", max_bytes=total)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result["written"] == len(manifest["files"])
    assert (wh.landing.root / "stats" / "00" / "00abc.json.gz").stat().st_size == 24 * 2**20
    assert peak < 8 * 2**20, f"restore held {peak / 2**20:.1f} MiB: members must be streamed"


def test_restore_refuses_another_players_backup_in_one_cli_line(tmp_path):
    wh = _warehouse(tmp_path)
    backup(wh, str(XUID), tmp_path / "b.tar")
    with tarfile.open(tmp_path / "b.tar") as tar:
        own = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.name != "MANIFEST.json"}
    _craft(tmp_path / "claims_other.tar", OTHER, own)  # "a backup of OTHER" holding XUID's files
    result = CliRunner().invoke(main, ["restore", str(tmp_path / "claims_other.tar")],
                                env={"HALO_DATA_DIR": str(wh.data_dir)})
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert f"is not a file of player {OTHER}" in result.output and "nothing restored" in result.output
