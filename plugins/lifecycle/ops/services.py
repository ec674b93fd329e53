"""Embedded services: PostgreSQL from the pgserver wheel and the moto AWS emulator.

Input: ``Settings`` (target must be ``embedded``). Output: running processes whose state
lives under ``settings.home``: ``pgdata/`` (Postgres 16 + pgvector, ``wal_level=logical``,
listening on 127.0.0.1:``pg.port`` and a Unix socket in ``run/``), ``run/moto.pid`` and
logs in ``run/``. ``up`` and ``down`` are idempotent.

We start pgserver's bundled binaries with ``pg_ctl`` ourselves rather than through
``pgserver.get_server``: that helper only listens on a Unix socket, and Airflow 3 rejects
asset URIs whose host is a socket path; a TCP port also serves dbt, Metabase-style tools
and the same DSN shape as RDS.

moto keeps its state in memory. When moto is (re)started while Postgres still holds data
from an earlier environment, the two would disagree (the lake and streams are gone, the
source tables are not), so ``up`` then recreates the ``sales`` and ``warehouse``
databases: the embedded environment always restarts as one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lifecycle.settings import Settings

PG_USER_OS = "pgserver"  # postgres refuses to run as root; pgserver's own convention


class ServiceError(RuntimeError):
    pass


class PortInUseError(ServiceError):
    """A port the embedded services need is taken; the message names the process and the setting."""


@dataclass
class Status:
    postgres: bool
    moto: bool
    pg_pid: int | None
    moto_pid: int | None

    @property
    def all_up(self) -> bool:
        return self.postgres and self.moto


# ---- helpers ------------------------------------------------------------------------------

def pg_bin(settings: Settings, name: str) -> Path:
    # pgserver computes a lock path from XDG_RUNTIME_DIR at import (Linux): keep it private to
    # us and inside the project's state folder (macOS uses ~/Library/Caches but creates nothing)
    # (not under run/: that is world-writable when we run as root, and platformdirs then refuses it)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(settings.home / "xdg-runtime"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    from pgserver._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH / name


def as_pg_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER_OS, "--", *cmd]
    return cmd


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def port_owner(port: int) -> str | None:
    """`pid N (command)` of the process listening on a TCP port, or None if it cannot be told.

    psutil first (Linux; on macOS it needs root for other users' sockets), then ``lsof``, which
    macOS and most Linux distributions ship.
    """
    with contextlib.suppress(Exception):  # psutil.AccessDenied on macOS: fall through to lsof
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f"pid {conn.pid} ({' '.join(psutil.Process(conn.pid).cmdline()[:3])})"
    lsof = shutil.which("lsof")
    if lsof:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fpc"], capture_output=True,
                                 text=True, timeout=10).stdout
            pid = next((x[1:] for x in out.splitlines() if x.startswith("p")), None)
            cmd = next((x[1:] for x in out.splitlines() if x.startswith("c")), "")
            if pid:
                return f"pid {pid} ({cmd})"
    return None


def port_in_use_message(port: int, setting: str, what: str) -> str:
    owner = port_owner(port) or "another process (psutil and lsof could not tell which)"
    return f"port {port} ({what}) is in use by {owner}; stop it, or choose another port: export {setting}=<free port>"


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # a zombie still answers kill(0); treat it as gone (psutil: Linux and macOS alike)
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # e.g. access denied: it exists
        return True


# ---- Postgres -----------------------------------------------------------------------------

def _pg_pid(settings: Settings) -> int | None:
    pidfile = settings.pg_data_dir / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _pid_alive(pid) else None


def _prepare_pg_dirs(settings: Settings) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        pg_bin(settings, "postgres")  # sets XDG_RUNTIME_DIR before pgserver is imported
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(PG_USER_OS)
        import pwd

        uid, gid = pwd.getpwnam(PG_USER_OS).pw_uid, pwd.getpwnam(PG_USER_OS).pw_gid
        settings.pg_data_dir.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(settings.pg_data_dir)
        os.chown(settings.pg_data_dir, uid, gid)
        os.chmod(settings.pg_data_dir, 0o700)
        settings.run_dir.chmod(0o777)
        bin_dir = pg_bin(settings, "postgres").parent
        ensure_prefix_permissions(bin_dir)
    else:
        settings.pg_data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.pg_data_dir, 0o700)


def start_postgres(settings: Settings) -> bool:
    """Start Postgres if it is not running. Returns True if it was started now."""
    if _pg_pid(settings):
        return False
    if port_in_use(settings.pg.port):
        raise PortInUseError(port_in_use_message(settings.pg.port, "LIFECYCLE_PG_PORT", "Postgres"))
    _prepare_pg_dirs(settings)
    if not (settings.pg_data_dir / "PG_VERSION").exists():
        subprocess.run(
            as_pg_user([str(pg_bin(settings, "initdb")), "-D", str(settings.pg_data_dir), "--auth=trust",
                         "--encoding=utf8", "-U", settings.pg.user]),
            check=True, capture_output=True,
        )
    log = settings.run_dir / "postgres.log"
    if os.geteuid() == 0 and not log.exists():
        log.touch()
        os.chmod(log, 0o666)
    opts = (
        f"-h 127.0.0.1 -p {settings.pg.port} -k {settings.run_dir} "
        "-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 "
        "-c max_connections=200 -c shared_buffers=128MB -c fsync=on"
    )
    proc = subprocess.run(
        as_pg_user([str(pg_bin(settings, "pg_ctl")), "-D", str(settings.pg_data_dir), "-w", "-t", "60",
                     "-l", str(log), "-o", opts, "start"]),
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise ServiceError(f"Postgres failed to start: {proc.stderr.strip()}\n{tail}")
    return True


def stop_postgres(settings: Settings) -> None:
    if not _pg_pid(settings):
        return
    subprocess.run(
        as_pg_user([str(pg_bin(settings, "pg_ctl")), "-D", str(settings.pg_data_dir), "-w", "-t", "60",
                     "-m", "fast", "stop"]),
        capture_output=True, text=True,
    )


def ensure_databases(settings: Settings, recreate: tuple[str, ...] = ()) -> None:
    """Create sales, warehouse and airflow databases (and pgvector) if missing."""
    import psycopg2

    conn = psycopg2.connect(settings.pg_dsn("postgres"), connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for db in recreate:
                cur.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE database = %s AND NOT active", (db,),
                )
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            for db in (settings.pg.sales_db, settings.pg.warehouse_db, settings.pg.airflow_db):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
                if not cur.fetchone():
                    cur.execute(f'CREATE DATABASE "{db}"')
    finally:
        conn.close()
    for db in (settings.pg.sales_db, settings.pg.warehouse_db):
        conn = psycopg2.connect(settings.pg_dsn(db), connect_timeout=10)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
        finally:
            conn.close()


# ---- moto ---------------------------------------------------------------------------------

def _moto_pidfile(settings: Settings) -> Path:
    return settings.run_dir / "moto.pid"


def _moto_pid(settings: Settings) -> int | None:
    try:
        pid = int(_moto_pidfile(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def moto_healthy(settings: Settings) -> bool:
    # /moto-api/config is small and static; data.json serialises moto's whole state and grows
    # slow enough to time out when the lake holds many objects
    try:
        with urllib.request.urlopen(f"{settings.aws.endpoint}/moto-api/config", timeout=5) as r:
            return 200 <= r.status < 300
    except OSError:
        return False


def start_moto(settings: Settings) -> bool:
    """Start the moto server in its own session. Returns True if it was started now."""
    if _moto_pid(settings) and moto_healthy(settings):
        return False
    if port_in_use(settings.services.moto_port):
        raise PortInUseError(port_in_use_message(settings.services.moto_port, "LIFECYCLE_MOTO_PORT", "moto"))
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.run_dir / "moto.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lifecycle.ops.moto_server", "-H", "127.0.0.1", "-p", str(settings.services.moto_port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    _moto_pidfile(settings).write_text(str(proc.pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"moto exited at start; see {settings.run_dir / 'moto.log'}")
        if moto_healthy(settings):
            return True
        time.sleep(0.2)
    raise ServiceError("moto did not answer within 60 s")


def stop_moto(settings: Settings) -> None:
    pid = _moto_pid(settings)
    if pid:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(50):
            if not _pid_alive(pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    _moto_pidfile(settings).unlink(missing_ok=True)


# ---- public API ---------------------------------------------------------------------------

def _require_embedded(settings: Settings) -> None:
    if settings.target != "embedded":
        raise ServiceError(
            f"`lifecycle services` manages the embedded target only (LIFECYCLE_TARGET={settings.target}); "
            "use `docker compose up` for compose, or your AWS account for aws"
        )


def up(settings: Settings) -> dict[str, bool]:
    """Start Postgres and moto; create the databases. Idempotent."""
    _require_embedded(settings)
    had_data = (settings.pg_data_dir / "PG_VERSION").exists()
    pg_started = start_postgres(settings)
    moto_started = start_moto(settings)
    # A fresh moto means a fresh AWS: reset the databases that mirror it (see module doc).
    recreate = (settings.pg.sales_db, settings.pg.warehouse_db) if (moto_started and had_data) else ()
    ensure_databases(settings, recreate=recreate)
    return {"postgres_started": pg_started, "moto_started": moto_started,
            "environment_reset": bool(recreate)}


def down(settings: Settings) -> None:
    _require_embedded(settings)
    stop_moto(settings)
    stop_postgres(settings)


def status(settings: Settings) -> Status:
    pg_pid, moto_pid = _pg_pid(settings), _moto_pid(settings)
    return Status(
        postgres=bool(pg_pid), moto=bool(moto_pid) and moto_healthy(settings),
        pg_pid=pg_pid, moto_pid=moto_pid,
    )


def rss_mb(settings: Settings) -> dict[str, float]:
    """Current RSS of the embedded services (Postgres: all backends summed)."""
    import psutil

    out: dict[str, float] = {}
    st = status(settings)
    if st.pg_pid:
        p = psutil.Process(st.pg_pid)
        out["postgres_mb"] = sum(c.memory_info().rss for c in [p, *p.children()]) / 2**20
    if st.moto_pid:
        out["moto_mb"] = psutil.Process(st.moto_pid).memory_info().rss / 2**20
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def isolated_environment(prefix: str = "lifecycle-env-", keep: bool = False) -> Iterator[tuple[Settings, dict]]:
    """A private embedded environment (own state folder, free ports), services up and infra
    applied; yields its ``Settings`` and the environment variables that select it. Stopped and
    deleted at the end unless ``keep``. Used by the test suite and the benchmark, so neither
    ever touches a running ``make demo``.
    """
    from lifecycle.infra import apply as infra

    # not under a 0700 folder (pytest's basetemp is): the `pgserver` OS user must traverse it
    home = tempfile.mkdtemp(prefix=prefix)
    os.chmod(home, 0o755)
    env = {
        "LIFECYCLE_TARGET": "embedded",
        "LIFECYCLE_HOME": home,
        "LIFECYCLE_PG_PORT": str(free_port()),
        "LIFECYCLE_MOTO_PORT": str(free_port()),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    settings = Settings.from_env(env)
    try:
        up(settings)
        infra.apply(settings)
        yield settings, env
    finally:
        if not keep:
            with contextlib.suppress(Exception):
                down(settings)
            shutil.rmtree(home, ignore_errors=True)
