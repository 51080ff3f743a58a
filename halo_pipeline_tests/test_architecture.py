"""The layout shows the architecture: imports only point down, the lower layers import no Dagster, ``defs/``
modules stay small, and benchmarks import no test module. Every import counts, function-level ones included."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from halo_pipeline_tests.conftest import REPO

PACKAGE = REPO / "halo_pipeline"

#: Lowest first. A module may import modules of its own layer or of a lower one, never of a higher one.
LAYERS: list[tuple[str, ...]] = [
    ("halo_pipeline.ids", "halo_pipeline.months", "halo_pipeline.pausepoint"),
    ("halo_pipeline.transforms",),
    ("halo_pipeline.tables",),
    ("halo_pipeline.storage", "halo_pipeline.api", "halo_pipeline.partitions"),
    ("halo_pipeline.services", "halo_pipeline.emulator", "halo_pipeline.testing"),
    ("halo_pipeline.instance", "halo_pipeline.recovery", "halo_pipeline.doctor"),
    ("halo_pipeline.defs",),
    ("halo_pipeline.definitions",),
    ("halo_pipeline.runner",),
    ("halo_pipeline.cli",),
]
#: Dagster-free: pure transforms, storage and services (their Dagster adapters are the ``resource`` modules).
DAGSTER_FREE = ("halo_pipeline.ids", "halo_pipeline.months", "halo_pipeline.pausepoint", "halo_pipeline.transforms",
                "halo_pipeline.tables", "halo_pipeline.storage", "halo_pipeline.api", "halo_pipeline.services",
                "halo_pipeline.emulator")
#: ``api.auth`` reads the token variables through ``dg.EnvVar``, as every secret of the project is read.
ADAPTERS = ("halo_pipeline.storage.resource", "halo_pipeline.api.resource", "halo_pipeline.api.auth")
MAX_DEFS_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved), at any depth of the code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def layer_of(module: str) -> int | None:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in MODULES if layer_of(module_name(p)) is None
               and module_name(p) != "halo_pipeline"]
    assert not missing, f"modules outside every layer: {missing}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_only_point_down(path: Path):
    own = layer_of(module_name(path))
    if own is None:
        return
    climbing = sorted(m for m in imports_of(path)
                      if m.startswith("halo_pipeline") and (layer_of(m) or 0) > own)
    assert not climbing, f"{module_name(path)} (layer {own}) imports higher layers: {climbing}"


@pytest.mark.parametrize("path", [p for p in MODULES if module_name(p).startswith(DAGSTER_FREE)
                                  and not module_name(p).startswith(ADAPTERS)], ids=module_name)
def test_lower_layers_import_no_dagster(path: Path):
    dagster = sorted(m for m in imports_of(path) if m.split(".")[0].startswith("dagster"))
    assert not dagster, f"{module_name(path)} imports {dagster}"


def test_defs_modules_stay_small():
    large = {module_name(p): n for p in (PACKAGE / "defs").rglob("*.py")
             if (n := len(p.read_text().splitlines())) > MAX_DEFS_LINES}
    assert not large, f"defs modules over {MAX_DEFS_LINES} lines: {large}"


def test_benchmarks_import_no_test_module():
    offenders = {str(p.relative_to(REPO)) for p in (REPO / "benchmarks").glob("*.py")
                 if any(m.startswith("halo_pipeline_tests") for m in imports_of(p))}
    assert not offenders, offenders


def test_the_check_sees_function_level_imports(tmp_path, monkeypatch):
    """The walk must see an import hidden in a function (the kind that used to climb)."""
    module = PACKAGE / "services" / "_probe_tmp.py"
    module.write_text("def f():\n    from halo_pipeline.definitions import defs\n    return defs\n")
    try:
        assert "halo_pipeline.definitions" in imports_of(module)
        with pytest.raises(AssertionError, match="imports higher layers"):
            test_imports_only_point_down(module)
    finally:
        module.unlink()


@pytest.mark.slow
def test_dg_check_defs_loads_the_project():
    """``dg check defs`` (the dg project layout) loads every definition of the defs folder."""
    dg_cli = Path(sys.executable).parent / "dg"
    done = subprocess.run([str(dg_cli), "check", "defs"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr
