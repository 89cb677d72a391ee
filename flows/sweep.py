"""`metacot sweep`: a Ray Tune search over an experiment's settings, with ASHA early stopping.

    metacot sweep --config configs/countdown/sweep-cpu.yaml
    metacot sweep --config configs/countdown/sweep-cpu.yaml sweep.num_samples=8

The config is a pipeline config (metacot_core.pipeline.config) with a `sweep:` block: a search space
over dotted pipeline keys (`sft.train.lr`, `sft.model.n_layer`, `generate.counts.train`,
`generate.format`, ...), the number of samples, the ranking metric and the trial resources.

Each trial resolves the pipeline with its sampled overrides, makes the dataset when no earlier trial
made the same one (a file lock per dataset folder, so concurrent trials wait instead of racing),
then trains SFT in the trial's own process (no Ray Train inside Tune: on a small machine each trial
gets a fraction of the CPUs) and reports the validation loss at every evaluation step, which ASHA
uses to stop poor trials early. A trial that runs to the end also decodes `eval_problems` held-out
problems per split and reports their solve rate. Every trial is an MLflow run nested under the
sweep's parent run (trials ASHA stopped are marked KILLED); the best trial's settings are written
as a complete pipeline config, `best-config.yaml`, that `metacot run --config` reproduces.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from metacot_core.config import ConfigError, OutputDir, build_config
from metacot_core.pipeline.config import ResolvedPipeline, load_pipeline, route_overrides, trial_overrides

MLFLOW_PARENT = "mlflow.parentRunId"


# ------------------------------------------------------------------------------------- the sweep block


class SweepParam(BaseModel):
    """One dimension of a search space, addressed by a dotted key into the pipeline (`sft.train.lr`)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["choice", "grid", "uniform", "loguniform", "randint"] = Field(
        ..., description="choice/grid: from `values`; uniform/loguniform/randint: between low and high")
    values: list[Any] | None = Field(None, description="the options of choice and grid")
    low: float | None = Field(None, description="lower bound of uniform, loguniform, randint")
    high: float | None = Field(None, description="upper bound of uniform, loguniform, randint")

    @model_validator(mode="after")
    def _complete(self) -> SweepParam:
        if self.kind in ("choice", "grid"):
            if not self.values:
                raise ValueError(f"{self.kind} needs a non-empty `values` list")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.kind} needs low < high")
        elif self.kind == "loguniform" and self.low <= 0:
            raise ValueError("loguniform needs low > 0")
        return self


class SweepSettings(BaseModel):
    """A Ray Tune sweep over the pipeline's settings with ASHA early stopping."""

    model_config = ConfigDict(extra="forbid")

    space: dict[str, SweepParam] = Field(..., description="dotted pipeline key -> distribution")
    num_samples: int = Field(1, ge=1, description="samples of the space (each grid point counts once)")
    metric: Literal["val_loss", "solve_rate"] = Field(
        "val_loss", description="what ranks trials: SFT validation loss (min) or held-out solve rate (max)")
    max_concurrent: int = Field(2, ge=1, description="trials at once")
    cpus_per_trial: float = Field(1.0, gt=0, description="CPUs Ray reserves per trial")
    grace_period: int = Field(1, ge=1, description="ASHA: reports before a trial may be stopped")
    reduction_factor: int = Field(2, ge=2, description="ASHA: keep 1/reduction_factor per rung")
    eval_problems: int = Field(8, ge=0, description="held-out problems judged at a trial's end (0: none)")
    seed: int = Field(0, description="search-space sampling seed")
    output_dir: OutputDir = Field("runs/sweeps", description="Ray Tune results and best-config.yaml")

    @model_validator(mode="after")
    def _keys(self) -> SweepSettings:
        if not self.space:
            raise ValueError("space: give at least one parameter to sweep")
        for key in self.space:
            if key.split(".")[0] not in ("generate", "sft"):
                raise ValueError(f"space.{key}: sweep keys must start with generate. or sft.")
        if self.metric == "solve_rate" and self.eval_problems == 0:
            raise ValueError("eval_problems: metric solve_rate needs eval_problems > 0")
        return self

    @property
    def mode(self) -> str:
        return "min" if self.metric == "val_loss" else "max"


def sweep_settings(pipe: ResolvedPipeline, source: str = "config") -> SweepSettings:
    """The pipeline config's `sweep:` block, checked; ConfigError in one line naming the field."""
    if pipe.config.sweep is None:
        raise ConfigError(f"{source}: no `sweep:` block (search space) in this config")
    return build_config(SweepSettings, pipe.config.sweep)


# ------------------------------------------------------------------------------------------ search space


