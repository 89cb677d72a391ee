"""The temporary Prefect API that `metacot run` starts before its imports: a flow runs against it,
it is stopped by process id afterwards, and a server that never answers falls back to Prefect's own.

Each case runs in a fresh interpreter: whether Prefect would start a temporary API depends on
process-wide settings that other tests of a session change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FLOW_CASE = """
import json, os, urllib.request
from cli import local_api
from prefect import flow, get_client

@flow
def add(a: int, b: int) -> int:
    return a + b

out = {}
with local_api.local_api() as api:
    out["started"] = api is not None and os.environ["PREFECT_API_URL"] == api.url
    out["ready"] = api.wait(timeout=120)
    out["result"] = add(2, 3)
    with get_client(sync_client=True) as client:
        out["same_api"] = str(client.api_url).rstrip("/") == api.url
        out["states"] = [r.state.type.value for r in client.read_flow_runs()]
out["stopped"] = api.proc.poll() is not None
out["env_restored"] = "PREFECT_API_URL" not in os.environ
try:
    urllib.request.urlopen(f"{api.url}/health", timeout=2)
    out["still_answers"] = True
except OSError:
    out["still_answers"] = False
print("RESULT" + json.dumps(out))
"""

DEAD_CASE = """
import json, os
from cli import local_api
api = local_api.start_local_api()
api.proc.kill()  # whatever the reason, the process is gone before it answered
out = {"started": api is not None, "ready": api.wait(timeout=5),
       "env_restored": "PREFECT_API_URL" not in os.environ}
print("RESULT" + json.dumps(out))
"""

KILLED_CASE = """
import os, signal
from cli import local_api
api = local_api.start_local_api()
print("RESULT" + str(api.proc.pid), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no handler, no atexit: only the kernel can stop the server now
"""

CONFIGURED_CASE = """
import json, os
from cli import local_api
with local_api.local_api() as api:
    print("RESULT" + json.dumps({"none": api is None, "url": os.environ["PREFECT_API_URL"]}))
"""


def run_case(code: str, tmp_path: Path, **env: str) -> tuple[dict, str]:
    base = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true", **env}
    if "PREFECT_API_URL" not in env:
        base.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True,
                          timeout=300)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line is not None, done.stderr[-3000:]
    return json.loads(line[len("RESULT"):]), done.stderr


@pytest.mark.e2e
def test_a_flow_runs_against_the_early_api_which_is_stopped_after(tmp_path: Path) -> None:
    out, _ = run_case(FLOW_CASE, tmp_path)
    assert out["started"] and out["ready"] and out["result"] == 5
    assert out["same_api"], "the flow started a second temporary server"
    assert out["states"] == ["COMPLETED"]
    assert out["stopped"] and out["env_restored"] and not out["still_answers"]


def test_a_server_that_dies_falls_back_to_prefects_own(tmp_path: Path) -> None:
    out, err = run_case(DEAD_CASE, tmp_path)
    assert out == {"started": True, "ready": False, "env_restored": True}  # Prefect starts its own
    assert "did not start" in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_the_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true"}
    env.pop("PREFECT_API_URL", None)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:  # files, not pipes: an orphan would hold a pipe
        done = subprocess.run([sys.executable, "-c", KILLED_CASE], cwd=ROOT, env=env, stdout=stdout,
                              stderr=stderr, timeout=300)
    assert done.returncode == -9, err.read_text()[-2000:]
    pid = int(next(x for x in out.read_text().splitlines() if x.startswith("RESULT"))[len("RESULT"):])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    assert not _alive(pid), f"server {pid} outlived its killed parent"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"  # a zombie has exited (its reaper is init)
    except FileNotFoundError:
        return False


def test_nothing_is_started_when_an_api_is_configured(tmp_path: Path) -> None:
    out, _ = run_case(CONFIGURED_CASE, tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")
    assert out == {"none": True, "url": "http://127.0.0.1:9/api"}
