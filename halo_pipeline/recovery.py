"""A crash never wedges the project: runs whose process died are found, marked failed, their pool slots freed,
and their months planned again; a step never waits on a pool without bound, nor burns CPU while it waits.

**Who owns a run.** Every run executed by this code location records its owner in run tags: host, pid and
the process's identity (boot id + start time in clock ticks), ``halo/owner_*``, set by ``halo-pipeline`` when it
creates a run and by the executor when a run starts, whoever launched it; and a heartbeat (``halo/heartbeat``,
UTC epoch seconds, refreshed every :data:`HEARTBEAT_SECONDS`). A run is

* **alive** when its process exists (same host: ``/proc/<pid>`` with the same identity, so a reused pid is
  not mistaken for it) or, on another host, its heartbeat is younger than :data:`HEARTBEAT_TIMEOUT_SECONDS`;
* **dead** when that process is gone (``kill -9``, OOM kill, reboot) or its heartbeat stopped;
* **unknown** when it records no owner (a run from before this version, or launched and not started yet):
  never touched automatically (on a SQLite instance, a run of an older version is judged by the pid of its
  "Executing steps in process (pid: N)" event instead).

**Recovery** (:func:`recover`) marks dead runs failed (``instance.report_run_failed``, reason in the run's
log), frees their pool slots and pending claims (the event log storage's
``free_concurrency_slots_for_run``), frees claims left by finished runs (what the daemon's
``free_slots_after_run_end_seconds`` does), and tags each recovered run so that the next sync plans its months
again (:func:`replan_interrupted`). It runs on every ``halo-pipeline`` command that opens the instance, at the
start of every run (:class:`RecoveringConcurrencyContext`), while a step waits on a pool held by another run,
and from ``halo-pipeline doctor --repair``. Two processes recovering at once are serialized by a file lock in
``DAGSTER_HOME`` (on another host the worst case is a second, identical failure event). A live run is never
touched. Where the daemon runs, Dagster's run monitoring (``run_monitoring`` in ``dagster.yaml``) also fails
runs stuck starting or canceling and frees slots of finished runs.

**Waiting on a pool.** Dagster 1.13's in-process executor re-polls a blocked step with no sleep
(``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` returns ``min(0, …)``, so
``sleep_til_ready`` never sleeps): a step waiting for ``halo_api`` burnt ~90 % of a core.
:class:`RecoveringConcurrencyContext` (installed by :func:`install`) sleeps until the next claim check (1 s
growing to 15 s), recovers the slot's holder when it is dead, logs one line naming the holder, and gives up after
``HALO_POOL_WAIT_SECONDS`` (run tag ``halo/pool_wait_seconds``; default :data:`DEFAULT_POOL_WAIT_SECONDS`) with
one line naming the run that holds the slot and how to free it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import dagster as dg
import sqlalchemy.exc
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

from halo_pipeline.ids import InvalidInput
from halo_pipeline.months import Month
from halo_pipeline.partitions import partition_range_of, split_key
from halo_pipeline.pausepoint import pause_at
from halo_pipeline.services.state import hold_watermark
from halo_pipeline.storage.warehouse import Warehouse

log = logging.getLogger(__name__)

OWNER_HOST, OWNER_PID, OWNER_STARTED = "halo/owner_host", "halo/owner_pid", "halo/owner_started"
HEARTBEAT = "halo/heartbeat"
#: Set on a run marked failed by recovery: ``replan`` until the next sync has planned its months again.
INTERRUPTED = "halo/interrupted"
POOL_WAIT_TAG, POOL_WAIT_ENV = "halo/pool_wait_seconds", "HALO_POOL_WAIT_SECONDS"
#: A step gives up waiting for a pool held by a live run after this long (a first import's API step can
#: hold ``halo_api`` for many minutes; a dead holder is recovered within one claim check, ≤ 15 s).
DEFAULT_POOL_WAIT_SECONDS = 3600.0
HEARTBEAT_SECONDS = 30.0
#: A step that has waited this long for a pool says so, once, on stderr (naming the holder).
WAIT_NOTICE_SECONDS = 5.0
#: A run on another host whose heartbeat is older than this is dead.
HEARTBEAT_TIMEOUT_SECONDS = 300.0
#: Statuses of a run that has a process (queued runs belong to the daemon's queue).
IN_PROGRESS = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
               dg.DagsterRunStatus.CANCELING]
REPAIR_HINT = "`halo-pipeline doctor --repair`"
ALIVE, DEAD, UNKNOWN = "alive", "dead", "unknown"


# --------------------------------------------------------------------------------------------------- owners


def _stat_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in clock ticks since boot (never changes)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _boot() -> tuple[str, float] | None:
    """``(boot id, boot time as UTC epoch seconds)`` of this host (Linux), or ``None``."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot_id = fh.read().strip()
        with open("/proc/stat") as fh:
            return boot_id, next(float(line.split()[1]) for line in fh if line.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def process_identity(pid: int) -> str | None:
    """``<boot id>:<start ticks>`` of process ``pid``: unique to that process on this host, unlike its pid (which
    is reused) and unlike a start time in seconds (the wall clock can be stepped); ``None`` when the process does
    not exist or this is not Linux."""
    ticks, boot = _stat_start_ticks(pid), _boot()
    return None if ticks is None or boot is None else f"{boot[0]}:{ticks}"


def process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (UTC epoch seconds, approximate: the boot time moves with the wall clock), or
    ``None``."""
    ticks, boot = _stat_start_ticks(pid), _boot()
    return None if ticks is None or boot is None else boot[1] + ticks / os.sysconf("SC_CLK_TCK")


def pid_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_tags() -> dict[str, str]:
    """The run tags naming this process as a run's owner (host, pid, :func:`process_identity`) with a fresh
    heartbeat."""
    return {OWNER_HOST: socket.gethostname(), OWNER_PID: str(os.getpid()),
            OWNER_STARTED: process_identity(os.getpid()) or "", HEARTBEAT: f"{time.time():.0f}"}


@dataclass(frozen=True)
class Liveness:
    """Whether a run's process is ``alive``, ``dead`` or ``unknown``, and why (one line)."""

    state: str
    reason: str


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _local_pid_liveness(pid: int, host: str, recorded: str | None, run_start: float | None) -> Liveness:
    """Liveness of a run owned by process ``pid`` of this host. ``recorded``: the owner's
    :func:`process_identity`, when the run recorded it; else ``run_start`` (when the run started) tells a pid
    reused since (a process that started well after the run cannot be its owner)."""
    identity = process_identity(pid)
    if identity is None and not pid_exists(pid):
        return Liveness(DEAD, f"its process {pid} on {host} is gone")
    reused = f"its process {pid} on {host} is gone (the pid now belongs to another process)"
    if identity is not None and recorded and identity != recorded:
        return Liveness(DEAD, reused)
    started = process_started_at(pid)
    if not recorded and started is not None and run_start is not None and started > run_start + 5:
        return Liveness(DEAD, reused)
    return Liveness(ALIVE, f"process {pid} on {host} is running")


def liveness(instance: dg.DagsterInstance, record: dg.RunRecord, now: float | None = None) -> Liveness:
    """Whether the process of an in-progress run is alive (see the module docstring)."""
    run, now = record.dagster_run, now or time.time()
    tags = run.tags
    host, pid = tags.get(OWNER_HOST), tags.get(OWNER_PID)
    if host and pid and pid.isdigit():
        if host == socket.gethostname():
            return _local_pid_liveness(int(pid), host, tags.get(OWNER_STARTED), record.start_time)
        last = max(filter(None, [_float(tags.get(HEARTBEAT)), record.start_time, record.create_timestamp.timestamp()]))
        if now - last <= HEARTBEAT_TIMEOUT_SECONDS:
            return Liveness(ALIVE, f"process {pid} on {host}, heartbeat {now - last:.0f} s ago")
        return Liveness(DEAD, f"its process {pid} on {host} sent no heartbeat for {now - last:.0f} s")
    legacy_pid = _engine_pid(instance, run.run_id) if _local_instance(instance) else None
    if legacy_pid is not None:
        return _local_pid_liveness(legacy_pid, socket.gethostname(), None, record.start_time)
    return Liveness(UNKNOWN, "its process is not recorded (launched and not started yet, or from another "
                             "halo-pipeline version)")


def _local_instance(instance: dg.DagsterInstance) -> bool:
    """A SQLite instance: every run it holds ran on this host."""
    return "Sqlite" in type(instance.run_storage).__name__


def _engine_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's "Executing steps in process (pid: N)" engine event, if any."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid") if data else None
        if pid is not None and str(getattr(pid, "value", pid)).isdigit():
            return int(getattr(pid, "value", pid))
    return None


# --------------------------------------------------------------------------------------------------- state


@dataclass
class RunState:
    """An in-progress run as ``halo-pipeline doctor`` shows it."""

    run_id: str
    job: str
    status: str
    partitions: str
    started: float | None
    heartbeat: float | None
    owner: str
    liveness: Liveness
    slots: list[tuple[str, str]] = field(default_factory=list)  # (pool, step) held


@dataclass
class Claim:
    """A pool slot held, or a step waiting for one: ``step`` of ``run_id`` in ``pool``."""

    pool: str
    run_id: str
    step: str
    held: bool
    since: datetime | None = None


@dataclass
class Recovered:
    """What a recovery did: runs marked failed (id, reason), claims of finished runs freed."""

    failed_runs: list[tuple[str, str]] = field(default_factory=list)
    freed_claims: list[Claim] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.failed_runs or self.freed_claims)

    def lines(self) -> list[str]:
        return [f"recovered run {rid} ({why}): marked failed, pool slots freed, its months retried by the next "
                "sync" for rid, why in self.failed_runs] + [
            f"freed {'slot' if c.held else 'claim'} of pool {c.pool} left by finished run {c.run_id} ({c.step})"
            for c in self.freed_claims]


