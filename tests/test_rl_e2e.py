"""STaR and GRPO end to end on a tiny GPT-2 and a tiny Countdown-3 dataset: two rounds / steps each,
checkpoints, resume equal to an uninterrupted run, and one GRPO update moving probability the right way.

The "SFT checkpoint" here is an untrained 1-layer model (training it first would cost minutes): the
tests check the plumbing and the update direction, not that RL improves solve rates (bench/rl_vs_sft.py
measures that).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metacot_core.config import build_config
from metacot_core.rl.config import RLConfig

pytestmark = pytest.mark.e2e


class ParityFormat:
    """A test judge with signal for an untrained model: a completion of even length counts as a legal
    (valid, unsolved) trace. With reward.format_weight > 0 the groups get different rewards, so GRPO
    updates the weights; the real sos judge would give every random completion 0."""

    name = "rl-parity"
    domains = ("countdown",)

    def prompt(self, problem):
        from metacot_core.registry import get_format

        return get_format("sos").prompt(problem)

    def replay(self, problem, text):
        from metacot_core.traces.base import Verdict

        return Verdict(valid=len(text) % 2 == 0, solved=False)


@pytest.fixture(autouse=True, scope="module")
def _parity_format():
    from metacot_core import registry

    registry.register_format("rl-parity", ParityFormat())
    yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Countdown-3 sos dataset (8 train, 4 held-out problems) and a saved 1-layer GPT-2 + tokenizer."""
    from metacot_core.data.config import GenerateConfig
    from metacot_core.data.generate import plan_shards, write_shard
    from metacot_core.data.reader import iter_rows
    from metacot_core.models import ModelConfig, build_model
    from metacot_core.tokenizer import build_tokenizer

    root = tmp_path_factory.mktemp("rl")
    data = root / "data"
    gen = GenerateConfig(domain="countdown",
                         problem={"num_count": 3, "max_number": 30, "target_min": 10, "target_max": 40},
                         search={"preset": "sos", "node_budget": 30}, format="sos",
                         counts={"train": 8, "val_inputs": 4}, seed=1, workers=1, output_dir=str(data))
    for spec in plan_shards(gen):
        write_shard(gen, spec)
    rows = list(iter_rows(data))
    tok = build_tokenizer(t for r in rows for t in (r["prompt"], r["trace"]))
    model = build_model(ModelConfig(preset="1m", n_layer=1, d_model=32, n_head=2, context=256), len(tok),
                        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, seed=0)
    sft = root / "sft"
    model.save_pretrained(str(sft))
    tok.save_pretrained(str(sft))
    return {"data": data, "sft": sft, "root": root}


def _cfg(tiny: dict[str, Path], method: str, out: str, *overrides: str) -> RLConfig:
    base = {
        "method": method, "init_checkpoint": str(tiny["sft"]), "dataset": str(tiny["data"]),
        "output_dir": str(tiny["root"] / out), "device": "cpu", "progress": False,
        "sampling": {"max_new_tokens": 24, "batch_size": 8},
        "train": {"batch_size": 4, "max_length": 192, "lr": 1e-3},
        "eval": {"n_problems": 2, "every": 1},
        "star": {"iterations": 2, "samples_per_problem": 2, "keep": "shortest"},
        "grpo": {"steps": 2, "prompts_per_step": 2, "group_size": 2, "beta": 0.04, "checkpoint_every": 1},
    }
    return build_config(RLConfig, base, overrides)


def _weights(path: str | Path) -> dict[str, torch.Tensor]:
    from metacot_core.models import load_local_model

    return load_local_model(path).state_dict()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_star_two_rounds_then_resume_equals_uninterrupted(tiny: dict[str, Path]) -> None:
    from metacot_core.rl.runner import run

    logged: list[tuple[int, dict[str, float]]] = []
    full = run(_cfg(tiny, "star", "star-full"), log=lambda m, s: logged.append((s, m)))
    assert [s for s, _ in logged] == [0, 1, 2]  # baseline eval, then one entry per round
    assert "eval/val_inputs/solve_rate" in logged[0][1]
    round1 = logged[1][1]
    for key in ("rollout/reward_mean", "rollout/solve_rate", "select/kept", "guard/collapse_empty_rate",
                "eval/val_inputs/solve_rate", "eval/val_inputs/states_explored_mean"):
        assert key in round1, key
    # an untrained model solves nothing, so keep=shortest trains on the solved teacher traces
    assert round1["select/kept_from_teacher"] > 0 and round1["train/steps"] >= 1
    assert not _same(_weights(full["checkpoint"]), _weights(tiny["sft"]))

    first = run(_cfg(tiny, "star", "star-split", "star.iterations=1"))
    assert first["final_step"] == 1
    resumed = run(_cfg(tiny, "star", "star-split"))
    assert resumed["start_step"] == 1 and resumed["resumed_from"] == first["checkpoint"]
    assert _same(_weights(resumed["checkpoint"]), _weights(full["checkpoint"]))


