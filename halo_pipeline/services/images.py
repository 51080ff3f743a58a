"""Images cached locally (LevelUp's ``--with-assets``): the medal sprite sheets, cut into one icon per medal
``name_id``; the UGC images (thumbnail, hero) of every map, map-mode pair, playlist and game variant version
played; the career rank icons. No Dagster here (the ``image_assets`` asset runs :func:`refresh_images`).

Each image is fetched once through the API client (its limits and retries) and kept as downloaded under
``<data_dir>/raw/assets/<service>/<url path>`` (the URL names the asset version: a UGC image's path holds its
asset and version ids; a sheet or an icon its file name), never fetched again; a 404 is remembered there as
``<file>.absent`` and not asked again. The JSON files naming them (the medal metadata, the career rank track) are
read again on every run (two calls: new medals and ranks appear) and kept beside them, so a run without the API
still cuts the icons. Icons are derived: ``<data_dir>/warehouse/images/medals/<size>/<name_id>.png``, cut again
only when their bytes would change.

The sheet layout is the metadata's: ``sprites.<size>.columns`` cells per row, each ``size`` × ``size`` pixels; the
icon of a medal is the cell of its ``spriteIndex`` (column ``index % columns``, row ``index // columns``).
Pillow reads and writes the PNGs (any mode the API serves; a sheet too small for an index gives no icon).
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import polars as pl
import yarl
from PIL import Image, UnidentifiedImageError

from halo_pipeline.api.client import GAMECMS_IMAGES, WAYPOINT_FILES, HaloApiClient
from halo_pipeline.services.landing import UGC_LANDING, land_ugc
from halo_pipeline.storage.files import read_parquet, write_bytes_atomic
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import IMAGE_ASSETS_SCHEMA

ASSETS = "assets"
ABSENT = ".absent"
MEDAL_METADATA_URL = WAYPOINT_FILES + "medals/metadata.json"
CAREER_TRACK_URL = "https://gamecms-hacs.svc.halowaypoint.com/hi/Progression/file/RewardTracks/CareerRanks/careerRank1.json"
#: The UGC kinds whose images are landed, with the match_facts columns of their asset and version ids.
UGC_IMAGE_KINDS = {"maps": ("map_id", "map_version_id"),
                   "mapModePairs": ("map_mode_pair_id", "map_mode_pair_version_id"),
                   "playlists": ("playlist_id", "playlist_version_id"),
                   "ugcGameVariants": ("game_variant_id", "game_variant_version_id")}
#: Defaults of what is landed (the ``image_assets`` asset's config can change them).
MEDAL_SIZES = ("small", "medium", "extra-large")
UGC_FILES = ("images/thumbnail.png", "images/hero.png")
CAREER_ICONS = ("RankIcon",)
#: The medal icon size the HTML report embeds.
REPORT_MEDAL_SIZE = "small"


@dataclass(frozen=True)
class ImageRef:
    """An image to land: its family (medal_sheet, a UGC kind, career_rank), the id/version it belongs to, its role
    (sheet size, file name stem, icon field) and its URL."""

    family: str
    asset_id: str
    version_id: str | None
    role: str
    url: str


@dataclass(frozen=True)
class AssetLanding:
    """Files of Halo Waypoint hosts kept as downloaded under ``root`` (``<data_dir>/raw/assets``)."""

    root: Path

    def path(self, url: str) -> Path:
        """``<root>/<service>/<url path>``: the service is the host's first label (``gamecms-hacs``…)."""
        parsed = yarl.URL(url)
        service = (parsed.host or "unknown").split(".", 1)[0]
        parts = [p for p in parsed.path.split("/") if p not in ("", ".", "..")]
        return self.root.joinpath(service, *parts)

    def get(self, url: str) -> bytes | None:
        """The landed bytes of ``url``, or ``None``."""
        path = self.path(url)
        return path.read_bytes() if path.exists() else None

    def put(self, url: str, data: bytes) -> Path:
        """Land ``data`` as downloaded from ``url`` (atomic)."""
        return write_bytes_atomic(self.path(url), data)

    def absent_status(self, url: str) -> int | None:
        """The status :meth:`mark_absent` recorded for ``url`` (404), or ``None``."""
        marker = self.path(url).with_name(self.path(url).name + ABSENT)
        return int(marker.read_text()) if marker.exists() else None

    def mark_absent(self, url: str, status: int) -> Path:
        """Remember that ``url`` answered ``status`` (a 404): not asked again."""
        path = self.path(url)
        return write_bytes_atomic(path.with_name(path.name + ABSENT), str(status).encode())


