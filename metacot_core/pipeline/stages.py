"""The four stages as tracked calls: the one place that says what each stage reports.

    card = run_generate(cfg, tracker)                  # in this process
    card = run_generate(cfg, tracker, make=ray_generation)   # tasks/: the same stage, shards on Ray

Every way of running a stage (a Prefect subflow, `--no-flow`, the core runner, a Tune trial, a sweep
trial) calls these with its own tracker and, where the work itself may run elsewhere, its own way of
doing it (`make` for generation, `train` for SFT, `sampler` for RL rollouts); the defaults run in
this process with no Ray. So the run names, tags, params, metrics and artifacts of a stage are the same
whichever path ran it. Each stage holds its output folder's lock while it writes (lock.py).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from metacot_core.data.card import CARD_NAME
from metacot_core.data.config import GenerateConfig
from metacot_core.evaluation.config import EvalConfig
from metacot_core.pipeline.lock import folder_lock
from metacot_core.pipeline.tracker import StepLogger, Tracker
from metacot_core.rl.config import RLConfig
from metacot_core.training.config import SFTConfig

GENERATE_RUN = "generate-traces"
EVALUATE_RUN = "evaluate"
SCALAR = (int, float)
MakeDataset = Callable[[GenerateConfig], dict[str, Any]]
TrainFn = Callable[[SFTConfig, StepLogger], dict[str, Any]]
SamplerFor = Callable[[Any], AbstractContextManager[Any]]


def with_run_id(summary: dict[str, Any], tracker: Tracker, run_id: str) -> dict[str, Any]:
    """The stage's run id in its summary (`mlflow_run_id` too when MLflow holds it, which the
    checkpoint metadata and the results table read)."""
    summary["run_id"] = run_id
    if tracker.kind == "mlflow":
        summary["mlflow_run_id"] = run_id
    return summary


# ------------------------------------------------------------------------------------------- generate


def generate_in_process(cfg: GenerateConfig) -> dict[str, Any]:
    """Every shard in this process, then the card."""
    from metacot_core.data.generate import checked_plan, finish_dataset, write_shard

    start = time.perf_counter()
    shards = [write_shard(cfg, spec) for spec in checked_plan(cfg)]
    return finish_dataset(cfg, shards, time.perf_counter() - start, workers=1)


def card_metrics(card: Mapping[str, Any]) -> dict[str, float]:
    """The card's headline numbers as flat metrics."""
    metrics: dict[str, float] = {"rows": card["n_rows"], "solved_rate": card["solved_rate"]}
    for split, info in card["splits"].items():
        metrics[f"rows.{split}"] = info["rows"]
        metrics[f"solved_rate.{split}"] = info["solved_rate"]
    for key in ("trace_tokens", "trace_chars", "n_expanded"):
        for stat, value in card[key].items():
            metrics[f"{key}.{stat}"] = value
    gen = card.get("generation", {})
    for key in ("traces_per_s", "seconds", "shards_resumed"):
        if key in gen:
            metrics[key] = gen[key]
    return metrics


def log_dataset(tracker: Tracker, card: Mapping[str, Any], output_dir: str | Path) -> None:
    """The card's figures, the card itself, and the dataset folder as the run's input (digest: the
    content hash, so runs on the same data show the same dataset)."""
    root = Path(output_dir).resolve()
    tracker.log_metrics(card_metrics(card))
    tracker.log_artifact(root / CARD_NAME)
    tracker.set_tags({"dataset.content_hash": card["content_hash"]})
    tracker.log_dataset(root, root.name, card["content_hash"][:36], "generated")


def run_generate(cfg: GenerateConfig, tracker: Tracker, make: MakeDataset | None = None) -> dict[str, Any]:
    """Generate the dataset (or finish a half-made one) and report it; returns the card."""
    tags = {"stage": GENERATE_RUN, "domain": cfg.domain, "config_hash": cfg.content_hash()}
    params = cfg.model_dump(mode="json")
    with folder_lock(cfg.output_dir), tracker.run(GENERATE_RUN, tags=tags, params=params):
        card = (make or generate_in_process)(cfg)
        log_dataset(tracker, card, cfg.output_dir)
    return card  # the dataset's own card, as card.json holds it (the run is found by its tags)


# ------------------------------------------------------------------------------------------------ SFT


def absolute_paths(cfg: SFTConfig) -> SFTConfig:
    """Paths made absolute, since training workers may run in another working directory."""

    def absolute(p: str | None) -> str | None:
        return None if p is None else str(Path(p).expanduser().resolve())

    resume = cfg.resume if cfg.resume in ("auto", "never") else absolute(cfg.resume)
    return cfg.model_copy(update={
        "data": cfg.data.model_copy(update={"path": absolute(cfg.data.path)}),
        "tokenizer": cfg.tokenizer.model_copy(update={"path": absolute(cfg.tokenizer.path)}),
        "model": cfg.model.model_copy(update={"init_from": absolute(cfg.model.init_from)}),
        "output_dir": absolute(cfg.output_dir),
        "resume": resume,
    })


SFT_STEP_METRICS = ("loss", "lr", "grad_norm", "tokens_per_sec", "val_loss", "epoch")


class SftStepLogger:
    """The step metrics SFT reports (of everything its loop passes on), into the stage's run;
    picklable like the logger it wraps, for a training worker in another process."""

    def __init__(self, inner: StepLogger) -> None:
        self.inner = inner

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        self.inner(step, {k: metrics[k] for k in SFT_STEP_METRICS if k in metrics})

    def flush(self) -> None:
        self.inner.flush()