def partitions_label(tags: Mapping[str, str]) -> str:
    """``YYYY-MM…YYYY-MM|xuid`` of a run's partition range, its single partition key, or ``""``."""
    try:
        span = partition_range_of(tags)
        if span is not None:
            return f"{span[1].label}…{span[2].label}|{span[0]}"
        key = tags.get("dagster/partition")
        if key:
            xuid, month = split_key(key)
            return f"{month.label}|{xuid}"
    except InvalidInput:
        pass
    return ""


def claims(instance: dg.DagsterInstance) -> list[Claim]:
    """Every pool slot held and every step waiting for one, in every pool of the instance."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    out = []
    for pool, info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).items():
        out += [Claim(pool, slot.run_id, slot.step_key, True) for slot in info.claimed_slots]
        held = {(slot.run_id, slot.step_key) for slot in info.claimed_slots}
        out += [Claim(pool, step.run_id, step.step_key, False, step.enqueued_timestamp)
                for step in info.pending_steps if (step.run_id, step.step_key) not in held]
    return out


def in_progress(instance: dg.DagsterInstance, all_claims: list[Claim] | None = None) -> list[RunState]:
    """The instance's runs that have (or had) a process, with their owner, liveness and pool slots."""
    all_claims = claims(instance) if all_claims is None else all_claims
    now = time.time()
    out = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        tags = run.tags
        owner = f"pid {tags[OWNER_PID]} on {tags.get(OWNER_HOST, '?')}" if OWNER_PID in tags else "not recorded"
        out.append(RunState(
            run.run_id, run.job_name, run.status.value, partitions_label(tags), record.start_time,
            _float(tags.get(HEARTBEAT)), owner, liveness(instance, record, now),
            [(c.pool, c.step) for c in all_claims if c.run_id == run.run_id and c.held]))
    return out


