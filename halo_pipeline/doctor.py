"""``halo-pipeline doctor [--repair]``: what is in progress, what is stuck and what waits for a retry, from the
Dagster instance and the warehouse; ``--repair`` frees what belongs to dead runs (:mod:`halo_pipeline.recovery`).

The report (:func:`diagnose`) lists the runs in progress (owner pid and host, heartbeat, age, alive / dead /
unknown, pool slots held), runs queued for the daemon (and whether a daemon runs), every pool's slots and the
steps waiting for them, stale claims (slots or pending claims of finished runs), runs whose months the next sync
plans again, failed matches waiting for retry (``raw_matches`` rows whose stats, skill or film fetch failed) and
temp files left by killed writers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import polars as pl

from halo_pipeline.recovery import (
    DEAD,
    INTERRUPTED,
    UNKNOWN,
    Recovered,
    claims,
    fail_unknown_run,
    in_progress,
    partitions_label,
    pid_exists,
    recover,
)
from halo_pipeline.storage.files import TMP_SUFFIX, is_remote, temp_writer_pid
from halo_pipeline.storage.warehouse import Warehouse

#: A temp file this old is a leftover whoever wrote it (a write takes seconds): ``--repair`` removes it.
ORPHAN_TMP_SECONDS = 3600.0
#: The daemon writes a heartbeat every ~30 s: none for this long means it is not running.
DAEMON_SILENT_SECONDS = 120.0
#: Failed matches listed by name (the rest are counted).
MAX_LISTED = 10


@dataclass
class Diagnosis:
    """The report's lines and what needs a repair (``problems``: one line each; none: healthy)."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    orphan_temp_files: list[Path] = field(default_factory=list)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else (
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")


def orphan_temp_files(wh: Warehouse, now: float | None = None) -> list[Path]:
    """Hidden ``.*.tmp`` files under the warehouse and raw landing whose writer process is gone, or older than
    :data:`ORPHAN_TMP_SECONDS` (a reused pid, a writer of an older version). None on object storage (a write is
    one PUT)."""
    if is_remote(wh.data_dir):
        return []
    now = now or time.time()
    found = []
    for root in (wh.root, wh.landing.root):
        for folder, _, names in os.walk(root):
            for name in names:
                if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
                    continue
                path = Path(folder, name)
                pid = temp_writer_pid(name)
                try:
                    stale = now - path.stat().st_mtime > ORPHAN_TMP_SECONDS
                except FileNotFoundError:
                    continue  # renamed into place meanwhile
                if stale or (pid is not None and not pid_exists(pid)):
                    found.append(path)
    return sorted(found)


def failed_matches(wh: Warehouse) -> pl.DataFrame:
    """``raw_matches`` rows whose stats body is not landed (``failed``) or whose skill or film fetch failed —
    retried by the next sync: match_id, xuid, stats_status, error."""
    index = wh.read_table("raw_matches", schema={"match_id": pl.Utf8, "xuid": pl.Int64, "stats_status": pl.Utf8,
                                                 "skill_status": pl.Utf8, "film_status": pl.Utf8, "error": pl.Utf8})
    return index.filter((pl.col("stats_status") == "failed") | (pl.col("skill_status") == "failed")
                        | (pl.col("film_status") == "failed")).select("match_id", "xuid", "stats_status", "error")


def _daemon_line(instance: dg.DagsterInstance, now: float) -> tuple[str, bool]:
    try:
        beats = instance.get_daemon_heartbeats()
    except Exception:  # noqa: BLE001 - an instance without daemon storage
        beats = {}
    newest = max((b.timestamp for b in beats.values()), default=None)
    running = newest is not None and now - newest < DAEMON_SILENT_SECONDS
    return (f"daemon: running (heartbeat {_age(now - newest)} ago)" if running else
            "daemon: not running (sensors, schedules and queued runs wait for `dagster-daemon run` or "
            "`dagster dev`; `halo-pipeline sync` needs none)"), running


