"""Rollouts from Ray actors (tasks/rl_actors.py) are the learner's own rollouts.

On local Ray with 2 CPUs and a 1-layer GPT-2: greedy completions from a pool of 2 actors equal the
in-process ones prompt for prompt; after a weight sync with a changed model the actors decode what the
changed model decodes in-process; and a whole STaR run with `rollout.workers=2` logs the same metrics
and ends with the same weights as the run that samples in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from metacot_core.rl.common import InProcessSampler, Sampler, rollout, shard_seed, split_evenly
from metacot_core.rl.config import RolloutConfig, SamplingConfig

pytestmark = pytest.mark.e2e


def test_split_evenly_keeps_order_and_balances() -> None:
    assert split_evenly(5, 2) == [(0, 3), (3, 5)]
    assert split_evenly(2, 4) == [(0, 1), (1, 2)]  # never an empty chunk
    assert split_evenly(6, 3) == [(0, 2), (2, 4), (4, 6)]
    assert split_evenly(0, 2) == []
    assert shard_seed(7, 0) == 7 and shard_seed(7, 1) != shard_seed(8, 0)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    mp = pytest.MonkeyPatch()
    mp.delenv("RAY_ADDRESS", raising=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
    mp.undo()


def _jolted(model: torch.nn.Module, seed: int, std: float = 0.3) -> torch.nn.Module:
    """A copy of `model` with seeded noise on every weight. A freshly initialised model greedily writes
    the same token after any prompt; with the noise its output depends on the prompt and the weights."""
    out = type(model)(model.config)
    g = torch.Generator().manual_seed(seed)
    out.load_state_dict({k: v + std * torch.randn(v.shape, generator=g)
                         for k, v in model.state_dict().items()})
    return out.eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Countdown-3 sos dataset: 5 training problems, 2 held-out."""
    from metacot_core.data.config import GenerateConfig
    from metacot_core.data.generate import plan_shards, write_shard

    out = tmp_path_factory.mktemp("rl-actors") / "data"
    gen = GenerateConfig(domain="countdown",
                         problem={"num_count": 3, "max_number": 30, "target_min": 10, "target_max": 40},
                         search={"preset": "sos", "node_budget": 30}, format="sos",
                         counts={"train": 5, "val_inputs": 2}, seed=1, workers=1, output_dir=str(out))
    for spec in plan_shards(gen):
        write_shard(gen, spec)
    return out


@pytest.fixture(scope="module")
def policy(data: Path) -> tuple[torch.nn.Module, object, list[str]]:
    """A 1-layer GPT-2, its tokenizer, and the 5 training prompts (an odd number: uneven chunks)."""
    from metacot_core.data.reader import iter_rows
    from metacot_core.models import ModelConfig, build_model
    from metacot_core.tokenizer import build_tokenizer

    rows = list(iter_rows(data))
    tok = build_tokenizer(t for r in rows for t in (r["prompt"], r["trace"]))
    model = build_model(ModelConfig(preset="1m", n_layer=1, d_model=32, n_head=2, context=128), len(tok),
                        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, seed=0)
    prompts = list(dict.fromkeys(r["prompt"] for r in rows if r["split"] == "train"))
    assert len(prompts) == 5
    return _jolted(model, seed=1), tok, prompts


GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=12, batch_size=8)


def _greedy(model: torch.nn.Module, tok: object, prompts: list[str]) -> list[tuple[str, int, bool, int]]:
    return [(c.text, c.n_tokens, c.truncated, c.prompt_index)
            for c in rollout(model, tok, prompts, 1, GREEDY, "sos", seed=0)]


def test_actor_rollouts_equal_in_process_and_follow_weight_syncs(ray_local, policy) -> None:
    from tasks.rl_actors import rollout_pool

    model, tok, prompts = policy
    expected = _greedy(model, tok, prompts)
    assert len({text for text, *_ in expected}) > 1  # prompts decode differently: order is checked

    changed = _jolted(model, seed=2)
    expected_changed = _greedy(changed, tok, prompts)
    assert expected_changed != expected  # the sync below has something to show

    with rollout_pool(RolloutConfig(workers=2, cpus_per_worker=1.0), model, tok) as pool:
        assert isinstance(pool, Sampler) and pool.devices == ["cpu", "cpu"]
        got = pool.sample(prompts, 1, GREEDY, "sos", seed=0)
        assert [(c.text, c.n_tokens, c.truncated, c.prompt_index) for c in got] == expected

        pool.sync(changed.state_dict())
        got = pool.sample(prompts, 1, GREEDY, "sos", seed=0)
        assert [(c.text, c.n_tokens, c.truncated, c.prompt_index) for c in got] == expected_changed
    assert isinstance(InProcessSampler(model, tok), Sampler)


class CoinFormat:
    """A judge with signal for an untrained model: a text (prompt + completion) of even length counts as
    solved, with the teacher's solution (the verifier must accept it). Which samples STaR keeps, and so
    the fine-tuned weights, then depends on what the rollouts produced."""

    name = "rl-coin"
    domains = ("countdown",)

    def __init__(self, solutions: dict[str, list[str]]) -> None:
        self.solutions = solutions  # prompt -> the teacher's verified solution

    def prompt(self, problem):
        from metacot_core.registry import get_format

        return get_format("sos").prompt(problem)

    def replay(self, problem, text):
        from metacot_core.traces.base import Verdict

        solution = next((s for prompt, s in self.solutions.items() if text.startswith(prompt)), None)
        solved = solution is not None and len(text) % 2 == 0
        return Verdict(valid=True, solved=solved, solution=solution if solved else None)


def test_star_with_rollout_actors_equals_the_in_process_run(ray_local, policy, data: Path,
                                                            tmp_path: Path) -> None:
    from metacot_core import registry
    from metacot_core.config import build_config
    from metacot_core.data.reader import iter_rows
    from metacot_core.models import load_local_model
    from metacot_core.pipeline.stages import run_rl
    from metacot_core.pipeline.tracker import NullTracker
    from metacot_core.rl.config import RLConfig
    from tasks.rl import sampler_for

    solved = {r["prompt"]: list(r["solution"]) for r in iter_rows(data) if r["solved"]}
    registry.register_format("rl-coin", CoinFormat(solved))
    model, tok, _ = policy
    sft = tmp_path / "sft"
    model.save_pretrained(str(sft))
    tok.save_pretrained(str(sft))

    def star(out: str, *overrides: str) -> dict:
        base = {"method": "star", "init_checkpoint": str(sft), "dataset": str(data), "format": "rl-coin",
                "output_dir": str(tmp_path / out), "device": "cpu", "eval": {"n_problems": 2},
                # greedy (identical in both runs); stops the random model writes, so lengths vary
                "sampling": {"temperature": 0.0, "max_new_tokens": 12, "batch_size": 8,
                             "stop": ["798", "773"]},
                "train": {"batch_size": 4, "max_length": 128, "lr": 1e-2},
                "star": {"iterations": 2, "samples_per_problem": 1, "keep": "all"}}
        return run_rl(build_config(RLConfig, base, list(overrides)), NullTracker(), sampler=sampler_for)

    local = star("local")
    actors = star("actors", "rollout.workers=2")
    assert local["final"]["select/kept"] > 0  # rollouts were kept and trained on
    def reproducible(metrics: dict) -> str:  # time/* are wall-clock seconds and rates
        return json.dumps({k: v for k, v in metrics.items() if not k.startswith("time/")}, sort_keys=True)

    assert reproducible(actors["final"]) == reproducible(local["final"])
    a = load_local_model(actors["checkpoint"]).state_dict()
    b = load_local_model(local["checkpoint"]).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
