"""Real servers and processes for the tests and benchmarks (not used by the pipeline itself): a throwaway
PostgreSQL cluster, ``halo-pipeline`` processes (paused at a chosen point, killed with ``kill -9``), the Dagster
UI (webserver, ``dg dev``, daemon) with the GraphQL queries the UI sends, and stopping a server started in its
own process group.

The PostgreSQL server is started from the binaries of the ``pgserver`` wheel (a dev dependency, so no system
package is needed), or Debian's ``postgresql`` (``/usr/lib/postgresql/*/bin``) when the wheel is absent. It listens
on 127.0.0.1 with password authentication, like a remote server.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PASSWORD = "halo-test-secret"


class Unavailable(RuntimeError):
    """The server cannot be started on this machine (the message says why)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_binaries() -> tuple[Path, str | None]:
    """``(bin folder, system user to run as when root)``.

    Raises:
        Unavailable: no PostgreSQL server binaries here.
    """
    try:
        from pgserver._commands import POSTGRES_BIN_PATH

        if (POSTGRES_BIN_PATH / "initdb").exists():
            return POSTGRES_BIN_PATH, "pgserver"
    except ImportError:
        pass
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists():
            return Path(folder), "postgres"
    raise Unavailable("no PostgreSQL server binaries: neither the pgserver wheel (pip install -e '.[dev]') nor "
                      "Debian's postgresql package (/usr/lib/postgresql/*/bin) is installed")


@contextmanager
def postgres_server() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL cluster on 127.0.0.1:<free port> (password auth for TCP); yields the
    ``DAGSTER_PG_*`` variables ``deploy/dagster.yaml`` reads. Stopped (``pg_ctl stop -m fast``) and deleted after."""
    bin_dir, system_user = postgres_binaries()
    root = Path(tempfile.mkdtemp(prefix="halo-pg-"))  # short: the unix socket path is limited to ~100 bytes
    data = root / "data"
    user = None
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as an unprivileged system user
        if system_user == "pgserver":
            from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(system_user)
            ensure_prefix_permissions(bin_dir)
            ensure_folder_permissions(bin_dir, 0o055)
            ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        try:
            pwd.getpwnam(system_user)  # Debian's package creates `postgres`; pgserver's helper created its own
        except KeyError:
            raise Unavailable(f"running as root and no system user {system_user!r} to run PostgreSQL as") from None
        user = system_user
        root.chmod(0o755)
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if user:
        shutil.chown(root, user)
        shutil.chown(pwfile, user)

    def run(*args: str) -> None:
        done = subprocess.run([str(bin_dir / args[0]), *args[1:]], user=user, capture_output=True, text=True,
                              timeout=120, cwd=root)
        assert done.returncode == 0, f"{args[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}"

    port = _free_port()
    run("initdb", "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}", "--auth-local=trust",
        "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync")
    try:
        run("pg_ctl", "-D", str(data), "-w", "-t", "60", "-l", str(root / "server.log"), "-o",
            f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off", "start")
        run("createdb", "-h", str(root), "-p", str(port), "-U", "postgres", "dagster")
        yield {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_USER": "postgres",
               "DAGSTER_PG_PASSWORD": PASSWORD, "DAGSTER_PG_DB": "dagster"}
    finally:
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], user=user,
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------------- CLI processes
#: The ``halo-pipeline`` script of this environment.
HALO_CLI = Path(sys.executable).parent / "halo-pipeline"


def cli_env(data_dir: Path, api_url: str, dagster_home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``halo-pipeline`` process on ``data_dir`` (its instance in ``dagster_home``, default
    ``<data_dir>/dagster_home``) against the emulator at ``api_url``; ``extra``: more variables."""
    from halo_pipeline.storage.warehouse import DEFAULT_REFERENCE_DIR

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HALO_", "DAGSTER_"))}
    env.update(HALO_DATA_DIR=str(data_dir), HALO_API_URL=api_url, HALO_REFERENCE_DIR=str(DEFAULT_REFERENCE_DIR),
               DAGSTER_HOME=str(dagster_home or Path(data_dir) / "dagster_home"))
    return env | extra