def tune_space(space: dict[str, SweepParam]) -> dict[str, Any]:
    """The YAML distributions as Ray Tune sample objects, keyed by the dotted pipeline key."""
    from ray import tune

    out: dict[str, Any] = {}
    for key, p in space.items():
        if p.kind == "grid":
            out[key] = tune.grid_search(p.values)
        elif p.kind == "choice":
            out[key] = tune.choice(p.values)
        elif p.kind == "uniform":
            out[key] = tune.uniform(p.low, p.high)
        elif p.kind == "loguniform":
            out[key] = tune.loguniform(p.low, p.high)
        else:
            out[key] = tune.randint(int(p.low), int(p.high) + 1)  # inclusive of high, like the YAML says
    return out


# ------------------------------------------------------------------------------------------------ trial


@contextmanager
def _locked(path: Path):
    """An exclusive lock file: concurrent trials needing the same dataset make it once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_dataset(pipe: ResolvedPipeline) -> dict[str, Any]:
    """The trial's dataset: the stage loop's generate stage in this process (the trial holds its own
    CPUs), reused when a card made by this config exists; trials needing the same one wait here."""
    from metacot_core.pipeline.loop import run_pipeline
    from metacot_core.pipeline.tracker import NullTracker

    with _locked(Path(f"{pipe.generate.output_dir}.lock")):
        return run_pipeline(pipe, NullTracker(), stop_after="generate")["generate"]


def held_out_solve_rate(pipe: ResolvedPipeline, checkpoint: str, n_problems: int) -> dict[str, float]:
    """Greedy decoding on the first `n_problems` of each held-out split, judged by the format's replay."""
    from metacot_core.evaluation.generate import load_checkpoint
    from metacot_core.evaluation.metrics import flat_metrics
    from metacot_core.evaluation.runner import evaluate_items, load_items, summarize

    cfg = pipe.evaluate.model_copy(update={
        "checkpoint": checkpoint, "max_problems": n_problems, "progress": False,
        "teacher": pipe.evaluate.teacher.model_copy(update={"enabled": False}), "alignment": False,
        "generation": pipe.evaluate.generation.model_copy(update={"device": "cpu"})})
    model, tokenizer = load_checkpoint(cfg.checkpoint, "cpu")
    items = load_items(cfg.dataset, cfg.splits, cfg.max_problems, cfg.format)
    summary = summarize(evaluate_items(model, tokenizer, items, cfg), cfg)
    rates = [s["model"]["solve_rate"] for s in summary["splits"].values() if "solve_rate" in s["model"]]
    metrics = {k: v for k, v in flat_metrics(summary["splits"]).items() if ".model." in k}
    metrics["solve_rate"] = sum(rates) / len(rates) if rates else 0.0
    return metrics


def run_trial(config: dict[str, Any], setup: dict[str, Any]) -> None:
    """One Tune trial: dataset, in-process SFT reporting val_loss, then the held-out solve rate."""
    import torch
    from ray import tune

    from metacot_core.pipeline.stages import SftStepLogger, absolute_paths
    from metacot_core.training import sft
    from tasks.tracking import MlflowTracker

    os.chdir(setup["cwd"])  # Tune starts trials in their own folder; the config's paths are relative
    torch.set_num_threads(max(1, int(setup["cpus_per_trial"])))
    overrides = [*setup["overrides"], *trial_overrides(config), "sft.ray.enabled=false"]
    pipe = load_pipeline(setup["config_path"], overrides)
    trial = tune.get_context().get_trial_name()
    tracker = MlflowTracker(setup["experiment"], tracking_uri=setup["tracking_uri"])
    tags = {MLFLOW_PARENT: setup["parent_run_id"], "stage": "sweep-trial", "config_hash": pipe.key}
    hashes = {f"hash.{k}": v for k, v in pipe.hashes.items()}
    with tracker.run(f"trial-{trial}", tags=tags, params=_params({**config, **hashes})):
        card = ensure_dataset(pipe)
        tracker.set_tags({"dataset.content_hash": card["content_hash"]})
        # Each trial trains in its own folder, fresh: a trial is one sample, not a resumable run.
        trial_dir = Path(setup["storage"]) / "trials" / trial
        cfg = pipe.sft.model_copy(update={"output_dir": str(trial_dir / "sft"), "resume": "never"})
        cfg, _ = sft.prepare_run(absolute_paths(cfg))
        logger = SftStepLogger(tracker.step_logger())

        def on_metrics(step: int, metrics: dict[str, float]) -> None:
            logger(step, metrics)
            if "val_loss" in metrics:
                tune.report({"val_loss": float(metrics["val_loss"]), "loss": float(metrics["loss"]),
                             "step": step})

        summary = sft.train(cfg, on_metrics=on_metrics, progress=False)
        logger.flush()
        final: dict[str, float] = {"val_loss": _num(summary.get("val_loss")),
                                   "loss": _num(summary.get("loss")), "step": float(summary["final_step"])}
        if setup["eval_problems"]:
            final.update(held_out_solve_rate(pipe, summary["final_dir"], setup["eval_problems"]))
        tracker.log_metrics(_metrics({f"final_{k}" if k in ("val_loss", "loss") else k: v
                                      for k, v in final.items()}))
    tune.report({**final, "done": True})


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else float("nan")


