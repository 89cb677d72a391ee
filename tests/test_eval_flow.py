"""End-to-end evaluation of a tiny random model: table, summary, plots, MLflow run, Prefect flow, CLI."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
from test_eval_generate import one_torch_thread, tiny_lm  # noqa: F401 (autouse fixture)
from typer.testing import CliRunner

from metacot_core.config import load_config
from metacot_core.data.schema import count_trace_tokens
from metacot_core.data.writer import write_split
from metacot_core.domains.maze.problem import MazeConfig
from metacot_core.evaluation.config import EvalConfig
from metacot_core.registry import get_domain, get_format, get_search
from metacot_core.search.config import SearchConfig
from tasks import tracking

ROOT = Path(__file__).resolve().parents[1]
SOS_DIR = ROOT.parent / "shared" / "data" / "sos"
MAZE_MIX = {"strategies": [{"algorithm": "bfs"}, {"algorithm": "astar"}]}


def _row(problem_id: str, split: str, domain: str, instance: dict, prompt: str, trace: str, fmt: str,
         algorithm: str, solved: bool, solution: list[str], n_expanded: int) -> dict:
    return {"problem_id": problem_id, "domain": domain, "split": split, "instance": json.dumps(instance),
            "prompt": prompt, "trace": trace, "format": fmt, "algorithm": algorithm, "solved": solved,
            "solution": solution, "n_expanded": n_expanded, "n_trace_tokens": count_trace_tokens(trace),
            "seed": 0}


@pytest.fixture(scope="module")
def maze_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("maze_ds")
    domain, fmt = get_domain("maze"), get_format("astar")
    cfg = MazeConfig(width=4, height=4)
    rows = []
    for i in range(8):
        problem = domain.make(cfg, "test", i, 0)
        result = get_search("astar")(problem, SearchConfig(algorithm="astar"), random.Random(i))
        rows.append(_row(f"maze/test/{i:06d}", "test", "maze", problem.to_instance(), fmt.prompt(problem),
                         fmt.linearize(problem, result), "astar", "astar", result.solved,
                         list(result.solution_text or []), result.n_expanded))
    write_split(root, "test", rows)
    return root


@pytest.fixture(scope="module")
def sos_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sos_ds")
    fmt, domain = get_format("sos"), get_domain("countdown")
    rows = []
    with open(SOS_DIR / "val_target.jsonl") as fh:
        records = [json.loads(line) for _, line in zip(range(8), fh, strict=False)]
    for i, rec in enumerate(records):
        instance = {"numbers": rec["nums"], "target": rec["target"]}
        prompt = fmt.prompt(domain.from_instance(instance))
        trace = rec["search_path"][len(prompt):]
        rows.append(_row(f"countdown/val_target/{i:06d}", "val_target", "countdown", instance, prompt, trace,
                         "sos", rec["search_type"], "Goal Reached" in trace, rec["solution"],
                         trace.count("Exploring Operation")))
    write_split(root, "val_target", rows)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    texts = []
    with open(SOS_DIR / "val_target.jsonl") as fh:
        texts += [json.loads(line)["search_path"] for _, line in zip(range(20), fh, strict=False)]
    texts += ["start 0 0 goal 2 2 wall 1 1\ncreate 0 0 c0 c4\nclose 0 0 c0 c4\nplan 0 0"]
    model, tok = tiny_lm(texts, seed=3, d_model=32, n_layer=1)
    path = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture()
def tracking_store(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    mlflow.set_tracking_uri(uri)
    return uri


def _cfg(checkpoint: Path, dataset: Path, out: Path, **extra) -> EvalConfig:
    data = {"checkpoint": str(checkpoint), "dataset": str(dataset), "output_dir": str(out), "progress": False,
            "generation": {"max_new_tokens": 24, "batch_size": 8}, **extra}
    return EvalConfig.model_validate(data)


def test_maze_eval_writes_table_summary_plots(checkpoint, maze_dataset, tmp_path):
    from metacot_core.evaluation.runner import run_evaluation

    cfg = _cfg(checkpoint, maze_dataset, tmp_path / "out", teacher={"mix": MAZE_MIX}, pass_k=[1])
    records, summary, paths = run_evaluation(cfg)
    table = pq.read_table(paths["table"]).to_pylist()
    assert len(table) == len(records) == 8
    assert {r["split"] for r in table} == {"test"}
    assert all(r["completion"] is not None and r["label"] for r in table)
    assert all(r["optimal_length"] and r["astar_tokens"] for r in table)
    assert all(set(json.loads(r["teacher_json"])) == {"bfs", "astar"} for r in table)
    split = json.loads(paths["summary"].read_text())["splits"]["test"]
    assert split["model"]["n_problems"] == 8 and 0.0 <= split["model"]["solve_rate"] <= 1.0
    assert split["teacher"]["strategies"]["astar"]["solve_rate"] == 1.0  # A* solves every generated maze
    assert {"optimal_rate", "swc", "ilr"} <= set(split["maze"])
    assert split == summary["splits"]["test"]
    names = sorted(p.name for p in paths["plots"])
    assert names == ["solve_rate_by_length.png", "states_model_vs_teacher.png", "verdicts.png"]
    assert all(p.stat().st_size > 1000 for p in paths["plots"])


@pytest.mark.e2e
def test_countdown_eval_with_mlflow_under_parent_run(checkpoint, sos_dataset, tmp_path, tracking_store):
    from flows.evaluate import evaluate_no_flow

    tracking.configure("metacot")
    with mlflow.start_run(run_name="sft") as parent:
        pass
    parent_end = mlflow.get_run(parent.info.run_id).info.end_time
    cfg = _cfg(checkpoint, sos_dataset, tmp_path / "out", parent_run_id=parent.info.run_id,
               teacher={"node_budget": 200})
    summary = evaluate_no_flow(cfg)
    run = mlflow.get_run(summary["mlflow_run_id"])
    assert run.info.run_name == "evaluate" and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert mlflow.get_run(parent.info.run_id).info.end_time == parent_end  # the parent run is untouched
    assert run.data.params["generation.max_new_tokens"] == "24"
    metrics = run.data.metrics
    assert "val_target.model.solve_rate" in metrics and "val_target.model.pass_at_1" in metrics
    assert "val_target.teacher.strategies.dfs-sum.solve_rate" in metrics
    assert "val_target.teacher.alignment.beam1-mult" in metrics
    files = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "eval")}
    assert files == {"eval/table.parquet", "eval/summary.json", "eval/teacher.parquet", "eval/plots"}
    table = pq.read_table(tmp_path / "out" / "table.parquet").to_pylist()
    assert len(table) == 8 and all(r["teacher_any_solved"] is not None for r in table)


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.e2e
def test_prefect_flow_evaluate(checkpoint, maze_dataset, tmp_path, tracking_store, prefect_harness):
    from flows.evaluate import build_eval_config, evaluate

    config = tmp_path / "eval.yaml"
    config.write_text(json.dumps({"teacher": {"mix": MAZE_MIX}, "progress": False, "pass_k": [1],
                                  "generation": {"max_new_tokens": 16}}))
    summary = evaluate(build_eval_config(str(config), [f"output_dir={tmp_path / 'out'}"],
                                         checkpoint=str(checkpoint), dataset=str(maze_dataset),
                                         splits=["test"]))
    assert summary["splits"]["test"]["model"]["n_problems"] == 8
    run = mlflow.get_run(summary["mlflow_run_id"])
    assert run.data.params["teacher.mix.strategies"].startswith("[")
    assert (tmp_path / "out" / "summary.json").is_file()


def test_cli_eval_no_flow(checkpoint, maze_dataset, tmp_path):
    from cli.main import app

    result = CliRunner().invoke(app, [
        "eval", "--checkpoint", str(checkpoint), "--dataset", str(maze_dataset), "--split", "test",
        "--no-flow", "--no-track", f"output_dir={tmp_path / 'cli'}", "progress=false",
        "teacher.enabled=false", "generation.max_new_tokens=8", "pass_k=[1]"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("test: solve ")
    assert (tmp_path / "cli" / "table.parquet").is_file()


def test_cli_eval_bad_inputs_are_one_line(checkpoint, maze_dataset, tmp_path):
    from cli.main import app

    runner = CliRunner()
    missing = runner.invoke(app, ["eval", "--checkpoint", str(tmp_path / "nope"),
                                  "--dataset", str(maze_dataset)])
    assert missing.exit_code == 1 and "checkpoint directory not found" in missing.output
    bad = runner.invoke(app, ["eval", "--checkpoint", str(checkpoint), "--dataset", str(maze_dataset),
                              "generation.temperature=-1"])
    assert bad.exit_code == 1 and "generation.temperature" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    split = runner.invoke(app, ["eval", "--checkpoint", str(checkpoint), "--dataset", str(maze_dataset),
                                "--split", "nosuch", "--no-flow", "--no-track", "progress=false"])
    assert split.exit_code == 1 and "nosuch" in split.output


def test_eval_cpu_config_loads():
    cfg = load_config(EvalConfig, ROOT / "configs" / "countdown" / "eval-cpu.yaml")
    assert cfg.teacher.strategies().strategies  # the SoS mix by default
    assert cfg.generation.max_new_tokens >= 256
    assert os.path.basename(cfg.output_dir)
    boundary = load_config(EvalConfig, ROOT / "configs" / "countdown" / "eval-boundary-cpu.yaml")
    assert boundary.generation.n_samples == 64 and boundary.generation.temperature == 1.0
    assert boundary.pass_k == [2 ** i for i in range(7)] and boundary.expansions


def test_expansions_field_keeps_stage_hashes():
    from metacot_core.pipeline.config import drop_neutral_defaults

    cfg = EvalConfig()
    assert "expansions" not in drop_neutral_defaults(cfg, cfg.model_dump(mode="json"))
    off = EvalConfig(expansions=False)
    assert drop_neutral_defaults(off, off.model_dump(mode="json"))["expansions"] is False


def test_cli_unknown_parent_run_is_one_line_error(checkpoint, maze_dataset, tmp_path, tracking_store):
    from cli.main import app

    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(checkpoint), "--dataset", str(maze_dataset),
                                      "--no-flow", "--parent-run-id", "nosuchrun", "progress=false"])
    assert result.exit_code == 1 and "parent_run_id: no MLflow run 'nosuchrun'" in result.output


def test_checkpoint_run_id_is_read_from_metadata(tmp_path):
    from tasks.evaluate import checkpoint_run_id

    assert checkpoint_run_id(tmp_path) is None
    (tmp_path / "sft_config.json").write_text(json.dumps({"lr": 1e-3}))
    assert checkpoint_run_id(tmp_path) is None
    (tmp_path / "metacot.json").write_text(json.dumps({"mlflow_run_id": "abc123"}))
    assert checkpoint_run_id(tmp_path) == "abc123"


def test_evaluation_core_imports_no_orchestration():
    import subprocess
    import sys

    code = ("import sys, metacot_core.evaluation.runner, metacot_core.evaluation.report; "
            "print(sorted(m for m in ('prefect', 'ray', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
