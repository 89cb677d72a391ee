"""RL rollouts in Ray actors, so that sampling and learning can use different workers.

Each `RolloutWorker` actor holds a copy of the policy and the tokenizer and samples with the same core
function as the learner (metacot_core.rl.common.rollout, i.e. the evaluator's generator), so a
completion from an actor is the one the learner would have drawn. `RolloutPool` is a
metacot_core.rl.common.Sampler: it splits the prompts of a rollout into contiguous chunks, one per
actor, and concatenates their completions in prompt-major order; after every update the learner calls
`sync(state_dict)`, which puts one CPU copy of the weights in the object store that every actor loads
before its next sample. Local Ray by default; with RAY_ADDRESS set the actors are placed on the
cluster's nodes (with `rollout.gpus_per_worker` on GPU nodes).

    from tasks.rl_actors import rollout_pool
    with rollout_pool(cfg.rollout, model, tokenizer) as sampler:
        run(cfg, prepared=prepared, sampler=sampler)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ray
import torch

from metacot_core.evaluation.generate import Completion, default_stop_strings, resolve_device
from metacot_core.rl.common import rollout, shard_seed, split_evenly
from metacot_core.rl.config import RolloutConfig, SamplingConfig
from tasks.ray_runtime import ensure_ray as start_or_join_ray


def cpu_state(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights as CPU tensors detached from autograd: what the object store can ship to any node."""
    return {k: v.detach().to("cpu") for k, v in state_dict.items()}


@ray.remote
class RolloutWorker:
    """One copy of the policy; samples rollouts with the core generator and loads synced weights."""

    def __init__(self, model_config: Any, tokenizer: Any, state: dict[str, torch.Tensor],
                 threads: int) -> None:
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        # the learner's attention implementation, so both compute the same logits
        attn = getattr(model_config, "_attn_implementation", None)
        self.model = AutoModelForCausalLM.from_config(model_config, attn_implementation=attn,
                                                      dtype=torch.float32)
        self.model.load_state_dict(state)
        self.model.to(resolve_device("auto"))  # a GPU only when Ray gave this actor one
        self.model.eval()
        self.tokenizer = tokenizer
        self.version = 0

    def sample(self, prompts: Sequence[str], n: int, sampling: SamplingConfig, format_name: str, seed: int,
               temperature: float | None) -> list[Completion]:
        return rollout(self.model, self.tokenizer, prompts, n, sampling, format_name, seed, temperature)

    def load(self, state: dict[str, torch.Tensor]) -> int:
        """Take the learner's new weights; returns how many syncs this actor has received."""
        self.model.load_state_dict(state)
        self.model.eval()
        self.version += 1
        return self.version

    def device(self) -> str:
        return str(next(self.model.parameters()).device)


def _with_format_stops(sampling: SamplingConfig, format_name: str) -> SamplingConfig:
    """The sampling settings with the format's stop strings spelled out.

    An actor is a fresh process: a trace format registered at run time in the learner (a plugin) is
    unknown there, so the stops are resolved here, where the format is registered.
    """
    if sampling.stop:
        return sampling
    return sampling.model_copy(update={"stop": default_stop_strings(format_name)})


class RolloutPool:
    """A Sampler over `workers` RolloutWorker actors built from the learner's model and tokenizer."""

    def __init__(self, cfg: RolloutConfig, model: Any, tokenizer: Any) -> None:
        if cfg.workers < 1:
            raise ValueError("rollout.workers: a rollout pool needs at least one worker")
        threads = cfg.torch_threads or max(1, math.ceil(cfg.cpus_per_worker))
        state = ray.put(cpu_state(model.state_dict()))
        options = {"num_cpus": cfg.cpus_per_worker, "num_gpus": cfg.gpus_per_worker}
        self.workers = [RolloutWorker.options(**options).remote(model.config, tokenizer, state, threads)
                        for _ in range(cfg.workers)]
        self.syncs = 0
        try:  # fail here, not at the first rollout, when an actor cannot start
            self.devices: list[str] = ray.get([w.device.remote() for w in self.workers])
        except Exception:
            self.close()
            raise

    def sample(self, prompts: Sequence[str], n: int, sampling: SamplingConfig, format_name: str,
               seed: int, temperature: float | None = None) -> list[Completion]:
        """n completions per prompt, prompt-major, each actor sampling one contiguous chunk of prompts."""
        sampling = _with_format_stops(sampling, format_name)
        chunks = split_evenly(len(prompts), len(self.workers))
        futures = [w.sample.remote(list(prompts[a:b]), n, sampling, format_name, shard_seed(seed, i),
                                   temperature)
                   for i, (w, (a, b)) in enumerate(zip(self.workers, chunks, strict=False))]
        out: list[Completion] = []
        for (start, _), part in zip(chunks, ray.get(futures), strict=True):
            out.extend(dataclasses.replace(c, prompt_index=c.prompt_index + start) for c in part)
        return out

    def sync(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Every actor loads the learner's weights (one object-store copy); returns when all have."""
        ref = ray.put(cpu_state(state_dict))
        versions = ray.get([w.load.remote(ref) for w in self.workers])
        self.syncs += 1
        if set(versions) != {self.syncs}:
            raise RuntimeError(f"rollout actors out of step: synced {versions}, expected {self.syncs}")

    def close(self) -> None:
        for w in self.workers:
            ray.kill(w)
        self.workers = []


def ensure_ray(cfg: RolloutConfig) -> bool:
    """Join the cluster at RAY_ADDRESS, or start local Ray with room for the actors.

    Returns True when this call started Ray, so the caller shuts it down again.
    """
    need = math.ceil(cfg.workers * cfg.cpus_per_worker)
    return start_or_join_ray(max(os.cpu_count() or 1, need), object_store_bytes=None)  # ships weights


@contextmanager
def rollout_pool(cfg: RolloutConfig, model: Any, tokenizer: Any) -> Iterator[RolloutPool]:
    """A RolloutPool holding `model`'s current weights; its actors (and Ray, if started here) end on exit."""
    started = ensure_ray(cfg)
    pool = None
    try:
        pool = RolloutPool(cfg, model, tokenizer)
        yield pool
    finally:
        if pool is not None:
            pool.close()
        if started:
            ray.shutdown()
