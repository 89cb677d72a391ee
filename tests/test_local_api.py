"""The temporary Prefect API that `metacot run` starts before its imports: a flow runs against it,
it is stopped by process id afterwards, and a server that never answers falls back to Prefect's own."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from flows import local_api


@pytest.fixture
def no_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No API configured, a throwaway Prefect home: what a first-time user has."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true")
    local_api._set_api_url(None)
    yield
    local_api._set_api_url(None)


@pytest.mark.e2e
@pytest.mark.usefixtures("no_api")
def test_a_flow_runs_against_the_early_api_which_is_stopped_after() -> None:
    from prefect import flow, get_client

    @flow
    def add(a: int, b: int) -> int:
        return a + b

    with local_api.local_api() as api:
        assert api is not None and os.environ["PREFECT_API_URL"] == api.url
        assert api.wait(timeout=120)
        assert add(2, 3) == 5
        with get_client(sync_client=True) as client:
            assert str(client.api_url).rstrip("/") == api.url  # not a second temporary server
            runs = client.read_flow_runs()
        assert [r.state.type.value for r in runs] == ["COMPLETED"]
        pid = api.proc.pid
    assert api.proc.poll() is not None, f"server {pid} still running"
    assert "PREFECT_API_URL" not in os.environ
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{api.url}/health", timeout=2)


@pytest.mark.usefixtures("no_api")
def test_a_server_that_dies_falls_back_to_prefects_own(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(local_api, "EPHEMERAL_ENV", {**local_api.EPHEMERAL_ENV,
                                                     "PREFECT_SERVER_API_KEEPALIVE_TIMEOUT": "not a number"})
    api = local_api.start_local_api()
    assert api is not None
    api.proc.kill()  # whatever the reason, the process is gone before it answered
    assert api.wait(timeout=5) is False
    assert "PREFECT_API_URL" not in os.environ  # Prefect starts its own temporary server on first use
    assert "did not start" in capsys.readouterr().err


def test_nothing_is_started_when_an_api_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with local_api.local_api() as api:
        assert api is None
        assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:9/api"

