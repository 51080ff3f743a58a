"""End to end through the CLI entry points: emulator on the real recordings → players add → sync →
DuckDB catalog, then a second sync that changes nothing and asks no stats body again, then the plain
Dagster path (`dagster asset materialize`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from halo_pipeline_tests.conftest import OWNER_XUID, REPO
from halo_pipeline_tests.expected import owner_rows

pytestmark = pytest.mark.system  # real components or separate processes: the full tier

TABLES = ["match_facts", "match_participants", "medals", "personal_scores", "team_stats",
          "player_match_skill", "highlight_events", "xuid_aliases", "raw_matches", "match_history"]


def cli(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "halo_pipeline.cli", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"halo-pipeline {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def snapshot(catalog: Path) -> dict[str, list]:
    with duckdb.connect(str(catalog), read_only=True) as con:
        out = {}
        for t in TABLES:
            columns = [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall() if r[0] not in ("fetched_in_run",)]
            out[t] = con.execute(f"SELECT {', '.join(columns)} FROM {t} ORDER BY ALL").fetchall()
        return out


@pytest.mark.timeout(900)
def test_sync_recorded_owner_end_to_end(recorded_emulator, recorded_stats, reference_dir, data_env, tmp_path):
    env = {**os.environ, "HALO_REFERENCE_DIR": str(reference_dir)}

    assert "registered 2535445291321133" in cli("players", "add", str(OWNER_XUID), env=env).stdout
    bad = cli("players", "add", "12ab", env=env, check=False)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "invalid" in bad.stderr

    first = cli("sync", env=env)
    assert "FAILED" not in first.stdout
    catalog = data_env / "warehouse" / "halo.duckdb"
    expected = owner_rows(recorded_stats.values(), OWNER_XUID)
    assert len(expected) == 8

    with duckdb.connect(str(catalog), read_only=True) as con:
        facts = con.execute(
            "SELECT match_id, start_time, kills, deaths, assists, shots_fired, shots_hit, outcome "
            "FROM match_facts WHERE owner_xuid = ?", [OWNER_XUID]).fetchall()
        months = {r[0] for r in con.execute(
            "SELECT DISTINCT strftime(start_time, '%Y-%m') FROM match_facts").fetchall()}
        medal_rows = con.execute(
            "SELECT match_id, name_id, count FROM medals WHERE xuid = ? AND owner_xuid = ?",
            [OWNER_XUID, OWNER_XUID]).fetchall()
        events = con.execute("SELECT count(*) FROM highlight_events").fetchone()[0]
    assert months == {"2024-08", "2024-09", "2025-01"}
    assert len(facts) == 8 and {r[0] for r in facts} == set(expected)
    for match_id, start, kills, deaths, assists, fired, hit, outcome in facts:
        exp = expected[match_id]
        assert (kills, deaths, assists, fired, hit, outcome) == (
            exp["kills"], exp["deaths"], exp["assists"], exp["shots_fired"], exp["shots_hit"], exp["outcome"])
        assert start == exp["start_time"]
        assert {n: c for m, n, c in medal_rows if m == match_id} == exp["medals"]
    assert events == 640 + 6  # the oddball film and film/match_stats.json's
    assert "match_facts" in first.stdout and "2535445291321133" in first.stdout  # the summary

    before = snapshot(catalog)
    recorded_emulator.reset_counts()
    second = cli("sync", env=env)
    assert "FAILED" not in second.stdout
    counts = recorded_emulator.counts()
    assert counts["requests"].get("match_stats", 0) == 0, counts
    assert snapshot(catalog) == before

    # The plain Dagster path re-derives one partition (zero API calls) and changes nothing.
    recorded_emulator.reset_counts()
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "halo_pipeline.definitions",
         "--select", "match_facts", "--partition", f"2025-01-01|{OWNER_XUID}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sum(recorded_emulator.counts()["requests"].values()) == 0
    assert snapshot(catalog) == before

    stats = cli("stats", env=env)
    assert "match_facts" in stats.stdout and "2535445291321133" in stats.stdout
