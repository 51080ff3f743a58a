"""Shared fixtures. Real recordings are read from ``../shared`` (beside the repository); tests that need
them skip with the reason when that folder is absent — they never pass vacuously."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from halo_pipeline.testing import stop_process_group  # noqa: F401 - the tests import it from here

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HALO_SHARED_DIR", REPO.parent / "shared"))
OWNER_XUID = 2535445291321133


#: Fixtures that read ../shared: a test using one is marked ``needs_shared``.
SHARED_FIXTURES = {"shared_dir", "halo_api_dir", "reference_dir", "recorded_stats", "recorded_emulator"}


@pytest.fixture(autouse=True)
def _sigterm_handled_as_before() -> Iterator[None]:
    """Each test ends with SIGTERM handled as before it. A test running Dagster in this process (``materialize``)
    leaves SIGTERM pointed at SIGINT's handler; where SIGINT is ignored (pytest started in the background, as CI
    may) SIGTERM was then ignored by this process and every process later tests start (emulators, webservers,
    daemons), which then outlived their stop. The product's own runs restore it (``runner.execute``)."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    if before is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, before)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that read ../shared (``-m "not needs_shared"`` runs the rest)."""
    for item in items:
        if SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.needs_shared)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared``; skips the test when it is missing."""
    if not (SHARED / "halo_api" / "responses").is_dir():
        pytest.skip(f"recorded API responses not found at {SHARED}/halo_api (the ../shared folder)")
    return SHARED


@pytest.fixture(scope="session")
def halo_api_dir(shared_dir: Path) -> Path:
    return shared_dir / "halo_api"


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"


def stats_files(halo_api: Path) -> list[Path]:
    """Every recorded match-stats body: responses/get_match_stats*.json and film/match_stats.json."""
    return [*sorted((halo_api / "responses").glob("get_match_stats*.json")), halo_api / "film" / "match_stats.json"]


@pytest.fixture(scope="session")
def recorded_stats(halo_api_dir: Path) -> dict[str, dict]:
    """Recorded match-stats bodies by file name."""
    return {p.name if p.parent.name == "responses" else f"film/{p.name}": json.loads(p.read_bytes())
            for p in stats_files(halo_api_dir)}


@pytest.fixture()
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``HALO_DATA_DIR`` and ``DAGSTER_HOME`` under ``tmp_path``; returns the data dir."""
    data = tmp_path / "data"
    home = tmp_path / "dagster_home"
    home.mkdir(parents=True)
    monkeypatch.setenv("HALO_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name in ("HALO_SPARTAN_TOKEN", "HALO_CLEARANCE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return data


@pytest.fixture()
def recorded_emulator(halo_api_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The emulator replaying ``../shared/halo_api``, with ``HALO_API_URL`` pointing at it."""
    from halo_pipeline.emulator.server import Emulator

    with Emulator(recordings=halo_api_dir) as emulator:
        monkeypatch.setenv("HALO_API_URL", emulator.url)
        yield emulator


def start_daemon_with_sensor(env: dict, sensor: str = "delta_sync_sensor"):
    """Start ``sensor`` in the instance at ``env["DAGSTER_HOME"]``, then the real ``dagster-daemon`` in its own
    process group (stop it with :func:`stop_process_group`); returns the daemon's ``Popen``."""
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    started = subprocess.run([str(bin_dir / "dagster"), "sensor", "start", sensor, "-w", "workspace.yaml"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    return subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
