"""The scale-out stack run for real: Postgres, Prefect server + worker, MLflow server, a two-node Ray
cluster (cli/local_stack.py), the pipeline on it, and its faults.

One stack per session (started by the `stack` fixture, stopped by process id at the end); tiny
configs. Order matters only where it says so: the Ray faults come last, since they take the second
node down. Skipped only when PostgreSQL's server binaries are missing (scripts/ci_setup.sh installs
them). What each fault costs is recorded with `record_property` and printed (pytest -s shows it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stack_support import (
    ROOT,
    cmdlines,
    command_lines,
    deployment_run,
    driver_result,
    flow_run,
    http_status,
    kill_tree,
    ray_driver,
    signal_all,
    start_ray_driver,
    subflow_names,
    tail,
    tree,
    wait_final,
    wait_for,
)

from cli.local_stack import POOL, LocalStack, Ports
from cli.postgres import PostgresMissing, pg_bindir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SFT_RUN = "sft-countdown-tiny"
# A generation job of 16 small shards (Countdown-3), on one process and on the cluster.
GEN = ["problem.num_count=3", "search.node_budget=400", "counts.train=96", "counts.val_inputs=16",
       "counts.val_target=16", "counts.harder=0", "shard_size=8"]
# The node-kill fault's job: 16 shards of 64 problems, so that it lasts a few seconds after 2 are done.
GEN_LONG = ["problem.num_count=3", "search.node_budget=400", "counts.train=896", "counts.val_inputs=32",
            "counts.val_target=32", "counts.harder=0", "shard_size=64"]
TINY_SFT = ["model.n_layer=1", "model.d_model=32", "model.n_head=2", "train.seq_len=256",
            "train.micro_batch_size=4", "train.warmup_steps=1", "train.eval_batches=1",
            "tracking.log_model=false"]


def note(record_property, key: str, value: Any) -> None:
    """What a fault cost, in the JUnit report and on stdout."""
    record_property(key, value)
    print(f"[stack] {key}: {value}")


# -------------------------------------------------------------------------------------------- the stack


@pytest.fixture(scope="session")
def stack_base() -> Any:
    """A folder outside the repository (the secrets must live outside it), readable by `postgres`."""
    try:
        pg_bindir()
    except PostgresMissing as err:
        pytest.skip(str(err))
    base = Path(tempfile.mkdtemp(prefix="metacot-stack-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(stack_base: Path) -> Any:
    """The session's stack; METACOT_TEST_STACK=<state dir> reuses one already started with
    `python -m cli.local_stack start --state-dir <dir> --auto-ports` (left running; for development)."""
    reuse = os.environ.get("METACOT_TEST_STACK")
    if reuse:
        yield LocalStack(Path(reuse))
        return
    saved = os.environ.get("METACOT_STACK_SECRETS")
    os.environ["METACOT_STACK_SECRETS"] = str(stack_base / "secrets")
    try:
        stack = LocalStack(stack_base / "state", ports=Ports.auto(), ui=False, tie_to_parent=True)
    finally:
        os.environ.pop("METACOT_STACK_SECRETS") if saved is None else os.environ.update(
            METACOT_STACK_SECRETS=saved)
    began = time.monotonic()
    stack.start(echo=lambda line: print(f"[stack] {line}"))
    print(f"[stack] start took {time.monotonic() - began:.0f} s")
    try:
        yield stack
    finally:
        pids = [d.pid for d in stack.daemons.values()]
        for daemon in stack.daemons.values():  # a service that died by itself: say why
            if not daemon.alive():
                print(f"[stack] {daemon.name} was not running at the end:\n{tail(stack, daemon.name)}")
        stack.stop(echo=lambda line: print(f"[stack] {line}"))
    assert not [d.name for d in stack.daemons.values() if d.alive()], "a service outlived `stop`"
    from cli.stack_procs import group_members

    left = {pid: [p.name() for p in group_members(pid)] for pid in pids}  # not only the leaders: their groups
    assert not {pid: names for pid, names in left.items() if names}, left


def _listening_beyond_loopback(stack: LocalStack) -> list[tuple[str, str, int]]:
    import psutil

    pids: dict[int, str] = {}
    for daemon in stack.daemons.values():
        if daemon.alive():
            pids.update({p.pid: p.name() for p in tree(daemon.pid)})
    loopback = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
    return sorted((pids[c.pid], c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="tcp")
                  if c.status == psutil.CONN_LISTEN and c.pid in pids and c.laddr.ip not in loopback)


def test_stack_is_up_on_loopback_with_password_auth(stack: LocalStack) -> None:
    assert all(info["healthy"] for info in stack.status().values()), stack.status()
    env_file = stack.env_file.read_text()
    for key in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        assert f"export {key}={stack.client_vars()[key]}" in env_file
    assert not _listening_beyond_loopback(stack)

    password = (stack.secrets / "postgres-password").read_text().strip()
    assert password not in env_file
    for daemon in stack.daemons.values():  # not in any command line: the servers read PGPASSFILE
        assert all(password not in " ".join(p.cmdline()) for p in tree(daemon.pid)), daemon.name
    assert not stack.secrets.is_relative_to(ROOT)
    psql = str(pg_bindir() / "psql")
    wrong = {**os.environ, "PGPASSWORD": "wrong", "PGPASSFILE": os.devnull}
    done = subprocess.run([psql, "-h", "127.0.0.1", "-p", str(stack.ports.postgres), "-U", "metacot", "-d",
                           "mlflow", "-c", "select 1"], env=wrong, capture_output=True, text=True)
    assert done.returncode != 0 and "password authentication failed" in done.stderr, done.stderr

    # MLflow's host and CORS checks: a rebinding Host header and a foreign page's origin are refused.
    search = f"{stack.mlflow_uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_status(search) == 200
    assert http_status(search, {"Host": "evil.example:80"}) in (400, 403)
    assert http_status(search, {"Origin": "http://evil.example"}, method="POST") in (400, 403)


# --------------------------------------------- the pipeline as a deployment, its worker killed, Postgres


@pytest.fixture(scope="module")
def resumed_pipeline(stack: LocalStack, stack_base: Path) -> dict[str, Any]:
    """`prefect deployment run metacot-pipeline/countdown-tiny` on the worker; the worker (and the flow
    run it runs) SIGKILLed once SFT has a checkpoint; Postgres restarted while nothing runs; a new
    worker and a second `prefect deployment run` of the same parameters, which must resume."""
    root = stack_base / "runs" / "deployed"
    params = ("config_path=configs/countdown/pipeline-tiny.yaml",
              "overrides=" + json.dumps([f"output_root={root}", "sft.train.max_steps=150",
                                         "sft.train.checkpoint_every=10", "sft.train.eval_every=50",
                                         "sft.tracking.log_model=true"]))
    out: dict[str, Any] = {"root": root / "countdown-tiny"}
    began = time.monotonic()
    out["first"] = deployment_run(stack, *params)
    wait_for(lambda: list(out["root"].glob("sft-*/checkpoints/step-*")), "an SFT checkpoint", 400, every=0.3)
    worker = stack.daemons["prefect-worker"]
    out["engine_on_worker"] = any("prefect.engine" in line for line in cmdlines(worker.pid)[1:])
    out["killed"] = kill_tree(worker.pid)
    out["checkpoints_at_kill"] = sorted(p.name for p in out["root"].glob("sft-*/checkpoints/step-*"))
    time.sleep(2)
    out["first_state_after_kill"] = flow_run(stack, out["first"])["state"]["type"]

    servers = {n: stack.daemons[n].pid for n in ("prefect-server", "mlflow")}
    old_pg = stack.daemons["postgres"].pid
    stack.stop_service("postgres")  # fast shutdown: every server's connections are cut
    stack.start_postgres()
    out["postgres_restarted"] = stack.daemons["postgres"].pid != old_pg
    out["servers_kept"] = all(stack.daemons[n].pid == pid and stack.daemons[n].alive()
                              for n, pid in servers.items())

    stack.start_worker()
    stack.wait("prefect-worker")
    out["second"] = deployment_run(stack, *params)
    out["final"] = wait_final(stack, out["second"])
    out["seconds"] = round(time.monotonic() - began)
    out["first_final"] = flow_run(stack, out["first"])
    return out


def _mlflow_runs(stack: LocalStack) -> tuple[Any, list[Any]]:
    import mlflow

    client = mlflow.MlflowClient(stack.mlflow_uri)
    exp = client.get_experiment_by_name("metacot")
    return client, client.search_runs([exp.experiment_id], max_results=500)


def test_deployment_run_runs_on_the_worker_and_reports_to_mlflow(stack: LocalStack,
                                                                  resumed_pipeline: dict[str, Any],
                                                                  stack_base: Path, record_property) -> None:
    final = resumed_pipeline["final"]
    assert final["state"]["type"] == "COMPLETED", tail(stack, "prefect-worker")
    assert final["work_pool_name"] == POOL and final["infrastructure_pid"]
    assert resumed_pipeline["engine_on_worker"]  # the flow run was a process of the worker, not of ours
    assert resumed_pipeline["second"] in (stack.state / "logs" / "prefect-worker.log").read_text()
    assert subflow_names(stack, resumed_pipeline["first"])[:2] == ["generate-traces", "train-sft"]
    assert subflow_names(stack, resumed_pipeline["second"]) == ["evaluate", "train-sft"]  # generate reused

    client, runs = _mlflow_runs(stack)
    parent = next(r for r in runs if r.info.run_name == "pipeline-countdown-tiny"
                  and r.data.params.get("name") == "countdown-tiny" and r.info.status == "FINISHED")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    by_name: dict[str, list[Any]] = {}
    for run in children:
        by_name.setdefault(run.info.run_name, []).append(run)
    assert "val_target.solve_rate" in parent.data.metrics
    card = json.loads(next(resumed_pipeline["root"].glob("data-*/card.json")).read_text())
    digest = card["content_hash"][:36]
    generate = by_name["generate-traces"][0]
    sft = next(r for r in by_name[SFT_RUN] if r.info.status == "FINISHED")
    for run in (generate, sft):  # the dataset, as an input of both runs, with the card's content hash
        assert [d.dataset.digest for d in run.inputs.dataset_inputs] == [digest]
    assert generate.data.metrics["rows"] == card["n_rows"] and "loss" in sft.data.metrics
    models = client.search_logged_models(experiment_ids=[parent.info.experiment_id],
                                         filter_string=f"source_run_id = '{sft.info.run_id}'")
    assert [m.name for m in models] == ["model"]
    assert {r.info.status for r in by_name["evaluate"]} == {"FINISHED"}

    from test_mlflow_ui_browser import CHROMIUM, open_run_page

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: the browser check of the stack's MLflow did not run")
    shot = stack_base / "mlflow-stack-run.png"
    open_run_page(stack.mlflow_uri, parent.info.experiment_id, parent.info.run_id, "pipeline-countdown-tiny",
                  {"val_target.solve_rate": "", "seconds.sft": ""}, shot, stack_base)
    note(record_property, "browser_screenshot", str(shot))


def test_fault_worker_killed_mid_sft_resumes_from_the_checkpoint(stack: LocalStack,
                                                                   resumed_pipeline: dict[str, Any],
                                                                   record_property) -> None:
    out = resumed_pipeline
    assert out["checkpoints_at_kill"], "the worker was killed before SFT saved a checkpoint"
    assert out["first_state_after_kill"] == "RUNNING"  # a SIGKILLed worker tells Prefect nothing ...
    assert out["first_final"]["state"]["type"] == "CRASHED"  # ... the next run of the config marks it
    state = json.loads(next(out["root"].glob("pipeline-state-*.json")).read_text())
    resumed_at = state["stages"]["sft"]["summary"]["start_step"]
    assert resumed_at > 0 and f"step-{resumed_at:06d}" in out["checkpoints_at_kill"]

    client, runs = _mlflow_runs(stack)
    parent = next(r for r in runs if r.info.run_name == "pipeline-countdown-tiny"
                  and r.info.status == "FINISHED" and r.data.params.get("name") == "countdown-tiny")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    names = sorted(r.info.run_name for r in children)
    assert names == ["evaluate", "generate-traces", SFT_RUN, SFT_RUN]  # generate finished: not run again
    killed = next(r for r in children if r.info.run_name == SFT_RUN and r.info.status == "KILLED")
    logged = [m.step for m in client.get_metric_history(killed.info.run_id, "loss")]
    note(record_property, "worker_kill_cost", f"resumed from step-{resumed_at:06d}; the killed SFT run "
         f"(KILLED in MLflow) had sent loss up to step {max(logged, default=0)} (sent every 20 steps); steps "
         f"after {resumed_at} done before the kill were trained again")
    note(record_property, "worker_kill_scenario_seconds", out["seconds"])


def test_fault_postgres_restarted_while_idle(resumed_pipeline: dict[str, Any]) -> None:
    assert resumed_pipeline["postgres_restarted"] and resumed_pipeline["servers_kept"]
    assert resumed_pipeline["final"]["state"]["type"] == "COMPLETED"  # the run after it, on the same servers


# --------------------------------------------------------------------------------- MLflow down during SFT


def test_fault_mlflow_down_during_sft_buffers_the_metrics(stack: LocalStack, one_process_card: dict[str, Any],
                                                           stack_base: Path, record_property) -> None:
    import mlflow

    data = stack_base / "runs" / "gen-one"
    out_dir = stack_base / "runs" / "sft-outage"
    steps = 300
    cmd = [sys.executable, "-m", "cli", "train", "sft", "--config", "configs/countdown/sft-cpu.yaml",
           "--no-flow", *TINY_SFT, f"data.path={data}", f"output_dir={out_dir}", f"train.max_steps={steps}",
           "train.checkpoint_every=10", "train.eval_every=10000", "ray.enabled=false",
           "tracking.run_name=sft-outage"]
    log = stack_base / "sft-outage.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=stack.client_env(), stdout=sink, stderr=subprocess.STDOUT)

    def checkpoints() -> int:  # the newest checkpoint's step (older ones are pruned)
        return max((int(p.name.split("-")[1]) for p in out_dir.glob("checkpoints/step-*")), default=0)

    def log_tail() -> str:
        return log.read_text(errors="replace")[-3000:]

    try:
        try:
            wait_for(lambda: checkpoints() or proc.poll() is not None, "SFT's first checkpoint", 300,
                     every=0.2)
            # The trainer is paused while MLflow stops (20 s at most): a fast machine would otherwise run
            # all its steps, and log them, before the server is gone, and the outage would test nothing.
            proc.send_signal(signal.SIGSTOP)
            try:
                stack.stop_service("mlflow")
            finally:
                proc.send_signal(signal.SIGCONT)
            down_at, before = time.monotonic(), checkpoints()
            assert before < steps, f"SFT finished before MLflow stopped:\n{log_tail()}"
            try:
                wait_for(lambda: proc.poll() is not None or (
                    checkpoints() > before and "buffering step metrics" in log.read_text(errors="replace")),
                    "training to go on while MLflow is down", 300, every=0.3)
            except AssertionError as err:
                raise AssertionError(f"{err}; the trainer's log:\n{log_tail()}") from None
            steps_down = checkpoints() - before
        finally:
            if not stack.daemons["mlflow"].alive():  # later tests need it, whatever happened here
                stack.start_mlflow()
                stack.wait("mlflow")
        outage = time.monotonic() - down_at
        code = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    output = log.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert "buffering step metrics" in output
    client = mlflow.MlflowClient(stack.mlflow_uri)
    run = client.search_runs([client.get_experiment_by_name("metacot").experiment_id],
                             filter_string="attributes.run_name = 'sft-outage'")[0]
    history = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, steps + 1))  # every step, none lost
    late, dropped = run.data.metrics["tracking.late_metrics"], run.data.metrics["tracking.dropped_metrics"]
    assert late > 0 and dropped == 0 and run.info.status == "FINISHED"
    note(record_property, "mlflow_outage", f"{outage:.0f} s down, at least {steps_down} training steps in "
         f"it; {int(late)} step metrics buffered and logged late, {int(dropped)} dropped; all {steps} loss "
         "steps present")


# ------------------------------------------------------------------------------------------ Ray cluster


def _gen_overrides(output_dir: Path, workers: int) -> list[str]:
    return [*GEN, f"workers={workers}", f"output_dir={output_dir}"]


@pytest.fixture(scope="module")
def one_process_card(stack_base: Path) -> dict[str, Any]:
    from metacot_core.config import load_config
    from metacot_core.data.config import GenerateConfig
    from tasks.generate import generate_dataset

    cfg = load_config(GenerateConfig, "configs/countdown/generate-cpu.yaml",
                      _gen_overrides(stack_base / "runs" / "gen-one", 1))
    return generate_dataset(cfg, progress=False)


def test_generation_spreads_shards_over_both_nodes_with_the_same_hash(
        stack: LocalStack, stack_base: Path, one_process_card: dict[str, Any]) -> None:
    out = ray_driver(stack, "generate", overrides=_gen_overrides(stack_base / "runs" / "gen-two", 2))
    nodes, card = out["nodes"], out["card"]
    assert len(nodes) == 2
    assert card["content_hash"] == one_process_card["content_hash"]
    assert card["n_shards"] == one_process_card["n_shards"] == 16
    written_by = card["generation"]["shard_nodes"]
    assert len(written_by) == 16 and set(written_by.values()) == set(nodes)
    assert set(one_process_card["generation"]["shard_nodes"].values()) == {"local"}
    assert not list((stack_base / "runs" / "gen-two").glob(".storage-probe-*"))


def test_ray_train_places_its_two_workers_on_both_nodes(stack: LocalStack, stack_base: Path,
                                                        one_process_card: dict[str, Any]) -> None:
    out = ray_driver(stack, "sft", overrides=[
        *TINY_SFT, f"data.path={stack_base / 'runs' / 'gen-one'}",
        f"output_dir={stack_base / 'runs' / 'sft-train'}", "train.max_steps=4", "train.eval_every=2",
        "train.checkpoint_every=2", "ray.enabled=true", "ray.num_workers=2", "ray.cpus_per_worker=1"])
    assert out["summary"].get("world_size") == 2
    assert (stack_base / "runs" / "sft-train" / "final").is_dir()
    assert set(out["placed"]) == set(out["nodes"]) and len(out["placed"]) == 2


def test_tune_sweep_of_two_trials_runs_on_the_cluster(stack: LocalStack, stack_base: Path) -> None:
    import yaml

    data = yaml.safe_load((ROOT / "configs/countdown/pipeline-tiny.yaml").read_text())
    data["output_root"] = str(stack_base / "runs" / "sweep-pipeline")
    data["sweep"] = {"space": {"sft.train.lr": {"kind": "grid", "values": [0.02, 0.002]}},
                     "num_samples": 1, "max_concurrent": 2, "cpus_per_trial": 1, "eval_problems": 2,
                     "output_dir": str(stack_base / "runs" / "sweeps"), "metric": "val_loss"}
    config = stack_base / "sweep.yaml"
    config.write_text(yaml.safe_dump(data))
    out = ray_driver(stack, "sweep", config=str(config))
    result = out["result"]
    assert result["trials"] == 2 and result["errors"] == []
    assert out["trial_nodes"] and set(out["trial_nodes"]) <= set(out["nodes"])
    import mlflow

    client = mlflow.MlflowClient(stack.mlflow_uri)
    trials = client.search_runs([client.get_run(result["mlflow_run_id"]).info.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{result['mlflow_run_id']}'")
    assert len(trials) == 2


def _raylet_of(stack: LocalStack, name: str) -> int:
    return next(p.pid for p in tree(stack.daemons[name].pid) if p.name() == "raylet")


def _shards_done(out_dir: Path) -> int:
    return len(list(out_dir.glob("*/part-*.parquet")))


def _freeze_mid_shard(procs_of: Callable[[], list[Any]], ready: Callable[[], bool],
                      driver: subprocess.Popen, timeout: float) -> list[Any]:
    """SIGSTOP a node's processes at a moment one of them writes a shard (once `ready`), and return
    them stopped. Checking a running node races the shard's end (a shard takes a tenth of a second on
    a fast machine); a frozen node stays mid-shard until it is killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            raise AssertionError(f"generation ended (exit {driver.returncode}) before the second node "
                                 f"was caught writing a shard")
        if ready():
            procs = procs_of()
            signal_all(procs, signal.SIGSTOP)
            if any("write_shard_on_node" in line for line in command_lines(procs)):
                return procs
            signal_all(procs, signal.SIGCONT)
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for the second node to write a shard")


