"""A temporary local Prefect API for one command, started before the command's heavy imports.

Why: with no Prefect API configured, Prefect starts a temporary API server on the first flow call and
waits for it: it imports its server package into the calling process (about 2.7 s here) and then
boots a uvicorn subprocess (about 4 s, 9 s on a first run that creates the database), all on the
critical path. `metacot run` starts that same server (Prefect's API app under uvicorn, with the
services Prefect runs in its temporary servers) as its very first step, so it boots while the
command imports torch, transformers and MLflow, and waits for it only just before the first flow.
`bench/bench_orchestration.py` measures what this saves.

Nothing is started when an API URL is configured (environment or Prefect profile) or the profile
does not allow a temporary server. If the early server does not answer in time, it is stopped, the
environment is restored, and Prefect's own temporary server takes over as it would have anyway.
The server runs in its own process group and is stopped by its process id when the command ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cli.processes import LOOPBACK, die_with_parent, exit_signals, free_port, stop_server

# What Prefect sets for the temporary server it starts itself (prefect.server.api.server):
# API only, and the subset of services Prefect runs in temporary servers.
EPHEMERAL_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
                 "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


class LocalApi:
    """A Prefect API server process this command started, and the environment it replaced."""

    def __init__(self, proc: subprocess.Popen, url: str, saved: str | None) -> None:
        self.proc = proc
        self.url = url
        self.saved = saved
        self.ready = False

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until the API answers; on failure fall back to Prefect's own temporary server."""
        if self.ready:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        self.ready = True
                        return True
            except OSError:  # URLError, refused connections and timeouts alike
                pass
            time.sleep(0.1)
        print(f"warning: the local Prefect API at {self.url} did not start; Prefect starts its own",
              file=sys.stderr)
        self.stop()
        _set_api_url(self.saved)
        return False

    def stop(self) -> None:
        """Send the logs and events still queued in this process, then stop the server's whole
        process group (it runs in its own session)."""
        if self.proc.poll() is None:
            if self.ready:
                drain_prefect_queues()
            stop_server(self.proc)


def drain_prefect_queues(timeout: float = 10.0) -> None:
    """Flush Prefect's log and event workers, as Prefect's test harness does before it stops its
    server (else they try at interpreter exit, when the server is gone)."""
    if "prefect.logging.handlers" in sys.modules:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=timeout)
    if "prefect.events.worker" in sys.modules:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=timeout)


def _set_api_url(url: str | None) -> None:
    """Point this process (environment and Prefect's settings context) at `url` (None: unset)."""
    if url is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = url
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()


def needs_temporary_api() -> bool:
    """True when the first flow call would make Prefect start a temporary API server."""
    if os.environ.get("PREFECT_API_URL"):
        return False
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    return not settings.api.url and bool(settings.server.ephemeral.enabled)


def start_local_api(host: str = LOOPBACK, on_start: Callable[[LocalApi], None] | None = None
                    ) -> LocalApi | None:
    """Start the server now (no waiting) and point this process at it; None when not needed.

    `on_start` gets the server as soon as its process exists, so a caller that stops it on the way
    out does not miss one started just before a SIGTERM; and on Linux the kernel stops the server
    when this process dies in any way the caller cannot handle (kill -9, a SIGTERM during the start;
    see processes.die_with_parent). Blocking SIGTERM around the start would not do: the child
    inherits the blocked mask and then ignores SIGTERM for good.
    """
    if not needs_temporary_api():
        return None
    import prefect
    from prefect.settings import get_current_settings

    profile = get_current_settings().to_environment_variables(exclude_unset=True)  # as Prefect passes it
    port = free_port(host)
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
           "prefect.server.api.server:create_app", "--host", host, "--port", str(port), "--log-level",
           "error", "--lifespan", "on"]
    url = f"http://{host}:{port}/api"
    proc = subprocess.Popen(cmd, env={**os.environ, **profile, **EPHEMERAL_ENV}, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=die_with_parent())
    api = LocalApi(proc, url, os.environ.get("PREFECT_API_URL"))
    if on_start is not None:  # at once: from here on, whoever started it stops it
        on_start(api)
    _set_api_url(url)
    return api


@contextmanager
def local_api() -> Iterator[LocalApi | None]:
    """The command's temporary API for the duration of the block (call `.wait()` before a flow).

    SIGTERM (`kill <pid>`) and SIGHUP end the block as Ctrl-C does (processes.exit_signals), so the
    server is stopped on the way out instead of outliving a killed pipeline.
    """
    started: list[LocalApi] = []
    with exit_signals():
        try:
            yield start_local_api(on_start=started.append)
        finally:
            for api in started:
                api.stop()
                _set_api_url(api.saved)
