"""What STaR and GRPO share: training problems from a trace dataset, rollouts, judging, held-out eval.

Rollouts go through the evaluator's batched sampler (metacot_core.evaluation.generate) and are judged
by its judge, so RL sees exactly what evaluation sees: the same stop strings, the same truncation
rule, the same verifier. Held-out metrics come from metacot_core.evaluation.metrics.model_metrics
(solve rate with a Wilson interval, validity, states explored), computed on fixed problems so that
numbers from different rounds compare.

Where rollouts are sampled is injectable: STaR and GRPO take a `Sampler` (default `InProcessSampler`,
the learner's own model) and call its `sync` after each update, so tasks/rl_actors.py can sample in
Ray actors that hold a copy of the policy without this module knowing about Ray.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from metacot_core.evaluation.config import GenerationSettings
from metacot_core.evaluation.generate import Completion, default_stop_strings, generate, resolve_device
from metacot_core.evaluation.metrics import model_metrics
from metacot_core.problems.base import Problem
from metacot_core.registry import get_domain, get_format
from metacot_core.rl.config import RewardConfig, RLConfig, SamplingConfig
from metacot_core.rl.rewards import Scored, score


@dataclass(frozen=True, slots=True)
class RLProblem:
    """One problem of a split: the rules object, the prompt the model sees, the teacher's trace."""

    problem_id: str
    problem: Problem
    prompt: str
    teacher_trace: str
    teacher_solved: bool
    format: str


def load_problems(dataset: str | Path, split: str, limit: int | None = None,
                  format_name: str | None = None) -> list[RLProblem]:
    """The distinct problems of `split`, in dataset order (first trace of each problem is the teacher's).

    A dataset may hold several traces of one problem (several strategies); RL needs each problem once.
    `format_name` judges rollouts with another registered format than the dataset's (a plugin's).
    """
    from metacot_core.data.reader import iter_rows

    out: list[RLProblem] = []
    seen: set[str] = set()
    columns = ["problem_id", "domain", "instance", "prompt", "trace", "format", "solved"]
    for row in iter_rows(dataset, columns=columns, split=split):
        if row["problem_id"] in seen:
            continue
        seen.add(row["problem_id"])
        problem = get_domain(row["domain"]).from_instance(json.loads(row["instance"]))
        out.append(RLProblem(row["problem_id"], problem, row["prompt"], row["trace"], bool(row["solved"]),
                             format_name or row["format"]))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise ValueError(f"{dataset}: split {split!r} has no problems")
    return out


def format_of(problems: Sequence[RLProblem]) -> tuple[str, Any]:
    """The one trace format of a problem list (its name and the registered format object)."""
    names = sorted({p.format for p in problems})
    if len(names) != 1:
        raise ValueError(f"problems mix trace formats {names}; RL trains one format at a time")
    return names[0], get_format(names[0])


def rollout(model: Any, tokenizer: Any, prompts: Sequence[str], n: int, sampling: SamplingConfig,
            format_name: str, seed: int, temperature: float | None = None,
            progress: bool = False) -> list[Completion]:
    """n sampled completions per prompt (prompt-major order) from the evaluator's sampler.

    `sampling.batch_size` prompts are decoded together with all their n samples (one prefill each).
    """
    temp = sampling.temperature if temperature is None else temperature
    settings = GenerationSettings(
        max_new_tokens=sampling.max_new_tokens, temperature=temp, n_samples=n,
        batch_size=sampling.batch_size * n, stop_strings=sampling.stop or None, seed=seed, device="auto",
        engine=sampling.engine,
    )
    was_training = model.training
    out = generate(model, tokenizer, list(prompts), settings,
                   stop_strings=default_stop_strings(format_name), progress=progress)
    if was_training:
        model.train()
    return out


