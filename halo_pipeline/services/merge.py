"""Merging another warehouse into this one (a second machine, a restored backup — LevelUp's
``merge_databases.py``): the union of the raw landing, then a re-derivation of the partitions it touched with zero
API calls (launched by :func:`halo_pipeline.runner.run_merge`). No Dagster here.

What is merged, from ``<other>/raw`` and ``<other>/warehouse``:

* **bodies**, keyed by match id (stats, skill, film chunk), xuid (profile), asset version (``ugc_*``), legacy
  documents (``levelup``) and images (``assets``): only complete ones (a whole JSON object with the keys the
  landing requires, a whole zlib stream, an image Pillow reads; :mod:`halo_pipeline.services.landing`), the rest
  counted as incomplete and left out. A body we lack is copied as is (same bytes, same modification time). The
  same key with different content is a **conflict**: reported, and the newer landing (modification time) kept.
  A 404 marker is copied only where we have neither a body nor a marker; a body replaces our marker.
* **the landing index** (``raw_matches``) and **the history** (``match_history``) partitions, which say which
  matches are a player's: a partition we lack is copied; one both have is the union by match id (the row whose
  bodies are landed wins, ours on a tie).

Decoded film events (``raw/film_events``) are a cache: not merged, decoded again here when needed.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl

from halo_pipeline.ids import InvalidInput
from halo_pipeline.months import Month
from halo_pipeline.services.history import HISTORY_WALKS, WalkIndex
from halo_pipeline.services.images import ASSETS, complete_image
from halo_pipeline.services.landing import UGC_LANDING, IncompleteBody, _check_film_chunk, _checked_json
from halo_pipeline.storage.files import is_remote, read_parquet, write_bytes_atomic
from halo_pipeline.storage.landing import FILM, PROFILE, SKILL, STATS
from halo_pipeline.storage.legacy import LEGACY, PLAYER_FILE
from halo_pipeline.storage.warehouse import Warehouse, month_of_path

#: The keys a body of each kind must hold to be complete (a UGC or profile body: any JSON object).
REQUIRED = {STATS: ("MatchInfo", "Players"), SKILL: ("Value",), PROFILE: ()}
#: Index partitions merged by match id.
INDEX_TABLES = ("match_history", "raw_matches")
#: Not merged (a cache of what is derived from the bodies).
SKIPPED = {"film_events"}
ABSENT = ".absent"
_FILM_RE = re.compile(r"^(?P<match>.+)\.v(?P<version>\d+)\.gz$")


@dataclass
class MergeReport:
    """What a merge did (or, dry, would do)."""

    added: Counter = field(default_factory=Counter)  # kind → bodies copied
    replaced: Counter = field(default_factory=Counter)  # kind → ours replaced by a newer different body
    identical: Counter = field(default_factory=Counter)
    markers: int = 0  # 404 markers copied
    incomplete: list[tuple[str, str]] = field(default_factory=list)  # (file, why): left out
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, key, "theirs" | "ours" kept)
    index_partitions: list[tuple[str, int, Month]] = field(default_factory=list)  # (table, xuid, month) written
    changed_matches: set[str] = field(default_factory=set)  # match ids whose stats/skill/film body was written
    legacy_months: set[tuple[int, Month]] = field(default_factory=set)
    players: set[int] = field(default_factory=set)  # owners found in the other warehouse
    touched: dict[int, set[Month]] = field(default_factory=dict)  # partitions to re-derive

    def describe(self) -> list[str]:
        kinds = sorted(set(self.added) | set(self.replaced) | set(self.identical))
        lines = [f"bodies: {sum(self.added.values())} added, {sum(self.replaced.values())} replaced by a newer one, "
                 f"{sum(self.identical.values())} already identical, {self.markers} 404 marker(s) copied, "
                 f"{len(self.incomplete)} incomplete left out"]
        lines += [f"  {k}: +{self.added[k]} ~{self.replaced[k]} ={self.identical[k]}" for k in kinds]
        if self.conflicts:
            lines.append(f"conflicts (same key, different bytes; the newer landing kept): {len(self.conflicts)}")
            lines += [f"  {kind} {key}: kept {kept}" for kind, key, kept in self.conflicts[:50]]
        for name, why in self.incomplete[:20]:
            lines.append(f"  incomplete: {name}: {why}")
        lines.append(f"index partitions written: {len(self.index_partitions)}; players: "
                     f"{', '.join(map(str, sorted(self.players))) or 'none'}")
        for xuid, months in sorted(self.touched.items()):
            lines.append(f"  re-derive {xuid}: {', '.join(m.label for m in sorted(months))}")
        return lines


def _content(path: Path) -> bytes:
    """A file's content: gunzipped for ``.gz`` bodies (two gzip files of the same body compare equal)."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".json.gz") else data


