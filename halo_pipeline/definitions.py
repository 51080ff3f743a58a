"""The Dagster code location: ``dg dev`` / ``dagster dev -m halo_pipeline.definitions``.

Every object under :mod:`halo_pipeline.defs` — one folder per asset family with its assets, checks, jobs,
sensors and schedules — is loaded by ``load_from_defs_folder``: adding a family is adding a folder. Nothing here
reads the environment: resources resolve ``HALO_API_URL``, ``HALO_DATA_DIR``, ``HALO_REFERENCE_DIR`` and the token
variables at run time.
"""

from __future__ import annotations

import functools
from pathlib import Path

import dagster as dg


@dg.definitions
@functools.cache
def defs() -> dg.Definitions:
    """The definitions of the ``defs`` folder (built once per process; call ``defs()`` for the object). Every
    process that loads them (the CLI, run workers, the daemon) gets the executors' pool-wait and crash
    recovery (:func:`halo_pipeline.recovery.install`)."""
    from halo_pipeline.recovery import install

    install()
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
