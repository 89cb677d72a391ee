"""One writer per output folder: a second `metacot generate` into a folder, or a second `metacot run` of a
config, refuses at once with one line naming the folder and the holder's process id; a holder killed
with SIGKILL leaves nothing stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from toy_plugin import toy  # noqa: F401  (fixture used by name)
from typer.testing import CliRunner

from metacot_core.output_lock import OutputLocked, output_lock

ROOT = Path(__file__).resolve().parents[1]
TOY = {"plugins": ["toy_plugin_register"], "domain": "toy", "format": "toy",
       "search": {"algorithm": "bfs"}, "counts": {"train": 6, "val": 2}, "shard_size": 4, "workers": 1}


@pytest.fixture
def holder():
    """Start a process that holds a target's lock (as a live `metacot` command would) until killed."""
    procs: list[subprocess.Popen] = []

    def start(target: Path) -> subprocess.Popen:
        code = ("import sys, time\nfrom metacot_core.output_lock import output_lock\n"
                "with output_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True,
                                env=env)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_holder_is_refused_naming_the_folder_and_the_pid(tmp_path, holder):
    folder = tmp_path / "ds"
    first = holder(folder)
    with pytest.raises(OutputLocked) as err, output_lock(folder):
        pass
    message = str(err.value)
    assert str(folder) in message and f"process {first.pid}" in message and "\n" not in message


def test_a_holder_killed_with_sigkill_leaves_the_folder_free(tmp_path, holder):
    folder = tmp_path / "ds"
    first = holder(folder)
    first.send_signal(signal.SIGKILL)
    first.wait()
    with output_lock(folder):  # the kernel dropped the dead holder's lock; the file left behind is harmless
        pass


def test_the_lock_is_reentrant_in_one_process_and_released_after(tmp_path, holder):
    folder = tmp_path / "ds"
    with output_lock(folder), output_lock(folder):  # a pipeline's stages run inside its own lock
        pass
    holder(folder)  # released: another process takes it


@pytest.mark.usefixtures("toy")
def test_generate_into_a_folder_being_generated_into_refuses_in_one_line(tmp_path, holder):
    from flows.cli import app

    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({**TOY, "output_dir": str(tmp_path / "ds")}))
    first = holder(tmp_path / "ds")
    result = CliRunner().invoke(app, ["generate", "--config", str(config), "--no-flow", "--no-track"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{tmp_path / 'ds'}: in use by process {first.pid}" in lines[0], result.stderr
    assert not list((tmp_path / "ds").rglob("*.parquet")), "the second generate wrote shards anyway"


def test_a_second_run_of_a_live_pipeline_refuses_before_touching_its_runs(tmp_path, holder, monkeypatch):
    import flows.pipeline as pipeline
    from metacot_core.pipeline_config import load_pipeline

    pipe = load_pipeline(ROOT / "configs/countdown/pipeline-tiny.yaml", [f"output_root={tmp_path}"])
    first = holder(pipe.state_path)

    def must_not_open(*_args, **_kwargs):
        raise AssertionError("the second run opened the pipeline's MLflow runs (and would mark them KILLED)")

    monkeypatch.setattr(pipeline, "check_tracking", lambda *_a: "sqlite:///unused.db")
    monkeypatch.setattr(pipeline, "parent_run", must_not_open)
    with pytest.raises(OutputLocked, match=f"in use by process {first.pid}"):
        pipeline.run_pipeline(pipe)
