"""Expected failures reach the user as one line naming the file or field, never a traceback
(cli/boundary.py): a corrupt Parquet shard, a truncated or pickled model.safetensors, a bad trainer
state, an output path under a regular file, a binary trace, a 5,000-digit --instance; and a fuzz test
feeding random bytes to each command's inputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sft_fixtures import sos_rows
from typer.testing import CliRunner

from cli.main import app
from metacot_core.data.writer import write_split

INSTANCE = json.dumps({"numbers": [1, 2, 3, 4], "target": 24})
FUZZ = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=stdin)


def one_line_error(result, *texts: str) -> str:
    """The command failed with exactly one `error: ...` line, the last on stderr (containing `texts`)."""
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()  # progress bars aside (transformers' weight loading)
    errors = [x for x in lines if x.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.output
    for text in texts:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store")
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "METACOT_HOME")}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["METACOT_HOME"] = str(root)
    yield root
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def sft_yaml(path: Path, data: Path, out: Path, max_steps: int = 2) -> Path:
    path.write_text(yaml.safe_dump({
        "data": {"path": str(data), "val_split": "val"},
        "model": {"preset": "1m", "n_layer": 1, "d_model": 32, "n_head": 2},
        "train": {"max_steps": max_steps, "seq_len": 256, "micro_batch_size": 2, "eval_every": 1000,
                  "eval_batches": 1, "checkpoint_every": 1, "warmup_steps": 1},
        "ray": {"enabled": False}, "tracking": {"experiment": "errors-test", "log_model": False},
        "output_dir": str(out)}))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, store: Path) -> dict[str, Path]:
    """A tiny dataset (metacot's writer: zstd shards, as the issue saw them) and a 2-step SFT run."""
    root = tmp_path_factory.mktemp("trained")
    data = root / "ds"
    write_split(data, "train", sos_rows("train.jsonl", "train", 8, 1000))
    write_split(data, "val", sos_rows("val.jsonl", "val", 4, 1000))
    out = root / "run"
    result = run("train", "sft", "--config", sft_yaml(root / "sft.yaml", data, out), "--no-flow")
    assert result.exit_code == 0, result.output
    return {"data": data, "run": out, "final": out / "final", "root": root}


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def corrupt_middle(path: Path) -> None:
    """Zero 16 bytes inside the largest column chunk: a data page, not the footer (whose errors
    name the file already). zstd then fails with "ZSTD decompression failed", naming none."""
    group = pq.read_metadata(path).row_group(0)
    chunk = max((group.column(i) for i in range(group.num_columns)), key=lambda c: c.total_compressed_size)
    raw = bytearray(path.read_bytes())
    mid = chunk.data_page_offset + chunk.total_compressed_size // 2
    raw[mid:mid + 16] = bytes(16)
    path.write_bytes(bytes(raw))


@pytest.fixture
def corrupt_data(trained, tmp_path: Path) -> tuple[Path, Path]:
    data = copy_tree(trained["data"], tmp_path / "ds")
    shard = next((data / "val").glob("*.parquet"))
    corrupt_middle(shard)
    return data, shard


def test_corrupt_shard_in_eval_names_the_shard(trained, corrupt_data, tmp_path: Path) -> None:
    data, shard = corrupt_data
    result = run("eval", "--checkpoint", trained["final"], "--dataset", data, "--split", "val", "--no-flow",
                 "--no-track", f"output_dir={tmp_path / 'eval'}")
    one_line_error(result, str(shard), "corrupt Parquet shard")


def test_corrupt_shard_in_train_sft_names_the_shard(corrupt_data, tmp_path: Path) -> None:
    data, shard = corrupt_data
    config = sft_yaml(tmp_path / "sft.yaml", data, tmp_path / "run")
    one_line_error(run("train", "sft", "--config", config, "--no-flow"), str(shard), "corrupt Parquet shard")


@pytest.mark.parametrize("content", [b"\x00\x01", b"", pytest.param(None, id="pickle")])
def test_bad_model_file_in_eval_is_one_line(trained, tmp_path: Path, content: bytes | None) -> None:
    ckpt = copy_tree(trained["final"], tmp_path / "ckpt")
    weights = ckpt / "model.safetensors"
    if content is None:
        torch.save({"weight": torch.zeros(2)}, weights)  # a pickle where safetensors belong
    else:
        weights.write_bytes(weights.read_bytes()[:100] + content)  # truncated
    result = run("eval", "--checkpoint", ckpt, "--dataset", trained["data"], "--split", "val", "--no-flow",
                 "--no-track", f"output_dir={tmp_path / 'eval'}")
    one_line_error(result, str(ckpt))


def test_bad_trainer_state_is_one_line(trained, tmp_path: Path) -> None:
    out = copy_tree(trained["run"], tmp_path / "run")
    for state in out.glob("**/trainer_state.pt"):
        torch.save({"step": 1}, state)  # keys missing
    config = sft_yaml(tmp_path / "sft.yaml", trained["data"], out, max_steps=4)
    one_line_error(run("train", "sft", "--config", config, "--no-flow"))


def test_output_path_under_a_regular_file_is_one_line(trained, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    config = sft_yaml(tmp_path / "sft.yaml", trained["data"], tmp_path / "file" / "run")
    one_line_error(run("train", "sft", "--config", config, "--no-flow"), str(tmp_path / "file"))


def test_binary_trace_and_huge_instance_are_one_line(tmp_path: Path) -> None:
    trace = tmp_path / "trace.bin"
    trace.write_bytes(b"\xff\xfe\x00garbage\x80")
    one_line_error(run("validate-trace", trace, "--domain", "countdown", "--instance", INSTANCE, "-f", "sos"),
                   str(trace), "UTF-8")
    huge = json.dumps({"numbers": [1, 2], "target": 0}).replace("0}", "9" * 5000 + "}")
    one_line_error(run("validate-trace", trace, "--domain", "countdown", "--instance", huge, "-f", "sos"),
                   "--instance")


# ------------------------------------------------------------------------------------------ fuzz

def verdict_or_one_line(result) -> None:
    if result.exit_code == 0:
        json.loads(result.stdout)  # a verdict
    else:
        one_line_error(result)


def settles_nothing(raw: bytes) -> bool:
    """An empty YAML document is a valid config (every default): not a case for the fuzz test."""
    try:
        return yaml.safe_load(raw) in (None, {})
    except yaml.YAMLError:
        return False
    except ValueError:  # NUL bytes and the like: what the command must report in one line
        return False


@FUZZ
@given(raw=st.binary(max_size=200).filter(lambda raw: not settles_nothing(raw)))
def test_fuzz_config_yaml(raw: bytes, tmp_path_factory) -> None:
    tmp = tmp_path_factory.mktemp("cfg")
    config = tmp / "config.yaml"
    config.write_bytes(raw)
    for args in (["generate", "--no-flow", "--no-track"], ["train", "sft", "--no-flow"]):
        one_line_error(run(*args, "--config", config, f"output_dir={tmp / 'out'}"))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzz_parquet_shard(raw: bytes, trained, tmp_path_factory) -> None:
    data = copy_tree(trained["data"], tmp_path_factory.mktemp("fuzz") / "ds")
    (data / "val" / "part-00000.parquet").write_bytes(raw)
    one_line_error(run("dataset-card", data, "--rebuild"))
    config = sft_yaml(data.parent / "sft.yaml", data, data.parent / "run")
    one_line_error(run("train", "sft", "--config", config, "--no-flow"))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzz_model_safetensors(raw: bytes, trained, tmp_path_factory) -> None:
    ckpt = copy_tree(trained["final"], tmp_path_factory.mktemp("fuzz") / "ckpt")
    (ckpt / "model.safetensors").write_bytes(raw)
    one_line_error(run("eval", "--checkpoint", ckpt, "--dataset", trained["data"], "--split", "val",
                       "--no-flow", "--no-track", f"output_dir={ckpt.parent / 'eval'}"))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzz_trace_file(raw: bytes, tmp_path_factory) -> None:
    trace = tmp_path_factory.mktemp("fuzz") / "trace.txt"
    trace.write_bytes(raw)
    for fmt in ("sos", "astar"):
        domain = "countdown" if fmt == "sos" else "maze"
        instance = INSTANCE if fmt == "sos" else json.dumps(
            {"width": 3, "height": 3, "walls": [], "start": [0, 0], "goal": [2, 2]})
        verdict_or_one_line(run("validate-trace", trace, "--domain", domain, "--instance", instance,
                                "-f", fmt))


@FUZZ
@given(text=st.text(max_size=60) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
def test_fuzz_instance_json(text: str, tmp_path_factory) -> None:
    trace = tmp_path_factory.mktemp("fuzz") / "trace.txt"
    trace.write_text("Current State: 24:[1, 2, 3, 4], Operations: []\n")
    for instance in (text, '{"numbers": ' + text + ', "target": 24}'):
        verdict_or_one_line(run("validate-trace", trace, "--domain", "countdown", "--instance", instance,
                                "-f", "sos"))