def _check(kind: str, path: Path) -> None:
    """Raise :class:`IncompleteBody` unless ``path`` (a file of the other landing) is a complete body."""
    data = path.read_bytes()
    try:
        if path.name.endswith(".json.gz"):
            body = gzip.decompress(data)
            _checked_json(kind, body, REQUIRED.get(kind, ()))
        elif kind == FILM:
            _check_film_chunk(data)
        elif path.suffix == ".json":
            orjson.loads(data)
        elif kind == ASSETS and not complete_image(data):
            raise IncompleteBody(f"not a whole image ({len(data)} bytes)")
    except (OSError, EOFError, zlib.error, orjson.JSONDecodeError) as exc:
        raise IncompleteBody(f"{type(exc).__name__}: {exc}".splitlines()[0][:200]) from None


def _copy(source: Path, target: Path) -> None:
    """Copy bytes and, locally, the modification time (the landing time decides later conflicts; an object store
    sets its own)."""
    write_bytes_atomic(target, source.read_bytes())
    if not is_remote(target):
        stat = source.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _marker_of(kind: str, body: Path) -> Path:
    """The 404 marker standing for the body at ``body`` (see the landings' ``mark_absent``)."""
    if kind == FILM and (m := _FILM_RE.match(body.name)):
        return body.with_name(m.group("match") + ABSENT)
    if kind == ASSETS:
        return body.with_name(body.name + ABSENT)
    return body.with_name(body.name.removesuffix(".json.gz") + ABSENT)


def _match_of(kind: str, path: Path) -> str | None:
    if kind in (STATS, SKILL):
        return path.name.removesuffix(".json.gz")
    if kind == FILM and (m := _FILM_RE.match(path.name)):
        return m.group("match")
    return None


class _Merger:
    def __init__(self, ours: Warehouse, theirs: Warehouse, dry_run: bool) -> None:
        self.ours, self.theirs, self.dry_run = ours, theirs, dry_run
        self.report = MergeReport()
        self.our_raw, self.their_raw = ours.data_dir / "raw", theirs.data_dir / "raw"

    def _write(self, source: Path, target: Path) -> None:
        if not self.dry_run:
            _copy(source, target)

    def body(self, kind: str, source: Path, target: Path, key: str, ours_now: Path | None = None) -> bool:
        """Merge one body file; ``ours_now``: our file for the same key when it has another name (a film of another
        version). Returns whether ours was written."""
        try:
            _check(kind, source)
        except IncompleteBody as exc:
            self.report.incomplete.append((str(source.relative_to(self.their_raw)), str(exc)))
            return False
        ours = ours_now or target
        if ours.exists():
            if _content(ours) == _content(source) and ours.name == source.name:
                self.report.identical[kind] += 1
                return False
            newer = source.stat().st_mtime_ns > ours.stat().st_mtime_ns
            self.report.conflicts.append((kind, key, "theirs" if newer else "ours"))
            if not newer:
                return False
            self.report.replaced[kind] += 1
            if not self.dry_run and ours != target:
                ours.unlink()
        else:
            self.report.added[kind] += 1
        self._write(source, target)
        marker = _marker_of(kind, target)
        if not self.dry_run and marker.exists():
            marker.unlink()  # a body beats a 404 marker
        return True

    def marker(self, source: Path, target: Path, has_body: bool) -> None:
        if has_body or target.exists():
            return
        self.report.markers += 1
        self._write(source, target)

    def kind(self, kind: str) -> None:
        folder = self.their_raw / kind
        for source in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            rel = source.relative_to(self.their_raw)
            target = self.our_raw / rel
            if source.name.endswith(ABSENT):
                stem = source.name.removesuffix(ABSENT)
                if kind == FILM:
                    has_body = any(target.parent.glob(f"{stem}.v*.gz")) if target.parent.exists() else False
                elif kind == ASSETS:
                    has_body = target.with_name(stem).exists()
                else:
                    has_body = target.with_name(stem + ".json.gz").exists()
                self.marker(source, target, has_body)
                continue
            key = _match_of(kind, source) or str(rel.relative_to(kind))
            if kind == FILM:
                if _match_of(kind, source) is None:
                    continue
                existing = sorted(target.parent.glob(f"{key}.v*.gz")) if target.parent.exists() else []
                written = self.body(kind, source, target, key, existing[0] if existing else None)
            else:
                written = self.body(kind, source, target, key)
            if written and (match := _match_of(kind, source)):
                self.report.changed_matches.add(match)
            if written and kind == LEGACY and source.name != PLAYER_FILE and len(rel.parts) == 4:
                self.report.legacy_months.add((int(rel.parts[1]), Month.parse(rel.parts[2])))

    def walks(self) -> None:
        """The union of the history-walk indexes (which months were walked when): merged months are as settled
        here as they were there."""
        for source in sorted((self.their_raw / HISTORY_WALKS).glob("*/*.json.gz")):
            xuid = int(source.name.removesuffix(".json.gz"))
            theirs = WalkIndex.load(self.theirs.landing, xuid)
            if WalkIndex.load(self.ours.landing, xuid).union(self.ours.landing, theirs, write=not self.dry_run):
                self.report.players.add(xuid)

    def index(self, table: str) -> None:
        base = self.theirs.root / table
        for source in sorted(base.glob("player=*/year=*/month=*/data.parquet")) if base.exists() else []:
            xuid, month = int(source.parts[-4].split("=", 1)[1]), month_of_path(source)
            self.report.players.add(xuid)
            theirs = read_parquet(source)
            target = self.ours.partition_path(table, xuid, month)
            merged = theirs if not target.exists() else union_index(read_parquet(target), theirs)
            if target.exists() and merged.equals(read_parquet(target)):
                continue
            self.report.index_partitions.append((table, xuid, month))
            self.report.touched.setdefault(xuid, set()).add(month)
            if not self.dry_run:
                self.ours.write_partition(table, xuid, month, merged)


