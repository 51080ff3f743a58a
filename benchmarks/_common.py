"""Shared helpers of the benchmarks: timing, result rows, synthetic raw landing, the shared recordings."""

from __future__ import annotations

import gzip
import os
import re
import resource
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl

from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.storage.landing import PROFILE, SKILL, STATS
from halo_pipeline.storage.warehouse import Warehouse
from halo_pipeline.tables import RAW_MATCHES_SCHEMA

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HALO_SHARED_DIR", REPO.parent / "shared"))
FILM_DIR = SHARED / "halo_api" / "film"


@dataclass
class Figure:
    """One line of a benchmark's result: ``value`` in ``unit``, its ``baseline`` measured in the same run (or
    a theoretical bound), ``ratio`` = value / baseline (or as defined by the benchmark), and the target."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None


@dataclass
class Result:
    """What one benchmark measured: figures, free-form notes, or why it was skipped."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def add(self, *args, **kwargs) -> Figure:
        fig = Figure(*args, **kwargs)
        self.figures.append(fig)
        return fig

    def print(self) -> None:
        print(f"\n== {self.name}")
        if self.skipped:
            print(f"   SKIPPED: {self.skipped}")
            return
        for f in self.figures:
            base = "" if f.baseline is None else f"  baseline {f.baseline:,.3f}"
            ratio = "" if f.ratio is None else f"  ratio {f.ratio:.2f}"
            ok = "" if f.ok is None else ("  OK" if f.ok else "  MISSED")
            target = f"  (target {f.target})" if f.target else ""
            print(f"   {f.name:<44} {f.value:>12,.3f} {f.unit:<12}{base}{ratio}{target}{ok}")
        for note in self.notes:
            print(f"   · {note}")


def require_success(ok: bool, what: str) -> None:
    """Raise when the measured work failed: its figures would not be meaningful (``benchmarks.run`` then exits
    1, and the test suite's smoke run fails).

    Raises:
        RuntimeError: ``ok`` is false; the message names ``what``.
    """
    if not ok:
        raise RuntimeError(f"{what} failed: the figures would not be meaningful")


@contextmanager
def timer() -> Iterator[list[float]]:
    """``with timer() as t: …`` then ``t[0]`` is the elapsed wall time in seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


def _vm_hwm_kib(status: str) -> int | None:
    """``VmHWM`` (KiB) of a ``/proc/<pid>/status`` text, or None."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def workers_peak_rss_mib() -> float:
    """Sum of the peak RSS (``VmHWM``) of this process's live children (the process pool's workers), in MiB;
    0 where ``/proc`` is absent."""
    me, total = str(os.getpid()), 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"\nPPid:\t{me}\n" in text:
            total += _vm_hwm_kib(text) or 0
    return total / 1024


def peak_rss_mib() -> float:
    """Peak resident set size of this process's own memory so far, in MiB.

    Linux ``VmHWM`` (``/proc/self/status``, KiB) where available. Not ``ru_maxrss``: Linux carries it across
    ``fork`` + ``exec``, so a child started by a parent that holds a large synthetic world reported the
    *parent's* size (the memory benchmark's 20k-match "peak" was the emulator's world, not the import)."""
    try:
        kib = _vm_hwm_kib(Path("/proc/self/status").read_text())
    except OSError:
        kib = None
    return kib / 1024 if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class ClonedLanding:
    """A raw landing built by cloning synthetic bodies under fresh match ids: ``partitions`` (xuid, month) →
    match ids; ``bodies``: every landed body (stats and skill, uncompressed), for a same-run baseline."""

    wh: Warehouse
    partitions: dict[tuple[int, str], list[str]]
    bodies: list[bytes]

    @property
    def matches(self) -> int:
        return sum(len(v) for v in self.partitions.values())


def _write_gz(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(body, compresslevel=6, mtime=0))


_XUID_RE = re.compile(rb"(?<=xuid\()(\d+)(?=\))")


def _fresh_xuids(seed: int, keep: set[bytes]):
    """A ``re.sub`` replacement giving every xuid but ``keep``'s a fresh one, the same one within a body."""
    mapping: dict[bytes, bytes] = {}

    def replace(match: re.Match) -> bytes:
        xuid = match.group(1)
        if xuid in keep:
            return xuid
        if xuid not in mapping:
            mapping[xuid] = str(2533274000000000 + (seed + len(mapping) * 7919) % 999_999_999).encode()
        return mapping[xuid]

    return replace


