"""Exports, backups, restores and archiving of the warehouse (the ``halo-pipeline export|backup|restore|archive``
commands are thin wrappers over these functions).

Errors are :class:`halo_pipeline.ids.InvalidInput` with a one-line message; nothing is written before the
input is validated, and every file is written atomically (temp file + rename), so a refused or failed
operation leaves the warehouse as it was.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePosixPath

import polars as pl

from halo_pipeline.ids import InvalidInput, parse_xuid
from halo_pipeline.months import Month
from halo_pipeline.storage.files import read_parquet, write_bytes_atomic, write_parquet_atomic
from halo_pipeline.storage.landing import SKILL, STATS
from halo_pipeline.storage.warehouse import ARCHIVE_DIR, PARQUET_NAME, Warehouse, month_of_path

MANIFEST = "MANIFEST.json"
BACKUP_FORMAT = 1
FORMATS = ("csv", "parquet")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tables(wh: Warehouse) -> list[str]:
    return sorted(p.name for p in wh.root.iterdir() if p.is_dir() and p.name not in (ARCHIVE_DIR, "reference",
                                                                                        "reports")) \
        if wh.root.exists() else []


# --------------------------------------------------------------------------------------------------- export


def export_table(wh: Warehouse, table: str, out: Path, fmt: str = "parquet", player: str | None = None,
                 since: str | None = None) -> int:
    """Write ``table`` (live and archived partitions) to ``out`` as CSV or Parquet; returns the row count.

    ``player``: one xuid; ``since``: ``YYYY-MM[-DD]``, keeps rows whose ``start_time`` is on or after it (for
    tables without start_time: the partitions of months on or after it). Datetimes are written in UTC.

    Raises:
        InvalidInput: unknown table or format, invalid xuid or date, nothing materialized for the table.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"invalid format {fmt!r}: expected one of {', '.join(FORMATS)}")
    tables = _tables(wh)
    if table not in tables:
        raise InvalidInput(f"unknown table {table!r}: expected one of {', '.join(tables) or '(none materialized)'}")
    xuids = [parse_xuid(player)] if player else sorted(
        int(p.name.split("=", 1)[1]) for p in (wh.root / table).glob("player=*"))
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since if len(since) > 7 else since + "-01").replace(tzinfo=UTC)
        except ValueError:
            raise InvalidInput(f"invalid --since {since!r}: expected YYYY-MM or YYYY-MM-DD") from None
    frames = []
    if wh.global_path(table).exists():  # one file for every player (players): --player keeps that xuid's row
        frames.append(read_parquet(wh.global_path(table)).filter(pl.col("xuid").is_in(xuids) if player else True))
        xuids = []
    for xuid in xuids:
        for month, path in sorted(wh.player_files(table, xuid).items()):
            if start is not None and month < Month.of(start):
                continue
            frames.append(read_parquet(path).with_columns(owner_xuid=pl.lit(xuid, pl.Int64)))
        if (whole := wh.root / table / f"player={xuid}" / PARQUET_NAME).exists():  # a per-player table (friends)
            frames.append(read_parquet(whole).with_columns(owner_xuid=pl.lit(xuid, pl.Int64)))
    df = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    if start is not None and "start_time" in df.columns:
        df = df.filter(pl.col("start_time") >= start)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        write_parquet_atomic(df, out)
    else:
        write_bytes_atomic(out, df.write_csv().encode())
    return df.height


# --------------------------------------------------------------------------------------------------- backup


def _player_files(wh: Warehouse, xuid: int) -> list[Path]:
    """Every file of a player: warehouse partitions (live + archive, sync state included), the raw landing
    of the player's matches (stats, skill, film, absent markers) and their profile, the player's report."""
    files: set[Path] = set()
    for base in (wh.root, wh.root / ARCHIVE_DIR):
        if base.exists():
            for folder in base.glob(f"*/player={xuid}"):
                files.update(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    match_ids: set[str] = set()
    for path in [p for p in files if "raw_matches" in p.parts and p.name == PARQUET_NAME]:
        match_ids.update(read_parquet(path, columns=["match_id"])["match_id"].to_list())
    raw = wh.landing.root
    for mid in match_ids:
        for kind in (STATS, SKILL, "film"):
            folder = raw / kind / mid[:2]
            if folder.exists():
                files.update(p for p in folder.glob(f"{mid}*") if p.is_file())
    files.update(p for p in (raw / "profile" / str(xuid)[:2]).glob(f"{xuid}*") if p.is_file())
    report = wh.root / "reports" / f"{xuid}.html"
    if report.exists():
        files.add(report)
    return sorted(files)


def backup(wh: Warehouse, player: str, out: Path, now: datetime | None = None) -> dict:
    """Write a self-contained snapshot of one player to the tar file ``out``; returns its manifest.

    The tar holds ``MANIFEST.json`` (format, xuid, created_at UTC, and per file its path relative to the
    data dir, size and sha256) then every file of :func:`_player_files` under the same relative paths.

    Raises:
        InvalidInput: invalid xuid, or no data for that player.
    """
    xuid = parse_xuid(player)
    files = _player_files(wh, xuid)
    if not files:
        raise InvalidInput(f"no data for player {xuid} under {wh.data_dir}")
    entries, blobs = [], []
    for path in files:
        data = path.read_bytes()
        rel = path.relative_to(wh.data_dir).as_posix()
        entries.append({"path": rel, "size": len(data), "sha256": _sha256(data),
                        "mtime": path.stat().st_mtime})
        blobs.append((rel, data))
    manifest = {"format": BACKUP_FORMAT, "xuid": xuid,
                "created_at": (now or datetime.now(UTC)).isoformat(), "files": entries}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1).encode()), *blobs]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    write_bytes_atomic(out, buffer.getvalue())
    return manifest