def _landed_score(row: dict) -> tuple:
    return tuple(row.get(c) == "landed" for c in ("stats_status", "skill_status", "film_status"))


def union_index(ours: pl.DataFrame, theirs: pl.DataFrame) -> pl.DataFrame:
    """Rows of both index partitions by match id: ours, unless theirs has more bodies landed
    (``raw_matches``: stats, then skill, then film); theirs' other matches added; sorted by
    ``(start_time, match_id)`` like the history."""
    rows = {r["match_id"]: r for r in ours.iter_rows(named=True)}
    for row in theirs.iter_rows(named=True):
        mine = rows.get(row["match_id"])
        if mine is None or _landed_score(row) > _landed_score(mine):
            rows[row["match_id"]] = row
    merged = pl.DataFrame(list(rows.values()), schema=ours.schema)
    return merged.sort("start_time", "match_id", nulls_last=True)


def merge_warehouse(ours: Warehouse, theirs: Warehouse, dry_run: bool = False) -> MergeReport:
    """Merge ``theirs`` (another data dir) into ``ours`` (see the module docstring); with ``dry_run`` nothing is
    written and the report says what would be. ``report.touched`` lists the partitions to re-derive: those whose
    index changed, those listing a match whose body was written, and the legacy documents' months.

    Raises:
        InvalidInput: ``theirs`` is not a warehouse (no ``raw/`` folder), or is ``ours``.
    """
    if not (theirs.data_dir / "raw").is_dir():
        raise InvalidInput(f"{theirs.data_dir}: not a halo-pipeline data dir (no raw/ folder)")
    if not ours.remote and Path(theirs.data_dir).resolve() == Path(ours.data_dir).resolve():
        raise InvalidInput(f"{theirs.data_dir} is this warehouse's own data dir")
    merger = _Merger(ours, theirs, dry_run)
    kinds = sorted(p.name for p in merger.their_raw.iterdir() if p.is_dir() and p.name not in SKIPPED)
    for kind in kinds:
        if kind in (STATS, SKILL, FILM, PROFILE, LEGACY, ASSETS) or kind.startswith(UGC_LANDING):
            merger.kind(kind)
    merger.walks()
    for table in INDEX_TABLES:
        merger.index(table)
    report = merger.report
    report.players |= set(theirs.legacy.players())
    for xuid, month in report.legacy_months:
        report.touched.setdefault(xuid, set()).add(month)
    for path in ours.partition_files("raw_matches"):
        xuid = int(path.relative_to(ours.root / "raw_matches").parts[0].split("=", 1)[1])
        month = month_of_path(path)
        index = read_parquet(path, columns=["match_id", "stats_status"])
        # A partition listing a match whose body changed, or one not derived yet (a merge interrupted before its
        # re-derivation: the next merge finds nothing new to copy, and must still derive).
        if (set(index["match_id"].to_list()) & report.changed_matches
                or (xuid in report.players and not _derived(ours, xuid, month, index))):
            report.touched.setdefault(xuid, set()).add(month)
    return report


def _derived(wh: Warehouse, xuid: int, month: Month, index: pl.DataFrame) -> bool:
    """Whether every match of the partition whose stats body is landed has its match_facts row."""
    landed = set(index.filter(pl.col("stats_status") == "landed")["match_id"].to_list())
    path = wh.partition_path("match_facts", xuid, month)
    facts = set(read_parquet(path, columns=["match_id"])["match_id"].to_list()) if path.exists() else set()
    return path.exists() and landed <= facts
