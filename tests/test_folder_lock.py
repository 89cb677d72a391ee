"""One writer per output folder (issue: two `metacot generate` into one folder left a card that did not
match its shards; a second `metacot run` of a config trained into the first one's folder)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from toy_plugin import toy  # noqa: F401  (fixture used by name)

from metacot_core.pipeline.lock import FolderBusy, folder_lock

HOLD = """
import sys, time
from metacot_core.pipeline.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_with_the_holders_pid_and_a_killed_holder_frees_it(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    proc = _holder(folder)
    try:
        busy = f"{folder} is in use by process {proc.pid}"
        with pytest.raises(FolderBusy, match=busy), folder_lock(folder):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with folder_lock(folder):  # the kernel released the dead holder's lock: nothing stuck
        with folder_lock(folder):  # and it is re-entrant within one process
            pass


def test_generation_into_a_held_folder_writes_nothing(tmp_path: Path) -> None:
    from metacot_core.config import build_config
    from metacot_core.data.config import GenerateConfig
    from metacot_core.pipeline.stages import run_generate
    from metacot_core.pipeline.tracker import NullTracker

    folder = tmp_path / "data"
    cfg = build_config(GenerateConfig, {"output_dir": str(folder), "counts": {"train": 4}})
    proc = _holder(folder)
    try:
        with pytest.raises(FolderBusy, match=str(proc.pid)):
            run_generate(cfg, NullTracker())
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert sorted(p.name for p in folder.iterdir()) == [".metacot.lock"]


def test_an_output_folder_that_is_a_file_and_a_blank_output_dir_are_one_line_errors(tmp_path: Path) -> None:
    from metacot_core.config import ConfigError, build_config
    from metacot_core.data.config import GenerateConfig

    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="output folder is a file"), folder_lock(tmp_path / "f"):
        pass
    with pytest.raises(ConfigError, match="output_dir"):
        build_config(GenerateConfig, {"output_dir": ""})


TOY = {"plugins": ["toy_plugin_register"], "domain": "toy", "format": "toy",
       "search": {"algorithm": "bfs"}, "counts": {"train": 6, "val": 2}, "shard_size": 4, "workers": 1}


@pytest.mark.usefixtures("toy")
def test_generate_into_a_folder_being_generated_into_refuses_in_one_line(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from cli.main import app

    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({**TOY, "output_dir": str(tmp_path / "ds")}))
    first = _holder(tmp_path / "ds")
    try:
        result = CliRunner().invoke(app, ["generate", "--config", str(config), "--no-flow", "--no-track"])
    finally:
        first.kill()
        first.wait(timeout=10)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"in use by process {first.pid}" in lines[0], result.stderr
    assert not list((tmp_path / "ds").rglob("*.parquet")), "the second generate wrote shards anyway"


def test_a_second_run_of_a_live_pipeline_refuses_before_opening_a_run(tmp_path: Path) -> None:
    from metacot_core.pipeline.config import load_pipeline
    from metacot_core.pipeline.loop import run_pipeline

    root = Path(__file__).resolve().parents[1]
    pipe = load_pipeline(root / "configs/countdown/pipeline-tiny.yaml", [f"output_root={tmp_path}"])
    code = ("import sys, time\nfrom metacot_core.pipeline.lock import folder_lock\n"
            "with folder_lock(sys.argv[1], sys.argv[2]):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    first = subprocess.Popen([sys.executable, "-c", code, str(pipe.root), f".pipeline-{pipe.key}.lock"],
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(root)})
    assert first.stdout is not None and first.stdout.readline().strip() == "held"

    class MustNotOpen:
        kind = "mlflow"

        def run(self, *args, **kwargs):
            raise AssertionError("the second run opened the pipeline's run (and would mark runs KILLED)")

    try:
        with pytest.raises(FolderBusy, match=f"in use by process {first.pid}"):
            run_pipeline(pipe, MustNotOpen())  # type: ignore[arg-type]
    finally:
        first.kill()
        first.wait(timeout=10)