@runtime_checkable
class Sampler(Protocol):
    """A source of rollouts of the current policy.

    sample: n completions per prompt in prompt-major order, as `rollout` returns them.
    sync: the learner's weights (a state dict) after an update. A sampler holding its own copy of the
    policy must load them before its next `sample`; one that shares the learner's model ignores them.
    """

    def sample(self, prompts: Sequence[str], n: int, sampling: SamplingConfig, format_name: str,
               seed: int, temperature: float | None = None) -> list[Completion]: ...

    def sync(self, state_dict: dict[str, torch.Tensor]) -> None: ...


@dataclass
class InProcessSampler:
    """Rollouts from the learner's own model in this process (the default: no copy, nothing to sync).

    progress: a tqdm bar over the decoded batches of each `sample` call.
    """

    model: Any
    tokenizer: Any
    progress: bool = False

    def sample(self, prompts: Sequence[str], n: int, sampling: SamplingConfig, format_name: str,
               seed: int, temperature: float | None = None) -> list[Completion]:
        return rollout(self.model, self.tokenizer, prompts, n, sampling, format_name, seed, temperature,
                       progress=self.progress)

    def sync(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Nothing to load: this sampler samples from the very model the learner updates."""


def step_bar(enabled: bool, start: int, total: int, desc: str, file: Any = None) -> Any:
    """The tqdm bar of an RL loop (one tick per GRPO step or STaR round), or None when disabled."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True, file=file)


def bar_postfix(bar: Any, metrics: dict[str, float], kept_key: str) -> None:
    """Reward, samples kept and sampled tokens/s of the step just done, on the bar."""
    if bar is None:
        return
    bar.set_postfix(reward=f"{metrics.get('rollout/reward_mean', 0.0):.3f}",
                    kept=f"{metrics.get(kept_key, 0.0):.0f}",
                    tok_s=f"{metrics.get('time/sample_tokens_per_s', 0.0):.0f}", refresh=False)
    bar.update(1)


def split_evenly(n_items: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most `parts` contiguous non-empty chunks, sizes differing by at most 1.

    Contiguous chunks keep the prompt-major order when their completions are concatenated in turn.
    """
    parts = max(1, min(parts, n_items))
    size, extra = divmod(n_items, parts)
    ranges, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        if stop > start:
            ranges.append((start, stop))
        start = stop
    return ranges


def shard_seed(seed: int, shard: int) -> int:
    """Sampling seed of chunk `shard`. Chunk 0 keeps `seed`, so one worker samples what the learner would;
    the others get streams of their own, far from the neighbouring steps' seeds (callers use seed + step).
    """
    return seed + shard * 2**32


def judge_completions(problems: Sequence[RLProblem], completions: Sequence[Completion], fmt: Any,
                      cfg: RewardConfig) -> list[Scored]:
    """Rewards for completions of `problems`, each problem repeated once per sample."""
    n = len(completions) // max(1, len(problems))
    if n * len(problems) != len(completions):
        raise ValueError(f"{len(completions)} completions do not split evenly over {len(problems)} problems")
    expanded = [p for p in problems for _ in range(n)]
    return score([p.problem for p in expanded], [c.text for c in completions], fmt, cfg,
                 n_tokens=[c.n_tokens for c in completions], truncated=[c.truncated for c in completions],
                 prompts=[p.prompt for p in expanded])


def evaluate(model: Any, tokenizer: Any, problems: Sequence[RLProblem], cfg: RLConfig) -> dict[str, float]:
    """Held-out metrics of the current model: solve rate (Wilson 95% CI), validity, states explored."""
    if not problems:
        return {}
    name, fmt = format_of(problems)
    completions = rollout(model, tokenizer, [p.prompt for p in problems], 1, cfg.sampling, name,
                          seed=cfg.seed, temperature=cfg.eval.temperature)
    scored = judge_completions(problems, completions, fmt, cfg.reward)
    records = [
        {"problem_id": p.problem_id, "sample_index": 0, "solved": s.solved, "valid": s.valid,
         "label": "solved" if s.solved else (s.reason or "unknown"), "states_visited": s.states_explored,
         "n_tokens": s.n_tokens, "truncated": c.truncated}
        for p, c, s in zip(problems, completions, scored, strict=True)
    ]
    summary = model_metrics(records)
    return {k.replace("@", "_at_"): float(v) for k, v in summary.items() if isinstance(v, int | float)}


def evaluate_sets(model: Any, tokenizer: Any, eval_sets: dict[str, Sequence[RLProblem]],
                  cfg: RLConfig) -> dict[str, float]:
    """evaluate() on every held-out split, keys prefixed `eval/<split>/`."""
    out: dict[str, float] = {}
    for split, problems in eval_sets.items():
        out.update({f"eval/{split}/{k}": v for k, v in evaluate(model, tokenizer, problems, cfg).items()})
    return out


# ------------------------------------------------------------------------------------- checkpoints

RL_STATE_FILE = "trainer_state.pt"  # same name as SFT's, so training.checkpoint.list_checkpoints finds ours
RL_CONFIG_FILE = "rl_config.json"


def checkpoints_root(cfg: RLConfig) -> Path:
    return Path(cfg.output_dir) / "checkpoints"


def save_rl_checkpoint(cfg: RLConfig, step: int, model: Any, tokenizer: Any,
                       optimizer: torch.optim.Optimizer | None, extra: dict[str, Any] | None = None,
                       keep: int = 2) -> Path:
    """`<output_dir>/checkpoints/step-NNNNNN/`: a loadable model + tokenizer, the RL config, and the
    state to continue (step, optimizer, RNG). Written under a temporary name and renamed when complete,
    so a run killed while saving leaves the previous checkpoint as the latest.
    """
    from metacot_core.training.checkpoint import checkpoint_dir, list_checkpoints, rng_state

    final = checkpoint_dir(checkpoints_root(cfg), step)
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / RL_CONFIG_FILE).write_text(json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True))
    state = {"step": step, "method": cfg.method, "rng": rng_state(), "extra": dict(extra or {}),
             "optimizer": optimizer.state_dict() if optimizer is not None else None}
    torch.save(state, tmp / RL_STATE_FILE)
    if final.exists():  # a rerun of the same step (resume after a crash between save and log)
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(checkpoints_root(cfg))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def find_resume(cfg: RLConfig) -> tuple[Path | None, dict[str, Any] | None]:
    """The latest RL checkpoint of this output_dir and its state, when resuming is on and one exists.

    Refuses a checkpoint written by the other method (a STaR round number is not a GRPO step).
    """
    from metacot_core.training.checkpoint import latest_checkpoint, read_state_file

    if not cfg.resume:
        return None, None
    path = latest_checkpoint(checkpoints_root(cfg))
    if path is None:
        return None, None
    state = read_state_file(path / RL_STATE_FILE)
    if state.get("method") != cfg.method:
        raise ValueError(f"{path}: checkpoint of method {state.get('method')!r}, this run is {cfg.method!r}; "
                         "use another output_dir")
    return path, state


def load_policy(path: str | Path, device: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) from a local checkpoint folder (SFT's or ours), on `device`, never from a hub."""
    from metacot_core.models import load_local_model
    from metacot_core.tokenizer import load_tokenizer

    if not str(path):
        raise ValueError("init_checkpoint: set it to the SFT checkpoint folder RL starts from")
    model = load_local_model(path)
    tokenizer = load_tokenizer(path)
    model.to(resolve_device(device))
    return model, tokenizer


def dataset_splits(dataset: str | Path) -> list[str]:
    """The split names present in a dataset, sorted."""
    from metacot_core.data.reader import iter_batches

    found: set[str] = set()
    for batch in iter_batches(dataset, columns=["split"]):
        found.update(batch.column("split").to_pylist())
    return sorted(found)
