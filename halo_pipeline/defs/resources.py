"""Resources and executor of the code location (what every asset family shares)."""

import os

import dagster as dg

from halo_pipeline.api.resource import HaloApiResource
from halo_pipeline.storage.resource import WarehouseResource

#: Which engine runs the steps of a run: ``in_process`` (default), ``multiprocess`` or ``celery``. Read when the
#: code location loads (every process that loads it — webserver, daemon, run workers, celery workers — must see
#: the same value; ``deploy/k8s/values.yaml`` sets it for all of them).
EXECUTOR_ENV = "HALO_EXECUTOR"
#: The celery broker and result backend (``redis://host:6379/0``); read at run time by the celery executor.
CELERY_BROKER_ENV, CELERY_BACKEND_ENV = "HALO_CELERY_BROKER", "HALO_CELERY_BACKEND"


def executor() -> dg.ExecutorDefinition:
    """The executor named by ``$HALO_EXECUTOR``.

    * ``in_process``: every step in the run's process — steps are cheap and write their own files, and a
      process per step (≈1–2 s each) would dominate small syncs. The default, up to a few hundred players.
    * ``multiprocess``: a process per step, on the run's machine.
    * ``celery``: each step is a task on a celery queue (``dagster``), run by ``dagster-celery`` workers on any
      machine reaching the broker ``$HALO_CELERY_BROKER`` (e.g. ``redis://…``) and the same data location.

    Raises:
        ValueError: an unknown engine name.
    """
    engine = os.environ.get(EXECUTOR_ENV, "in_process") or "in_process"
    if engine == "in_process":
        return dg.in_process_executor
    if engine == "multiprocess":
        return dg.multiprocess_executor
    if engine == "celery":
        from dagster_celery import celery_executor

        backend = {"env": CELERY_BACKEND_ENV} if os.environ.get(CELERY_BACKEND_ENV) else "rpc://"
        return celery_executor.configured({"broker": {"env": CELERY_BROKER_ENV}, "backend": backend})
    raise ValueError(f"{EXECUTOR_ENV}={engine!r}: expected in_process, multiprocess or celery")


@dg.definitions
def resources() -> dg.Definitions:
    """The Halo API and the data location, resolved at run time (``HALO_API_URL``, ``HALO_DATA_DIR``…), and the
    executor of ``$HALO_EXECUTOR`` (see :func:`executor`)."""
    return dg.Definitions(resources={"halo_api": HaloApiResource(), "warehouse": WarehouseResource()},
                          executor=executor())
