"""A checkpoint folder is untrusted input: resuming from one, or loading its tokenizer, never runs code it
ships (a pickled `__reduce__` in the trainer state, a module named by `auto_map`)."""

from __future__ import annotations

import ast
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from metacot_core.rl.common import find_resume
from metacot_core.rl.config import RLConfig
from metacot_core.training import checkpoint as ckpt


class _Payload:
    """What a crafted trainer_state.pt holds: unpickling it calls os.system."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted_checkpoint(root: Path, marker: Path) -> Path:
    folder = ckpt.checkpoint_dir(root, 3)
    folder.mkdir(parents=True)
    torch.save({"step": 3, "method": "star", "payload": _Payload(marker)}, folder / ckpt.STATE_FILE)
    return folder


def test_sft_state_with_a_pickled_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    folder = _crafted_checkpoint(tmp_path / "checkpoints", marker)
    with pytest.raises(ckpt.CheckpointError, match="trainer_state.pt") as err:
        ckpt.load_state(folder)
    assert not marker.exists(), "unpickling the state ran the payload"
    assert "\n" not in str(err.value) and "posix.system" in str(err.value)
    assert "weights_only" not in str(err.value)  # not torch's advice to load it unsafely


def test_rl_resume_with_a_pickled_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    _crafted_checkpoint(tmp_path / "rl" / "checkpoints", marker)
    cfg = RLConfig(output_dir=str(tmp_path / "rl"), method="star")
    with pytest.raises(ckpt.CheckpointError, match="trainer_state.pt"):
        find_resume(cfg)
    assert not marker.exists(), "unpickling the RL state ran the payload"


def test_a_real_trainer_state_still_round_trips(tmp_path):
    """What save_checkpoint writes (optimizer, scheduler, every RNG state) passes the allow-list."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from metacot_core.tokenizer import build_tokenizer

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=16, n_positions=8))
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 4, dtype=torch.long)).logits.sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    tokenizer = build_tokenizer(["1 2 3"])
    random.seed(1)
    np.random.seed(1)
    folder = ckpt.save_checkpoint(tmp_path, 5, model, tokenizer, optimizer, scheduler, {"micro_batch": 5},
                                  {"x": 1}, extra={"tokens_seen": 40})
    expected = (random.random(), np.random.rand())
    state = ckpt.load_state(folder)
    ckpt.set_rng_state(state["rng"])
    assert (random.random(), np.random.rand()) == expected
    assert state["step"] == 5 and state["tokens_seen"] == 40
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])


def test_a_state_file_that_is_not_a_pickle_is_one_line(tmp_path):
    folder = ckpt.checkpoint_dir(tmp_path, 1)
    folder.mkdir(parents=True)
    (folder / ckpt.STATE_FILE).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ckpt.CheckpointError, match="trainer_state.pt") as err:
        ckpt.load_state(folder)
    assert "\n" not in str(err.value)


def _saved_tokenizer(path: Path) -> Path:
    from metacot_core.tokenizer import build_tokenizer, save_tokenizer

    return save_tokenizer(build_tokenizer(["1 2 3"]), path)


@pytest.mark.parametrize("config_file", ["config.json", "tokenizer_config.json"])
def test_a_checkpoint_declaring_remote_code_is_refused_in_one_line(tmp_path, config_file):
    from metacot_core.tokenizer import load_tokenizer

    folder = _saved_tokenizer(tmp_path / "ckpt")
    marker = tmp_path / "imported"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    data = json.loads((folder / config_file).read_text()) if (folder / config_file).is_file() else {}
    data["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None], "AutoConfig": "evil.EvilConfig"}
    (folder / config_file).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"{config_file}.*auto_map") as err:
        load_tokenizer(folder)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_a_model_folder_declaring_remote_code_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from metacot_core.models import load_local_model

    folder = tmp_path / "model"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=16, n_positions=8)).save_pretrained(
        folder)
    data = json.loads((folder / "config.json").read_text())
    data["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"config.json.*auto_map"):
        load_local_model(folder)


def test_every_transformers_load_passes_trust_remote_code_false():
    """A source check: each from_pretrained call in the code states trust_remote_code=False, so no
    future default or terminal prompt can import a checkpoint's module."""
    root = Path(__file__).resolve().parents[1]
    missing = []
    for package in ("metacot_core", "tasks", "flows"):
        for file in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "from_pretrained"):
                    flags = {k.arg: k.value for k in node.keywords}
                    flag = flags.get("trust_remote_code")
                    if not (isinstance(flag, ast.Constant) and flag.value is False):
                        missing.append(f"{file.relative_to(root)}:{node.lineno}")
    assert not missing, f"from_pretrained without trust_remote_code=False: {missing}"
