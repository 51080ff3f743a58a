"""Recovery of runs whose process died (:mod:`halo_pipeline.recovery`) on the persistent SQLite instance
``halo-pipeline`` creates: who is alive, dead or unknown; dead runs failed and their pool slots freed, live runs
never touched, two processes recovering at once; the months of a recovered run planned again; and, with real
``halo-pipeline`` processes, a step waiting on a pool costs no CPU, gives up in one line naming the holder, and
takes the slot as soon as its dead holder is recovered."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._core.test_utils import create_run_for_test

from halo_pipeline.emulator.server import Emulator
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.instance import ensure_home
from halo_pipeline.months import Month
from halo_pipeline.partitions import partition_range_tags
from halo_pipeline.recovery import (
    ALIVE,
    DEAD,
    HEARTBEAT,
    HEARTBEAT_TIMEOUT_SECONDS,
    OWNER_HOST,
    OWNER_PID,
    OWNER_STARTED,
    UNKNOWN,
    claims,
    in_progress,
    liveness,
    owner_tags,
    recover,
    replan_interrupted,
)
from halo_pipeline.services.state import read_watermark, state_path, write_state
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import RAW_MATCHES_SCHEMA
from halo_pipeline.testing import cli_env, halo, kill_group, start_halo, wait_for_pause
from halo_pipeline_tests.conftest import REPO

STARTED = dg.DagsterRunStatus.STARTED


@pytest.fixture()
def instance(tmp_path):
    """The instance of a ``DAGSTER_HOME`` made by ``halo-pipeline`` (SQLite, pools, run monitoring)."""
    with dg.DagsterInstance.from_config(str(ensure_home(tmp_path / "dagster_home"))) as inst:
        yield inst


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def run_owned_by(instance, status=STARTED, **tags) -> str:
    return create_run_for_test(instance, status=status, tags=tags).run_id


def hold(instance, pool: str, run_id: str, step: str) -> None:
    storage = instance.event_log_storage
    assert storage.claim_concurrency_slot(pool, run_id, step).is_claimed


def test_a_sync_started_in_the_background_can_still_be_stopped_with_sigterm():
    """A process started in the background ignores SIGINT (cron, ``nohup``, ``&``); Dagster points SIGTERM at
    SIGINT's handler around an in-process run and left it there: after its first run a ``halo-pipeline sync``
    ignored ``kill``, and so did every process it started later. The runner gives SIGTERM its handling back."""
    import signal

    from halo_pipeline.runner import SyncReport, execute

    @dg.asset
    def one() -> int:
        return 1

    defs = dg.Definitions(assets=[one], jobs=[dg.define_asset_job("one_job", [one])])
    sigint, sigterm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        assert execute(defs, "one_job", dg.DagsterInstance.ephemeral(), SyncReport())
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, sigint)
        signal.signal(signal.SIGTERM, sigterm)


def test_a_claim_that_lost_the_race_to_create_the_pool_s_limit_claims_again(instance, monkeypatch):
    """Two runs claiming a pool never claimed before both insert its limit row; on PostgreSQL the loser's claim
    raised (dagster-io/dagster#33552) and failed its run (seen: the catalog run of two syncs at once). The loser
    now claims again and gets the slot."""
    import sqlalchemy.exc

    from halo_pipeline.recovery import RecoveringConcurrencyContext

    storage = instance.event_log_storage
    original = storage.initialize_concurrency_limit_to_default
    raced = []

    def lose_the_race(key: str) -> bool:
        if not raced:  # the other run inserts the row first; this one's INSERT then violates the unique key
            raced.append(key)
            original(key)
            raise sqlalchemy.exc.IntegrityError("INSERT INTO concurrency_limits", {}, Exception("UniqueViolation"))
        return original(key)

    monkeypatch.setattr(storage, "initialize_concurrency_limit_to_default", lose_the_race)
    run = instance.get_run_by_id(run_owned_by(instance, **owner_tags()))
    context = RecoveringConcurrencyContext(instance, run)
    assert context.claim("fresh_pool", "catalog_step") and raced == ["fresh_pool"]
    assert [(c.pool, c.run_id, c.held) for c in claims(instance)] == [("fresh_pool", run.run_id, True)]


def test_owner_liveness(instance):
    now = time.time()
    me = owner_tags()
    other_host = "elsewhere.example"
    runs = {
        "this process": run_owned_by(instance, **me),
        "dead pid": run_owned_by(instance, **{**me, OWNER_PID: str(dead_pid())}),
        "pid reused": run_owned_by(instance, **{**me, OWNER_STARTED: me[OWNER_STARTED] + "0"}),  # another process
        "other host, fresh heartbeat": run_owned_by(instance, **{**me, OWNER_HOST: other_host,
                                                                 HEARTBEAT: f"{now - 10:.0f}"}),
        "no owner": run_owned_by(instance),
    }
    got = {name: liveness(instance, instance.get_run_record_by_id(run_id)) for name, run_id in runs.items()}
    assert {k: v.state for k, v in got.items()} == {
        "this process": ALIVE, "dead pid": DEAD, "pid reused": DEAD, "other host, fresh heartbeat": ALIVE,
        "no owner": UNKNOWN}
    assert "is gone" in got["dead pid"].reason and "another process" in got["pid reused"].reason
    stale = liveness(instance, instance.get_run_record_by_id(runs["other host, fresh heartbeat"]),
                     now=now + HEARTBEAT_TIMEOUT_SECONDS + 60)
    assert stale.state == DEAD and "no heartbeat" in stale.reason


def test_recover_fails_dead_runs_frees_their_slots_and_spares_live_ones(instance):
    storage = instance.event_log_storage
    storage.set_concurrency_slots("halo_api", 1)
    storage.set_concurrency_slots("other", 3)
    alive = run_owned_by(instance, **owner_tags())
    dead = run_owned_by(instance, **{**owner_tags(), OWNER_PID: str(dead_pid())})
    unknown = run_owned_by(instance)
    finished = run_owned_by(instance, status=dg.DagsterRunStatus.SUCCESS, **owner_tags())
    hold(instance, "halo_api", dead, "raw_matches")
    hold(instance, "other", alive, "step_a")
    hold(instance, "other", unknown, "step_b")
    hold(instance, "other", finished, "step_c")  # a finished run's slot: a stale claim
    waiting = run_owned_by(instance, **owner_tags())
    assert not storage.claim_concurrency_slot("halo_api", waiting, "match_history").is_claimed

    done = recover(instance)
    assert done.failed_runs == [(dead, done.failed_runs[0][1])] and "is gone" in done.failed_runs[0][1]
    assert {c.run_id for c in done.freed_claims} == {finished}
    status = {r: instance.get_run_by_id(r).status for r in (alive, dead, unknown, finished, waiting)}
    assert status == {alive: STARTED, dead: dg.DagsterRunStatus.FAILURE, unknown: STARTED,
                      finished: dg.DagsterRunStatus.SUCCESS, waiting: STARTED}
    held = {(c.pool, c.run_id) for c in claims(instance) if c.held}
    assert held == {("other", alive), ("other", unknown)}
    assert storage.claim_concurrency_slot("halo_api", waiting, "match_history").is_claimed  # the waiter's turn
    [failure] = instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert "halo-pipeline recovery" in failure.dagster_event.message and "is gone" in failure.dagster_event.message
    assert instance.get_run_by_id(dead).tags["halo/interrupted"] == "replan"

    assert not recover(instance)  # idempotent: nothing left to do, no second failure event
    assert len(instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)) == 1
    assert [r.run_id for r in in_progress(instance) if r.liveness.state == DEAD] == []


def test_the_months_of_a_recovered_run_are_planned_again(instance, tmp_path):
    from halo_pipeline_tests.analytics_data import XUID, fact, facts

    wh = Warehouse(tmp_path / "data")
    for month, ids in (("2025-01-01", ["a1", "a2"]), ("2025-02-01", ["b1"])):
        starts = [datetime.fromisoformat(month).replace(day=5 + i, tzinfo=UTC) for i in range(len(ids))]
        wh.write_partition("match_facts", XUID, month, facts([fact(m, t) for m, t in zip(ids, starts, strict=True)]))
        wh.write_partition("raw_matches", XUID, month, pl.DataFrame(
            {"match_id": ids, "xuid": [XUID] * len(ids), "start_time": starts, "stats_status": ["landed"] * len(ids),
             "skill_status": ["landed"] * len(ids), "film_status": ["landed"] * len(ids)},
            schema={k: RAW_MATCHES_SCHEMA[k] for k in ("match_id", "xuid", "start_time", "stats_status",
                                                       "skill_status", "film_status")}))
    write_state(wh, XUID)
    assert read_watermark(wh, XUID)[1] == datetime(2025, 2, 5, tzinfo=UTC)

    # A run over February died after sync_meta moved the watermark past it (e.g. while writing the report).
    dead = run_owned_by(instance, **{**owner_tags(), OWNER_PID: str(dead_pid())},
                        **partition_range_tags(XUID, "2025-02-01", "2025-02-01"))
    recover(instance)
    assert replan_interrupted(instance, wh) == [(XUID, Month("2025-02-01"))]
    assert read_watermark(wh, XUID)[1] == datetime(2025, 1, 6, tzinfo=UTC)  # below February: replanned
    assert pl.read_parquet(state_path(wh, XUID))["sync_status"][0] == "interrupted"
    assert instance.get_run_by_id(dead).tags["halo/interrupted"] == "replanned"
    assert replan_interrupted(instance, wh) == []  # once


#: A process recovering the instance at ``argv[1]`` as soon as the file ``argv[2]`` appears.
RECOVERER = textwrap.dedent("""
    import json, os, sys, time
    import dagster as dg
    from halo_pipeline.recovery import recover
    with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
        print("ready", flush=True)
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.001)
        print(json.dumps([run_id for run_id, _ in recover(instance).failed_runs]), flush=True)