def _read_backup(path: Path) -> tuple[dict, dict[str, bytes]]:
    """Manifest and verified contents of a backup. Raises InvalidInput when unreadable or corrupt."""
    try:
        with tarfile.open(path, mode="r") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        manifest = json.loads(members.pop(MANIFEST))
        entries = manifest["files"]
    except FileNotFoundError:
        raise InvalidInput(f"backup {path} not found") from None
    except (tarfile.TarError, KeyError, ValueError, TypeError, OSError, EOFError) as exc:
        raise InvalidInput(f"backup {path} is corrupt or not a halo-pipeline backup ({type(exc).__name__})") from None
    for entry in entries:
        rel = PurePosixPath(entry["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise InvalidInput(f"backup {path} is corrupt: unsafe path {entry['path']!r}")
        data = members.get(entry["path"])
        if data is None:
            raise InvalidInput(f"backup {path} is corrupt: {entry['path']} is missing")
        if _sha256(data) != entry["sha256"]:
            raise InvalidInput(f"backup {path} is corrupt: checksum mismatch for {entry['path']}")
    return manifest, members


def restore(wh: Warehouse, path: Path, force: bool = False) -> dict:
    """Restore a :func:`backup` into ``wh`` after verifying every checksum; returns ``{"written", "same",
    "xuid"}``.

    A file that exists with different content and was modified after the backup was taken is "newer data":
    the restore is refused (nothing written) unless ``force``.

    Raises:
        InvalidInput: missing or corrupt backup (one line naming the first bad file), newer data without force.
    """
    manifest, members = _read_backup(path)
    created = datetime.fromisoformat(manifest["created_at"]).timestamp()
    to_write, same, newer = [], 0, []
    for entry in manifest["files"]:
        target = wh.data_dir / entry["path"]
        data = members[entry["path"]]
        if target.exists():
            if _sha256(target.read_bytes()) == entry["sha256"]:
                same += 1
                continue
            if target.stat().st_mtime > created:
                newer.append(entry["path"])
        to_write.append((target, data))
    if newer and not force:
        raise InvalidInput(f"{len(newer)} file(s) are newer than the backup (first: {newer[0]}): "
                           "use --force to overwrite them")
    for target, data in to_write:
        write_bytes_atomic(target, data)
    return {"xuid": manifest["xuid"], "written": len(to_write), "same": same}


# --------------------------------------------------------------------------------------------------- archive


def archive(wh: Warehouse, older_than_days: int, today: date | None = None) -> list[str]:
    """Move the partitions of months that ended more than ``older_than_days`` days ago to
    ``warehouse/archive/<table>/player=…/year=…/month=…`` (the catalog's views still read them; analytics
    read them too). Returns the moved files (relative to the warehouse). Raw landing is not moved.

    Raises:
        InvalidInput: ``older_than_days`` < 0.
    """
    if older_than_days < 0:
        raise InvalidInput(f"invalid --older-than-days {older_than_days}: expected a number >= 0")
    cutoff = (today or datetime.now(UTC).date()) - timedelta(days=older_than_days)
    moved = []
    for table in _tables(wh):
        for path in wh.partition_files(table):
            try:
                month = month_of_path(path)
            except KeyError:
                continue  # per-player tables (sync state) are not monthly
            if month.end.date() - timedelta(days=1) >= cutoff:
                continue
            rel = path.relative_to(wh.root)
            target = wh.root / ARCHIVE_DIR / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(target))
            moved.append(rel.as_posix())
    return moved
