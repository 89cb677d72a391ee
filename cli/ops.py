"""Operations commands: run the local MLflow tracking server that shows what the pipeline logged.

    metacot mlflow-server                 # http://127.0.0.1:5000, reads ./mlflow.db and ./mlartifacts/
    python -m cli.ops mlflow-server --port 5001

The server reads the same SQLite file and artifact folder that `tasks.tracking` writes to by default,
so runs logged without a server show up in its UI. Ctrl-C, SIGTERM and a closed terminal stop it and
every worker it started (its process group; the kernel's parent-death signal and cli/watchdog.py when
this command is killed). A port already in use is reported at once.
The process helpers below are shared with the browser test, which starts a throwaway server the same
way on a free port.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated

import typer

from cli.boundary import App
from cli.processes import LOOPBACK, ServerFailed, die_with_parent, port_in_use, stop_server

app = App(no_args_is_help=True)


@app.callback()
def _ops() -> None:
    """Operations: local servers for the pipeline's tools."""

# tasks.tracking.PROJECT_ROOT, not imported from there: that loads mlflow (8 s on a busy 2-core
# machine) on every `metacot` command, this one's port check included.
PROJECT_ROOT = Path(os.environ.get("METACOT_HOME", Path.cwd())).resolve()
DEFAULT_DB = PROJECT_ROOT / "mlflow.db"
DEFAULT_ARTIFACTS = PROJECT_ROOT / "mlartifacts"


def mlflow_server_command(db: Path, artifacts: Path, host: str = LOOPBACK, port: int = 5000,
                          workers: int = 1) -> list[str]:
    """The `mlflow server` command line for a SQLite store and a local, proxied artifact folder.

    Artifacts are served through the server (`mlflow-artifacts:/`), so clients need no access to the
    folder itself. One worker is plenty for one person and spares the two cores of a small machine.
    """
    return [sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{db.resolve()}",
            "--artifacts-destination", str(artifacts.resolve()),
            "--host", host, "--port", str(port), "--workers", str(workers)]


def start_mlflow_server(db: Path, artifacts: Path, host: str = LOOPBACK, port: int = 5000,
                        workers: int = 1, log: Path | None = None) -> subprocess.Popen:
    """Start `mlflow server` in its own process group, so stopping it also stops its web workers; it
    gets SIGTERM from the kernel if this process dies first."""
    db.parent.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    # Without a log file the server writes to this terminal, which is what a person running it wants.
    out = open(log, "wb") if log is not None else None  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(mlflow_server_command(db, artifacts, host, port, workers),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=die_with_parent())
    finally:
        if log is not None:
            out.close()


def wait_until_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0,
                       log: Path | None = None) -> None:
    """Poll `<url>/health` until it answers OK; fail at once if the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"mlflow server exited with code {proc.returncode} before it was ready"
                               + _log_tail(log))
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"mlflow server at {url} not healthy after {timeout:.0f} s" + _log_tail(log))


def _log_tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n" + "\n".join(tail)


@app.command("mlflow-server")
def mlflow_server(
    port: int = typer.Option(5000, help="Port to listen on."),
    host: str = typer.Option(LOOPBACK, help="Interface to bind; the default keeps it on this machine."),
    db: Annotated[Path, typer.Option(help="SQLite file of the tracking store.")] = DEFAULT_DB,
    artifacts: Annotated[Path, typer.Option(help="Folder the artifacts go to.")] = DEFAULT_ARTIFACTS,
    workers: int = typer.Option(1, min=1, help="Web worker processes."),
) -> None:
    """Serve the MLflow UI and API over the project's SQLite store until Ctrl-C (or SIGTERM)."""
    url = f"http://{host}:{port}"
    if port_in_use(host, port):  # else a second server takes the first one's /health for its own
        raise ServerFailed(f"port {port} is in use (on {host}); pick another with --port")
    proc = start_mlflow_server(db, artifacts, host=host, port=port, workers=workers)
    try:
        wait_until_healthy(url, proc)
        typer.echo(f"MLflow UI: {url}  (store sqlite:///{db.resolve()}, artifacts {artifacts.resolve()})")
        typer.echo(f"Point runs at it with: export MLFLOW_TRACKING_URI={url}")
        typer.echo("Ctrl-C stops it.")
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: a server stopped on request exits with 0
        typer.echo("stopping mlflow server")
        code = 0
    finally:
        stop_server(proc)
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