def test_grpo_two_steps_then_resume_equals_uninterrupted(tiny: dict[str, Path]) -> None:
    from metacot_core.rl.runner import run

    # stop at the first space or comma: completions end early (not truncated), so their lengths vary
    parity = ("format=rl-parity", "reward.format_weight=1.0", "sampling.stop=[' ', ',']")
    logged: list[tuple[int, dict[str, float]]] = []
    full = run(_cfg(tiny, "grpo", "grpo-full", *parity), log=lambda m, s: logged.append((s, m)))
    assert [s for s, _ in logged] == [0, 1, 2]
    step1 = logged[1][1]
    for key in ("rollout/reward_mean", "rollout/reward_std", "rollout/valid_rate", "train/kl",
                "train/entropy", "train/loss", "guard/repeated_ngram_rate_mean",
                "eval/val_inputs/solve_rate"):
        assert key in step1, key
    assert step1["train/entropy"] > 0
    assert step1["train/kl"] == pytest.approx(0.0, abs=1e-6)  # first step: policy == reference
    assert any(m["rollout/informative_fraction"] > 0 for _, m in logged[1:])
    assert not _same(_weights(full["checkpoint"]), _weights(tiny["sft"]))

    run(_cfg(tiny, "grpo", "grpo-split", "grpo.steps=1", *parity))
    resumed = run(_cfg(tiny, "grpo", "grpo-split", *parity))
    assert resumed["start_step"] == 1
    assert _same(_weights(resumed["checkpoint"]), _weights(full["checkpoint"]))


def test_resume_refuses_a_checkpoint_of_the_other_method(tiny: dict[str, Path]) -> None:
    from metacot_core.rl.runner import prepare, run

    run(_cfg(tiny, "grpo", "mixed", "grpo.steps=1", "eval.at_start=false"))
    with pytest.raises(ValueError, match="method 'grpo'"):
        prepare(_cfg(tiny, "star", "mixed"))


def test_grpo_update_moves_probability_towards_the_rewarded_completion(tiny: dict[str, Path]) -> None:
    from metacot_core.evaluation.generate import Completion
    from metacot_core.rl.common import load_policy
    from metacot_core.rl.grpo import build_batch, make_optimizer, sequence_logprobs, update
    from metacot_core.rl.grpo_math import group_advantages

    model, tok = load_policy(tiny["sft"], "cpu")
    cfg = _cfg(tiny, "grpo", "unused", "grpo.beta=0.0", "train.lr=0.01")
    prompt = "Current State: 12:[15, 30, 6], Operations: []\n"
    good = Completion("Exploring Operation: 30/15=2, Resulting Numbers: [6, 2]\n", 0, False, stop="x")
    bad = Completion("Moving to Node #0,0\n", 0, False, stop="x")
    batch = build_batch(tok, [prompt, prompt], [good, bad], 192)
    # the loss mask covers exactly the completion tokens
    n_prompt = len(tok(prompt)["input_ids"])
    n_good = len(tok(good.text, add_special_tokens=False)["input_ids"])
    assert batch["loss_mask"][0].sum().item() == n_good
    assert batch["loss_mask"][0, n_prompt - 2].item() == 0 and batch["loss_mask"][0, n_prompt - 1].item() == 1

    def seq_logp() -> torch.Tensor:
        with torch.no_grad():
            logp, _ = sequence_logprobs(model, batch)
        return (logp * batch["loss_mask"]).sum(dim=1)

    before = seq_logp()
    adv = group_advantages(torch.tensor([1.0, 0.0]), group_size=2)  # +0.707, -0.707
    metrics = update(model, None, make_optimizer(model, cfg), batch, adv, cfg)
    after = seq_logp()
    assert after[0] > before[0] and after[1] < before[1]
    assert metrics["clip_fraction"] == 0.0  # one on-policy update: ratio 1, nothing clipped