""")


@pytest.mark.system
def test_two_processes_recovering_at_once_fail_each_dead_run_once(instance, tmp_path):
    storage = instance.event_log_storage
    storage.set_concurrency_slots("halo_api", 1)
    dead = [run_owned_by(instance, **{**owner_tags(), OWNER_PID: str(dead_pid())}) for _ in range(6)]
    hold(instance, "halo_api", dead[0], "raw_matches")
    alive = run_owned_by(instance, **owner_tags())
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RECOVERER, instance.root_directory, str(go)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    results = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert sorted(results[0] + results[1]) == sorted(dead)  # every dead run recovered by exactly one process
    for run_id in dead:
        assert len(instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)) == 1
    assert instance.get_run_by_id(alive).status == STARTED
    assert not claims(instance)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _read_until(stream, text: str, timeout: float = 120) -> list[str]:
    """Lines of ``stream`` up to the first one containing ``text``."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise AssertionError(f"stream ended before {text!r}:\n" + "".join(lines[-30:]))
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {timeout} s")


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="measures CPU time through /proc")
def test_a_live_holder_is_never_touched_a_waiter_sleeps_gives_up_in_one_line_or_takes_a_dead_holders_slot(
        tmp_path):
    world = SyntheticWorld(seed=23, players=1, months=1, matches_per_month=10)
    data = tmp_path / "data"
    with Emulator(synthetic=world) as emu:
        env = cli_env(data, emu.url)
        assert halo("players", "add", str(world.players[0].xuid), env=env).returncode == 0
        holder = start_halo("sync", env=env, pause_at="pool_held@raw_matches", marker=tmp_path / "pause.json")
        try:
            pid = wait_for_pause(holder, tmp_path / "pause.json")["pid"]
            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as inst:
                [slot] = [c for c in claims(inst) if c.held]
            assert inst and slot.pool == "halo_api" and slot.step == "raw_matches"

            # doctor --repair from another process: the live run is listed alive and left alone.
            repair = halo("doctor", "--repair", env=env)
            assert repair.returncode == 0 and "nothing to repair" in repair.stdout, repair.stdout
            assert f"pid {pid} on {socket.gethostname()}" in repair.stdout and "alive" in repair.stdout
            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as inst:
                assert inst.get_run_by_id(slot.run_id).status == STARTED
                assert [(c.run_id, c.step) for c in claims(inst) if c.held] == [(slot.run_id, "raw_matches")]

            # A second sync waits for the pool without burning CPU, then gives up in one line naming the holder.
            waiter = start_halo("sync", env={**env, "HALO_POOL_WAIT_SECONDS": "12"})
            started = time.monotonic()
            _read_until(waiter.stderr, "waits for pool halo_api")
            cpu_before = _cpu_seconds(waiter.pid)
            time.sleep(5)
            busy = _cpu_seconds(waiter.pid) - cpu_before
            _, err = waiter.communicate(timeout=120)
            # Busy polling burns ≈ 4.3 s of CPU in 5 s; claim checks, recovery and the heartbeat ≈ 0.1–0.8 s.
            assert busy < 1.5, f"the waiting process used {busy:.2f} s of CPU in 5 s (busy polling)"
            assert waiter.returncode != 0 and time.monotonic() - started < 60
            gave_up = [line for line in err.splitlines() if "waited" in line and "for pool halo_api" in line]
            assert gave_up and all(slot.run_id in line and "halo-pipeline doctor --repair" in line for line in gave_up)
            assert "Traceback" not in err and "Stack Trace" not in err, err[-3000:]

            # A third sync waits; the holder is killed meanwhile: the waiter recovers it and takes the slot.
            taker = start_halo("sync", env=env)
            _read_until(taker.stderr, "waits for pool halo_api")
        finally:
            kill_group(holder)
        _, err = taker.communicate(timeout=180)
        assert taker.returncode == 0, err[-3000:]
        assert f"recovered run {slot.run_id}" in err
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as inst:
        assert inst.get_run_by_id(slot.run_id).status == dg.DagsterRunStatus.FAILURE
        assert not claims(inst) and not inst.get_runs(dg.RunsFilter(statuses=[STARTED]))
    assert set(Warehouse(data).read_table("match_facts")["match_id"]) == set(world.match_ids())