def halo(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``halo-pipeline *args`` to its end (output captured as text)."""
    return subprocess.run([str(HALO_CLI), *args], env=env, capture_output=True, text=True, timeout=timeout)


def start_halo(*args: str, env: dict[str, str], pause_at: str | None = None,
               marker: Path | None = None) -> subprocess.Popen:
    """Start ``halo-pipeline *args`` in its own process group (stop it with :func:`kill_group`), optionally
    told to pause at ``pause_at`` writing ``marker`` (:mod:`halo_pipeline.pausepoint`). Output goes to pipes."""
    if pause_at:
        env = {**env, "HALO_TEST_PAUSE_AT": pause_at, "HALO_TEST_PAUSE_FILE": str(marker)}
    return subprocess.Popen([str(HALO_CLI), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def wait_for_pause(process: subprocess.Popen, marker: Path, timeout: float = 180) -> dict:
    """The pause marker's content (``point``, ``detail``, ``pid``) once ``process`` reached its pause point.

    Raises:
        AssertionError: the process ended, or did not pause within ``timeout``.
    """
    import json
    import time

    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"ended (rc {process.returncode}) before pausing:\n{out[-2000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"did not pause within {timeout} s")
        time.sleep(0.02)
    return json.loads(marker.read_text())


def kill_group(process: subprocess.Popen) -> None:
    """``kill -9`` a process started by :func:`start_halo` and its children (its process group), and reap it."""
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate(timeout=30)


# --------------------------------------------------------------------------------------------------- Dagster UI

#: The partition statuses of an asset and of its checks, as the UI's asset page asks for them.
ASSET_STATUS_QUERY = """
query AssetStatuses($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename
    ... on AssetNode {
      assetPartitionStatuses {
        __typename
        ... on MultiPartitionStatuses {
          ranges { primaryDimStartKey primaryDimEndKey secondaryDim {
            __typename
            ... on DefaultPartitionStatuses { materializedPartitions failedPartitions unmaterializedPartitions
                                              materializingPartitions } } }
        }
      }
      assetChecksOrError { __typename ... on AssetChecks { checks {
        name
        partitionStatuses {
          __typename
          ... on AssetCheckMultiPartitionStatuses {
            ranges { primaryDimStartKey primaryDimEndKey secondaryDim {
              __typename
              ... on AssetCheckDefaultPartitionStatuses { succeededPartitions failedPartitions inProgressPartitions
                                                          skippedPartitions executionFailedPartitions } } }
          }
        }
      } } }
    }
  }
}
"""

#: The materializations of some partitions of an asset with their metadata (the UI's partition side panel).
PARTITION_EVENTS_QUERY = """
query PartitionEvents($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition runId timestamp
        metadataEntries { __typename label ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text }
                          ... on MarkdownMetadataEntry { mdStr } }
      }
    }
  }
}
"""

LAUNCH_BACKFILL_MUTATION = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status numPartitions
      runs(limit: 1000) { runId status }
    }
    ... on PythonError { message }
  }
}
"""


class GraphQLError(RuntimeError):
    """The webserver answered a GraphQL query with errors (the message lists them)."""


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 120.0) -> dict:
    """POST ``query`` to the webserver's GraphQL endpoint (what the UI calls); returns ``data``.

    Raises:
        GraphQLError: the answer holds ``errors``.
    """
    import json
    import urllib.request

    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query, "variables": variables or {}})
                                     .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if answer.get("errors"):
        raise GraphQLError("; ".join(e.get("message", str(e)) for e in answer["errors"])[:2000])
    return answer["data"]


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a ``subprocess.Popen`` started with ``start_new_session=True`` (dagster dev / dagster-daemon) and
    its children by its process group: SIGTERM, then SIGKILL after 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def _serving(command: list[str], cwd: Path, env: dict[str, str], url: str, log: Path,
             timeout: float) -> Iterator[str]:
    """Run ``command`` (a Dagster UI server) in its own process group until exit; yields ``url`` once GraphQL
    answers there."""
    import time

    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                graphql(url, "{ version }", timeout=5)
                break
            except Exception:  # noqa: BLE001 - not up yet
                if process.poll() is not None or time.monotonic() > deadline:
                    raise Unavailable(f"{command[0]} did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield url
    finally:
        stop_process_group(process)


@contextmanager
def dagster_webserver(workspace: Path, env: dict[str, str], cwd: Path, timeout: float = 120.0) -> Iterator[str]:
    """The real ``dagster-webserver`` on 127.0.0.1:<free port> for ``workspace``, in its own process group
    (stopped by it on exit); yields its base URL once GraphQL answers.

    Raises:
        Unavailable: it did not answer within ``timeout`` (the message holds its output's tail).
    """
    port = _free_port()
    command = [str(Path(sys.executable).with_name("dagster-webserver")), "-w", str(workspace), "-h", "127.0.0.1",
               "-p", str(port)]
    with _serving(command, cwd, env, f"http://127.0.0.1:{port}", cwd / f"webserver-{port}.log", timeout) as url:
        yield url


@contextmanager
def dg_dev(project: Path, env: dict[str, str], timeout: float = 180.0) -> Iterator[str]:
    """``dg dev`` (webserver + daemon) run in ``project`` on 127.0.0.1:<free port>, in its own process group;
    yields the UI's base URL once GraphQL answers."""
    port = _free_port()
    command = [str(Path(sys.executable).with_name("dg")), "dev", "--host", "127.0.0.1", "--port", str(port)]
    with _serving(command, project, env, f"http://127.0.0.1:{port}", project / f"dg-dev-{port}.log", timeout) as url:
        yield url


@contextmanager
def dagster_daemon(workspace: Path, env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen]:
    """The real ``dagster-daemon`` for ``workspace`` in its own process group (stopped by it on exit)."""
    with open(cwd / "daemon.log", "wb") as out:
        process = subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w",
                                    str(workspace)], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield process
    finally:
        stop_process_group(process)

