"""Published checkpoints (checkpoints/<name>/): manifest hashes, what a folder may hold, the loader's
check, and that the committed models still give their published figures on a small case."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metacot_core.models import load_local_model
from metacot_core.pipeline.reproduce import reproduce
from metacot_core.published import MANIFEST, publish, published, verify

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = published(ROOT / "checkpoints")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A trained checkpoint folder as SFT leaves it: the committed model's files, without the manifest."""
    src = tmp_path / "final"
    src.mkdir()
    for path in COMMITTED[0].iterdir():
        if path.name != MANIFEST:
            shutil.copyfile(path, src / path.name)
    return src


def test_checkpoints_are_committed_with_a_manifest() -> None:
    assert COMMITTED, "no published checkpoint under checkpoints/"
    for folder in COMMITTED:
        manifest = verify(folder)
        assert manifest["backs"] and manifest["made_by"]
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])
        assert {"generate", "evaluate", "figure", "small_case"} <= set(manifest["reproduce"])


def test_publish_copies_only_loadable_files_and_hashes_them(source: Path, tmp_path: Path) -> None:
    (source / "trainer_state.pt").write_bytes(b"\x80\x04 a pickle")
    (source / "modeling_evil.py").write_text("import os\n")
    manifest = publish(source, tmp_path / "pub", backs="RESULTS.md 0", made_by="a test")
    assert manifest["left_out"] == ["modeling_evil.py", "trainer_state.pt"]
    assert not (tmp_path / "pub" / "trainer_state.pt").exists()
    assert verify(tmp_path / "pub")["files"] == manifest["files"]
    assert json.loads((tmp_path / "pub" / MANIFEST).read_text())["backs"] == "RESULTS.md 0"


def test_publish_refuses_an_incomplete_source_and_a_used_destination(source: Path, tmp_path: Path) -> None:
    publish(source, tmp_path / "pub", backs="x", made_by="y")
    with pytest.raises(FileExistsError, match="not empty"):
        publish(source, tmp_path / "pub", backs="x", made_by="y")
    (source / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="missing model.safetensors"):
        publish(source, tmp_path / "other", backs="x", made_by="y")


@pytest.mark.parametrize("tamper", ["changed", "missing", "extra", "listed pickle"])
def test_verify_names_the_file_that_does_not_match(source: Path, tmp_path: Path, tamper: str) -> None:
    pub = tmp_path / "pub"
    publish(source, pub, backs="x", made_by="y")
    if tamper == "changed":
        (pub / "tokenizer_config.json").write_text("{}")
        match = "tokenizer_config.json: sha256 differs"
    elif tamper == "missing":
        (pub / "config.json").unlink()
        match = "config.json: listed in the manifest but missing"
    elif tamper == "extra":
        (pub / "pytorch_model.bin").write_bytes(b"pickle")
        match = "pytorch_model.bin: not in the manifest"
    else:
        manifest = json.loads((pub / MANIFEST).read_text())
        manifest["files"]["pytorch_model.bin"] = {"sha256": "0" * 64, "bytes": 1}
        (pub / MANIFEST).write_text(json.dumps(manifest))
        match = "lists pytorch_model.bin"
    with pytest.raises(ValueError, match=match):
        verify(pub)
    loader = "not a model directory" if tamper == "missing" else match
    with pytest.raises(ValueError, match=loader):  # the loader checks before it reads a weight
        load_local_model(pub)


def test_cli_verify_is_one_line_on_a_changed_file(source: Path, tmp_path: Path) -> None:
    from cli.main import app

    pub = tmp_path / "pub"
    publish(source, pub, backs="x", made_by="y")
    ok = CliRunner().invoke(app, ["checkpoint", "verify", str(pub)])
    assert ok.exit_code == 0 and "files match the manifest" in ok.output
    (pub / "model.safetensors").write_bytes((pub / "model.safetensors").read_bytes()[:-1] + b"\x00")
    bad = CliRunner().invoke(app, ["checkpoint", "verify", str(pub)])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [f"error: {pub / 'model.safetensors'}: sha256 differs from "
                                               "the manifest (the file was changed)"]


@pytest.mark.parametrize("folder", COMMITTED, ids=[f.name for f in COMMITTED])
def test_committed_checkpoint_reproduces_its_small_case(folder: Path, tmp_path: Path) -> None:
    """The manifest's recipe, run again from nothing but the repository: same held-out problems
    (regenerated from their seeds), same greedy decoding, same strict solves."""
    result = reproduce(folder, tmp_path, "small_case", root=ROOT)
    assert result["got"] == result["expected"]