# --------------------------------------------------------------------------------------------------- recovery

_process_lock = threading.Lock()


@contextlib.contextmanager
def _recovery_lock(instance: dg.DagsterInstance) -> Iterator[None]:
    """One recovery at a time per instance on this host: a thread lock plus an ``flock`` on
    ``$DAGSTER_HOME/.halo-recovery.lock`` (released by the kernel if the holder dies)."""
    with _process_lock:
        root = Path(instance.root_directory) if instance.root_directory else None
        if root is None or not root.is_dir():
            yield
            return
        try:
            import fcntl
        except ImportError:  # not POSIX: the thread lock only
            yield
            return
        with open(root / ".halo-recovery.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def mark_failed(instance: dg.DagsterInstance, run_id: str, reason: str) -> bool:
    """Mark the in-progress run ``run_id`` failed with ``reason``, free its pool slots and claims, and tag it for
    replanning; ``False`` (nothing done) when it has finished meanwhile."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.status not in IN_PROGRESS:
        return False
    instance.add_run_tags(run_id, {INTERRUPTED: "replan"})
    instance.report_run_failed(run, f"halo-pipeline recovery: {reason}; marked failed by process {os.getpid()} on "
                                    f"{socket.gethostname()}, its pool slots freed, its months retried by the next "
                                    "sync")
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return True


def recover(instance: dg.DagsterInstance, exclude: Iterable[str] = (), only: Iterable[str] | None = None) -> Recovered:
    """Mark the dead in-progress runs failed and free their pool slots; free the claims of finished runs.
    ``exclude``: run ids never touched (the caller's own run); ``only``: just these runs (and claims).

    Safe to call from several processes at once; never touches a live run or one whose owner is unknown.
    """
    done = Recovered()
    exclude, only = set(exclude), set(only) if only is not None else None
    with _recovery_lock(instance):
        all_claims = claims(instance)
        for state in in_progress(instance, all_claims):
            if state.run_id in exclude or (only is not None and state.run_id not in only):
                continue
            if state.liveness.state == DEAD and mark_failed(instance, state.run_id, f"run {state.run_id} "
                                                           f"({state.job}) is dead: {state.liveness.reason}"):
                done.failed_runs.append((state.run_id, state.liveness.reason))
        claimants = {c.run_id for c in all_claims} - exclude - {rid for rid, _ in done.failed_runs}
        if only is not None:
            claimants &= only
        runs = {r.run_id: r for r in instance.get_runs(dg.RunsFilter(run_ids=list(claimants)))} if claimants else {}
        for run_id in sorted(claimants):
            run = runs.get(run_id)
            if run is None or run.is_finished:
                instance.event_log_storage.free_concurrency_slots_for_run(run_id)
                done.freed_claims += [c for c in all_claims if c.run_id == run_id]
    for line in done.lines():
        log.warning(line)
    return done


def fail_unknown_run(instance: dg.DagsterInstance, run_id: str) -> str:
    """``doctor --repair --fail-run``: mark an in-progress run failed when its owner cannot be checked (another
    host without heartbeats, an older version). Returns the reason recorded.

    Raises:
        InvalidInput: no such run, it has finished, or its process is alive.
    """
    record = next(iter(instance.get_run_records(dg.RunsFilter(run_ids=[run_id]), limit=1)), None)
    if record is None:
        raise InvalidInput(f"no run {run_id} in the instance")
    if record.dagster_run.status not in IN_PROGRESS:
        raise InvalidInput(f"run {run_id} is {record.dagster_run.status.value}, not in progress")
    state = liveness(instance, record)
    if state.state == ALIVE:
        raise InvalidInput(f"run {run_id} is alive ({state.reason}): stop it first")
    with _recovery_lock(instance):
        mark_failed(instance, run_id, f"run {run_id} marked failed by hand ({state.reason})")
    return state.reason


def replan_interrupted(instance: dg.DagsterInstance, wh: Warehouse) -> list[tuple[int, Month]]:
    """Hold the watermark of each player below the first month of its runs marked failed by recovery (see
    :func:`halo_pipeline.services.state.hold_watermark`), so that the planner requests these months again;
    returns ``[(xuid, first month)]``. Idempotent; called before every sync is planned."""
    held = []
    for run in instance.get_runs(dg.RunsFilter(tags={INTERRUPTED: "replan"})):
        tags = run.tags
        try:
            span = partition_range_of(tags)
            first = (span[0], span[1]) if span else (split_key(tags["dagster/partition"])
                                                      if "dagster/partition" in tags else None)
        except InvalidInput:
            first = None
        if first is not None:
            hold_watermark(wh, *first)
            held.append(first)
        instance.add_run_tags(run.run_id, {INTERRUPTED: "replanned"})
    return held


# --------------------------------------------------------------------------------------------------- pools


def pool_wait_limit(tags: Mapping[str, str]) -> float:
    """Seconds a step may wait for a pool: run tag ``halo/pool_wait_seconds``, else ``$HALO_POOL_WAIT_SECONDS``,
    else :data:`DEFAULT_POOL_WAIT_SECONDS`."""
    for value in (tags.get(POOL_WAIT_TAG), os.environ.get(POOL_WAIT_ENV)):
        if value:
            try:
                return float(value)
            except ValueError:
                raise InvalidInput(f"invalid pool wait {value!r}: expected seconds") from None
    return DEFAULT_POOL_WAIT_SECONDS


def describe_holders(instance: dg.DagsterInstance, pool: str) -> str:
    """Who holds ``pool``'s slots: ``run <id> (<job> <partitions>, step <step>, <liveness>)``, joined; ``""`` when
    nobody does (freed meanwhile)."""
    holders = [c for c in claims(instance) if c.pool == pool and c.held]
    records = {r.dagster_run.run_id: r for r in instance.get_run_records(
        dg.RunsFilter(run_ids=[c.run_id for c in holders]))} if holders else {}
    parts = []
    for c in holders:
        record = records.get(c.run_id)
        if record is None:
            parts.append(f"run {c.run_id} (deleted, step {c.step})")
            continue
        run = record.dagster_run
        what = " ".join(filter(None, [run.job_name, partitions_label(run.tags)]))
        state = liveness(instance, record) if run.status in IN_PROGRESS else Liveness(DEAD, run.status.value)
        parts.append(f"run {c.run_id} ({what}, step {c.step}, {state.state}: {state.reason})")
    return "; ".join(parts)


class _Heartbeat(threading.Thread):
    """Refreshes a run's ``halo/heartbeat`` tag every :data:`HEARTBEAT_SECONDS` until stopped."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str):
        super().__init__(name=f"halo-heartbeat-{run_id[:8]}", daemon=True)
        self._instance, self._run_id, self._done = instance, run_id, threading.Event()

    def run(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            try:
                self._instance.add_run_tags(self._run_id, {HEARTBEAT: f"{time.time():.0f}"})
            except Exception as exc:  # noqa: BLE001 - a missed beat is not a reason to fail the run
                log.debug("heartbeat of run %s failed: %s", self._run_id, exc)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)


class RecoveringConcurrencyContext(InstanceConcurrencyContext):
    """Dagster's per-run pool bookkeeping (:class:`InstanceConcurrencyContext`) with what a daemon-less
    deployment needs: records the run's owner and heartbeat, recovers dead runs at the start of the run and
    while a step waits on a pool, sleeps between claim checks, and bounds the wait (see the module docstring).
    """

    def __init__(self, instance: dg.DagsterInstance, dagster_run: dg.DagsterRun):
        super().__init__(instance, dagster_run)
        self._tags = dict(dagster_run.tags)
        self._waiting_since: dict[str, float] = {}
        self._noticed: set[str] = set()
        self._heartbeat: _Heartbeat | None = None

    def __enter__(self):
        super().__enter__()
        try:
            if self._tags.get(OWNER_PID) != str(os.getpid()) or self._tags.get(OWNER_HOST) != socket.gethostname():
                self._instance.add_run_tags(self._run_id, owner_tags())
            recover(self._instance, exclude=[self._run_id])
        except Exception as exc:  # noqa: BLE001 - recovery must never fail the run that attempts it
            log.warning("recovery at the start of run %s failed: %s", self._run_id, exc)
        self._heartbeat = _Heartbeat(self._instance, self._run_id)
        self._heartbeat.start()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        super().__exit__(exc_type, exc_value, traceback)

    def interval_to_next_pending_claim_check(self) -> float:
        # Dagster's version returns min(0, …) ≤ 0: the executor never sleeps while a step is blocked.
        if not self._pending_claims or not self._pending_timeouts:
            return 0.0
        return max(0.0, min(self._pending_timeouts.values()) - time.time())

    def _claim_once(self, concurrency_key: str, step_key: str, step_priority: int) -> bool:
        """Dagster's claim, asked again once when it lost the race to create the pool's limit row: two runs whose
        steps claim a pool never claimed before both insert that row, and on PostgreSQL the loser's claim raises
        (dagster-io/dagster#33552, open in 1.13). The row exists by then, so the second claim only claims."""
        try:
            return super().claim(concurrency_key, step_key, step_priority)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.InternalError) as exc:
            log.info("pool %s: its limit was created by another run at the same time (%s); claiming again",
                     concurrency_key, type(exc.orig).__name__)
            return super().claim(concurrency_key, step_key, step_priority)

    def claim(self, concurrency_key: str, step_key: str, step_priority: int = 0) -> bool:
        checks = self._pending_claim_counts.get(step_key, 0)
        if self._claim_once(concurrency_key, step_key, step_priority):
            self._waiting_since.pop(step_key, None)
            pause_at("pool_held", step_key)  # test hook, inactive unless HALO_TEST_PAUSE_AT is set
            return True
        if self._pending_claim_counts.get(step_key, 0) == checks:
            return False  # not checked yet: the step sleeps until its next claim check
        now = time.monotonic()
        since = self._waiting_since.setdefault(step_key, now)
        holders = [c.run_id for c in claims(self._instance) if c.pool == concurrency_key and c.held]
        if holders and recover(self._instance, exclude=[self._run_id], only=holders):
            self._pending_timeouts[step_key] = 0.0  # a dead holder was freed: claim again at once
            return False
        limit = pool_wait_limit(self._tags)
        if now - since >= WAIT_NOTICE_SECONDS and step_key not in self._noticed and (
                holder := describe_holders(self._instance, concurrency_key)):
            self._noticed.add(step_key)
            log.warning("step %s of run %s waits for pool %s, held by %s; it gives up after %.0f s",
                        step_key, self._run_id, concurrency_key, holder, limit)
        if now - since > limit:
            self._give_up(f"step {step_key} of run {self._run_id} waited {now - since:.0f} s (limit {limit:.0f} s, "
                          f"{POOL_WAIT_ENV}) for pool {concurrency_key}, held by "
                          f"{describe_holders(self._instance, concurrency_key) or 'another run'}: if that run's "
                          f"process is gone, {REPAIR_HINT} frees the slot")
        return False

    def _give_up(self, message: str) -> None:
        """Fail the run with ``message`` (one line in the run's log and on stderr, no stack trace: waiting too
        long is an operational condition, not a bug) and stop its execution."""
        log.error(message)
        self._instance.report_run_failed(self._instance.get_run_by_id(self._run_id), message)
        # Dagster ends an interrupted run quietly when it is already failed (an engine event, no second failure).
        raise DagsterExecutionInterruptedError(message)


def install() -> None:
    """Make Dagster's in-process and multiprocess executors use :class:`RecoveringConcurrencyContext` in this
    process (idempotent). Called where the code location is built, so every process executing runs has it."""
    from dagster._core.executor import in_process, multiprocess

    for module in (in_process, multiprocess):
        if getattr(module, "InstanceConcurrencyContext", None) is not InstanceConcurrencyContext and \
                getattr(module, "InstanceConcurrencyContext", None) is not RecoveringConcurrencyContext:
            raise RuntimeError(f"{module.__name__} no longer uses InstanceConcurrencyContext: update "
                               "halo_pipeline.recovery.install for this Dagster version")
        module.InstanceConcurrencyContext = RecoveringConcurrencyContext

