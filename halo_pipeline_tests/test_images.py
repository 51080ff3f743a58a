"""Images cached locally: a sync with assets against the emulator (which makes the sprite sheets, thumbnails and
rank icons itself), icons cut from the sheets, a second sync that fetches none, the report embedding them."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
from pathlib import Path

import aiohttp
import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner
from PIL import Image
from spnkr.models.gamecms_hacs import CareerRewardTrack

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.cli import main
from halo_pipeline.emulator import images as emulated
from halo_pipeline.emulator import profiles
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.instance import ensure_home, ensure_registered
from halo_pipeline.runner import sync_players
from halo_pipeline.services import images
from halo_pipeline.services.analytics import report_path
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline.storage.warehouse import DEFAULT_REFERENCE_DIR, Warehouse
from halo_pipeline_tests.support import fast_defs

IMAGE_ROUTES = ("medal_sheet", "ugc_image", "career_icon", "maps", "mapModePairs", "playlists", "ugcGameVariants")


def pixels(data: bytes) -> tuple[tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
        return rgb.size, rgb.tobytes()


def cell(sheet: Image.Image, index: int, columns: int, size: int) -> tuple[tuple[int, int], bytes]:
    """The cell of sprite ``index``, computed here from the layout (not by the code under test)."""
    x, y = (index % columns) * size, (index // columns) * size
    rgb = sheet.crop((x, y, x + size, y + size))
    return rgb.size, rgb.tobytes()


def rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


@pytest.mark.slow
def test_sync_with_assets_lands_each_image_once_and_the_report_embeds_them(tmp_path, data_env, monkeypatch):
    world = SyntheticWorld(seed=8, players=1, months=1, matches_per_month=6)
    xuid = world.players[0].xuid
    monkeypatch.setenv("HALO_REFERENCE_DIR", str(DEFAULT_REFERENCE_DIR))
    with Emulator(synthetic=world) as emulator:
        monkeypatch.setenv("HALO_API_URL", emulator.url)
        with dg.DagsterInstance.from_config(str(ensure_home(Path(os.environ["DAGSTER_HOME"])))) as instance:
            ensure_registered(instance, [xuid])
            report = sync_players(fast_defs(requests_per_second=500), instance, HaloApiResource(),
                                  WarehouseResource(), log=lambda _: None, with_assets=True)
        assert report.ok, report.runs
        first = emulator.counts()["requests"]

        # A second sync with assets (the CLI flag) fetches no image and looks up no UGC body again.
        emulator.reset_counts()
        result = CliRunner().invoke(main, ["sync", "--with-assets"], catch_exceptions=False)
        assert result.exit_code == 0 and "images: ok" in result.output, result.output
        second = emulator.counts()["requests"]
    assert {r: first.get(r, 0) for r in ("medal_sheet", "career_icon")} == {"medal_sheet": 3, "career_icon": 272}
    assert first.get("ugc_image", 0) > 0
    assert {r: second.get(r, 0) for r in IMAGE_ROUTES} == dict.fromkeys(IMAGE_ROUTES, 0)

    wh = Warehouse(data_env)
    table = images.image_table(wh)
    assert set(table["status"]) == {"landed"}
    assert table.filter(pl.col("family") == "career_rank").height == 272
    facts = wh.read_table("match_facts")
    for kind, (asset, version) in [("maps", ("map_id", "map_version_id")),
                                   ("playlists", ("playlist_id", "playlist_version_id")),
                                   ("ugcGameVariants", ("game_variant_id", "game_variant_version_id"))]:
        played = set(facts.filter(pl.col(asset).is_not_null()).select(asset, version).unique().rows())
        for role in ("thumbnail", "hero"):
            landed = set(table.filter((pl.col("family") == kind) & (pl.col("role") == role))
                         .select("asset_id", "version_id").rows())
            assert landed == played, (kind, role)

    # Icons: the icon of a name_id is the sheet's cell at its sprite index (and that cell is the index's colour).
    metadata = world.medal_metadata()
    for size_name, sprite in metadata["sprites"].items():
        sheet = rgb(wh.data_dir.joinpath(table.filter((pl.col("family") == "medal_sheet")
                                                      & (pl.col("role") == size_name))["local_path"][0]).read_bytes())
        icons = table.filter((pl.col("family") == "medal_icon") & (pl.col("role") == size_name))
        assert icons.height == len(metadata["medals"])
        paths = dict(icons.select("asset_id", "local_path").rows())
        for medal in metadata["medals"]:
            icon = (wh.data_dir / paths[str(medal["nameId"])]).read_bytes()
            assert pixels(icon) == cell(sheet, medal["spriteIndex"], sprite["columns"], sprite["size"])
            with Image.open(io.BytesIO(icon)) as image:
                middle = sprite["size"] // 2
                assert image.convert("RGB").getpixel((middle, middle)) == emulated.cell_color(medal["spriteIndex"])

    # The report shows every medal of the player with its icon, and the maps' thumbnails, embedded.
    html = report_path(wh, xuid).read_text()
    medals = wh.read_table("medals").filter(pl.col("xuid") == xuid).group_by("name_id").agg(pl.col("count").sum())
    small = dict(table.filter((pl.col("family") == "medal_icon") & (pl.col("role") == "small"))
                 .select("asset_id", "local_path").rows())
    for name_id, count in medals.iter_rows():
        row = re.search(rf"<tr data-name-id='{name_id}'>(.*?)</tr>", html)
        assert row, f"medal {name_id} missing from the report"
        src = re.search(r"src='data:image/png;base64,([^']+)'", row.group(1))
        assert src and base64.b64decode(src.group(1)) == (wh.data_dir / small[str(name_id)]).read_bytes()
        assert f"<td>{count}</td>" in row.group(1)
    for map_id in set(facts["map_id"].drop_nulls()):
        row = re.search(rf"<tr data-map-id='{map_id}'>(.*?)</tr>", html)
        assert row and "class='map-thumbnail'" in row.group(1) and "src='data:image/png;base64," in row.group(1)


def test_a_404_is_remembered_and_a_5xx_retried(tmp_path):
    """Without the network: a stub client answering 404 then 503."""
    landing = images.AssetLanding(tmp_path / "assets")
    missing = images.ImageRef("maps", "a", "v", "thumbnail", "https://blobs-infiniteugc.svc.halowaypoint.com/x/a.png")
    flaky = images.ImageRef("maps", "b", "v", "thumbnail", "https://blobs-infiniteugc.svc.halowaypoint.com/x/b.png")

    class Stub:
        calls: list[str] = []  # noqa: RUF012 - one stub per test

        async def download(self, url: str):
            self.calls.append(url)
            status = 404 if url == missing.url else 503
            raise aiohttp.ClientResponseError(None, (), status=status)  # type: ignore[arg-type]

    stub = Stub()
    for _ in range(2):
        run = images.ImagesRun()
        asyncio.run(images.land_images(stub, landing, [missing, flaky], run))  # type: ignore[arg-type]
        assert run.statuses == {missing.url: "not_found", flaky.url: "failed"}
    assert stub.calls == [missing.url, flaky.url, flaky.url]  # the 404 was asked once, the 503 every run
    assert landing.absent_status(missing.url) == 404 and landing.absent_status(flaky.url) is None


def test_icons_of_the_recorded_medal_metadata(halo_api_dir):
    """The real metadata's layout (16 columns of 72 px, sprite indexes up to 168) cut from the sheet the emulator
    makes for it: every medal's icon is its index's cell."""
    metadata = json.loads((halo_api_dir / "responses" / "get_medal_metadata.json").read_bytes())
    sprite = metadata["sprites"]["small"]
    sheet = emulated.medal_sheet(metadata, sprite["path"])
    assert sheet is not None and emulated.medal_sheet(metadata, "medals/images/nope.png") is None
    icons = images.cut_icons(sheet, sprite["columns"], sprite["size"],
                             {m["nameId"]: m["spriteIndex"] for m in metadata["medals"]})
    sheet_image = rgb(sheet)
    assert len(icons) == len(metadata["medals"]) == 151
    for medal in metadata["medals"]:
        (size, data) = pixels(icons[medal["nameId"]])
        assert size == (72, 72) and (size, data) == cell(sheet_image, medal["spriteIndex"], 16, 72)
    beyond = images.cut_icons(sheet, 16, 72, {1: 10_000})  # an index past the sheet: no icon, no error
    assert beyond == {}
    assert len(CareerRewardTrack(**profiles.career_track_body()).ranks) == 272  # spnkr parses the emulated track