def asset_landing(wh: Warehouse) -> AssetLanding:
    """The images' landing of ``wh``: ``<data_dir>/raw/assets``."""
    return AssetLanding(wh.data_dir / "raw" / ASSETS)


def icons_root(wh: Warehouse) -> Path:
    """``<data_dir>/warehouse/images/medals``: medal icons by size, ``<size>/<name_id>.png``."""
    return wh.root / "images" / "medals"


def complete_image(data: bytes) -> bool:
    """Whether ``data`` is a whole image Pillow can read (a truncated download is not)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False


# --------------------------------------------------------------------------------------------------- refs


def medal_sheet_refs(metadata: dict, sizes: Iterable[str] = MEDAL_SIZES) -> list[ImageRef]:
    """The sprite sheets (``sprites.<size>.path``) of the medal metadata, for ``sizes``."""
    sprites = metadata.get("sprites") or {}
    return [ImageRef("medal_sheet", size, None, size, WAYPOINT_FILES + str(sprites[size]["path"]).lstrip("/"))
            for size in sizes if isinstance(sprites.get(size), dict) and sprites[size].get("path")]


def played_ugc(wh: Warehouse) -> list[tuple[str, str, str]]:
    """``(kind, asset id, version id)`` of every map, map-mode pair, playlist and game variant version in any
    player's ``match_facts``."""
    columns = [c for pair in UGC_IMAGE_KINDS.values() for c in pair]
    paths = wh.partition_files("match_facts")
    if not paths:
        return []
    if wh.remote:
        facts = pl.concat([read_parquet(p, columns=columns).unique() for p in paths])
    else:  # one multi-threaded scan: a warehouse has thousands of partition files
        facts = pl.scan_parquet(paths).select(columns).unique().collect()
    refs: set[tuple[str, str, str]] = set()
    for kind, (asset, version) in UGC_IMAGE_KINDS.items():
        refs |= {(kind, a, v) for a, v in facts.select(asset, version).unique().iter_rows() if a and v}
    return sorted(refs)


def ugc_image_refs(wh: Warehouse, ugc: Iterable[tuple[str, str, str]], files: Iterable[str] = UGC_FILES
                   ) -> list[ImageRef]:
    """The images (``Files.Prefix`` + each of ``files`` the body lists in ``FileRelativePaths``) of the landed
    UGC bodies of ``ugc``."""
    wanted = {f.lower() for f in files}
    out = []
    for kind, asset_id, version_id in ugc:
        body = wh.landing.get(UGC_LANDING + kind, f"{asset_id}_{version_id}")
        if body is None:
            continue
        listing = orjson.loads(body).get("Files") or {}
        prefix = str(listing.get("Prefix") or "")
        for relative in listing.get("FileRelativePaths") or ():
            if str(relative).lower() in wanted and prefix:
                role = str(relative).rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
                out.append(ImageRef(kind, asset_id, version_id, role, prefix + str(relative)))
    return out


def career_icon_refs(track: dict, fields: Iterable[str] = CAREER_ICONS) -> list[ImageRef]:
    """The icons (``fields`` of each rank: RankIcon, RankLargeIcon, RankAdornmentIcon) of the career track."""
    return [ImageRef("career_rank", str(rank.get("Rank")), None, field, GAMECMS_IMAGES + str(rank[field]).lstrip("/"))
            for rank in track.get("Ranks") or () for field in fields if rank.get(field)]


# --------------------------------------------------------------------------------------------------- landing


@dataclass
class ImagesRun:
    """What :func:`refresh_images` did."""

    fetched: Counter = field(default_factory=Counter)  # by family: images downloaded in this run
    statuses: dict[str, str] = field(default_factory=dict)  # url → landed | not_found | failed
    errors: dict[str, str] = field(default_factory=dict)  # url → one line
    ugc_lookups: int = 0