def test_fault_second_node_killed_mid_generation(stack: LocalStack, stack_base: Path,
                                                 record_property) -> None:
    from metacot_core.config import load_config
    from metacot_core.data.config import GenerateConfig
    from tasks.generate import generate_dataset

    out_dir = stack_base / "runs" / "gen-node-killed"
    began = time.monotonic()
    driver = start_ray_driver(stack, "generate", overrides=[*GEN_LONG, "workers=2", f"output_dir={out_dir}"],
                              wait_for_nodes=2)
    try:
        frozen = _freeze_mid_shard(lambda: tree(stack.daemons["ray-worker"].pid),
                                   lambda: _shards_done(out_dir) >= 2, driver, 300)
    except AssertionError:
        driver.kill()
        raise
    done_at_kill = _shards_done(out_dir)
    os.kill(_raylet_of(stack, "ray-worker"), signal.SIGKILL)
    signal_all(frozen, signal.SIGCONT)  # the rest of the node sees its raylet gone and exits
    out = driver_result(driver)
    seconds = time.monotonic() - began
    assert "error" not in out, out.get("error")
    second = next(n for n, head in out["nodes"].items() if not head)
    card = out["card"]
    reference = generate_dataset(load_config(
        GenerateConfig, "configs/countdown/generate-cpu.yaml",
        [*GEN_LONG, "workers=1", f"output_dir={stack_base / 'runs' / 'gen-long-one'}"]), progress=False)
    assert card["content_hash"] == reference["content_hash"] and card["n_shards"] == 16
    written_by = card["generation"]["shard_nodes"]
    by_second = sorted(f for f, node in written_by.items() if node == second)
    after_kill = 16 - done_at_kill
    assert after_kill >= 1  # the node died mid-shard, so at least that shard was written after it
    assert sum(1 for node in written_by.values() if node != second) >= after_kill - 1
    note(record_property, "node_kill", f"raylet of node {second[:8]} killed while it wrote a shard, after "
         f"{done_at_kill}/16 shards; {len(by_second)} shards it had finished kept, the rest (its in-flight "
         f"one retried) written by the head; complete, same hash, {seconds:.0f} s in all")