def test_doctor_lists_what_is_stuck_and_repair_frees_only_what_dead_runs_hold(instance, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from halo_pipeline.cli import main
    from halo_pipeline_tests.analytics_data import XUID

    storage = instance.event_log_storage
    storage.set_concurrency_slots("halo_api", 1)
    dead = run_owned_by(instance, **{**owner_tags(), OWNER_PID: str(dead_pid())},
                        **partition_range_tags(XUID, "2025-01-01", "2025-02-01"))
    alive = run_owned_by(instance, **owner_tags())
    finished = run_owned_by(instance, status=dg.DagsterRunStatus.FAILURE)
    hold(instance, "halo_api", dead, "raw_matches")
    storage.set_concurrency_slots("other", 1)
    hold(instance, "other", finished, "step_c")
    wh = Warehouse(tmp_path / "data")
    wh.write_partition("raw_matches", XUID, "2025-01-01", pl.DataFrame(
        {"match_id": ["m1", "m2"], "xuid": [XUID] * 2, "stats_status": ["failed", "landed"],
         "skill_status": ["skipped", "failed"], "film_status": ["skipped", "landed"],
         "error": ["stats: HTTP 503 Service Unavailable", "skill: TimeoutError"]}))
    orphan = wh.root / "match_facts" / f".data.parquet.{dead_pid()}-0123abcd.tmp"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"partial")
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    monkeypatch.setenv("HALO_DATA_DIR", str(wh.data_dir))

    report = CliRunner().invoke(main, ["doctor"])
    assert report.exit_code == 1, report.output
    out = report.output
    assert "runs in progress: 2" in out and f"pid {os.getpid()} on {socket.gethostname()}" in out
    assert f"run {dead} step raw_matches holds a slot" in out and "dead: its process" in out
    assert f"stale claim: pool other slot of finished run {finished}" in out
    assert "failed matches waiting for retry by the next sync: 2" in out and "HTTP 503" in out
    assert "temp files left by killed writers: 1" in out and "needs repair (3)" in out

    repaired = CliRunner().invoke(main, ["doctor", "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert f"recovered run {dead}" in repaired.output and f"deleted {orphan}" in repaired.output
    assert not orphan.exists()
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive).status == STARTED
    assert not claims(instance)
    assert "interrupted runs whose months the next sync plans again: 1" in repaired.output
    assert CliRunner().invoke(main, ["doctor"]).exit_code == 0  # failed matches are not a repair: the sync's job

    refused = CliRunner().invoke(main, ["doctor", "--repair", "--fail-run", alive])
    assert refused.exit_code == 2 and "is alive" in refused.output
    unknown = run_owned_by(instance)
    forced = CliRunner().invoke(main, ["doctor", "--repair", "--fail-run", unknown])
    assert forced.exit_code == 0 and instance.get_run_by_id(unknown).status == dg.DagsterRunStatus.FAILURE
