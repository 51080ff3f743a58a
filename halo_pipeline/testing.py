"""Real servers for the tests and benchmarks (not used by the pipeline itself): a throwaway PostgreSQL cluster, and
stopping a server started in its own process group.

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


def stop_process_group(process) -> None:
    """Stop a ``subprocess.Popen`` started with ``start_new_session=True`` (dagster dev / dagster-daemon) and
    its children by its process group: SIGTERM, then SIGKILL after 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
