"""One RL run from a config: load the SFT model (or the latest RL checkpoint), run the method, save.

    from metacot_core.config import load_config
    from metacot_core.rl.config import RLConfig
    from metacot_core.rl.runner import run
    summary = run(load_config(RLConfig, "configs/countdown/rl-grpo-cpu.yaml"), log=print_metrics)

No tracker here: metrics leave through the `log(metrics, step)` callback (tasks/rl.py hands them to
MLflow). A run whose output_dir holds a checkpoint of the same method continues after it: the
weights, optimizer state and RNG come back, the GRPO problem order and the STaR round seeds are
functions of (seed, step), and the reference model is always the SFT checkpoint, so a resumed run
takes the same steps as an uninterrupted one.

Rollouts are sampled in this process unless the caller passes a `Sampler` built from the prepared
model (tasks/rl.py does, with a pool of Ray actors, when rollout.workers > 0).

The method's loop is the `trainer` its config class names (STaR: rl/star.py `run_method`, GRPO:
rl/grpo.py `run_method`), looked up through the RL method registry, never by an if on the name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metacot_core.rl.common import (
    RLProblem,
    Sampler,
    dataset_splits,
    evaluate_sets,
    find_resume,
    load_policy,
    load_problems,
    save_rl_checkpoint,
)
from metacot_core.rl.config import RLConfig

LogFn = Callable[[dict[str, float], int], None]
SaveFn = Callable[[Any, Any, int], None]


@dataclass
class RLRun:
    """Everything a run needs, built from the config (and the checkpoint it resumes from)."""

    cfg: RLConfig
    model: Any
    tokenizer: Any
    train_problems: list[RLProblem]
    eval_sets: dict[str, list[RLProblem]]
    start: int = 0
    resumed_from: str | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.cfg.method_config.total_steps()


def eval_splits(cfg: RLConfig) -> list[str]:
    """The configured held-out splits, or every split of the dataset except the training one."""
    if cfg.eval.splits is not None:
        return list(cfg.eval.splits)
    return [s for s in dataset_splits(cfg.dataset) if s != cfg.train_split]


def prepare(cfg: RLConfig) -> RLRun:
    """Problems, eval sets and the starting model (latest checkpoint of this output_dir, else the SFT one)."""
    if not cfg.dataset:
        raise ValueError("dataset: set it to the trace dataset folder RL draws its problems from")
    path, state = find_resume(cfg)
    model, tokenizer = load_policy(path if path is not None else cfg.init_checkpoint, cfg.device)
    train = load_problems(cfg.dataset, cfg.train_split, cfg.max_train_problems, cfg.format)
    evals = {s: load_problems(cfg.dataset, s, cfg.eval.n_problems, cfg.format) for s in eval_splits(cfg)}
    if path is None:
        return RLRun(cfg, model, tokenizer, train, evals)
    from metacot_core.training.checkpoint import set_rng_state

    set_rng_state(state["rng"])
    return RLRun(cfg, model, tokenizer, train, evals, start=int(state["step"]), resumed_from=str(path),
                 state=state)


def run(cfg: RLConfig, log: LogFn | None = None, prepared: RLRun | None = None,
        sampler: Sampler | None = None) -> dict[str, Any]:
    """Run (or continue) the configured method; returns a summary with the last checkpoint's path.

    `sampler` draws the rollouts (default: the model in this process); it must hold the prepared
    model's weights when the run starts, and the method sends it every update.
    """
    r = prepared or prepare(cfg)
    log = log or (lambda metrics, step: None)
    summary: dict[str, Any] = {"method": cfg.method, "start_step": r.start, "final_step": r.total,
                               "resumed_from": r.resumed_from, "train_problems": len(r.train_problems),
                               "eval_problems": {s: len(p) for s, p in r.eval_sets.items()}}
    if r.start == 0 and cfg.eval.at_start:
        initial = evaluate_sets(r.model, r.tokenizer, r.eval_sets, cfg)
        log(initial, 0)
        summary["initial"] = initial
    last: dict[str, float] = {}

    def logged(metrics: dict[str, float], step: int) -> None:
        last.clear()
        last.update(metrics)
        log(metrics, step)

    saved: list[str] = []

    def save(model: Any, optimizer: Any, step: int) -> None:
        saved.append(str(save_rl_checkpoint(cfg, step, model, r.tokenizer, optimizer,
                                            keep=cfg.keep_checkpoints)))

    if r.start < r.total:
        trainer(cfg)(r, logged, save, sampler)
    summary["final"] = last
    summary["checkpoint"] = saved[-1] if saved else r.resumed_from
    return summary


def trainer(cfg: RLConfig) -> Callable[[RLRun, LogFn, SaveFn, Sampler | None], None]:
    """The training loop of the configured method (imported now: it pulls in torch)."""
    module, _, name = type(cfg.method_config).trainer.partition(":")
    return getattr(importlib.import_module(module), name)