def _params(values: dict[str, Any]) -> dict[str, str]:
    """Sampled values as JSON (`[1, 2]`, `0.001`), so a param reads back as the YAML value."""
    return {k: json.dumps(v) if not isinstance(v, str) else v for k, v in sorted(values.items())}


def _metrics(values: dict[str, float]) -> dict[str, float]:
    return {k.replace("@", "_at_"): float(v) for k, v in values.items()
            if isinstance(v, int | float) and math.isfinite(v)}


# ------------------------------------------------------------------------------------------------ driver


def best_trial(results: Any, settings: SweepSettings) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(sampled params, last metrics) of the best trial that reported the metric (ASHA-stopped trials
    still count on val_loss, with the loss they had when stopped)."""
    scored = []
    for result in results:
        metrics = result.metrics or {}
        value = metrics.get(settings.metric)
        if isinstance(value, int | float) and math.isfinite(value):
            scored.append((value, result.config, metrics))
    if not scored:
        return None
    pick = min if settings.mode == "min" else max
    value, params, metrics = pick(scored, key=lambda t: t[0])
    return params, metrics


def write_best_config(pipe: ResolvedPipeline, params: dict[str, Any], path: Path) -> Path:
    """A complete pipeline config: the base one with the best trial's overrides added to its stages."""
    data = pipe.config.model_dump(mode="json", exclude={"sweep"})
    _, per_stage = route_overrides(trial_overrides(params))
    for stage, extra in per_stage.items():
        data[stage]["overrides"] = [*data[stage]["overrides"], *extra]
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Best trial of the sweep {pipe.config.name}: {json.dumps(params)}\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return path


def run_sweep(config_path: str, overrides: list[str] | None = None, mlflow_fallback: bool = False,
              verbose: int = 1) -> dict[str, Any]:
    """Run the sweep of `config_path`; returns the best params, their metrics and the best-config path."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from metacot_core.pipeline.loop import close_stale_children
    from tasks.ray_runtime import ensure_ray
    from tasks.tracking import MlflowTracker, check_tracking

    pipe = load_pipeline(config_path, overrides or [])
    settings = sweep_settings(pipe, config_path)
    uri = check_tracking(mlflow_fallback)
    tracker = MlflowTracker(pipe.config.experiment)
    storage = (Path(settings.output_dir) / pipe.config.name).resolve()
    started = ensure_ray(max(1, math.ceil(settings.max_concurrent * settings.cpus_per_trial)))
    try:
        with tracker.run(f"sweep-{pipe.config.name}", tags={"stage": "sweep"}) as parent_id:
            tracker.log_dict(settings.model_dump(mode="json"), "sweep.json")
            setup = {"config_path": str(Path(config_path).resolve()), "overrides": list(overrides or []),
                     "tracking_uri": uri, "experiment": pipe.config.experiment, "parent_run_id": parent_id,
                     "cpus_per_trial": settings.cpus_per_trial, "eval_problems": settings.eval_problems,
                     "storage": str(storage), "cwd": os.getcwd()}
            scheduler = ASHAScheduler(metric="val_loss", mode="min", time_attr="training_iteration",
                                      grace_period=settings.grace_period,
                                      reduction_factor=settings.reduction_factor)
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(run_trial, setup=setup),
                                    {"cpu": settings.cpus_per_trial}),
                param_space=tune_space(settings.space),
                tune_config=tune.TuneConfig(num_samples=settings.num_samples, scheduler=scheduler,
                                            max_concurrent_trials=settings.max_concurrent,
                                            search_alg=BasicVariantGenerator(random_state=settings.seed)),
                run_config=tune.RunConfig(name="tune", storage_path=str(storage), verbose=verbose),
            )
            results = tuner.fit()
            unfinished = close_stale_children(tracker, parent_id)  # stopped by ASHA, or failed
            best = best_trial(results, settings)
            if best is None:
                raise RuntimeError(f"no trial reported {settings.metric}; see {storage / 'tune'}")
            params, metrics = best
            path = write_best_config(pipe, params, storage / "best-config.yaml")
            tracker.log_params({f"best.{k}": v for k, v in params.items()})
            tracker.log_metrics({f"best.{k}": float(v) for k, v in metrics.items()
                                 if k in ("val_loss", "solve_rate") and isinstance(v, int | float)
                                 and math.isfinite(v)})
            tracker.log_artifact(path)
            errors = [str(r.error) for r in results if r.error is not None]
    finally:
        if started:
            import ray

            ray.shutdown()
    return {"best_params": params, "best_metrics": {k: v for k, v in metrics.items()
                                                    if k in ("val_loss", "solve_rate", "loss", "step")},
            "best_config": str(path), "trials": len(results), "unfinished_trials": len(unfinished),
            "errors": errors, "mlflow_run_id": parent_id, "storage": str(storage)}
