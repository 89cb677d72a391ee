"""What a pipeline has finished, kept in a small JSON file beside its stage folders.

The stage loop (metacot_core.pipeline.loop) writes it whichever way it runs (a Prefect flow with the
MLflow tracker, the core runner or a Tune trial with event logs), with the tracker's run ids. Because
the file is plain JSON, the results table of an experiment can be built from arms run either way.
`stage_done` is the one rule for "this stage is finished": its entry has the stage's hash and the
stage's output (STAGE_OUTPUT) still exists.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import yaml

from metacot_core.data.card import CARD_NAME
from metacot_core.pipeline.config import ResolvedPipeline

SHARED_STAGES = ("generate", "sft", "rl")
STAGE_OUTPUT = {"generate": CARD_NAME, "sft": "final", "rl": ".", "evaluate": "summary.json"}


class PipelineState:
    """Finished stages of one pipeline config (keyed by its hash), saved after each stage."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        data = json.loads(path.read_text()) if path.is_file() else {}
        if data.get("key") not in (None, key):
            data = {}
        self.data: dict[str, Any] = {"key": key, "parent_run_id": None, "stages": {}, **data}

    @property
    def parent_run_id(self) -> str | None:
        """The pipeline's MLflow run (the key older state files already use)."""
        return self.data.get("parent_run_id")

    def set_parent(self, run_id: str) -> None:
        self.set_run("mlflow", run_id)

    def run_id(self, tracker_kind: str) -> str | None:
        """The pipeline run a tracker of this kind opened before (None: never)."""
        if tracker_kind == "mlflow":
            return self.parent_run_id
        return (self.data.get("runs") or {}).get(tracker_kind)

    def set_run(self, tracker_kind: str, run_id: str) -> None:
        if tracker_kind == "mlflow":
            self.data["parent_run_id"] = run_id
        else:
            self.data.setdefault("runs", {})[tracker_kind] = run_id
        self.save()

    def finished(self, stage: str, stage_hash: str) -> dict[str, Any] | None:
        entry = self.data["stages"].get(stage)
        return entry if entry and entry.get("hash") == stage_hash else None

    def finish(self, stage: str, stage_hash: str, summary: dict[str, Any], run_ids: list[str],
               seconds: float | None = None) -> None:
        self.data["stages"][stage] = {"hash": stage_hash, "run_ids": run_ids, "finished_at": time.time(),
                                      "seconds": seconds, "summary": _jsonable(summary)}
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        tmp.replace(self.path)


def _jsonable(summary: dict[str, Any]) -> dict[str, Any]:
    """What the state keeps of a stage summary: no per-step histories or per-problem lists."""
    out = json.loads(json.dumps(summary, default=str))
    out.pop("history", None)
    return out


def write_stage_config(pipe: ResolvedPipeline, stage: str) -> str:
    """The stage's resolved config as YAML beside the stage folders; the stage runs exactly this."""
    path = pipe.root / "configs" / f"{stage}-{pipe.hashes[stage]}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    dumped = pipe.stage_config(stage).model_dump(mode="json")
    path.write_text(yaml.safe_dump(dumped, sort_keys=False))
    return str(path)


def dataset_is_current(pipe: ResolvedPipeline) -> dict[str, Any] | None:
    """The card of an already generated dataset made by this very config, else None."""
    card_path = Path(pipe.generate.output_dir) / CARD_NAME
    if not card_path.is_file():
        return None
    card = json.loads(card_path.read_text())
    ignored = ("workers", "output_dir", "row_group_size")
    mine = pipe.generate.model_dump(mode="json", exclude=set(ignored))
    theirs = {k: v for k, v in card.get("config", {}).items() if k not in ignored}
    return card if theirs == mine else None


def hardware() -> str:
    """One line: CPU cores and, when present, the GPU that ran it."""
    import torch

    line = f"{platform.machine()} {os.cpu_count()} CPU cores"
    if torch.cuda.is_available():
        line += f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return line


# ------------------------------------------------------------------------------------- shared stages


def stage_dir(pipe: ResolvedPipeline, stage: str) -> Path:
    return Path(pipe.stage_config(stage).output_dir)


def adopt_current_dataset(pipe: ResolvedPipeline, state: PipelineState) -> bool:
    """Mark generation finished when the dataset folder already holds this config's dataset (made by
    `metacot generate`, or copied here) though this pipeline never ran it; True when it did."""
    if state.finished("generate", pipe.hashes["generate"]):
        return False
    card = dataset_is_current(pipe)
    if card is None:
        return False
    state.finish("generate", pipe.hashes["generate"], {"content_hash": card["content_hash"], "cached": True},
                 [])
    return True


def stage_done(pipe: ResolvedPipeline, stage: str) -> dict[str, Any] | None:
    """The stage's state entry when the pipeline finished it and its output is still there."""
    entry = PipelineState(pipe.state_path, pipe.key).finished(stage, pipe.hashes[stage])
    output = stage_dir(pipe, stage) / STAGE_OUTPUT[stage]
    return entry if entry is not None and output.exists() else None


def share_finished_stages(pipe: ResolvedPipeline, others: list[ResolvedPipeline]) -> list[str]:
    """Link this pipeline's unfinished stages to another arm's finished stage with the same hash."""
    state = PipelineState(pipe.state_path, pipe.key)
    shared: list[str] = []
    for stage in [s for s in pipe.stages() if s in SHARED_STAGES]:
        if state.finished(stage, pipe.hashes[stage]):
            continue
        donor = next((o for o in others if o is not pipe and stage in o.stages()
                      and o.hashes[stage] == pipe.hashes[stage] and stage_done(o, stage)), None)
        mine = stage_dir(pipe, stage)
        if donor is None or (mine.exists() and not mine.is_symlink()):
            break  # later stages hash over this one: they cannot be shared either
        if mine.is_symlink():
            mine.unlink()
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.symlink_to(stage_dir(donor, stage).resolve(), target_is_directory=True)
        summary = {**stage_done(donor, stage)["summary"], "shared_from": donor.config.name}
        state.finish(stage, pipe.hashes[stage], summary, [])
        shared.append(stage)
    return shared