def train_in_process(cfg: SFTConfig, on_metrics: StepLogger) -> dict[str, Any]:
    from metacot_core.training import sft

    return sft.train(cfg, on_metrics=on_metrics)


def log_sft_inputs(tracker: Tracker, cfg: SFTConfig, data: Any) -> None:
    """The dataset as a tracked input (digest: the card's content hash when the folder has a card, so
    generate and SFT runs show the same dataset; else the hash of the rows trained on) and its figures."""
    from metacot_core.training import sft

    root = Path(cfg.data.path)
    card = root / CARD_NAME
    content_hash = json.loads(card.read_text()).get("content_hash") if card.is_file() else None
    tracker.log_dataset(root, root.name, (content_hash or data.train_hash)[:36], "training")
    stats = {f"data.{split}.{k}": v for split, s in data.overflow.items() for k, v in s.items()}
    stats["data.padding_waste"] = sft.padding_waste(data.train)
    tracker.log_metrics(stats, step=0)
    tracker.log_params({"data.train_rows_hash": data.train_hash, "data.train_rows": data.train_rows,
                        "tokenizer.vocab_size": len(data.tokenizer), "train.seq_len_resolved": data.seq_len})
    if content_hash:
        tracker.set_tags({"dataset.content_hash": content_hash})


def run_sft(cfg: SFTConfig, tracker: Tracker, train: TrainFn | None = None) -> dict[str, Any]:
    """Check the inputs, train (resuming a checkpoint), report; returns the summary (losses, paths)."""
    from metacot_core.training import sft

    cfg = absolute_paths(cfg)
    with folder_lock(cfg.output_dir):
        cfg, data = sft.prepare_run(cfg)  # fails on bad inputs before a run is opened
        with tracker.run(cfg.tracking.run_name, tags={"stage": "sft"},
                         params=cfg.model_dump(mode="json")) as run_id:
            log_sft_inputs(tracker, cfg, data)
            logger = SftStepLogger(tracker.step_logger())
            summary = (train or train_in_process)(cfg, logger)
            logger.flush()
            summary.setdefault("final_dir", str(Path(cfg.output_dir) / "final"))
            tracker.log_metrics({f"final_{k}": float(summary[k]) for k in ("loss", "val_loss")
                                 if isinstance(summary.get(k), SCALAR)})
            if cfg.tracking.log_model:
                tracker.log_model(summary["final_dir"])
                tracker.log_artifact(Path(summary["final_dir"]) / "sft_config.json")
    return with_run_id(summary, tracker, run_id)


# ------------------------------------------------------------------------------------------------- RL


def rl_run_name(cfg: RLConfig) -> str:
    return f"rl-{cfg.method}"


def finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}


def run_rl(cfg: RLConfig, tracker: Tracker, sampler: SamplerFor | None = None) -> dict[str, Any]:
    """Run (or resume) the configured RL method, every step's metrics reported; returns the summary.
    `sampler(prepared)` is a context giving the rollout sampler (None: the learner's own model)."""
    from metacot_core.config import config_hash
    from metacot_core.rl.runner import prepare, run

    with folder_lock(cfg.output_dir):
        prepared = prepare(cfg)  # fails on bad paths before a run is opened
        tags = {"stage": rl_run_name(cfg), "method": cfg.method, "config_hash": config_hash(cfg),
                "init_checkpoint": cfg.init_checkpoint}
        if prepared.resumed_from:
            tags["resumed_from"] = prepared.resumed_from
        context = sampler(prepared) if sampler is not None else nullcontext(None)
        with tracker.run(rl_run_name(cfg), tags=tags, params=cfg.model_dump(mode="json")) as run_id, \
                context as rollouts:
            summary = run(cfg, log=lambda m, step: tracker.log_metrics(finite(m), step), prepared=prepared,
                          sampler=rollouts)
            if summary.get("checkpoint"):
                tracker.log_artifact(summary["checkpoint"], artifact_path="checkpoint")
            tracker.log_dict({k: str(v) if isinstance(v, Path) else v for k, v in summary.items()},
                             "rl_summary.json")
    return with_run_id(summary, tracker, run_id)


# ------------------------------------------------------------------------------------------- evaluate


def log_evaluation(tracker: Tracker, summary: Mapping[str, Any], paths: Mapping[str, Any]) -> None:
    """Metrics (flattened per split) and the table, summary and plots as artifacts of the open run."""
    from metacot_core.evaluation.metrics import flat_metrics

    metrics = flat_metrics(summary.get("splits", {}))
    if "seconds" in summary:
        metrics["seconds"] = float(summary["seconds"])
    tracker.log_metrics(metrics)
    tracker.log_artifact(paths["table"], artifact_path="eval")
    tracker.log_artifact(paths["summary"], artifact_path="eval")
    if paths.get("teacher"):
        tracker.log_artifact(paths["teacher"], artifact_path="eval")
    for plot in paths.get("plots", []):
        tracker.log_artifact(plot, artifact_path="eval/plots")


def run_evaluate(cfg: EvalConfig, tracker: Tracker, tags: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Decode the held-out problems, judge every step, compare with the teacher, report."""
    from metacot_core.evaluation.runner import check_inputs, run_evaluation

    check_inputs(cfg)
    run_tags = {"stage": EVALUATE_RUN, "checkpoint": str(cfg.checkpoint), "dataset": str(cfg.dataset),
                **(tags or {})}
    with folder_lock(cfg.output_dir), tracker.run(EVALUATE_RUN, tags=run_tags,
                                                 params=cfg.model_dump(mode="json")) as run_id:
        _, summary, paths = run_evaluation(cfg)
        log_evaluation(tracker, summary, paths)
    return with_run_id(summary, tracker, run_id)
