"""The bad-input table: each bad input ends with one line on stderr naming what is wrong, a non-zero exit,
and nothing written half-way. CLI cases run in-process (click's runner) against a real emulator."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.cli import main
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.ids import InvalidInput
from halo_pipeline.partitions import PLAYERS, split_key
from halo_pipeline.storage.resource import WarehouseResource
from halo_pipeline_tests.support import asset


@pytest.fixture()
def synthetic_emulator(monkeypatch):
    world = SyntheticWorld(seed=3, players=1, months=1, matches_per_month=5)
    with Emulator(synthetic=world) as emu:
        monkeypatch.setenv("HALO_API_URL", emu.url)
        yield emu, world


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def files_under(path) -> list:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def assert_one_line_error(code: int, stderr: str, *words: str) -> None:
    assert code != 0, stderr
    assert stderr.strip().count("\n") == 0 and stderr.startswith("error:"), stderr
    for word in words:
        assert word in stderr, (word, stderr)


def registered(data_env) -> list[str]:
    return dg.DagsterInstance.get().get_dynamic_partitions(PLAYERS)


@pytest.mark.parametrize("value, words", [
    ("12ab", ["invalid gamertag", "12ab"]),
    ("123", ["invalid xuid"]),
    ("xuid(99)", ["invalid xuid"]),
    ("../etc", ["invalid gamertag", "../etc"]),
    ("a/b", ["invalid gamertag"]),
    ("a|b", ["invalid gamertag"]),
    ("2025-01-01|2535445291321133", ["invalid gamertag"]),
    ("  ", ["invalid gamertag"]),
    ("No Such Player", ["unknown gamertag", "No Such Player"]),
])
def test_players_add_bad_names(value, words, data_env, synthetic_emulator):
    code, _, err = run("players", "add", value)
    assert_one_line_error(code, err, *words)
    assert registered(data_env) == [] and files_under(data_env / "raw") == []


@pytest.mark.parametrize("args, words", [
    (["players", "remove", "../2535445291321133"], ["invalid xuid"]),
    (["players", "remove", "2535445291321133 1"], ["invalid xuid"]),
    (["sync", "--player", "2535445291321133|x"], ["invalid xuid"]),
    (["sync", "--player", "2535445291321133"], ["not registered"]),
])
def test_cli_bad_keys(args, words, data_env, synthetic_emulator):
    code, _, err = run(*args)
    assert_one_line_error(code, err, *words)
    assert files_under(data_env / "warehouse") == [] and files_under(data_env / "raw") == []


@pytest.mark.parametrize("key, words", [
    ("2025-01-01|../2535445291321133", "invalid xuid"),
    ("2025-01-01|2535445291321133|x", "invalid partition key"),
    ("2025-01-01/2535445291321133", "invalid partition key"),
    ("2025-01-01|2535 445291321133", "invalid xuid"),
    ("2019-01-01|2535445291321133", "before the first partition month"),
    ("2025-13-01|2535445291321133", "invalid month"),
])
def test_partition_keys(key, words):
    with pytest.raises(InvalidInput, match=words) as info:
        split_key(key)
    assert "\n" not in str(info.value)


def test_month_outside_the_partitions_writes_nothing(tmp_path, synthetic_emulator):
    emu, world = synthetic_emulator
    xuid = world.players[0].xuid
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
    resources = {"halo_api": HaloApiResource(api_url=emu.url),
                 "warehouse": WarehouseResource(data_dir=str(tmp_path / "data"))}
    with pytest.raises(dg.DagsterUnknownPartitionError, match="2019-01-01"):
        dg.materialize([asset("match_history"), asset("raw_matches")], instance=instance, resources=resources,
                       partition_key=f"2019-01-01|{xuid}")
    # A player key that is not an xuid (registered behind the CLI's back) fails before any write.
    instance.add_dynamic_partitions(PLAYERS, ["../etc"])
    result = dg.materialize([asset("match_history"), asset("raw_matches")], instance=instance, resources=resources,
                            partition_key="2025-06-01|../etc", raise_on_error=False)
    assert not result.success
    error = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    cause = (error.cause or error).message.strip()  # Dagster wraps the step's exception
    assert "invalid xuid '../etc'" in cause and "\n" not in cause, cause
    assert files_under(tmp_path / "data") == []


def test_missing_live_tokens_name_the_variable(data_env, monkeypatch):
    monkeypatch.delenv("HALO_API_URL", raising=False)
    code, _, err = run("players", "add", "2535445291321133")
    assert_one_line_error(code, err, "HALO_SPARTAN_TOKEN")
    monkeypatch.setenv("HALO_SPARTAN_TOKEN", "x")
    code, _, err = run("players", "add", "2535445291321133")
    assert_one_line_error(code, err, "HALO_CLEARANCE_TOKEN")
    assert registered(data_env) == [] and files_under(data_env / "raw") == []


def test_unwritable_data_dir(tmp_path, monkeypatch, synthetic_emulator):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HALO_DATA_DIR", str(blocker / "data"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    code, _, err = run("players", "add", str(synthetic_emulator[1].players[0].xuid))
    assert_one_line_error(code, err, "HALO_DATA_DIR", "not writable", str(blocker))
    assert blocker.read_text() == "not a folder"


def test_malformed_and_schema_violating_reference_json(tmp_path, synthetic_emulator):
    emu, _ = synthetic_emulator
    folder = tmp_path / "ref"
    folder.mkdir()
    cases = {
        '{"playlists": [], "modes": [}': "invalid JSON",
        '["not", "an", "object"]': "expected an object",
        '{"playlists": 3, "modes": [], "categories": []}': "playlists",
    }
    for text, words in cases.items():
        (folder / "Playlist_modes_translations.json").write_text(text)
        resources = {"halo_api": HaloApiResource(api_url=emu.url),
                     "warehouse": WarehouseResource(data_dir=str(tmp_path / "data"), reference_dir=str(folder))}
        result = dg.materialize([asset("playlist_translations")], resources=resources, raise_on_error=False)
        assert not result.success
        message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message.strip()
        assert "Playlist_modes_translations.json" in message and words in message and "\n" not in message, message
        assert files_under(tmp_path / "data") == []


def test_corrupt_recording_stops_the_emulator_start(halo_api_dir, tmp_path):
    import shutil

    copy = tmp_path / "recordings"
    shutil.copytree(halo_api_dir / "responses", copy / "responses")
    (copy / "responses" / "get_match_stats_ctf.json").write_text('{"MatchId": "x", "MatchInfo": {')
    code, _, err = run("emulator", "--recordings", str(copy), "--port", "0")
    assert_one_line_error(code, err, "get_match_stats_ctf.json", "corrupt recording")


def test_bad_fault_spec_stops_the_emulator_start(halo_api_dir):
    code, _, err = run("emulator", "--recordings", str(halo_api_dir), "--faults", "5xx:rate=7", "--port", "0")
    assert_one_line_error(code, err, "5xx:rate=7", "rate")
