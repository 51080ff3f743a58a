"""The Dagster instance on PostgreSQL, configured by ``deploy/dagster.yaml`` as shipped (credentials from the
environment), with the real ``dagster-daemon``: the delta-sync sensor requests a run per synthetic player, the
run queue runs them at the same time, and the ``halo_api`` pool (limit 1) lets one API-calling step run at a
time across both runs.

The PostgreSQL server is real and started here (:func:`halo_pipeline.testing.postgres_server`).
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from halo_pipeline import testing
from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.partitions import PLAYERS
from halo_pipeline.storage.warehouse import DEFAULT_REFERENCE_DIR, Warehouse
from halo_pipeline.testing import Unavailable, postgres_binaries
from halo_pipeline_tests.conftest import start_daemon_with_sensor, stop_process_group

pytestmark = pytest.mark.system  # real components or separate processes: the full tier

REPO = Path(__file__).resolve().parents[1]
API_POOL = "halo_api"


@contextmanager
def postgres_server() -> Iterator[dict[str, str]]:
    """:func:`halo_pipeline.testing.postgres_server`, or a skip with the reason when it cannot run here."""
    try:
        postgres_binaries()
    except Unavailable as exc:
        pytest.skip(str(exc))
    with testing.postgres_server() as env:
        yield env


def _api_steps() -> set[str]:
    """Step keys of sync_job that are in the ``halo_api`` pool."""
    from halo_pipeline.definitions import defs

    job = defs().resolve_job_def("sync_job")
    return {name for name, node in job.graph.node_dict.items() if node.definition.pool == API_POOL}


@pytest.mark.timeout(400)
def test_daemon_on_postgres_runs_two_syncs_at_once_under_the_pool(tmp_path, monkeypatch):
    # Enough matches and latency that each run's API steps last seconds: two runs started by one tick contend.
    world = SyntheticWorld(seed=31, players=2, months=1, matches_per_month=80)
    xuids = [p.xuid for p in world.players]
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path / "data"
    with postgres_server() as pg, Emulator(synthetic=world, latency_ms=250) as emulator:
        for name, value in pg.items():
            monkeypatch.setenv(name, value)
        env = {**os.environ, **pg, "DAGSTER_HOME": str(home), "HALO_API_URL": emulator.url,
               "HALO_DATA_DIR": str(data), "HALO_REFERENCE_DIR": str(DEFAULT_REFERENCE_DIR)}
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
            instance.add_dynamic_partitions(PLAYERS, [str(x) for x in xuids])
        daemon = start_daemon_with_sensor(env)
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                deadline = time.monotonic() + 300
                runs: list = []
                while time.monotonic() < deadline:
                    runs = instance.get_runs(dg.RunsFilter(job_name="sync_job"))
                    if len(runs) >= 2 and all(r.is_finished for r in runs):
                        break
                    time.sleep(2)
                assert len(runs) >= 2 and all(r.is_finished for r in runs), [(r.run_id, r.status) for r in runs]
        finally:
            stop_process_group(daemon)

        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(dg.RunsFilter(job_name="sync_job"))
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [(r.run_id, r.status) for r in runs]
            assert all(r.tags.get("dagster/sensor_name") == "delta_sync_sensor" for r in runs)
            assert {r.tags["halo/player"] for r in runs} == {str(x) for x in xuids}

            # The queue ran them at the same time: every run started before any other ended.
            records = instance.get_run_records(dg.RunsFilter(job_name="sync_job"))
            spans = [(r.start_time, r.end_time) for r in records]
            assert max(s for s, _ in spans) < min(e for _, e in spans), f"runs did not overlap: {spans}"

            # The pool held at most one API-calling step at a time across runs: their execution intervals
            # (STEP_START → STEP_SUCCESS) are disjoint, and some step did wait for the pool.
            api_steps = _api_steps()
            assert {"match_history", "raw_matches"} <= api_steps
            intervals, blocked = [], 0
            for run in runs:
                starts: dict[str, float] = {}
                for entry in instance.all_logs(run.run_id):
                    event = entry.dagster_event
                    if event is None:
                        continue
                    if event.event_type == dg.DagsterEventType.ENGINE_EVENT and \
                            f"blocked by limit for pool {API_POOL}" in (entry.user_message or ""):
                        blocked += 1
                    if event.step_key not in api_steps:
                        continue
                    if event.event_type == dg.DagsterEventType.STEP_START:
                        starts[event.step_key] = entry.timestamp
                    elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                        intervals.append((starts.pop(event.step_key), entry.timestamp, run.run_id, event.step_key))
            assert len(intervals) >= 2 * 2, intervals  # ≥ 2 API steps in each run
            intervals.sort()
            for (s1, e1, r1, k1), (s2, e2, r2, k2) in itertools.pairwise(intervals):
                assert e1 <= s2, f"{k1} of {r1[:8]} ({s1:.2f}–{e1:.2f}) overlapped {k2} of {r2[:8]} ({s2:.2f}–{e2:.2f})"
            assert blocked >= 1, "no step ever waited for the halo_api pool: the test would not show the limit"

    # Both players are fully synced into the warehouse.
    wh = Warehouse(data)
    for xuid in xuids:
        assert set(wh.read_table("match_facts", xuid)["match_id"]) == set(world.match_ids(xuid))
