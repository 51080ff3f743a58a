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
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePosixPath

import polars as pl

from halo_pipeline import tables
from halo_pipeline.ids import InvalidInput, parse_xuid
from halo_pipeline.months import Month
from halo_pipeline.storage.files import atomic_writer, read_parquet, write_bytes_atomic, write_parquet_atomic
from halo_pipeline.storage.landing import FILM, PROFILE, SKILL, STATS
from halo_pipeline.storage.warehouse import ARCHIVE_DIR, PARQUET_NAME, Warehouse, month_of_path

MANIFEST = "MANIFEST.json"
BACKUP_FORMAT = 1
FORMATS = ("csv", "parquet")


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
    materialized = _tables(wh)
    if table not in materialized:
        raise InvalidInput(f"unknown table {table!r}: expected one of "
                           f"{', '.join(materialized) or '(none materialized)'}")
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


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def backup(wh: Warehouse, player: str, out: Path, now: datetime | None = None) -> dict:
    """Write a self-contained snapshot of one player to the tar file ``out``; returns its manifest.

    The tar holds ``MANIFEST.json`` (format, xuid, created_at UTC, and per file its path relative to the
    data dir, size and sha256) then every file of :func:`_player_files` under the same relative paths. Files
    are streamed (never held in memory whole); ``out`` appears whole or not at all.

    Raises:
        InvalidInput: invalid xuid, or no data for that player.
    """
    xuid = parse_xuid(player)
    files = _player_files(wh, xuid)
    if not files:
        raise InvalidInput(f"no data for player {xuid} under {wh.data_dir}")
    entries = [{"path": path.relative_to(wh.data_dir).as_posix(), "size": path.stat().st_size,
                "sha256": _file_sha256(path), "mtime": path.stat().st_mtime} for path in files]
    manifest = {"format": BACKUP_FORMAT, "xuid": xuid,
                "created_at": (now or datetime.now(UTC)).isoformat(), "files": entries}
    with atomic_writer(out) as fh, tarfile.open(fileobj=fh, mode="w") as tar:
        header = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(header), 0
        tar.addfile(info, io.BytesIO(header))
        for path, entry in zip(files, entries, strict=True):
            info = tarfile.TarInfo(entry["path"])
            info.size, info.mtime = entry["size"], 0
            with open(path, "rb") as body:
                tar.addfile(info, body)
    return manifest


#: The largest backup :func:`restore` accepts (sum of its files' sizes): a crafted tar cannot fill the disk.
MAX_RESTORE_BYTES = 64 * 2**30
#: The largest ``MANIFEST.json`` and ``raw_matches`` partition a restore reads into memory.
MAX_INDEX_BYTES = 256 * 2**20
_CHUNK = 1 << 20
_PLAYER_LAYOUTS = ("player_month", "player")


def _refuse(path: Path, why: str) -> InvalidInput:
    return InvalidInput(f"backup {path} refused: {why}; nothing restored")


def _owned_by(rel: PurePosixPath, xuid: int, match_ids: set[str]) -> bool:
    """Whether ``rel`` (relative to the data dir) is one of the files a backup of ``xuid`` may hold: a warehouse
    partition of the player (live or archived), its report, its profile, or the raw landing of one of the
    matches listed in its own ``raw_matches`` partitions (``match_ids``)."""
    parts = rel.parts
    player_tables = {t.name for t in tables.TABLES.values() if t.layout in _PLAYER_LAYOUTS}
    if parts[:1] == ("warehouse",):
        rest = parts[2:] if parts[1:2] == (ARCHIVE_DIR,) else parts[1:]
        if parts == ("warehouse", "reports", f"{xuid}.html"):
            return True
        if len(rest) < 3 or rest[0] not in player_tables or rest[1] != f"player={xuid}" or rest[-1] != PARQUET_NAME:
            return False
        hive = rest[2:-1]
        return hive == () or (len(hive) == 2 and hive[0].startswith("year=") and hive[0][5:].isdigit()
                               and hive[1].startswith("month=") and hive[1][6:].isdigit())
    if parts[:1] == ("raw",) and len(parts) == 4:
        kind, prefix, name = parts[1:]
        if kind == PROFILE:
            return prefix == str(xuid)[:2] and name in (f"{xuid}.json.gz", f"{xuid}.absent")
        if kind in (STATS, SKILL, FILM):
            match_id = name.split(".", 1)[0]
            return match_id in match_ids and prefix == match_id[:2] and name != match_id
    return False