def test_flow_logs_rl_metrics_and_checkpoint_to_mlflow(tiny: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import mlflow
    from prefect.testing.utilities import prefect_test_harness

    from flows.train_rl import load_rl_config, train_rl
    from tasks import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    cfg = _cfg(tiny, "star", "flow", "star.iterations=1", "eval.n_problems=1")
    path = tmp_path / "rl.yaml"
    path.write_text(json.dumps(cfg.model_dump(mode="json")))
    with prefect_test_harness(server_startup_timeout=120):
        summary = train_rl(load_rl_config(str(path), ["grpo.steps=1", "grpo.checkpoint_every=1"], "grpo"))
    assert summary["method"] == "grpo" and summary["final_step"] == 1

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.run_name == "rl-grpo" and run.info.status == "FINISHED"
    assert run.data.params["grpo.group_size"] == "2" and run.data.tags["method"] == "grpo"
    for key in ("rollout/reward_mean", "rollout/solve_rate", "train/kl", "train/entropy",
                "eval/val_inputs/solve_rate", "eval/val_inputs/solve_rate_ci_high"):
        assert key in run.data.metrics, key
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"checkpoint", "rl_summary.json"} <= artifacts


@pytest.mark.parametrize("agg", ["sequence", "token"])
def test_skipping_zero_advantage_rows_leaves_the_update_unchanged(tiny: dict[str, Path], agg: str) -> None:
    # beta = 0: a zero-advantage row adds nothing to the loss, but still counts in the batch mean;
    # updating on the informative rows with the whole batch's totals must give the same gradient.
    # (Compared on gradients: Adam's first step is ~lr x sign(g), which turns float noise in
    # near-zero components into full-size differences.)
    from metacot_core.evaluation.generate import Completion
    from metacot_core.rl.common import load_policy
    from metacot_core.rl.grpo import _slice, _trim, build_batch, update

    cfg = _cfg(tiny, "grpo", "unused", "grpo.beta=0.0", "train.lr=0.01", f"grpo.loss_agg={agg}",
               "train.batch_size=2")
    prompt = "Current State: 12:[15, 30, 6], Operations: []\n"
    texts = ["Exploring Operation: 30/15=2, Resulting Numbers: [6, 2]\n", "Moving to Node #0,0\n",
             "Moving to Node #0,1\nCurrent State: 12:[6, 2], Operations: ['30/15=2']\n", "No solution found."]
    completions = [Completion(t, 0, False, stop="x") for t in texts]
    full = build_batch(load_policy(tiny["sft"], "cpu")[1], [prompt] * 4, completions, 192)
    adv = torch.tensor([1.0, 0.0, -1.0, 0.0])
    grads = []
    for rows in (None, torch.tensor([0, 2])):
        model, _ = load_policy(tiny["sft"], "cpu")
        frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # keeps the gradients, moves nothing
        if rows is None:
            metrics = update(model, None, frozen, full, adv, cfg)
        else:
            totals = (4, float(full["loss_mask"].sum()))
            metrics = update(model, None, frozen, _trim(_slice(full, rows)), adv[rows], cfg, totals)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        assert metrics["grad_norm"] > 0
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-7), name


@pytest.mark.parametrize("agg", ["sequence", "token"])
def test_micro_batch_size_and_length_grouping_leave_the_gradient_unchanged(tiny: dict[str, Path],
                                                                            agg: str) -> None:
    # update() groups rows of similar length into micro-batches and cuts each to its longest row
    # (TRL tests/invariant: batch 4 x 1 step == batch 1 x 4 accumulation); with the KL term on.
    from metacot_core.evaluation.generate import Completion
    from metacot_core.rl.common import load_policy
    from metacot_core.rl.grpo import build_batch, update

    prompt = "Current State: 12:[15, 30, 6], Operations: []\n"
    texts = ["Moving to Node #0,0\n", "Exploring Operation: 30/15=2, Resulting Numbers: [6, 2]\n",
             "No solution found.", "Moving to Node #0,1\nCurrent State: 12:[6, 2], Operations: ['30/15=2']\n"]
    completions = [Completion(t, 0, False, stop="x") for t in texts]
    full = build_batch(load_policy(tiny["sft"], "cpu")[1], [prompt] * 4, completions, 192)
    adv = torch.tensor([1.0, -0.5, -1.0, 0.5])
    grads = []
    for micro in (1, 3, 4):
        cfg = _cfg(tiny, "grpo", "unused", "grpo.beta=0.1", f"grpo.loss_agg={agg}",
                   f"train.batch_size={micro}")
        model, _ = load_policy(tiny["sft"], "cpu")
        reference, _ = load_policy(tiny["sft"], "cpu")
        torch.manual_seed(0)
        with torch.no_grad():  # a reference that differs from the policy, so the KL term has a gradient
            for p in reference.parameters():
                p.add_(0.01 * torch.randn_like(p))
        frozen = torch.optim.SGD(model.parameters(), lr=0.0)
        update(model, reference, frozen, full, adv, cfg)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    for other in grads[1:]:
        for name in grads[0]:
            assert torch.allclose(grads[0][name], other[name], rtol=1e-4, atol=1e-7), name