async def _json_file(api_call, landing: AssetLanding, url: str, run: ImagesRun) -> dict | None:
    """A JSON file read again on every run (kept beside the images); the kept copy when the API fails."""
    try:
        body = await api_call()
        orjson.loads(body)
        if landing.get(url) != body:
            landing.put(url, body)
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
        run.errors[url] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    kept = landing.get(url)
    return orjson.loads(kept) if kept else None


async def land_images(api: HaloApiClient, landing: AssetLanding, refs: list[ImageRef], run: ImagesRun,
                      refetch: bool = False, concurrency: int = 16) -> None:
    """Land each image of ``refs`` not landed yet (nor known absent), ``concurrency`` at a time (the client's
    limiter paces them). A 404 is marked absent; any other failure is recorded and retried by the next run."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(ref: ImageRef) -> None:
        if not refetch and landing.get(ref.url) is not None:
            run.statuses[ref.url] = "landed"
            return
        if not refetch and landing.absent_status(ref.url) is not None:
            run.statuses[ref.url] = "not_found"
            return
        async with semaphore:
            try:
                got = await api.download(ref.url)
                if not complete_image(got.data):
                    raise ValueError(f"not a whole image ({len(got.data)} bytes, {got.content_type})")
                landing.put(ref.url, got.data)
                run.statuses[ref.url] = "landed"
                run.fetched[ref.family] += 1
            except aiohttp.ClientResponseError as exc:
                if exc.status == 404:
                    landing.mark_absent(ref.url, 404)
                    run.statuses[ref.url] = "not_found"
                else:
                    run.statuses[ref.url], run.errors[ref.url] = "failed", f"HTTP {exc.status}"
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                run.statuses[ref.url] = "failed"
                run.errors[ref.url] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]

    await asyncio.gather(*(one(ref) for ref in dict.fromkeys(refs)))


def cut_icons(sheet: bytes, columns: int, size: int, sprites: dict[int, int]) -> dict[int, bytes]:
    """``{name_id: PNG}``: the ``size`` × ``size`` cell of each medal's sprite index (``sprites``: name_id →
    spriteIndex) in a sheet of ``columns`` cells per row. Indexes whose cell lies outside the sheet are left out."""
    out = {}
    with Image.open(io.BytesIO(sheet)) as image:
        image.load()
        width, height = image.size
        for name_id, index in sorted(sprites.items()):
            x, y = (index % columns) * size, (index // columns) * size
            if index < 0 or x + size > width or y + size > height:
                continue
            buffer = io.BytesIO()
            image.crop((x, y, x + size, y + size)).save(buffer, "PNG")
            out[name_id] = buffer.getvalue()
    return out


def _describe(path: Path) -> tuple[int, str | None, int | None, int | None]:
    """(bytes, content type, width, height) of an image file."""
    data_size = path.stat().st_size
    try:
        with Image.open(path) as image:
            return data_size, Image.MIME.get(image.format or "", None), image.width, image.height
    except (UnidentifiedImageError, OSError):
        return data_size, None, None, None


def _row(wh: Warehouse, ref: ImageRef, status: str, path: Path | None) -> dict:
    row = {"family": ref.family, "asset_id": ref.asset_id, "version_id": ref.version_id, "role": ref.role,
           "source_url": ref.url, "local_path": None, "size_bytes": None, "content_type": None, "width": None,
           "height": None, "status": status}
    if path is not None and path.exists():
        size, content_type, width, height = _describe(path)
        row |= {"local_path": str(path.relative_to(wh.data_dir)), "size_bytes": size, "content_type": content_type,
                "width": width, "height": height}
    return row


def write_icons(wh: Warehouse, metadata: dict, landing: AssetLanding, sheets: list[ImageRef]) -> list[dict]:
    """Cut the icons of every landed sheet of ``sheets`` and write those whose bytes changed; returns their
    ``image_assets`` rows (family ``medal_icon``, asset_id = name_id, role = sheet size)."""
    sprites = {int(m["nameId"]): int(m["spriteIndex"]) for m in metadata.get("medals") or ()
               if m.get("nameId") is not None and m.get("spriteIndex") is not None}
    rows = []
    for sheet in sheets:
        data = landing.get(sheet.url)
        info = (metadata.get("sprites") or {}).get(sheet.role) or {}
        if data is None or not info.get("columns") or not info.get("size"):
            continue
        try:
            icons = cut_icons(data, int(info["columns"]), int(info["size"]), sprites)
        except (UnidentifiedImageError, OSError):
            continue
        for name_id, png in icons.items():
            path = icons_root(wh) / sheet.role / f"{name_id}.png"
            if not path.exists() or path.read_bytes() != png:
                write_bytes_atomic(path, png)
            rows.append(_row(wh, ImageRef("medal_icon", str(name_id), None, sheet.role, sheet.url), "landed", path))
    return rows


async def refresh_images(api: HaloApiClient, wh: Warehouse, medal_sizes: Iterable[str] = MEDAL_SIZES,
                         ugc_files: Iterable[str] = UGC_FILES, career_icons: Iterable[str] = CAREER_ICONS,
                         refetch: bool = False) -> tuple[pl.DataFrame, ImagesRun]:
    """Land every image not landed yet and cut the medal icons; returns the ``image_assets`` table (one row per
    image: :data:`halo_pipeline.tables.IMAGE_ASSETS_SCHEMA`) and what the run did. Failures are recorded in the
    table (status ``failed``) and retried by the next run; nothing raises for an API failure."""
    landing, run = asset_landing(wh), ImagesRun()
    metadata = await _json_file(api.medal_metadata, landing, MEDAL_METADATA_URL, run) or {}
    track = await _json_file(api.career_reward_track, landing, CAREER_TRACK_URL, run) or {}
    ugc = played_ugc(wh)
    missing = [r for r in ugc if wh.landing.get(UGC_LANDING + r[0], f"{r[1]}_{r[2]}") is None
               and wh.landing.absent_status(UGC_LANDING + r[0], f"{r[1]}_{r[2]}") is None]
    for kind, asset_id, version_id in missing:  # the names' bodies (ugc_names lands all but game variants)
        await land_ugc(api, wh.landing, kind, asset_id, version_id)
    run.ugc_lookups = len(missing)
    sheets = medal_sheet_refs(metadata, medal_sizes)
    refs = sheets + ugc_image_refs(wh, ugc, ugc_files) + career_icon_refs(track, career_icons)
    await land_images(api, landing, refs, run, refetch=refetch)
    rows = [_row(wh, ref, run.statuses.get(ref.url, "failed"),
                 landing.path(ref.url) if run.statuses.get(ref.url) == "landed" else None) for ref in refs]
    rows += write_icons(wh, metadata, landing, sheets)
    table = pl.DataFrame(rows, schema=IMAGE_ASSETS_SCHEMA) if rows else pl.DataFrame(schema=IMAGE_ASSETS_SCHEMA)
    return table.sort("family", "asset_id", "version_id", "role", nulls_last=True), run


# --------------------------------------------------------------------------------------------------- report


def data_uri(path: Path, max_width: int | None = None) -> str | None:
    """The image at ``path`` as a ``data:`` URI (PNG), scaled down to ``max_width`` pixels wide when wider; None
    when it cannot be read. The report embeds its images this way so it opens offline, from anywhere."""
    try:
        data = path.read_bytes()
        if max_width is not None:
            with Image.open(io.BytesIO(data)) as image:
                if image.width > max_width:
                    image.thumbnail((max_width, max_width * image.height // max(image.width, 1)))
                    buffer = io.BytesIO()
                    image.save(buffer, "PNG")
                    data = buffer.getvalue()
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME.get(image.format or "", "image/png")
    except (OSError, UnidentifiedImageError):
        return None
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def image_table(wh: Warehouse) -> pl.DataFrame | None:
    """The ``image_assets`` table, or ``None`` when images were never landed."""
    path = wh.reference_path("image_assets")
    return read_parquet(path) if path.exists() else None
