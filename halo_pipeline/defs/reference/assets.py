"""Reference assets (unpartitioned): playlists, game modes, mode categories and medal definitions."""


from pathlib import Path

import dagster as dg
import orjson
import polars as pl

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.common import API_POOL, frame_metadata
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.transforms import reference as ref

REFERENCE_GROUP = "reference"
PLAYLIST_MODES_FILE = "Playlist_modes_translations.json"


def _required(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise dg.Failure(f"{path}: reference file not found (set HALO_REFERENCE_DIR or the warehouse "
                         "resource's reference_dir to a folder holding it)")
    return path


@dg.multi_asset(
    group_name=REFERENCE_GROUP,
    specs=[
        dg.AssetSpec("playlist_translations", kinds={"parquet"}, description=(
            "Playlists: uuid (the playlist asset id), en, fr. Source: " + PLAYLIST_MODES_FILE)),
        dg.AssetSpec("game_mode_translations", kinds={"parquet"}, description=(
            "Game modes (map-mode pair names): en, fr, category. Source: " + PLAYLIST_MODES_FILE)),
        dg.AssetSpec("mode_categories", kinds={"parquet"}, description=(
            "Mode categories and the group each belongs to. Source: " + PLAYLIST_MODES_FILE)),
    ],
)
def playlist_modes(warehouse: WarehouseResource):
    """Playlists, game modes and mode categories from ``Playlist_modes_translations.json`` in the reference
    folder. Rows that fail validation are rejected (counted and listed in metadata), the rest kept; a
    malformed file fails with one line naming the file and the field. Idempotent: re-running replaces."""
    path = _required(warehouse.reference_path(), PLAYLIST_MODES_FILE)
    try:
        data, rejected = ref.load_playlist_modes(path)
    except ref.ReferenceFileError as exc:
        raise dg.Failure(str(exc)) from None
    by_section = {"playlists": [], "modes": [], "categories": []}
    for row in rejected:
        section = str(row.get("field", "")).split("[")[0].split(".")[0]  # e.g. "modes[3].category" → "modes"
        by_section.setdefault(section, []).append(row)
    yield dg.MaterializeResult(asset_key="playlist_translations", **_result_kwargs(
        warehouse, "playlist_translations", ref.playlists_frame(data), by_section["playlists"]))
    yield dg.MaterializeResult(asset_key="game_mode_translations", **_result_kwargs(
        warehouse, "game_mode_translations", ref.game_modes_frame(data), by_section["modes"]))
    yield dg.MaterializeResult(asset_key="mode_categories", **_result_kwargs(
        warehouse, "mode_categories", ref.mode_categories_frame(data), by_section["categories"]))


def _result_kwargs(warehouse: WarehouseResource, table: str, df: pl.DataFrame, rejected: list[dict]) -> dict:
    warehouse.warehouse().write_reference(table, df)
    metadata = frame_metadata(table, df) | {"rejected_rows": len(rejected)}
    if rejected:
        metadata["rejected"] = dg.MetadataValue.json(rejected[:100])
    return {"metadata": metadata}


class MedalDefinitionsConfig(dg.Config):
    """``from_api``: also read the API's medal metadata (names, descriptions, type, difficulty)."""

    from_api: bool = True


@dg.asset(group_name=REFERENCE_GROUP, pool=API_POOL, kinds={"api", "parquet"})
def medal_definitions(config: MedalDefinitionsConfig, warehouse: WarehouseResource,
                      halo_api: HaloApiResource) -> dg.MaterializeResult:
    """Medal definitions by name_id (Int64): name_en, name_fr, description, type, difficulty, sprite_index.
    Sources: ``medals/medals_en.json`` and ``medals/medals_fr.json`` in the reference folder (optional) and
    the API's medal metadata (gamecms-hacs ``/hi/Waypoint/file/medals/metadata.json``)."""
    folder = warehouse.reference_path()
    rejected: list[dict] = []
    try:
        names = {lang: ref.load_medal_names(p, rejected) if (p := folder / f"medals/medals_{lang}.json").is_file()
                 else {} for lang in ("en", "fr")}
    except ref.ReferenceFileError as exc:
        raise dg.Failure(str(exc)) from None

    async def fetch() -> bytes:
        async with halo_api.client() as api:
            return await api.medal_metadata()

    metadata = orjson.loads(run_api(fetch())) if config.from_api else None
    definitions, rejected_definitions = ref.medal_definitions(names["en"], names["fr"], metadata)
    return dg.MaterializeResult(**_result_kwargs(
        warehouse, "medal_definitions", ref.medal_definitions_frame(definitions), rejected + rejected_definitions))
