"""`metacot serve`: a local Prefect server (SQLite) plus the metacot deployments, served until Ctrl-C.

    metacot serve                          # UI and API at http://127.0.0.1:4200
    python -m cli.serve --port 4300 --home .prefect-test
then, from another terminal:
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    prefect deployment run 'metacot-pipeline/countdown-cpu'
    prefect deployment run 'metacot-pipeline/countdown-cpu' \
        -p config_path=configs/countdown/pipeline-tiny.yaml -p 'overrides=["sft.train.max_steps=2"]'

Two child processes, each in its own process group and stopped by id on exit: `prefect server start`
bound to 127.0.0.1 with its database in `<home>/prefect.db`, and a `serve()` process that registers
the deployments and runs their flow runs as subprocesses of itself (no work pool or worker needed;
prefect.yaml + docker-compose.yml are the work-pool route). PREFECT_API_URL is set explicitly for the
second one, so it can never talk to another Prefect API configured in a profile. Flow runs inherit
this environment, MLFLOW_TRACKING_URI and RAY_ADDRESS included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cli.processes import LOOPBACK, ServerFailed, die_with_parent, install_exit_signals, stop_server

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOME = ROOT / ".prefect"
DEFAULT_PORT = 4200
# deployment name -> (flow module, flow function, default parameters)
DEPLOYMENTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "metacot-pipeline/countdown-cpu": ("flows.pipeline", "pipeline",
                                       {"config_path": "configs/countdown/pipeline-cpu.yaml"}),
    "metacot-pipeline/countdown-tiny": ("flows.pipeline", "pipeline",
                                        {"config_path": "configs/countdown/pipeline-tiny.yaml"}),
    "generate-traces/countdown-cpu": ("flows.generate_traces", "generate_traces",
                                      {"config_path": "configs/countdown/generate-cpu.yaml"}),
    "train-sft/countdown-cpu": ("flows.train_sft", "train_sft",
                                {"config_path": "configs/countdown/sft-cpu.yaml"}),
    "train_rl/countdown-cpu": ("flows.train_rl", "train_rl",
                               {"config_path": "configs/countdown/rl-star-cpu.yaml"}),
    "evaluate/countdown-cpu": ("flows.evaluate", "evaluate",
                               {"config_path": "configs/countdown/eval-cpu.yaml"}),
    "metacot-experiment/sos-vs-solution-cpu": ("flows.experiment", "experiment",
                                               {"config_path": "configs/countdown/sos-vs-solution-cpu.yaml"}),
}


def server_env(home: Path, host: str = LOOPBACK, port: int = DEFAULT_PORT, ui: bool = True,
               base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of both processes: one Prefect home and SQLite file, one explicit API URL."""
    home = home.resolve()
    env = dict(os.environ if base is None else base)
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": f"http://{host}:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "true" if ui else "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    })
    env.pop("PREFECT_PROFILE", None)
    return env


def _start(cmd: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen:
    """A child in its own session (process group), so stopping it stops everything it started."""
    out = open(log, "ab") if log is not None else None  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=die_with_parent())
    finally:
        if out is not None:
            out.close()


def start_server(env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", env["PREFECT_SERVER_API_HOST"],
           "--port", env["PREFECT_SERVER_API_PORT"]]
    return _start(cmd, env, log)


def start_serving(env: dict[str, str], names: list[str] | None = None, log: Path | None = None,
                  limit: int | None = 1) -> subprocess.Popen:
    """`python -m cli.serve --deployments-only`: register and serve the deployments."""
    cmd = [sys.executable, "-m", "cli.serve", "--deployments-only"]
    for name in names or []:
        cmd += ["--deployment", name]
    if limit:
        cmd += ["--limit", str(limit)]
    return _start(cmd, env, log)


def wait_until_healthy(api_url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll `<api>/health` until the server answers; fail at once when its process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"prefect server exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                if response.status == 200 and json.loads(response.read() or b"false") is True:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server at {api_url} not healthy after {timeout:.0f} s")


def build_deployments(names: list[str] | None = None) -> list[Any]:
    """`flow.to_deployment(...)` for each named deployment (all by default); parameters are checked
    against the flow's signature by the API, so an unknown parameter is refused when the run is made."""
    import importlib

    chosen = names or list(DEPLOYMENTS)
    unknown = [n for n in chosen if n not in DEPLOYMENTS]
    if unknown:
        raise ValueError(f"unknown deployment {unknown[0]!r}; known: {', '.join(DEPLOYMENTS)}")
    out = []
    for name in chosen:
        module, attr, params = DEPLOYMENTS[name]
        flow_obj = getattr(importlib.import_module(module), attr)
        out.append(flow_obj.to_deployment(name=name.split("/", 1)[1], parameters=params,
                                          tags=["metacot"], enforce_parameter_schema=True,
                                          description=(flow_obj.description or "").split("\n")[0]))
    return out


def serve_deployments(names: list[str] | None = None, limit: int | None = 1) -> None:
    """Register the deployments with the API in PREFECT_API_URL and run their flow runs (blocks)."""
    if not os.environ.get("PREFECT_API_URL"):
        raise ServerFailed("PREFECT_API_URL is not set: start the server with `metacot serve`")
    from prefect import serve

    serve(*build_deployments(names), limit=limit, print_starting_message=True)


def run_all(home: Path = DEFAULT_HOME, host: str = LOOPBACK, port: int = DEFAULT_PORT, ui: bool = True,
            names: list[str] | None = None, limit: int | None = 1, log_dir: Path | None = None,
            echo: Any = print) -> int:
    """Server, then the serve process; waits until either exits or Ctrl-C, then stops both by id."""
    build_deployments(names)  # a bad name fails here, before anything starts
    install_exit_signals()  # `kill PID` or a closed terminal stops the children too, like Ctrl-C
    env = server_env(home, host, port, ui)
    logs = (log_dir / "prefect-server.log", log_dir / "prefect-serve.log") if log_dir else (None, None)
    server = start_server(env, logs[0])
    procs = [server]
    try:
        wait_until_healthy(env["PREFECT_API_URL"], server)
        served = start_serving(env, names, logs[1], limit)
        procs.append(served)
        echo(f"Prefect UI: http://{host}:{port}  (API {env['PREFECT_API_URL']}, database "
             f"{home.resolve() / 'prefect.db'})")
        echo(f"Serving: {', '.join(names or DEPLOYMENTS)}")
        echo(f"Run one:  PREFECT_API_URL={env['PREFECT_API_URL']} prefect deployment run "
             "'metacot-pipeline/countdown-cpu'")
        echo("Ctrl-C stops the server and the deployments.")
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        dead = next(p for p in procs if p.poll() is not None)
        echo(f"{'server' if dead is server else 'serve'} process exited with code {dead.returncode}")
        return dead.returncode or 1
    except KeyboardInterrupt:  # a server stopped on request has done its job: status 0
        echo("stopping")
        return 0
    finally:
        for proc in reversed(procs):
            stop_server(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="PREFECT_HOME (database inside)")
    parser.add_argument("--no-ui", action="store_true", help="API only")
    parser.add_argument("--deployment", action="append", help="serve only these (repeatable)")
    parser.add_argument("--limit", type=int, default=1, help="flow runs at once (0: no limit)")
    parser.add_argument("--deployments-only", action="store_true",
                        help="only serve, against the server in PREFECT_API_URL")
    args = parser.parse_args(argv)
    if args.deployments_only:
        serve_deployments(args.deployment, args.limit or None)
        return 0
    return run_all(args.home, args.host, args.port, not args.no_ui, args.deployment, args.limit or None)


if __name__ == "__main__":
    sys.exit(main())
