"""Reference data: translations and medal names load, validate row by row, and fail on one line when broken."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from halo_pipeline.transforms import reference as ref

PLAYLIST_MODES = "Playlist_modes_translations.json"


@pytest.fixture(scope="module")
def raw_playlist_modes(reference_dir: Path) -> dict:
    return json.loads((reference_dir / PLAYLIST_MODES).read_bytes())


@pytest.fixture(scope="module")
def medal_metadata(halo_api_dir: Path) -> dict:
    return json.loads((halo_api_dir / "responses" / "get_medal_metadata.json").read_bytes())


def test_playlist_modes_load(reference_dir: Path, raw_playlist_modes: dict) -> None:
    data, rejected = ref.load_playlist_modes(reference_dir / PLAYLIST_MODES)
    assert rejected == []
    assert (len(data.playlists), len(data.modes), len(data.categories)) == (14, 313, 16)
    assert [p.en for p in data.playlists] == [p["en"] for p in raw_playlist_modes["playlists"]]
    assert data.categories == raw_playlist_modes["categories"]
    # every mode's category is a key of `categories` (category → parent group)
    assert {m.category for m in data.modes} <= set(data.categories)

    playlists = ref.playlists_frame(data)
    assert dict(playlists.schema) == ref.PLAYLISTS_SCHEMA and playlists.height == 14
    assert "edfef3ac-9cbe-4fa2-b949-8f29deafd483" in playlists["playlist_id"].to_list()  # Ranked Arena
    modes = ref.game_modes_frame(data)
    assert dict(modes.schema) == ref.GAME_MODES_SCHEMA and modes.height == 313
    categories = ref.mode_categories_frame(data)
    assert dict(categories.schema) == ref.MODE_CATEGORIES_SCHEMA and categories.height == 16
    assert categories.filter(pl.col("category") == "BTB")["parent"].to_list() == [
        raw_playlist_modes["categories"]["BTB"]]


def test_medal_names_load(reference_dir: Path) -> None:
    for lang in ("en", "fr"):
        path = reference_dir / "medals" / f"medals_{lang}.json"
        raw = json.loads(path.read_bytes())
        names = ref.load_medal_names(path)
        assert len(names) == len(raw)
        assert names == {int(k): v for k, v in raw.items()}


def test_medal_definitions_merge_api_metadata(reference_dir: Path, medal_metadata: dict) -> None:
    en = ref.load_medal_names(reference_dir / "medals" / "medals_en.json")
    fr = ref.load_medal_names(reference_dir / "medals" / "medals_fr.json")
    definitions, rejected = ref.medal_definitions(en, fr, medal_metadata)
    assert rejected == []
    ids = set(en) | set(fr) | {m["nameId"] for m in medal_metadata["medals"]}
    assert [d.name_id for d in definitions] == sorted(ids)
    by_id = {d.name_id: d for d in definitions}
    for medal in medal_metadata["medals"]:
        d = by_id[medal["nameId"]]
        assert d.description == medal["description"]["value"]
        assert d.type == medal_metadata["types"][medal["typeIndex"]]
        assert d.difficulty == medal_metadata["difficulties"][medal["difficultyIndex"]]
        assert d.sprite_index == medal["spriteIndex"]
        assert d.name_en == en.get(medal["nameId"], medal["name"]["value"])
    for name_id in set(en) - {m["nameId"] for m in medal_metadata["medals"]}:  # names only: no metadata
        assert by_id[name_id].name_fr == fr[name_id] and by_id[name_id].description is None
    frame = ref.medal_definitions_frame(definitions)
    assert dict(frame.schema) == ref.MEDAL_DEFINITIONS_SCHEMA and frame.height == len(ids)
    # without metadata: names only
    names_only, _ = ref.medal_definitions(en, fr, None)
    assert len(names_only) == len(set(en) | set(fr))


def test_bad_metadata_medal_is_rejected(medal_metadata: dict) -> None:
    broken = json.loads(json.dumps(medal_metadata))
    del broken["medals"][5]["nameId"]
    broken["medals"][7]["typeIndex"] = 99  # out of range → type unknown, medal kept
    definitions, rejected = ref.medal_definitions({}, {}, broken)
    assert len(definitions) == len(medal_metadata["medals"]) - 1
    assert [r["field"] for r in rejected] == ["medals[5].nameId"]
    assert {d.name_id: d.type for d in definitions}[medal_metadata["medals"][7]["nameId"]] is None
    with pytest.raises(ref.ReferenceFileError, match=r"^medal metadata: medals: "):
        ref.medal_definitions({}, {}, {"types": []})


def test_malformed_json_gives_one_line_error(tmp_path: Path, reference_dir: Path) -> None:
    broken = tmp_path / PLAYLIST_MODES
    broken.write_bytes((reference_dir / PLAYLIST_MODES).read_bytes()[:500])
    with pytest.raises(ref.ReferenceFileError) as info:
        ref.load_playlist_modes(broken)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{PLAYLIST_MODES}: ") and "line" in message
    names = tmp_path / "medals_fr.json"
    names.write_text('{"17866865": "Affection",')
    with pytest.raises(ref.ReferenceFileError, match=r"^medals_fr\.json: "):
        ref.load_medal_names(names)


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d.pop("modes"), f"{PLAYLIST_MODES}: modes: Field required"),
    (lambda d: d.update(playlists={"a": 1}), f"{PLAYLIST_MODES}: playlists: expected a list, got dict"),
    (lambda d: d.update(categories=[]), f"{PLAYLIST_MODES}: categories: expected an object, got list"),
])
def test_wrong_structure_names_file_and_field(tmp_path: Path, raw_playlist_modes: dict, mutate, expected) -> None:
    doc = json.loads(json.dumps(raw_playlist_modes))
    mutate(doc)
    path = tmp_path / PLAYLIST_MODES
    path.write_text(json.dumps(doc))
    with pytest.raises(ref.ReferenceFileError) as info:
        ref.load_playlist_modes(path)
    assert str(info.value) == expected


def test_top_level_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "medals_en.json"
    path.write_text("[1, 2]")
    with pytest.raises(ref.ReferenceFileError, match=r"^medals_en\.json: .*expected an object"):
        ref.load_medal_names(path)
    with pytest.raises(ref.ReferenceFileError, match=r"^missing\.json: cannot read"):
        ref.load_medal_names(tmp_path / "missing.json")


def test_row_missing_a_field_is_rejected_others_load(tmp_path: Path, raw_playlist_modes: dict) -> None:
    doc = json.loads(json.dumps(raw_playlist_modes))
    del doc["modes"][3]["category"]
    doc["playlists"][2]["uuid"] = "not-a-uuid"
    doc["categories"]["Arena"] = 7
    path = tmp_path / PLAYLIST_MODES
    path.write_text(json.dumps(doc))
    data, rejected = ref.load_playlist_modes(path)
    assert (len(data.playlists), len(data.modes), len(data.categories)) == (13, 312, 15)
    reasons = {r["field"]: r["reason"] for r in rejected}
    assert reasons["modes[3].category"] == "modes[3].category: Field required"
    assert reasons["playlists[2].uuid"].startswith("playlists[2].uuid: ")
    assert "categories.Arena" in reasons
    assert all(r["file"] == PLAYLIST_MODES and "\n" not in r["reason"] for r in rejected)
    assert next(r for r in rejected if r["field"] == "modes[3].category")["row"] == doc["modes"][3]


def test_bad_medal_name_entry(tmp_path: Path) -> None:
    path = tmp_path / "medals_en.json"
    path.write_text(json.dumps({"17866865": "The Sickness", "abc": "Nope", "20397755": ""}))
    with pytest.raises(ref.ReferenceFileError, match=r"^medals_en\.json: abc: name_id is not an integer$"):
        ref.load_medal_names(path)
    rejected: list[dict] = []
    assert ref.load_medal_names(path, rejected) == {17866865: "The Sickness"}
    assert [r["field"] for r in rejected] == ["abc", "20397755"]
