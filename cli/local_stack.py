"""The stack of docker-compose.yml without Docker: the same services from this machine's packages.

    bash scripts/local_stack.sh start   # = python -m cli.local_stack start [--state-dir D] [--auto-ports]
    source .stack/stack.env             # PREFECT_API_URL, MLFLOW_TRACKING_URI, RAY_ADDRESS (+ Ray's token)
    prefect deployment run metacot-pipeline/countdown-tiny
    bash scripts/local_stack.sh status
    bash scripts/local_stack.sh stop       # every process it started, by id

What runs, all on 127.0.0.1 (compose service in brackets):
  - PostgreSQL from Debian's package, a cluster in <state>/postgres, password auth [postgres];
  - `prefect server start` on its `prefect` database [prefect-server];
  - `mlflow server` on its `mlflow` database, artifacts in <state>/mlartifacts, host and CORS checks
    on [mlflow];
  - a Ray head and a second Ray node on this machine, the CPUs split between them [ray-head, ray-worker];
  - the process work pool, `prefect deploy --all` of prefect.yaml [prefect-deploy], and a worker polling
    the pool [prefect-worker], with the three variables and this repository on its PYTHONPATH.
Secrets live outside the repository (`METACOT_STACK_SECRETS`, default ~/.config/metacot): the database
password (`METACOT_PG_PASSWORD`, else a generated `postgres-password` file), the libpq password file the
servers read it from, and Ray's cluster token (Ray 2.5x refuses nodes and drivers without it). Output
folders are plain paths: every "node" here shares this machine's disk, which is what the storage
contract asks of a real cluster (a shared folder or volume for `output_dir`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from cli.postgres import PgCluster
from cli.processes import LOOPBACK, ServerFailed, free_port
from cli.stack_procs import Daemon, http_ok, log_tail, spawn, stop_daemon, wait_until

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STATE = ROOT / ".stack"
POOL = "metacot-process"
WORKER_NAME = "metacot-local-worker"
DATABASES = ("prefect", "mlflow")
OBJECT_STORE = str(200 * 1024 * 1024)  # bytes per Ray node: these machines have little shared memory
# The order services start in; they stop in the reverse order.
ORDER = ("postgres", "prefect-server", "mlflow", "ray-head", "ray-worker", "prefect-worker")
# Ray's defaults wait 15 s before a node whose raylet died is declared dead; one machine can afford 3.
RAY_FAST_FAILURE = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3",
                    "RAY_health_check_timeout_ms": "1000"}


class StackError(RuntimeError):
    """The local stack cannot start or is not running."""


@dataclass
class _Job:
    """A one-shot command of the start (the compose file's prefect-deploy job)."""

    what: str
    proc: subprocess.Popen
    log: Path

    def check(self, timeout: float = 600.0) -> None:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        if code != 0:
            raise ServerFailed(f"`{self.what}` failed (exit {code}):\n{log_tail(self.log, 30)}")


@dataclass
class Ports:
    """Compose's ports (Postgres on 55432, not a system server's 5432); `auto()` for throwaway stacks."""

    postgres: int = 55432
    prefect: int = 4200
    mlflow: int = 5000
    ray: int = 6379
    ray_dashboard: int = 8265
    ray_client: int = 10001
    ray_agent_head: int = 52365
    ray_agent_worker: int = 52366

    @classmethod
    def auto(cls) -> Ports:
        chosen: set[int] = set()
        values = []
        for _ in fields(cls):
            port = free_port()
            while port in chosen:
                port = free_port()
            chosen.add(port)
            values.append(port)
        return cls(*values)


def secrets_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    path = Path(os.environ.get("METACOT_STACK_SECRETS") or Path(base) / "metacot").expanduser().resolve()
    if path == ROOT or ROOT in path.parents:
        raise StackError(f"METACOT_STACK_SECRETS={path} is inside the repository; secrets must live "
                         "outside it")
    return path


def _secret_file(path: Path, make: Any) -> str:
    """The file's content, created (0600, folder 0700) on first use."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make() + "\n")
    return path.read_text().strip()


def cpu_split(total: int | None = None) -> tuple[int, int]:
    """(head, second node) logical CPUs: half each, at least one each."""
    total = total or os.cpu_count() or 2
    head = max(1, total // 2)
    return head, max(1, total - head)


class LocalStack:
    """One stack: a state folder (databases, artifacts, logs, `stack.json`, `stack.env`) and its ports."""

    def __init__(self, state_dir: Path = DEFAULT_STATE, ports: Ports | None = None, ui: bool = True,
                 tie_to_parent: bool = False) -> None:
        self.state = state_dir.resolve()
        self.record_path = self.state / "stack.json"
        saved = self._load()
        self.ports = ports or (Ports(**saved["ports"]) if saved else Ports())
        recorded = (saved or {}).get("daemons", {})
        self.daemons: dict[str, Daemon] = {k: Daemon(**v) for k, v in recorded.items()}
        self.ui = ui
        self.tie = tie_to_parent
        self.secrets = secrets_dir()
        self.pgpass = self.secrets / "pgpass"
        self.ray_token = self.secrets / "ray-auth-token"
        self.pg = PgCluster(self.state / "postgres", self.ports.postgres, self.pgpass)
        # Ray's unix sockets live in its temp folder; the path must stay short (108 bytes), so not here.
        self.ray_temp = Path("/tmp") / f"metacot-ray-{hashlib.sha1(str(self.state).encode()).hexdigest()[:8]}"

    # ------------------------------------------------------------------------------ addresses and env

    @property
    def prefect_api(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.prefect}/api"

    @property
    def mlflow_uri(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.mlflow}"

    @property
    def ray_address(self) -> str:
        return f"{LOOPBACK}:{self.ports.ray}"

    @property
    def env_file(self) -> Path:
        return self.state / "stack.env"

    def client_vars(self) -> dict[str, str]:
        """What a user (or a test, or the worker) needs to use the stack."""
        return {"PREFECT_API_URL": self.prefect_api, "MLFLOW_TRACKING_URI": self.mlflow_uri,
                "RAY_ADDRESS": self.ray_address, "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(self.ray_token)}

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "RAY_"))}
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
        env["PREFECT_HOME"] = str(self.state / "prefect")
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        return env

    def client_env(self) -> dict[str, str]:
        return {**self._base_env(), **self.client_vars()}

    # ----------------------------------------------------------------------------------- the record

    def _load(self) -> dict[str, Any] | None:
        if self.record_path.is_file():
            return json.loads(self.record_path.read_text())
        return None

    def _save(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        data = {"ports": asdict(self.ports), "daemons": {k: d.to_dict() for k, d in self.daemons.items()}}
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.record_path)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str], **popen: Any) -> Daemon:
        old = self.daemons.get(name)
        if old is not None and old.alive():
            raise StackError(f"{name} is already running (pid {old.pid})")
        daemon, _ = spawn(name, cmd, env, ROOT, self.state / "logs" / f"{name}.log", self.tie, **popen)
        self.daemons[name] = daemon
        self._save()
        return daemon

    # -------------------------------------------------------------------------------- the services

    def start_postgres(self) -> Daemon:
        password = os.environ.get("METACOT_PG_PASSWORD") or _secret_file(
            self.secrets / "postgres-password", lambda: secrets.token_urlsafe(24))
        from cli.postgres import write_pgpass

        write_pgpass(self.pgpass, password)
        self.pg.init(password)
        log = self.state / "logs" / "postgres.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = self.pg.start(log, self.tie)
        import psutil

        daemon = Daemon("postgres", proc.pid, psutil.Process(proc.pid).create_time(), str(log))
        self.daemons["postgres"] = daemon
        self._save()
        wait_until(self.pg.ready, daemon, "postgres to accept connections", 60)
        self.pg.create_databases(list(DATABASES))
        return daemon

    def start_prefect_server(self) -> Daemon:
        env = {**self._base_env(), "PGPASSFILE": str(self.pgpass),
               "PREFECT_API_DATABASE_CONNECTION_URL": self.pg.url("prefect", "postgresql+asyncpg"),
               "PREFECT_SERVER_API_HOST": LOOPBACK, "PREFECT_SERVER_API_PORT": str(self.ports.prefect),
               "PREFECT_UI_ENABLED": "true" if self.ui else "false", "PREFECT_UI_API_URL": self.prefect_api,
               "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"}
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", LOOPBACK,
               "--port", str(self.ports.prefect)]
        return self._spawn("prefect-server", cmd, env)

    def mlflow_command(self) -> list[str]:
        """MLflow 3's server with its security middleware on: Host headers and CORS origins of this
        machine's loopback names only (a page elsewhere cannot drive it through a browser)."""
        port = self.ports.mlflow
        hosts = ",".join(f"{h}:{port}" for h in (LOOPBACK, "localhost"))
        origins = ",".join(f"http://{h}:{port}" for h in (LOOPBACK, "localhost"))
        return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.pg.url("mlflow"),
                "--artifacts-destination", str(self.state / "mlartifacts"), "--host", LOOPBACK,
                "--port", str(port), "--workers", "1", "--allowed-hosts", hosts,
                "--cors-allowed-origins", origins]

    def start_mlflow(self) -> Daemon:
        (self.state / "mlartifacts").mkdir(parents=True, exist_ok=True)
        env = {**self._base_env(), "PGPASSFILE": str(self.pgpass)}
        return self._spawn("mlflow", self.mlflow_command(), env)

    def _ray_env(self) -> dict[str, str]:
        _secret_file(self.ray_token, lambda: secrets.token_hex(32))
        return {**self._base_env(), **RAY_FAST_FAILURE, "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(self.ray_token)}

    def start_ray_head(self) -> Daemon:
        head, _ = cpu_split()
        p = self.ports
        cmd = [sys.executable, "-m", "cli.ray_node", "start", "--head", "--node-ip-address", LOOPBACK,
               "--port", str(p.ray), "--num-cpus", str(head), "--dashboard-host", LOOPBACK,
               "--dashboard-port", str(p.ray_dashboard), "--ray-client-server-port", str(p.ray_client),
               "--dashboard-agent-listen-port", str(p.ray_agent_head), "--object-store-memory", OBJECT_STORE,
               "--temp-dir", str(self.ray_temp), "--disable-usage-stats", "--block"]
        return self._spawn("ray-head", cmd, self._ray_env())

    def start_ray_worker(self, prefix: list[str] | None = None) -> Daemon:
        """The second node; `prefix` wraps its command (a test hides a folder from it this way)."""
        _, worker = cpu_split()
        cmd = [*(prefix or []), sys.executable, "-m", "cli.ray_node", "start", "--address", self.ray_address,
               "--node-ip-address", LOOPBACK, "--num-cpus", str(worker),
               "--dashboard-agent-listen-port", str(self.ports.ray_agent_worker),
               "--object-store-memory", OBJECT_STORE, "--disable-usage-stats", "--block"]
        return self._spawn("ray-worker", cmd, self._ray_env())

    def create_pool(self) -> None:
        """Compose's prefect-deploy job, first half: the process work pool."""
        self._prefect_cli(["work-pool", "create", POOL, "--type", "process", "--overwrite"]).check()

    def start_deploy(self) -> _Job:
        """Compose's prefect-deploy job, second half: every deployment of prefect.yaml (it imports each
        flow, the slowest step of a start, so it runs while the rest boots)."""
        return self._prefect_cli(["--no-prompt", "deploy", "--all"])

    def _prefect_cli(self, args: list[str]) -> _Job:
        log = self.state / "logs" / "prefect-deploy.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as out:
            out.write(f"$ prefect {' '.join(args)}\n")
        out = open(log, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=self.client_env(),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            out.close()
        return _Job(f"prefect {' '.join(args)}", proc, log)

    def start_worker(self) -> Daemon:
        cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process",
               "--name", WORKER_NAME]
        return self._spawn("prefect-worker", cmd, self.client_env())

    # ---------------------------------------------------------------------------------- readiness

    def healthy(self, name: str) -> bool:
        p = self.ports
        if name == "postgres":
            return self.pg.ready()
        if name == "prefect-server":
            return http_ok(f"{self.prefect_api}/health")
        if name == "mlflow":
            return http_ok(f"{self.mlflow_uri}/health")
        if name == "ray-head":  # the agent answers once its raylet and the GCS are alive
            return http_ok(f"http://{LOOPBACK}:{p.ray_agent_head}/api/healthz")
        if name == "ray-worker":
            return http_ok(f"http://{LOOPBACK}:{p.ray_agent_worker}/api/local_raylet_healthz")
        if name == "prefect-worker":
            return self.worker_online()
        raise KeyError(name)

    def worker_online(self) -> bool:
        request = urllib.request.Request(f"{self.prefect_api}/work_pools/{POOL}/workers/filter", data=b"{}",
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                workers = json.loads(response.read())
        except (OSError, ValueError):
            return False
        return any(w.get("name") == WORKER_NAME and w.get("status") == "ONLINE" for w in workers)

    def wait(self, name: str, timeout: float = 240.0) -> None:
        wait_until(lambda: self.healthy(name), self.daemons.get(name), f"{name} to be healthy", timeout)

    def wait_ray_node(self, name: str, restart: Any, attempts: int = 3) -> None:
        """Wait for a Ray node, starting it again if it gave up: `ray start` allows a raylet 30 s (fixed)
        to register, which a busy 2-core machine booting the other servers does not always meet."""
        for attempt in range(1, attempts + 1):
            try:
                self.wait(name)
                return
            except ServerFailed:
                if attempt == attempts or self.daemons[name].alive():
                    raise
                restart()

    # ------------------------------------------------------------------------------- start / stop

    def start(self, echo: Any = print) -> None:
        """Everything, in dependency order; what started is stopped again if a later step fails."""
        running = [n for n, d in self.daemons.items() if d.alive()]
        if running:
            raise StackError(f"already running: {', '.join(running)} (stop it first, or `status`)")
        self.daemons = {}
        began = time.monotonic()
        try:
            self.start_postgres()
            echo(f"postgres     {LOOPBACK}:{self.ports.postgres} (databases {', '.join(DATABASES)})")
            self.start_prefect_server()  # these three boot side by side
            self.start_mlflow()
            self.start_ray_head()
            self.wait_ray_node("ray-head", self.start_ray_head)
            self.start_ray_worker()
            self.wait_ray_node("ray-worker", self.start_ray_worker)
            self.wait("prefect-server")
            self.create_pool()
            deploy = self.start_deploy()
            self.start_worker()
            for name in ("mlflow", "prefect-worker"):
                self.wait(name)
            deploy.check()
        except BaseException:
            self.stop(echo=lambda *_: None)
            raise
        self.write_env_file()
        echo(f"prefect      {self.prefect_api} (work pool {POOL}, worker {WORKER_NAME})")
        echo(f"mlflow       {self.mlflow_uri} (artifacts {self.state / 'mlartifacts'})")
        head, worker = cpu_split()
        echo(f"ray          {self.ray_address}: head {head} CPU + second node {worker} CPU, dashboard "
             f"http://{LOOPBACK}:{self.ports.ray_dashboard}")
        echo(f"started in {time.monotonic() - began:.0f} s; now: source {self.env_file}")

    def write_env_file(self) -> Path:
        lines = ["# The local stack's addresses (python -m cli.local_stack start). Use: source this file."]
        lines += [f"export {k}={v}" for k, v in self.client_vars().items()]
        self.env_file.write_text("\n".join(lines) + "\n")
        return self.env_file

    def stop_service(self, name: str) -> bool:
        """Stop one service by its recorded id (Postgres by its fast shutdown); True if it was up."""
        daemon = self.daemons.get(name)
        if daemon is None:
            return False
        if name == "postgres":
            stopped = stop_daemon(daemon, first=signal.SIGINT, whole_group=False, timeout=30)
        else:  # Ray drains a node for up to 30 s on SIGTERM; nothing here needs that
            stopped = stop_daemon(daemon, timeout=10 if name.startswith("ray") else 20)
        return stopped

    def stop(self, echo: Any = print) -> list[str]:
        stopped = []
        for name in reversed(ORDER):
            if self.stop_service(name):
                stopped.append(name)
                echo(f"stopped {name} (pid {self.daemons[name].pid})")
        self._save()
        if self.env_file.exists():
            self.env_file.unlink()
        return stopped

    def status(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name in ORDER:
            daemon = self.daemons.get(name)
            alive = daemon is not None and daemon.alive()
            out[name] = {"pid": daemon.pid if daemon else None, "running": alive,
                         "healthy": alive and self.healthy(name)}
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE,
                        help="databases, artifacts, logs and stack.env (default: .stack in the repository)")
    parser.add_argument("--auto-ports", action="store_true", help="free ports instead of compose's")
    parser.add_argument("--no-ui", action="store_true", help="Prefect API without its UI")
    args = parser.parse_args(argv)
    ports = Ports.auto() if args.auto_ports and args.command == "start" else None
    stack = LocalStack(args.state_dir, ports=ports, ui=not args.no_ui)
    try:
        if args.command == "start":
            stack.start()
        elif args.command == "stop":
            if not stack.stop():
                print("nothing was running")
        else:
            status = stack.status()
            for name, info in status.items():
                state = "healthy" if info["healthy"] else "running" if info["running"] else "stopped"
                print(f"{name:15} {state:8} pid {info['pid']}")
            return 0 if all(i["healthy"] for i in status.values()) else 3
    except (StackError, ServerFailed, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