def diagnose(instance: dg.DagsterInstance, wh: Warehouse | None = None) -> Diagnosis:
    """The doctor's report on ``instance`` (and the warehouse ``wh``, when given)."""
    now = time.time()
    out = Diagnosis()
    add = out.lines.append
    add(f"instance: {instance.root_directory} ({type(instance.run_storage).__name__})")
    daemon, daemon_running = _daemon_line(instance, now)
    add(daemon)

    all_claims = claims(instance)
    runs = in_progress(instance, all_claims)
    add("")
    add(f"runs in progress: {len(runs) or 'none'}")
    for run in runs:
        heartbeat = f"heartbeat {_age(now - run.heartbeat)} ago" if run.heartbeat else "no heartbeat"
        slots = ", ".join(f"{pool}:{step}" for pool, step in run.slots) or "none"
        age = _age(now - run.started) if run.started else "-"
        add(f"  {run.run_id}  {run.job} {run.partitions}  {run.status} for {age}  owner {run.owner}, {heartbeat}"
            f"  pool slots: {slots}")
        add(f"    {run.liveness.state}: {run.liveness.reason}")
        if run.liveness.state == DEAD:
            out.problems.append(f"run {run.run_id} is dead ({run.liveness.reason})")
        elif run.liveness.state == UNKNOWN:
            add(f"    if its process is gone: halo-pipeline doctor --repair --fail-run {run.run_id}")

    queued = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    if queued:
        oldest = min(r.create_timestamp.timestamp() for r in queued)
        add(f"queued runs: {len(queued)} (oldest {_age(now - oldest)})"
            + ("" if daemon_running else ": no daemon is running to launch them"))

    add("")
    pools = sorted({c.pool for c in all_claims})
    add(f"pools: {', '.join(pools) or 'no slot held, no step waiting'}")
    finished = {r.run_id: r for r in instance.get_runs(dg.RunsFilter(run_ids=list({c.run_id for c in all_claims})))} \
        if all_claims else {}
    live = {r.run_id: r for r in runs}
    for claim in all_claims:
        what = "holds a slot" if claim.held else f"waits since {_age(now - claim.since.timestamp())}" \
            if claim.since else "waits"
        run = live.get(claim.run_id)
        whose = f"{' '.join(filter(None, [run.job, run.partitions]))}, {run.liveness.state}" if run else (
            f"finished: {finished[claim.run_id].status.value}" if claim.run_id in finished else "run deleted")
        add(f"  {claim.pool}: run {claim.run_id} step {claim.step} {what} ({whose})")
        if run is None:
            out.problems.append(f"stale claim: pool {claim.pool} {'slot' if claim.held else 'claim'} of finished "
                                f"run {claim.run_id} ({claim.step})")

    replan = instance.get_runs(dg.RunsFilter(tags={INTERRUPTED: "replan"}))
    if replan:
        add("")
        add(f"interrupted runs whose months the next sync plans again: {len(replan)}")
        for run in replan:
            add(f"  {run.run_id}  {run.job_name} {partitions_label(run.tags)}")

    if wh is not None:
        failed = failed_matches(wh)
        add("")
        add(f"failed matches waiting for retry by the next sync: {failed['match_id'].n_unique() or 'none'}")
        for row in failed.unique("match_id", keep="first", maintain_order=True).head(MAX_LISTED).iter_rows(named=True):
            add(f"  {row['match_id']}  player {row['xuid']}  {row['stats_status']}: {row['error'] or ''}")
        out.orphan_temp_files = orphan_temp_files(wh, now)
        if out.orphan_temp_files:
            add(f"temp files left by killed writers: {len(out.orphan_temp_files)} "
                f"(first: {out.orphan_temp_files[0]})")
            out.problems.append(f"{len(out.orphan_temp_files)} temp file(s) left by killed writers")

    add("")
    if out.problems:
        add(f"needs repair ({len(out.problems)}): " + "; ".join(out.problems))
        add("run `halo-pipeline doctor --repair` (never touches a live run)")
    else:
        add("ok: nothing to repair")
    return out


def repair(instance: dg.DagsterInstance, wh: Warehouse | None = None, fail_runs: list[str] = ()) -> list[str]:
    """Free what belongs to dead runs (:func:`halo_pipeline.recovery.recover`), mark ``fail_runs`` failed (runs
    whose owner cannot be checked; refused for a live one), delete temp files of killed writers. Returns what
    was done, one line each.

    Raises:
        halo_pipeline.ids.InvalidInput: a run of ``fail_runs`` is unknown, finished or alive.
    """
    done = [f"marked run {run_id} failed ({fail_unknown_run(instance, run_id)}), its pool slots freed"
            for run_id in fail_runs]
    recovered: Recovered = recover(instance)
    done += recovered.lines()
    if wh is not None:
        for path in orphan_temp_files(wh):
            path.unlink(missing_ok=True)
            done.append(f"deleted {path}")
    return done or ["nothing to repair"]

