"""A PostgreSQL cluster of the project's own, from Debian's package: a folder, a port on 127.0.0.1, passwords.

    cluster = PgCluster(Path(".stack/postgres"), port=55432, password_file=Path("~/.config/metacot/pgpass"))
    cluster.init(password)          # initdb once: superuser `metacot`, scram-sha-256 for every connection
    proc = cluster.start(log)       # the postmaster, a child in its own session; stopped by its id
    cluster.create_databases(["prefect", "mlflow"])

Why its own cluster and not the system's: the stack must start and stop with the project, on a port of
its choosing, without touching a database someone else runs. No connection is trusted: initdb sets
scram-sha-256 for local and host connections, the server listens on 127.0.0.1 only and has no Unix
socket (so no peer auth either). Clients find the password in a libpq password file (PGPASSFILE)
outside the repository, so it never appears in a command line, a URL or the environment of the
servers. PostgreSQL refuses to run as root; as root the server runs as the `postgres` user the
Debian package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from cli.processes import LOOPBACK, ServerFailed, die_with_parent

SUPERUSER = "metacot"
PG_GLOBS = ("/usr/lib/postgresql/*/bin",)  # Debian's layout: one folder per major version


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine (Debian: apt-get install postgresql)."""


def pg_bindir() -> Path:
    """The newest Debian PostgreSQL bin folder, else the one holding `initdb` on PATH."""
    found = sorted(glob.glob(f"{PG_GLOBS[0]}/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresMissing("PostgreSQL is not installed: `apt-get install -y postgresql` "
                          "(scripts/ci_setup.sh does it)")


def server_user() -> pwd.struct_passwd | None:
    """Who the server runs as: `postgres` when we are root (the server refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresMissing("running as root needs the `postgres` user (Debian's package makes it)"
                              ) from None


def write_pgpass(path: Path, password: str) -> None:
    """A libpq password file for the superuser on 127.0.0.1 (any port): 0600, as libpq demands."""
    if ":" in password or "\\" in password or "\n" in password:
        raise ValueError("the database password may not contain ':', '\\' or a newline")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{LOOPBACK}:*:*:{SUPERUSER}:{password}\n")
    os.chmod(path, 0o600)


class PgCluster:
    """One data folder, one port; `start` returns the postmaster's process."""

    def __init__(self, data_dir: Path, port: int, password_file: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.password_file = password_file
        self.bindir = pg_bindir()
        self.user = server_user()

    def url(self, database: str, driver: str = "postgresql") -> str:
        """A connection URL without the password (libpq and asyncpg read it from PGPASSFILE)."""
        return f"{driver}://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    def client_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.update({"PGPASSFILE": str(self.password_file), "PGHOST": LOOPBACK, "PGPORT": str(self.port),
                    "PGUSER": SUPERUSER})
        env.pop("PGPASSWORD", None)
        return env

    def _as_server_user(self) -> dict[str, object]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def init(self, password: str) -> None:
        """initdb once, the superuser's password from a temporary file only the server user reads."""
        if self.initialized():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.user is not None:
            os.chown(self.data_dir, self.user.pw_uid, self.user.pw_gid)
        fd, pwfile = tempfile.mkstemp(prefix="metacot-pg-")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(password + "\n")
            if self.user is not None:
                os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
            cmd = [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                   f"--pwfile={pwfile}", "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                   "-E", "UTF8", "--no-instructions"]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd="/", **self._as_server_user())
        finally:
            os.unlink(pwfile)
        if done.returncode != 0:
            raise ServerFailed(f"initdb {self.data_dir} failed: {done.stderr.strip()[-800:]}")

    def start(self, log: Path, tie_to_parent: bool = False) -> subprocess.Popen:
        """The postmaster on 127.0.0.1:<port>, no Unix socket, in its own session (group = its pid);
        `tie_to_parent`: the kernel stops it when this process dies (tests)."""
        cmd = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-c", f"listen_addresses={LOOPBACK}",
               "-c", f"port={self.port}", "-c", "unix_socket_directories=", "-c", "max_connections=100"]
        out = open(log, "ab")  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd="/", start_new_session=True,
                                    preexec_fn=die_with_parent() if tie_to_parent else None,
                                    **self._as_server_user())
        finally:
            out.close()

    def ready(self) -> bool:
        done = subprocess.run([str(self.bindir / "pg_isready"), "-h", LOOPBACK, "-p", str(self.port), "-q"],
                              capture_output=True, check=False)
        return done.returncode == 0

    def wait_ready(self, proc: subprocess.Popen | None, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise ServerFailed(f"postgres exited with code {proc.returncode} before it was ready")
            if self.ready():
                return
            time.sleep(0.3)
        raise TimeoutError(f"postgres on {LOOPBACK}:{self.port} not ready after {timeout:.0f} s")

    def psql(self, sql: str, database: str = "postgres") -> str:
        cmd = [str(self.bindir / "psql"), "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql]
        done = subprocess.run(cmd, capture_output=True, text=True, env=self.client_env(), check=False)
        if done.returncode != 0:
            raise ServerFailed(f"psql on {LOOPBACK}:{self.port}: {done.stderr.strip()[-500:]}")
        return done.stdout.strip()

    def create_databases(self, names: list[str]) -> None:
        """Each database once (CREATE DATABASE cannot say IF NOT EXISTS)."""
        have = set(self.psql("SELECT datname FROM pg_database").split())
        for name in names:
            if name not in have:
                self.psql(f'CREATE DATABASE "{name}" OWNER {SUPERUSER}')

