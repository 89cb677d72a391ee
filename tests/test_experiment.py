"""`metacot experiment`: config validation, arm resolution, the results table and plots, stage sharing,
and one tiny two-arm experiment end to end (crash in the second arm, resume, re-run)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from metacot_core.config import ConfigError
from metacot_core.evaluation.results_plots import crossover, results_plots
from metacot_core.evaluation.results_table import (
    ArmResult,
    markdown_table,
    results_table,
    training_tokens,
    write_table,
)
from metacot_core.pipeline.experiment import grid_slug, load_experiment, split_overrides

ROOT = Path(__file__).resolve().parents[1]
TINY = "configs/countdown/pipeline-tiny.yaml"
EXPERIMENTS = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("configs/*/*.yaml")
                     if "arms" in yaml.safe_load(p.read_text()))


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the stage config paths inside the pipeline YAMLs are relative to the repo


def _write(tmp_path: Path, data: dict, name: str = "exp.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _tiny(tmp_path: Path, **extra) -> dict:
    return {"name": "tiny", "base": TINY, "arms": {"search": ["generate.format=sos"],
                                                  "solution": ["generate.format=solution"]},
            "output_dir": str(tmp_path / "out"), **extra}


# ------------------------------------------------------------------------------------------ the configs


def test_the_experiment_configs_are_all_found() -> None:
    names = {Path(p).stem for p in EXPERIMENTS}
    for stem in ("sos-vs-solution", "crossover", "astar-vs-solution", "mcts"):
        assert {f"{stem}-cpu", f"{stem}-gpu"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS)
def test_every_experiment_config_resolves_all_its_arms(path: str) -> None:
    exp = load_experiment(path)
    cfg = exp.config
    assert cfg.name == Path(path).stem
    n_points = 1
    for values in cfg.grid.values():
        n_points *= len(values)
    assert len(exp.arms) == len(cfg.arms) * n_points
    names = [a.pipeline.config.name for a in exp.arms]
    assert len(set(names)) == len(names) and all(n.startswith(f"{cfg.name}-") for n in names)
    for arm in exp.arms:
        pipe = arm.pipeline
        assert pipe.config.experiment == cfg.experiment
        assert pipe.root == Path(cfg.output_dir) / cfg.name / "arms" / pipe.config.name
        assert pipe.sft.tracking.run_name == f"sft-{pipe.config.name}"
        # the evaluated prompts fit in the model: prompt + new tokens never pass the context
        context = pipe.sft.model.resolved("context")
        assert pipe.evaluate.generation.max_new_tokens < context


def _same_except(a: dict, b: dict, keys: set[str]) -> bool:
    return {k: v for k, v in a.items() if k not in keys} == {k: v for k, v in b.items() if k not in keys}


@pytest.mark.parametrize("path", ["configs/countdown/sos-vs-solution-cpu.yaml",
                                  "configs/countdown/sos-vs-solution-gpu.yaml",
                                  "configs/countdown/mcts-cpu.yaml"])
def test_trace_and_solution_arms_share_problems_model_and_steps(path: str) -> None:
    arms = {a.label: a.pipeline for a in load_experiment(path).arms}
    trace = arms.get("search") or arms["mcts"]
    solution = arms["solution"]
    gen_t, gen_s = (p.generate.model_dump(mode="json") for p in (trace, solution))
    assert gen_s["format"] == "solution" and gen_t["format"] in ("sos", "mcts")
    # same problems: only the format (and the search writing the trace) differ
    assert _same_except(gen_t, gen_s, {"format", "search", "output_dir"})
    sft_t, sft_s = (p.sft.model_dump(mode="json") for p in (trace, solution))
    assert _same_except(sft_t, sft_s, {"data", "output_dir", "tracking"})  # same model, same steps
    assert trace.evaluate.splits == solution.evaluate.splits == ["val_target", "val_inputs", "harder"]


def test_rl_arms_share_the_search_arms_dataset_and_sft() -> None:
    arms = {a.label: a.pipeline for a in load_experiment("configs/countdown/sos-vs-solution-cpu.yaml").arms}
    assert arms["search"].rl is None and arms["search-star"].rl.method == "star"
    assert arms["search-grpo"].rl.method == "grpo"
    for label in ("search-star", "search-grpo"):
        assert arms[label].hashes["sft"] == arms["search"].hashes["sft"]


# ------------------------------------------------------------------------------------- bad configs


def test_a_bad_key_in_any_arm_fails_before_anything_runs(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.experiment as experiment_flow

    def must_not_run(*args, **kwargs):
        raise AssertionError("an arm ran although another arm's config is invalid")

    monkeypatch.setattr(experiment_flow, "run_pipeline_flow", must_not_run)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = _tiny(tmp_path)
    data["arms"]["solution"].append("sft.trian.lr=1")  # the second arm is the bad one
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        experiment_flow.run_experiment(path)
    message = str(err.value)
    assert message.startswith("arms.solution: sft: invalid SFTConfig: trian: Extra inputs are not permitted")
    assert "\n" not in message
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"arms": {}}, "invalid ExperimentConfig: arms: give at least one arm"),
    ({"arms": {"a b": ["generate.format=sos"]}}, "arms: 'a b': arm names may hold only"),
    ({"arms": {"x": ["generate.format"]}}, "arms: x: generate.format: an override must look like key.sub="),
    ({"arms": {"x": ["name=other"]}}, "arms: x: name=other: the experiment sets 'name' itself"),
    ({"overrides": ["output_root=/x"]}, "overrides: output_root=/x: the experiment sets 'output_root'"),
    ({"grid": {"sft.train.max_steps": []}}, "grid: sft.train.max_steps: give at least one value"),
    ({"grid": {"sft.train.max_steps": [2, 2]}}, "grid: sft.train.max_steps: a value is listed twice"),
    ({"grid": {"experiment": ["a"]}}, "grid: experiment: the experiment sets 'experiment' itself"),
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"base": "configs/nope.yaml"}, "configs/nope.yaml: config file not found"),
    ({"grid": {"sft.train.max_stepz": [2]}},
     "arms.search at sft.train.max_stepz=2: sft: invalid SFTConfig: train.max_stepz: Extra inputs"),
])
def test_invalid_experiment_is_one_line_naming_the_field(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_experiment(_write(tmp_path, {**_tiny(tmp_path), **change}))
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_overrides_route_to_the_experiment_or_to_every_arm(tmp_path: Path) -> None:
    top, arms = split_overrides(["name=x", "output_dir=/o", "sft.train.max_steps=3", "rl.enabled=false",
                                 'grid={"sft.train.lr": [0.1]}'])
    assert top == ["name=x", "output_dir=/o", 'grid={"sft.train.lr": [0.1]}']
    assert arms == ["sft.train.max_steps=3", "rl.enabled=false"]
    exp = load_experiment(_write(tmp_path, _tiny(tmp_path)), ["name=renamed", "sft.train.max_steps=3"])
    assert [a.pipeline.config.name for a in exp.arms] == ["renamed-search", "renamed-solution"]
    assert all(a.pipeline.sft.train.max_steps == 3 for a in exp.arms)
    assert exp.select(["solution"])[0].label == "solution"
    with pytest.raises(ConfigError, match="only: unknown arm 'nope'; arms: search, solution"):
        exp.select(["nope"])


def test_grid_crosses_every_arm_and_names_each_point(tmp_path: Path) -> None:
    data = _tiny(tmp_path, grid={"generate.problem.num_count": [3, 4], "sft.train.max_steps": [2, 4]})
    exp = load_experiment(_write(tmp_path, data))
    assert [a.label for a in exp.arms][:2] == ["search-num_count3-max_steps2", "search-num_count3-max_steps4"]
    assert len(exp.arms) == 8
    point = next(a for a in exp.arms if a.label == "solution-num_count4-max_steps2")
    assert point.pipeline.generate.problem["num_count"] == 4 and point.pipeline.sft.train.max_steps == 2
    assert point.grid == {"generate.problem.num_count": 4, "sft.train.max_steps": 2}
    # points that differ only in SFT settings have the same dataset (shared when they run)
    same_data = [a for a in exp.arms if a.arm == "search" and a.grid["generate.problem.num_count"] == 3]
    assert len({a.pipeline.hashes["generate"] for a in same_data}) == 1
    assert grid_slug({"generate.problem": {"width": 20, "height": 20}}) == "problem-width20-height20"
    assert exp.select(["search"]) == [a for a in exp.arms if a.arm == "search"]


def test_cli_dry_run_lists_the_arms_and_bad_config_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.experiment import app

    result = CliRunner().invoke(app, ["experiment", "configs/countdown/sos-vs-solution-cpu.yaml", "--dry-run",
                                      "--only", "solution", "sft.train.max_steps=5"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("solution: pipeline sos-vs-solution-cpu-solution")
    data = _tiny(tmp_path)
    data["arms"]["search"].append("evaluate.max_problem=3")
    result = CliRunner().invoke(app, ["experiment", _write(tmp_path, data)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: arms.search: evaluate: invalid EvalConfig: max_problem: Extra inputs are not permitted"]


# ------------------------------------------------------------------------------------ results table


def _summary(splits: dict[str, tuple[float, int]], **extra) -> dict:
    return {"splits": {name: {"model": {"solve_rate": rate, "n_problems": n, "validity_rate": 0.5,
                                        "states_explored_mean": 7.0, "tokens_per_trace_mean": 120.0},
                              **extra}
                       for name, (rate, n) in splits.items()},
            "mlflow_run_id": "run-x"}


SFT = {"params": 1000, "final_step": 10, "seq_len": 256, "world_size": 2, "padding_waste": 0.25}


def test_training_tokens_and_flops_by_hand() -> None:
    # 10 steps x 4 rows x 2 accumulation x 2 workers x 256 slots x (1 - 0.25) real = 30720 tokens
    assert training_tokens(SFT, micro_batch_size=4, grad_accum=2) == (30720.0, True)
    assert training_tokens({**SFT, "tokens_seen": 999}, 4, 2) == (999.0, False)  # measured wins
    assert training_tokens({"params": 5}, 4) == (None, True)
    table = results_table([ArmResult("a", "a", "p", _summary({"val_target": (0.5, 2)}), SFT, 4, 2)])
    row = table.to_pylist()[0]
    assert row["train_flops"] == 6 * 1000 * 30720 and row["train_tokens_estimated"] is True


def test_results_table_rows_intervals_and_markdown(tmp_path: Path) -> None:
    results = [
        ArmResult("search", "search-max_steps2", "exp-search-max_steps2",
                  _summary({"val_target": (0.75, 4), "val_inputs": (0.25, 4)}), SFT, 4,
                  grid={"sft.train.max_steps": 2}),
        ArmResult("solution", "solution-max_steps2", "exp-solution-max_steps2",
                  _summary({"val_target": (0.0, 4), "val_inputs": (1.0, 4)}), SFT, 4,
                  grid={"sft.train.max_steps": 2}, evaluated="rl"),
    ]
    table = results_table(results, ["sft.train.max_steps"])
    rows = table.to_pylist()
    assert [(r["arm"], r["split"]) for r in rows] == [("search", "val_target"), ("search", "val_inputs"),
                                                      ("solution", "val_target"), ("solution", "val_inputs")]
    first = rows[0]
    # 3 of 4, z^2 = 3.8415: centre = (0.75 + 0.48018) / 1.96036 = 0.62753;
    # half = 1.96 * sqrt(0.046875 + 0.060023) / 1.96036 = 0.32689 -> [0.30064, 0.95441]
    assert first["solved"] == 3 and first["n"] == 4
    assert first["ci_low"] == pytest.approx(0.30064, abs=1e-4)
    assert first["ci_high"] == pytest.approx(0.95441, abs=1e-4)
    # 1 of 4 mirrors 3 of 4: [1 - 0.95441, 1 - 0.30064]
    assert (rows[1]["ci_low"], rows[1]["ci_high"]) == (pytest.approx(0.04559, abs=1e-4),
                                                       pytest.approx(0.69936, abs=1e-4))
    assert rows[2]["ci_low"] == 0.0 and rows[3]["ci_high"] == 1.0
    assert all(r["ci_low"] <= r["solve_rate"] <= r["ci_high"] for r in rows)
    assert table.schema.field("sft.train.max_steps").type == "int64" and first["sft.train.max_steps"] == 2
    assert first["eval_run_id"] == "run-x" and first["optimal_rate"] is None

    md = markdown_table(table, ["sft.train.max_steps"]).splitlines()
    assert md[0].startswith("| arm | max_steps | split | n | solved | solve rate [95% CI] | answer rate")
    assert len(md) == 2 + 4  # header, rule, one row per arm x split
    assert md[2].startswith("| search | 2 | val_target | 4 | 3 | 0.750 [0.301, 0.954] | - | 0.500 |")
    assert md[4].startswith("| solution (RL) | 2 | val_target | 4 | 0 | 0.000 [0.000, 0.490] |")
    # grad_accum 1 here: 10 x 4 x 2 x 256 x 0.75 = 15360 tokens; 6 x 1000 x 15360 = 9.216e7 FLOPs
    assert "~15.36k" in md[2] and "~9.22e+07" in md[2]

    path = write_table(table, tmp_path / "results.parquet")
    assert pq.read_table(path).to_pylist() == rows


def test_results_table_keeps_formats_and_maze_metrics() -> None:
    maze = {"maze": {"optimal_rate": 0.5, "swc": 0.6, "ilr": 1.2}}
    results = [ArmResult("astar", "astar", "p", _summary({"test/astar": (0.5, 2), "test/solution": (1.0, 2)},
                                                         **maze), {}, 8)]
    table = results_table(results)
    rows = table.to_pylist()
    assert [(r["split"], r["format"]) for r in rows] == [("test", "astar"), ("test", "solution")]
    assert rows[0]["swc"] == 0.6 and rows[0]["params"] is None and rows[0]["train_flops"] is None
    md = markdown_table(table)
    assert "| optimal rate | SWC | ILR |" in md and "| test (astar) |" in md


def test_plots_are_written(tmp_path: Path) -> None:
    grid = ["generate.problem.num_count", "sft.train.max_steps"]
    results = [ArmResult(arm, f"{arm}-{n}-{steps}", "p",
                         _summary({"val_target": (0.25 * (steps // 2), 4)}),
                         {**SFT, "final_step": steps}, 4, grid={grid[0]: n, grid[1]: steps})
               for arm in ("search", "solution") for n in (3, 4) for steps in (2, 4)]
    rows = results_table(results, grid).to_pylist()
    paths = results_plots(rows, tmp_path / "plots", grid)
    assert [p.name for p in paths] == ["solve_rate_by_arm.png", "solve_rate_vs_flops.png"]
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    assert crossover([{**r, "train_flops": None} for r in rows], tmp_path / "none.png", grid) is None
    assert [p.name for p in results_plots(rows, tmp_path / "flat")] == ["solve_rate_by_arm.png"]


# ---------------------------------------------------------------------------------- shared stages


def test_identical_stages_of_another_arm_are_linked_not_redone(tmp_path: Path) -> None:
    from flows.experiment import share_finished_stages
    from flows.pipeline import PipelineState
    from metacot_core.pipeline.config import load_pipeline

    base = [f"output_root={tmp_path}", "rl.enabled=false"]
    donor = load_pipeline(TINY, [*base, "name=donor"])
    same_sft = load_pipeline(TINY, [*base, "name=same", "evaluate.max_problems=2"])
    other_sft = load_pipeline(TINY, [*base, "name=other", "sft.train.max_steps=3"])
    assert donor.hashes["sft"] == same_sft.hashes["sft"] != other_sft.hashes["sft"]
    everyone = [donor, same_sft, other_sft]
    assert share_finished_stages(same_sft, everyone) == []  # the donor has not finished anything yet

    state = PipelineState(donor.state_path, donor.key)
    data, sft_dir = Path(donor.generate.output_dir), Path(donor.sft.output_dir)
    (data / "train").mkdir(parents=True)
    (data / "card.json").write_text("{}")
    (sft_dir / "final").mkdir(parents=True)
    state.finish("generate", donor.hashes["generate"], {"content_hash": "c"}, ["g"])
    state.finish("sft", donor.hashes["sft"], {"params": 7, "final_step": 4}, ["s"])

    assert share_finished_stages(same_sft, everyone) == ["generate", "sft"]
    assert Path(same_sft.sft.output_dir).resolve() == sft_dir.resolve()
    assert Path(same_sft.generate.output_dir).is_symlink()
    mine = PipelineState(same_sft.state_path, same_sft.key)
    entry = mine.finished("sft", same_sft.hashes["sft"])
    assert entry["summary"] == {"params": 7, "final_step": 4, "shared_from": "donor"}
    assert share_finished_stages(same_sft, everyone) == []  # already recorded: nothing more to do
    # a different SFT config shares the dataset only
    assert share_finished_stages(other_sft, everyone) == ["generate"]
    assert not Path(other_sft.sft.output_dir).exists()


# ---------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.e2e
def test_tiny_experiment_end_to_end_with_crash_resume_and_rerun(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> None:
    import mlflow

    from flows.experiment import experiment
    from metacot_core.training import sft as sft_core
    from tasks import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    config = _write(tmp_path, _tiny(tmp_path, experiment="exp-e2e",
                                    overrides=["evaluate.splits=[val_target, val_inputs]"]))
    real_train = sft_core.train

    def crash_in_solution_arm(cfg, *args, **kwargs):
        if cfg.tracking.run_name.endswith("solution"):
            raise RuntimeError("simulated crash in the second arm")
        return real_train(cfg, *args, **kwargs)

    monkeypatch.setattr(sft_core, "train", crash_in_solution_arm)
    with pytest.raises(RuntimeError, match="simulated crash in the second arm"):
        experiment(config)
    monkeypatch.setattr(sft_core, "train", real_train)

    def runs() -> list:
        return mlflow.search_runs(experiment_names=["exp-e2e"], output_format="list")

    def named(prefix: str) -> list:
        return [r for r in runs() if r.info.run_name.startswith(prefix)]

    [failed] = named("experiment-tiny")
    assert failed.info.status == "FAILED"
    result = experiment(config)  # resumes: the search arm is reused, the solution arm runs
    assert sorted((r.info.run_name, r.info.status) for r in named("sft-")) == [
        ("sft-tiny-search", "FINISHED"), ("sft-tiny-solution", "FAILED"), ("sft-tiny-solution", "FINISHED")]

    out = tmp_path / "out" / "tiny"
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert sorted((r["arm"], r["split"]) for r in rows) == [
        ("search", "val_inputs"), ("search", "val_target"),
        ("solution", "val_inputs"), ("solution", "val_target")]
    for row in rows:
        assert row["n"] == 4 and 0.0 <= row["solve_rate"] <= 1.0
        assert row["ci_low"] <= row["solve_rate"] <= row["ci_high"]
        assert row["params"] > 0
        assert row["train_flops"] == pytest.approx(6 * row["params"] * row["train_tokens"])
    md = (out / "results.md").read_text()
    assert md.startswith("# tiny") and md.count("| search |") == 2 and md.count("| solution |") == 2

    parent_id = result["mlflow"]["run_id"]
    assert parent_id == failed.info.run_id  # the killed experiment's run was reopened, not a second one
    parent = mlflow.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.params["name"] == "tiny"
    search_target = next(r for r in rows if r["arm"] == "search" and r["split"] == "val_target")
    assert parent.data.metrics["search/val_target/solve_rate"] == search_target["solve_rate"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent_id)}
    assert {"results.parquet", "results.md", "arms.json", "plots"} <= artifacts
    pipelines = named("pipeline-tiny-")
    assert len(pipelines) == 2 and all(r.data.tags["mlflow.parentRunId"] == parent_id for r in pipelines)

    before = {r.info.run_id for r in runs()}
    again = experiment(config)  # every arm finished: no stage runs again
    assert {r.info.run_id for r in runs()} == before
    assert again["mlflow"]["run_id"] == parent_id
    assert pq.read_table(out / "results.parquet").to_pylist() == rows
    state = json.loads((out / "experiment-state.json").read_text())
    assert set(state["stages"]) == {"search", "solution"}
