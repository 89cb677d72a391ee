"""An empty output folder is a config error naming the field, not "the current directory": `output_dir=`
used to write a dataset's shards into the project root."""

from __future__ import annotations

import pytest
import yaml
from toy_plugin import toy  # noqa: F401  (fixture used by name)
from typer.testing import CliRunner

from flows.sweep import SweepSettings
from metacot_core.config import ConfigError, build_config
from metacot_core.data.config import GenerateConfig
from metacot_core.evaluation.config import EvalConfig
from metacot_core.pipeline.config import PipelineConfig
from metacot_core.pipeline.experiment import ExperimentConfig
from metacot_core.rl.config import RLConfig
from metacot_core.training.config import SFTConfig

CASES = [(GenerateConfig, "output_dir"), (SFTConfig, "output_dir"), (RLConfig, "output_dir"),
         (EvalConfig, "output_dir"), (SweepSettings, "output_dir"), (PipelineConfig, "output_root"),
         (ExperimentConfig, "output_dir")]


@pytest.mark.parametrize(("model", "field"), CASES, ids=[m.__name__ for m, _ in CASES])
def test_an_empty_output_folder_is_refused_naming_the_field(model, field) -> None:
    with pytest.raises(ConfigError, match=rf"{field}: give a folder"):
        build_config(model, {}, [f"{field}="])


@pytest.mark.usefixtures("toy")
def test_generate_with_an_empty_output_dir_writes_nothing_into_the_working_folder(tmp_path, monkeypatch):
    from cli.main import app

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({"plugins": ["toy_plugin_register"], "domain": "toy", "format": "toy",
                                      "search": {"algorithm": "bfs"}, "counts": {"train": 2, "val": 1},
                                      "workers": 1, "output_dir": str(tmp_path / "ds")}))
    result = CliRunner().invoke(app, ["generate", "--config", str(config), "output_dir=", "--no-flow",
                                      "--no-track"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "output_dir: give a folder" in lines[0], lines
    assert not list(tmp_path.rglob("*.parquet"))
