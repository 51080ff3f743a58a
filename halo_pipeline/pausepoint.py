"""A test hook: stop this process at a chosen point, so that a test can ``kill -9`` it exactly there.

Inactive unless ``HALO_TEST_PAUSE_AT`` is set (read at each call, never at import; unset, a call costs one
dictionary look-up). The crash tests (``halo_pipeline_tests/test_crash_safety.py``) set it on a real
``halo-pipeline sync`` process:

``HALO_TEST_PAUSE_AT=<point>[@<text>]``
    ``before_rename``: a file's temp copy is written and fsync'd, not yet renamed into place
    (:mod:`halo_pipeline.storage.files`); ``pool_held``: a step has claimed its pool slot (``halo_api``) in the
    instance and not started (:mod:`halo_pipeline.recovery`); ``catalog_write``: an update of the serving store
    (``halo.duckdb``) is written in its slot, the slot's write lock held, not committed nor published
    (:mod:`halo_pipeline.storage.serving`).
    ``@<text>``: only where the detail (the file path, the step key) contains ``text``.
``HALO_TEST_PAUSE_FILE=<path>``
    written (JSON: ``point``, ``detail``, ``pid``) when the point is reached; the process then waits until this
    file is deleted (at most ``HALO_TEST_PAUSE_SECONDS``, default 300) and goes on.

Only the first matching point of a process pauses.
"""

from __future__ import annotations

import json
import os
import time

POINTS = ("before_rename", "pool_held", "catalog_write")
_ENV, _FILE_ENV, _SECONDS_ENV = "HALO_TEST_PAUSE_AT", "HALO_TEST_PAUSE_FILE", "HALO_TEST_PAUSE_SECONDS"
_paused: list[str] = []


def pause_at(point: str, detail: str = "") -> None:
    """Pause here when ``HALO_TEST_PAUSE_AT`` names ``point`` (and its ``@text`` is in ``detail``); see above."""
    spec = os.environ.get(_ENV)
    if not spec or _paused:
        return
    name, _, needle = spec.partition("@")
    if name != point or needle not in detail:
        return
    _paused.append(point)
    marker = os.environ.get(_FILE_ENV)
    if not marker:
        return
    tmp = f"{marker}.{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump({"point": point, "detail": detail, "pid": os.getpid()}, fh)
    os.replace(tmp, marker)  # the test sees the marker whole
    deadline = time.monotonic() + float(os.environ.get(_SECONDS_ENV) or 300)
    while os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
