"""The experiment config and the `metacot-pipeline` flow: wiring, hashing, caching, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Prefect binds its console log handler to sys.stderr when first imported. Imported inside a test,
# that is pytest's capture stream, closed when the test ends, and the harness test below then logs
# into a closed file (running this module alone used to fail that way): import it at collection.
import flows.pipeline  # noqa: F401
from metacot_core.config import ConfigError
from metacot_core.pipeline.config import load_pipeline, route_overrides, trial_overrides

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "countdown" / "pipeline-tiny.yaml")
CPU = str(ROOT / "configs" / "countdown" / "pipeline-cpu.yaml")
SWEEP = str(ROOT / "configs" / "countdown" / "sweep-cpu.yaml")


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # stage config paths in the YAML files are relative to the repository


def test_stages_are_wired_and_folders_named_by_hash() -> None:
    pipe = load_pipeline(CPU)
    root = Path("runs/pipeline/countdown-cpu-dfs")
    assert pipe.generate.output_dir == str(root / f"data-{pipe.hashes['generate']}")
    assert pipe.sft.data.path == pipe.generate.output_dir == pipe.rl.dataset == pipe.evaluate.dataset
    assert pipe.sft.output_dir == str(root / f"sft-{pipe.hashes['sft']}")
    assert pipe.rl.init_checkpoint == str(Path(pipe.sft.output_dir) / "final")
    assert pipe.generate.problem["num_count"] == 3 and pipe.sft.train.max_steps == 1600
    assert pipe.stages() == ["generate", "sft", "rl", "evaluate"]
    assert pipe.state_path.parent == root and pipe.key in pipe.state_path.name


def test_a_change_renames_its_stage_and_every_later_one_only() -> None:
    base = load_pipeline(CPU).hashes
    lr = load_pipeline(CPU, ["sft.train.lr=0.001"]).hashes
    assert lr["generate"] == base["generate"]
    assert all(lr[s] != base[s] for s in ("sft", "rl", "evaluate"))
    # fields that do not change a stage's result do not rename it
    assert load_pipeline(CPU, ["generate.workers=1", "sft.tracking.run_name=x"]).hashes == base
    no_rl = load_pipeline(CPU, ["rl.enabled=false"])
    assert no_rl.rl is None and no_rl.stages() == ["generate", "sft", "evaluate"]
    assert no_rl.hashes["evaluate"] != base["evaluate"]


def test_a_field_added_later_keeps_earlier_hashes_at_its_default() -> None:
    from metacot_core.pipeline.config import drop_neutral_defaults

    base = load_pipeline(CPU)
    assert load_pipeline(CPU, ["sft.train.curriculum_epochs=0"]).hashes == base.hashes
    on = load_pipeline(CPU, ["sft.train.curriculum_epochs=1"]).hashes
    assert on["generate"] == base.hashes["generate"] and on["sft"] != base.hashes["sft"]
    # at its default the field is left out of what is hashed: configs run before it existed keep
    # their stage folders and cached runs
    dumped = drop_neutral_defaults(base.sft, base.sft.model_dump(mode="json"))
    assert "curriculum_epochs" not in dumped["train"] and "lr" in dumped["train"]


def test_overrides_route_to_stages() -> None:
    top, per = route_overrides(["sft.train.lr=1e-3", "rl.enabled=false", "name=x", "generate.counts.train=5",
                                "sweep.num_samples=3"])
    assert top == ["rl.enabled=false", "name=x", "sweep.num_samples=3"]
    assert per["sft"] == ["train.lr=1e-3"] and per["generate"] == ["counts.train=5"]
    assert trial_overrides({"sft.train.lr": 0.01, "generate.format": ["sos", "solution"]}) == [
        'generate.format=["sos", "solution"]', "sft.train.lr=0.01"]
    pipe = load_pipeline(CPU, trial_overrides({"generate.format": ["sos", "solution"]}))
    assert pipe.generate.formats == ["sos", "solution"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["sft.train.lr=-1"], "sft: invalid SFTConfig: train.lr: Input should be greater than 0"),
    (["sft.trian.lr=1"], "sft: invalid SFTConfig: trian: Extra inputs are not permitted"),
    (["bogus=1"], "invalid PipelineConfig: bogus: Extra inputs are not permitted"),
    (["generate.domain=chess"], "generate: invalid GenerateConfig: domain: unknown domain 'chess'"),
    (["sft.config=configs/nope.yaml"], "configs/nope.yaml: config file not found"),
    (["generate.enabled=false"], "generate.enabled: only rl can be turned off"),
])
def test_bad_config_is_one_line_naming_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_pipeline(CPU, overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_sweep_space_is_validated() -> None:
    from flows.sweep import sweep_settings

    assert sweep_settings(load_pipeline(SWEEP)).space["sft.train.lr"].kind == "loguniform"
    with pytest.raises(ConfigError, match="loguniform needs low < high"):
        bad = "sweep.space={'sft.train.lr': {kind: loguniform, low: 1, high: 0.1}}"
        sweep_settings(load_pipeline(SWEEP, [bad]))
    with pytest.raises(ConfigError, match="must start with generate. or sft."):
        bad = "sweep.space={'evaluate.max_problems': {kind: choice, values: [1]}}"
        sweep_settings(load_pipeline(SWEEP, [bad]))


def test_unreachable_mlflow_server_is_an_error_unless_fallback_asked(monkeypatch, capsys) -> None:
    from cli.processes import free_port
    from tasks import tracking
    from tasks.tracking import TrackingUnreachable, check_tracking

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    with pytest.raises(TrackingUnreachable, match=f"MLflow tracking server {url} is not reachable"):
        check_tracking(timeout=1)
    assert check_tracking(fallback=True, timeout=1) == f"sqlite:///{tracking.PROJECT_ROOT / 'mlflow.db'}"
    assert "logging to sqlite" in capsys.readouterr().out


def test_cli_run_bad_config_prints_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.pipeline import app

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsft:\n  config: configs/countdown/sft-cpu.yaml\n"
                   "  settings: {train: {lr: zero}}\n")
    result = CliRunner().invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 1, result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sft: invalid SFTConfig: train.lr:"), (
        result.output, repr(result.exception))
    result = CliRunner().invoke(app, ["sweep", "--config", TINY])
    assert result.exit_code == 1 and "no `sweep:` block" in result.output


def test_stale_child_runs_are_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from metacot_core.pipeline.loop import close_stale_children
    from tasks import tracking
    from tasks.tracking import MlflowTracker, child_runs

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    exp = tracking.configure("stale")
    client = mlflow.MlflowClient()
    parent = client.create_run(exp).info.run_id
    done = client.create_run(exp, tags={"mlflow.parentRunId": parent}).info.run_id
    client.set_terminated(done, "FINISHED")
    killed = client.create_run(exp, tags={"mlflow.parentRunId": parent}).info.run_id  # left RUNNING
    assert close_stale_children(MlflowTracker(), parent) == [killed]
    assert {r.info.run_id: r.info.status for r in child_runs(parent)} == {done: "FINISHED", killed: "KILLED"}


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.e2e
def test_pipeline_resumes_after_a_crash_in_sft_and_reuses_finished_stages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> None:
    import mlflow

    from flows.pipeline import pipeline
    from metacot_core.training import sft as sft_core
    from tasks import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    overrides = [f"output_root={tmp_path / 'runs'}"]
    real_train = sft_core.train

    def crash_after_checkpoint(cfg, *args, on_metrics=None, **kwargs):
        def crash(step, metrics):
            if on_metrics is not None:
                on_metrics(step, metrics)
            if step == 3:  # after the step-2 checkpoint
                raise RuntimeError("simulated crash during SFT")
        return real_train(cfg, *args, on_metrics=crash, **kwargs)

    monkeypatch.setattr(sft_core, "train", crash_after_checkpoint)
    with pytest.raises(RuntimeError, match="simulated crash during SFT"):
        pipeline(TINY, overrides)
    monkeypatch.setattr(sft_core, "train", real_train)

    results = pipeline(TINY, overrides)
    assert results["sft"]["start_step"] == 2 and results["sft"]["final_step"] == 4  # resumed, not restarted
    headline = results["headline"]
    assert 0.0 <= headline["val_target.solve_rate_ci_low"] <= headline["val_target.solve_rate"]
    assert "val_target.validity_rate" in headline

    def runs() -> list:
        return mlflow.search_runs(experiment_names=["metacot"], output_format="list")

    first = runs()
    by_name: dict[str, list] = {}
    for run in first:
        by_name.setdefault(run.info.run_name, []).append(run)
    parent = results["mlflow"]["run_id"]
    assert [r.info.run_id for r in by_name["pipeline-countdown-tiny"]] == [parent]  # reopened, not a second
    assert len(by_name["generate-traces"]) == 1  # generation ran once
    assert sorted(r.info.status for r in by_name["sft-countdown-tiny"]) == ["FAILED", "FINISHED"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in first if r.info.run_id != parent)
    assert mlflow.get_run(parent).data.metrics["val_target.solve_rate"] == headline["val_target.solve_rate"]

    state_file = next((tmp_path / "runs" / "countdown-tiny").glob("pipeline-state-*.json"))
    state = json.loads(state_file.read_text())
    assert set(state["stages"]) == {"generate", "sft", "evaluate"} and state["parent_run_id"] == parent

    again = pipeline(TINY, overrides)  # same config: every stage reused, no new stage runs
    assert len(runs()) == len(first)
    assert again["headline"] == headline



def test_result_lines_pool_the_held_out_splits_and_skip_a_split_without_a_solve_rate() -> None:
    from metacot_core.pipeline.loop import result_lines

    def split(rate: float, n: int) -> dict:
        return {"model": {"solve_rate": rate, "solve_rate_ci_low": 0.0, "solve_rate_ci_high": 1.0,
                          "n_problems": n}}

    summary = {"splits": {"val_target": split(0.25, 64), "val_inputs": split(0.5, 64),
                          "harder": {"model": {}}}}
    lines = result_lines(load_pipeline(CPU), {"evaluate": summary})
    assert len(lines) == 4 and "harder" not in "".join(lines)
    assert lines[-1].strip().startswith("all: solved 48/128 = 0.375 [95% CI 0.296, 0.461]")
    one = result_lines(load_pipeline(CPU), {"evaluate": {"splits": {"val_target": split(0.25, 64)}}})
    assert len(one) == 2  # one split: nothing to pool
