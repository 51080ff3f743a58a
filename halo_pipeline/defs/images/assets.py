"""Images cached locally (LevelUp's ``--with-assets``): one unpartitioned asset, off the sync by default —
``halo-pipeline sync --with-assets`` (or ``HALO_WITH_ASSETS=1``), the demo, or ``images_job`` from the UI."""

import dagster as dg
from pydantic import Field

from halo_pipeline.api.client import run_api
from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.defs.common import API_POOL, frame_metadata
from halo_pipeline.services import images
from halo_pipeline.storage.resource import WarehouseResource

IMAGES_GROUP = "images"


class ImageAssetsConfig(dg.Config):
    """What is landed: ``medal_sizes`` (sprite sheets: small 72 px, medium 128, extra-large 256 cells),
    ``ugc_files`` (the UGC files listed in ``FileRelativePaths``), ``career_icons`` (fields of each career rank:
    RankIcon, RankLargeIcon, RankAdornmentIcon); ``refetch``: download the images again."""

    medal_sizes: list[str] = Field(default_factory=lambda: list(images.MEDAL_SIZES))
    ugc_files: list[str] = Field(default_factory=lambda: list(images.UGC_FILES))
    career_icons: list[str] = Field(default_factory=lambda: list(images.CAREER_ICONS))
    refetch: bool = False


@dg.asset(group_name=IMAGES_GROUP, pool=API_POOL, kinds={"api", "parquet"}, deps=["match_facts"])
def image_assets(context: dg.AssetExecutionContext, config: ImageAssetsConfig, halo_api: HaloApiResource,
                 warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Images cached locally, one row per image: family (medal_sheet | medal_icon | maps | mapModePairs | playlists
    | ugcGameVariants | career_rank), asset_id (medal name_id, sheet size, UGC asset id, rank), version_id (UGC),
    role (sheet size, thumbnail | hero, icon field), source_url, local_path (relative to the data dir), size_bytes,
    content_type, width, height (px), status (landed | not_found | failed).

    Sources: the medal metadata's sprite sheets (gamecms-hacs ``/hi/Waypoint/file/{sprites.<size>.path}``), cut into
    one icon per medal name_id at its sprite index (``warehouse/images/medals/<size>/<name_id>.png``); the
    ``Files.Prefix`` + ``FileRelativePaths`` images of every map, map-mode pair, playlist and game variant version
    in match_facts (discovery-infiniteugc bodies, blob host); the career rank icons of gamecms-hacs
    ``careerRank1.json`` (``/hi/images/file/{path}``). Each image is downloaded once, kept under ``raw/assets/``;
    a 404 is remembered. Written to ``warehouse/reference/image_assets.parquet``."""
    wh = warehouse.warehouse()

    async def go():
        async with halo_api.client() as api:
            return await images.refresh_images(api, wh, config.medal_sizes, config.ugc_files, config.career_icons,
                                               config.refetch), api.stats

    (table, run), request_stats = run_api(go())
    wh.write_reference("image_assets", table)
    by_status = dict(table.group_by("status").len().iter_rows()) if table.height else {}
    context.log.info(f"image_assets: {table.height} images, {sum(run.fetched.values())} downloaded, "
                     f"{by_status.get('not_found', 0)} not found, {by_status.get('failed', 0)} failed")
    metadata = frame_metadata("image_assets", table) | {
        "images_downloaded": sum(run.fetched.values()),
        **{f"downloaded/{family}": n for family, n in sorted(run.fetched.items())},
        **{f"status/{status}": n for status, n in sorted(by_status.items())},
        "ugc_lookups": run.ugc_lookups,
        "api_requests": request_stats.sent,
    }
    if run.errors:
        metadata["errors"] = dg.MetadataValue.md("\n".join(f"- {u}: {e}" for u, e in list(run.errors.items())[:30]))
    return dg.MaterializeResult(metadata=metadata)


images_job = dg.define_asset_job(
    "images_job", selection=dg.AssetSelection.assets(image_assets),
    description="Land the images not landed yet (medal sprite sheets and icons, UGC thumbnails, career rank "
    "icons) and refresh the image_assets table.",
)
