"""Resumable checkpoints: a folder that is both a loadable model and the state to continue training.

`<output_dir>/checkpoints/step-000100/` holds the model (safetensors) and tokenizer, so
`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` open it directly, plus
`trainer_state.pt` (optimizer, scheduler, RNG, step, data position) and `sft_config.json` (the config
that made it; nanoGPT's habit: a checkpoint knows how it was made). A folder is written under a
temporary name and renamed when complete, so a job killed while saving leaves no half checkpoint,
and an existing checkpoint is never overwritten.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "sft_config.json"
PREFIX = "step-"
# What a trainer state holds beyond tensors and plain containers: numpy's RNG state array. A checkpoint
# folder may come from anywhere, so it is read with `weights_only=True` and only these are let through
# (pickle would run whatever a crafted `__reduce__` names).
STATE_GLOBALS = (np.ndarray, np.dtype, type(np.dtype(np.uint32)), np._core.multiarray._reconstruct)
# torch's weights-only error wraps the one line that says what was refused in advice (to load with
# weights_only=False) that must not reach a user holding an untrusted file.
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used to resume this run; the message names the field."""


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"{PREFIX}{step:06d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(root: str | Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def save_model_dir(path: Path, model: torch.nn.Module, tokenizer: Any, config: dict[str, Any]) -> None:
    """Model weights (safetensors), tokenizer and the run config into an existing folder."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))


def save_checkpoint(
    root: str | Path,
    step: int,
    model: torch.nn.Module,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    data_position: dict[str, int],
    config: dict[str, Any],
    keep: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint `step` atomically; prune to the `keep` newest. Refuses to overwrite."""
    final = checkpoint_dir(root, step)
    if final.exists():
        raise CheckpointError(f"{final}: a checkpoint for step {step} already exists; not overwriting it")
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model_dir(tmp, model, tokenizer, config)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "data_position": dict(data_position),
        **(extra or {}),
    }
    torch.save(state, tmp / STATE_FILE)
    os.replace(tmp, final)
    if keep is not None:
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def save_final(path: str | Path, model: torch.nn.Module, tokenizer: Any, config: dict[str, Any]) -> Path:
    """The finished model folder, written atomically; refuses to replace an existing one."""
    final = Path(path)
    if final.exists():
        raise CheckpointError(f"{final}: already exists; not overwriting a finished model")
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model_dir(tmp, model, tokenizer, config)
    os.replace(tmp, final)
    return final


def load_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"{path}: not a training checkpoint ({STATE_FILE} missing)")
    return read_state_file(path / STATE_FILE)


def read_state_file(file: Path) -> dict[str, Any]:
    """A trainer state file, read without running any code it names; CheckpointError if it holds more
    than tensors, plain containers and the numpy RNG array (see STATE_GLOBALS) or is not a state."""
    try:
        with torch.serialization.safe_globals(list(STATE_GLOBALS)):
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors come in many types; each means "not a state"
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if not line.startswith(_TORCH_BOILERPLATE)), type(err).__name__)
        raise CheckpointError(f"{file}: not a trainer state that can be read safely ({detail})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: not a trainer state (holds a {type(state).__name__}, not a dict)")
    return state


def saved_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise CheckpointError(f"{path}: checkpoint without {CONFIG_FILE}; cannot check it matches this run")
    return json.loads((path / CONFIG_FILE).read_text())


def _get(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_compatible(saved: dict[str, Any], current: dict[str, Any], fields: tuple[str, ...]) -> None:
    """Raise CheckpointError naming the first field whose value differs between the two configs."""
    for name in fields:
        old, new = _get(saved, name), _get(current, name)
        if old != new:
            raise CheckpointError(
                f"cannot resume: {name} was {json.dumps(old)} in the checkpoint, now {json.dumps(new)}"
            )
