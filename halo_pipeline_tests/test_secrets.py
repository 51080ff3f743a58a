"""Secrets: a live-mode sync (tokens from the environment) against the emulator; the tokens reach the API
and appear nowhere else — Dagster's event log and run storage (DAGSTER_HOME), run config, metadata, the
console output, the warehouse and raw landing. The emulator binds to 127.0.0.1 only."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import polars as pl
import pytest

from halo_pipeline.emulator.server import FAULTS_KEY, Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline_tests.conftest import REPO

pytestmark = pytest.mark.system  # real components or separate processes: the full tier

SPARTAN = "SPARTAN-SECRET-7f3a9c1e5b"
CLEARANCE = "CLEARANCE-SECRET-2d8e4b6a0f"


def cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "halo_pipeline.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def readable_text(path) -> bytes:
    """The bytes of a file as a reader would see them: gzip and Parquet decompressed."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if path.suffix == ".parquet":
        df = pl.read_parquet(path)
        return str(df.rows()).encode() + str(df.columns).encode()
    return data


@pytest.mark.timeout(300)
def test_tokens_reach_the_api_and_nowhere_else(tmp_path):
    world = SyntheticWorld(seed=21, players=1, months=2, matches_per_month=10)
    xuid = world.players[0].xuid
    # The 401 fault with a huge lifetime only serves to let the emulator remember (hashes of) the tokens seen.
    with Emulator(synthetic=world, faults="401:after=1000000") as emu:
        assert emu.host == "127.0.0.1" and emu._runner.addresses[0][0] == "127.0.0.1"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HALO_", "DAGSTER_"))}
        env |= {"HALO_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path / "home"),
                "HALO_API_URL": emu.url, "HALO_SPARTAN_TOKEN": SPARTAN, "HALO_CLEARANCE_TOKEN": CLEARANCE}
        added = cli("players", "add", str(xuid), env=env)
        assert added.returncode == 0, added.stderr
        synced = cli("sync", env=env)
        assert synced.returncode == 0, synced.stderr[-2000:]
        assert emu.app[FAULTS_KEY].saw_token(SPARTAN)  # the resource did send the token
        assert emu.counts()["requests"]["match_stats"] == len(world.match_ids(xuid))

    scanned = 0
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        text = readable_text(path)
        scanned += 1
        for secret in (SPARTAN, CLEARANCE):
            assert secret.encode() not in text, f"{secret} found in {path}"
    assert scanned > 50  # event log (SQLite), run storage, compute logs, Parquet, raw landing
    assert any(p.suffix == ".db" for p in (tmp_path / "home").rglob("*"))
    for output in (added.stdout, added.stderr, synced.stdout, synced.stderr):
        assert SPARTAN not in output and CLEARANCE not in output
    assert "match_facts" in synced.stdout


def test_serve_binds_loopback_only():
    import inspect

    from halo_pipeline.emulator import server

    assert inspect.signature(server.Emulator).parameters["host"].default == "127.0.0.1"
    assert "host" not in inspect.signature(server.serve).parameters  # the CLI cannot bind elsewhere
