"""Published checkpoints: the small models under `checkpoints/<name>/` that back a RESULTS.md figure.

A published folder holds only what loading needs and none of it executable (safetensors weights, the
model and tokenizer JSON files), plus `manifest.json`: the sha256 and size of every file, what made
the model (command, experiment config and arm, MLflow run), the RESULTS.md section it backs, and a
`reproduce` block: the evaluation that gives the figure (dataset config and overrides, split, number
of problems, decoding) and what it gave. `metacot eval --checkpoint checkpoints/<name>` checks the
hashes before loading, so a changed or swapped file is one clear error, not a different model.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
# What a checkpoint may carry: weights in safetensors, configs and the tokenizer as JSON. No pickles,
# no Python: a published folder is downloaded and loaded by strangers.
ALLOWED = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
           "tokenizer_config.json", "special_tokens_map.json", "sft_config.json", "rl_config.json"}
REQUIRED = {"config.json", "model.safetensors", "tokenizer.json"}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    return {p.name: {"sha256": sha256(p), "bytes": p.stat().st_size}
            for p in sorted(folder.iterdir()) if p.name != MANIFEST}


def publish(source: str | Path, dest: str | Path, *, backs: str, made_by: str,
            provenance: Mapping[str, Any] | None = None, reproduce: Mapping[str, Any] | None = None,
            ) -> dict[str, Any]:
    """Copy the loadable files of the checkpoint `source` to `dest` and write its manifest.

    `backs` names the RESULTS.md section (or BENCHMARKS.md entry) the model stands behind, `made_by`
    the command that trained it; `provenance` holds the rest (config, arm, MLflow run id, dataset
    content hash), `reproduce` the evaluation that gives the figure and its result.
    """
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: checkpoint directory not found")
    present = {p.name for p in source.iterdir() if p.is_file()}
    missing = REQUIRED - present
    if missing:
        raise ValueError(f"{source}: not a publishable checkpoint, missing {', '.join(sorted(missing))}")
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest}: already exists and is not empty; pick another name or remove it")
    dest.mkdir(parents=True, exist_ok=True)
    for name in sorted(present & ALLOWED):
        shutil.copyfile(source / name, dest / name)
    manifest = {"name": dest.name, "backs": backs, "made_by": made_by,
                "published": datetime.now(UTC).strftime("%Y-%m-%d"),
                "provenance": dict(provenance or {}), "reproduce": dict(reproduce or {}),
                "left_out": sorted(present - ALLOWED), "files": file_table(dest)}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable manifest ({type(err).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ValueError(f"{path}: not a checkpoint manifest (no `files` table)")
    return data


def verify(folder: str | Path) -> dict[str, Any]:
    """The manifest, once every file matches its hash and no file is there that it does not list.

    ValueError naming the first file that is missing, changed, unexpected or not allowed."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    listed: dict[str, Any] = manifest["files"]
    for name in sorted(listed):
        if name not in ALLOWED:
            raise ValueError(f"{folder / MANIFEST}: lists {name}, which a published checkpoint may not hold")
        path = folder / name
        if not path.is_file():
            raise ValueError(f"{path}: listed in the manifest but missing")
        if sha256(path) != listed[name].get("sha256"):
            raise ValueError(f"{path}: sha256 differs from the manifest (the file was changed)")
    extra = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST and p.name not in listed)
    if extra:
        raise ValueError(f"{folder / extra[0]}: not in the manifest (a published checkpoint holds only "
                         "the files it lists)")
    return manifest


def verify_if_published(folder: str | Path) -> None:
    """Check the hashes of a folder that carries a manifest; any other checkpoint loads as before."""
    if (Path(folder) / MANIFEST).is_file():
        verify(folder)


def published(root: str | Path) -> list[Path]:
    """The published checkpoint folders under `root` (those with a manifest), by name."""
    root = Path(root)
    return sorted(p.parent for p in root.glob(f"*/{MANIFEST}")) if root.is_dir() else []