def test_a_node_that_cannot_see_output_dir_fails_naming_node_and_path(stack: LocalStack,
                                                                        stack_base: Path) -> None:
    """The second node started in a mount namespace where the runs folder is an empty tmpfs: the
    shared-storage contract broken the way a node without the shared volume breaks it."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here (unshare); the unit test covers the check")
    runs = stack_base / "runs"
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs tmpfs "$0" && exec "$@"', str(runs)]
    stack.stop_service("ray-worker")
    stack.start_ray_worker(prefix=hide)
    stack.wait("ray-worker")
    out_dir = runs / "gen-hidden"
    out = ray_driver(stack, "generate", overrides=_gen_overrides(out_dir, 2), wait_for_nodes=2)
    second = next(n for n, head in out["nodes"].items() if not head)
    assert out.get("error", {}).get("type") == "OutputNotShared", out
    message = out["error"]["message"]
    assert second in message and str(out_dir.resolve()) in message and "Traceback" not in message
    assert not (out_dir / "card.json").exists()


def test_shards_a_driver_cannot_see_are_named_with_their_node(tmp_path: Path) -> None:
    from metacot_core.data.storage import OutputNotShared, check_reported

    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part-00000.parquet").write_bytes(b"")
    shards = [{"split": "train", "file": "part-00000.parquet", "node": "aaa"},
              {"split": "train", "file": "part-00001.parquet", "node": "bbb"}]
    with pytest.raises(OutputNotShared, match=r"node bbb: train/part-00001\.parquet"):
        check_reported(tmp_path, shards)
    check_reported(tmp_path, shards[:1])
