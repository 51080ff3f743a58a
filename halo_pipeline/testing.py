"""Real servers and processes for the tests and benchmarks (not used by the pipeline itself): a throwaway
PostgreSQL cluster, and ``halo-pipeline`` processes (paused at a chosen point, killed with ``kill -9``).

The PostgreSQL server is started from the binaries of the ``pgserver`` wheel (a dev dependency, so no system
package is needed), or Debian's ``postgresql`` (``/usr/lib/postgresql/*/bin``) when the wheel is absent. It listens
on 127.0.0.1 with password authentication, like a remote server.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
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
#: The reference JSON files shipped with the repository.
REPO_REFERENCE = Path(__file__).resolve().parents[1] / "static" / "reference"


def cli_env(data_dir: Path, api_url: str, dagster_home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``halo-pipeline`` process on ``data_dir`` (its instance in ``dagster_home``, default
    ``<data_dir>/dagster_home``) against the emulator at ``api_url``; ``extra``: more variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HALO_", "DAGSTER_"))}
    env.update(HALO_DATA_DIR=str(data_dir), HALO_API_URL=api_url, HALO_REFERENCE_DIR=str(REPO_REFERENCE),
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