def cloned_landing(root: Path, players: int, months: int, per_month: int, seed: int = 7) -> ClonedLanding:
    """Land ``players × months × per_month`` matches (stats + skill bodies, profiles) and the ``raw_matches``
    index of each partition, cloned from a small :class:`SyntheticWorld` (generating 10 k matches would take
    minutes): each clone is a template body with its ``MatchId`` replaced by a fresh uuid and every player's xuid
    but the owners' by a fresh one (real histories meet new players all the time: no cache is kept warm by seeing
    the same ids again). Files are written
    in the landing's layout, gzip'd like :meth:`RawLanding.put` (without its fsync: setup speed only)."""
    world = SyntheticWorld(seed=seed, players=players, months=1, matches_per_month=min(per_month, 40))
    owners = {str(p.xuid).encode() for p in world.players}
    wh = Warehouse(root)
    landing = wh.landing
    rng = uuid.UUID(int=seed)
    partitions: dict[tuple[int, str], list[str]] = {}
    bodies: list[bytes] = []
    humans: set[int] = set()
    for p, player in enumerate(world.players):
        templates = []
        for mid in world.match_ids(player.xuid):
            stats = world.match_stats_body(mid)
            doc = orjson.loads(stats)
            xuids = [int(pl_["PlayerId"][5:-1]) for pl_ in doc["Players"] if pl_["PlayerId"].startswith("xuid(")]
            humans.update(xuids)
            skill = world.match_skill(mid, xuids)
            templates.append((mid, stats, orjson.dumps(skill) if skill is not None else None))
        for m in range(months):
            month = f"{2023 + m // 12}-{m % 12 + 1:02d}-01"
            t0 = datetime.fromisoformat(month).replace(tzinfo=UTC)
            ids = []
            for i in range(per_month):
                template_id, stats, skill = templates[(m * per_month + i) % len(templates)]
                rng = uuid.uuid5(rng, f"{p}:{m}:{i}")
                mid = str(rng)
                fresh = _fresh_xuids(rng.int, owners)  # other players each time: no cache is warm for them
                body = _XUID_RE.sub(fresh, stats.replace(template_id.encode(), mid.encode()))
                _write_gz(landing._path(STATS, mid), body)
                bodies.append(body)
                if skill is not None:
                    skill_body = _XUID_RE.sub(fresh, skill)
                    _write_gz(landing._path(SKILL, mid), skill_body)
                    bodies.append(skill_body)
                ids.append(mid)
            partitions[(player.xuid, month)] = ids
            n = len(ids)
            wh.write_partition("raw_matches", player.xuid, month, pl.DataFrame({
                "match_id": ids, "xuid": [player.xuid] * n,
                "start_time": [t0 + timedelta(minutes=20 * i) for i in range(n)],
                "stats_status": ["landed"] * n, "skill_status": ["landed"] * n, "film_status": ["skipped"] * n,
                "spnkr_parse_ok": [True] * n, "fetched_in_run": [True] * n, "error": [None] * n,
            }, schema=RAW_MATCHES_SCHEMA))
    for xuid in humans:
        user = world.user(xuid)
        if user is not None:
            _write_gz(landing._path(PROFILE, str(xuid)), orjson.dumps(user))
    return ClonedLanding(wh, partitions, bodies)


def film_chunks() -> list[tuple[str, bytes, int]] | None:
    """``(match_id, chunk, film major version)`` of the recorded highlight chunks in ``../shared`` (read in
    place, never copied), or ``None`` when the folder is absent."""
    if not FILM_DIR.is_dir():
        return None
    out = []
    for path in sorted(FILM_DIR.glob("[0-9]*_*.gzip")):
        version, match_id = path.stem.split("_", 1)
        out.append((match_id, path.read_bytes(), int(version)))
    return out


class EmulatorProcess:
    """The emulator in its own process (``halo-pipeline emulator``), so that its CPU — serving, encoding synthetic
    films — is never counted against the pipeline measured in this process. ``counts()`` / ``reset_counts()`` go
    through its HTTP endpoints (``/_emulator/stats``, ``/_emulator/reset``)."""

    def __init__(self, *, players: int, seed: int, months: int, matches_per_month: int, latency_ms: float = 0.0,
                 rate_limit: float | None = None):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["--synthetic-players", str(players), "--seed", str(seed), "--months", str(months),
                     "--matches-per-month", str(matches_per_month), "--latency-ms", str(latency_ms),
                     "--port", str(self.port)] + (["--rate-limit", str(rate_limit)] if rate_limit else [])

    def __enter__(self) -> EmulatorProcess:
        import subprocess
        import sys
        import urllib.request

        self.process = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "halo_pipeline.cli", "emulator",
                                         *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/_emulator/stats", timeout=2).read()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator process did not start") from None
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        import subprocess

        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # seen once under a full test suite's load: SIGTERM not acted on in 30 s
            self.process.kill()
            self.process.wait(timeout=30)

    def counts(self) -> dict:
        import urllib.request

        return orjson.loads(urllib.request.urlopen(f"{self.url}/_emulator/stats", timeout=30).read())

    def reset_counts(self) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.url}/_emulator/reset", method="POST"), timeout=30).read()


def cpu_seconds(exclude: tuple[int, ...] = ()) -> float:
    """CPU seconds (user + system) of this process, of its children that ended, and of its live children but
    ``exclude`` (the process pool's workers, read from ``/proc/<pid>/stat``; exclude the emulator's process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = sum(u.ru_utime + u.ru_stime for u in usage)
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and int(stat.parent.name) not in exclude:  # a live child of this process
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total
