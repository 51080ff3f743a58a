"""The benchmarks' smoke mode (tiny sizes): every benchmark still runs end to end, so they never rot.

Speed is measured by ``python -m benchmarks.run`` (full mode), never asserted here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from halo_pipeline_tests.conftest import REPO

pytestmark = pytest.mark.system  # real components or separate processes: the full tier


def test_benchmarks_smoke_mode_runs_every_benchmark():
    out = subprocess.run([sys.executable, "-m", "benchmarks.run", "--smoke"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)  # a bound against a hang, not a speed assertion
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for title in ("(a) First import", "(b) Delta sync", "(c) Re-derive", "(d) Dagster overhead", "(e) Memory",
                  "(f) Queries", "(g) Film decode", "(h) players table", "(i) Small syncs", "(j) LevelUp import",
                  "(k) Crash recovery", "(l) Serving store", "(m) Dagster at scale"):
        assert title in out.stdout, title
    assert "ratio" in out.stdout