def _stream(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    body = tar.extractfile(member)
    while chunk := body.read(_CHUNK):
        yield chunk


def _checked_backup(path: Path, tar: tarfile.TarFile, max_bytes: int) -> tuple[dict, dict[str, tarfile.TarInfo]]:
    """The manifest and the member of each of its files, every check of :func:`restore` passed (raises
    :class:`InvalidInput` otherwise); file contents are streamed, only the manifest and the ``raw_matches``
    partitions are read whole."""
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        if not member.isfile():
            kind = "a symlink" if member.issym() else "a hard link" if member.islnk() else "not a regular file"
            raise _refuse(path, f"member {member.name!r} is {kind}")
        if member.name in members:
            raise _refuse(path, f"member {member.name!r} appears twice")
        members[member.name] = member
    manifest_member = members.pop(MANIFEST, None)
    if manifest_member is None or manifest_member.size > MAX_INDEX_BYTES:
        raise InvalidInput(f"backup {path} is corrupt or not a halo-pipeline backup (no readable {MANIFEST})")
    try:
        manifest = json.loads(tar.extractfile(manifest_member).read())
        xuid = parse_xuid(str(manifest["xuid"]))
        entries = manifest["files"]
        datetime.fromisoformat(manifest["created_at"])
        listed = {str(e["path"]): (int(e["size"]), str(e["sha256"])) for e in entries}
    except (KeyError, ValueError, TypeError, InvalidInput) as exc:
        raise InvalidInput(f"backup {path} is corrupt or not a halo-pipeline backup ({type(exc).__name__})") from None
    for name, (size, _) in listed.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or name != rel.as_posix():
            raise InvalidInput(f"backup {path} is corrupt: unsafe path {name!r}")
        if name not in members:
            raise InvalidInput(f"backup {path} is corrupt: {name} is missing")
        if members[name].size != size:
            raise InvalidInput(f"backup {path} is corrupt: {name} is {members[name].size} bytes, not {size}")
    if extra := sorted(set(members) - set(listed)):
        raise _refuse(path, f"member {extra[0]!r} is not in its manifest")
    if (total := sum(size for size, _ in listed.values())) > max_bytes:
        raise _refuse(path, f"it holds {total} bytes, more than the {max_bytes} bytes allowed")
    for name, (_, sha256) in listed.items():
        digest = hashlib.sha256()
        for chunk in _stream(tar, members[name]):
            digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise InvalidInput(f"backup {path} is corrupt: checksum mismatch for {name}")
    match_ids: set[str] = set()
    for name in listed:
        parts = PurePosixPath(name).parts
        if len(parts) > 1 and parts[1] == "raw_matches" and _owned_by(PurePosixPath(name), xuid, set()):
            if members[name].size > MAX_INDEX_BYTES:
                raise _refuse(path, f"{name} is larger than {MAX_INDEX_BYTES} bytes")
            try:
                index = pl.read_parquet(io.BytesIO(tar.extractfile(members[name]).read()), columns=["match_id"])
            except Exception:  # noqa: BLE001 - any unreadable index is a corrupt backup
                raise InvalidInput(f"backup {path} is corrupt: {name} is not a raw_matches partition") from None
            match_ids.update(index["match_id"].to_list())
    for name in listed:
        if not _owned_by(PurePosixPath(name), xuid, match_ids):
            raise _refuse(path, f"{name} is not a file of player {xuid} (a backup restores only its player's own "
                                "partitions, sync state, report, profile and the raw landing of its matches)")
    return manifest, {name: members[name] for name in listed}


def restore(wh: Warehouse, path: Path, force: bool = False, max_bytes: int = MAX_RESTORE_BYTES) -> dict:
    """Restore a :func:`backup` into ``wh``; returns ``{"written", "same", "xuid"}``.

    Before anything is written, the whole backup is checked: every member a regular file (no symlink or hard
    link) listed in the manifest with its size, every path relative and inside the data dir, every file one of
    **the manifest player's own** (its warehouse partitions and sync state, its report and profile, the raw
    landing of the matches its ``raw_matches`` partitions list — a backup "of player X" cannot write player Y's
    data or the instance), at most ``max_bytes`` in all, every checksum right. A file that exists with different
    content and was modified after the backup was taken is "newer data": refused unless ``force``. Members are
    streamed to disk (never held in memory whole), each written atomically.

    Raises:
        InvalidInput: missing, corrupt or refused backup (one line naming the first bad file), newer data
            without force.
    """
    try:
        with tarfile.open(path, mode="r:") as tar:
            manifest, members = _checked_backup(path, tar, max_bytes)
            created = datetime.fromisoformat(manifest["created_at"]).timestamp()
            to_write, same, newer = [], 0, []
            for entry in manifest["files"]:
                target = wh.data_dir / entry["path"]
                if target.is_symlink() or (target.exists() and not target.is_file()):
                    raise _refuse(path, f"{entry['path']} exists and is not a regular file")
                if target.exists():
                    if _file_sha256(target) == entry["sha256"]:
                        same += 1
                        continue
                    if target.stat().st_mtime > created:
                        newer.append(entry["path"])
                to_write.append((target, entry))
            if newer and not force:
                raise InvalidInput(f"{len(newer)} file(s) are newer than the backup (first: {newer[0]}): "
                                   "use --force to overwrite them")
            for target, entry in to_write:
                with atomic_writer(target) as fh:
                    digest = hashlib.sha256()
                    for chunk in _stream(tar, members[entry["path"]]):
                        digest.update(chunk)
                        fh.write(chunk)
                    if digest.hexdigest() != entry["sha256"]:  # the file changed since it was checked
                        raise InvalidInput(f"backup {path} changed while it was restored ({entry['path']})")
    except FileNotFoundError:
        raise InvalidInput(f"backup {path} not found") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidInput(f"backup {path} is corrupt or not a halo-pipeline backup ({type(exc).__name__})") from None
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
