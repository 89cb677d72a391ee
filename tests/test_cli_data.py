"""The data commands: generate, import-sos, validate-trace, dataset-card (one-line errors, exit codes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from toy_plugin import toy  # noqa: F401  (fixture used by name)
from typer.testing import CliRunner

from cli.main import app
from metacot_core.data.reader import iter_rows

SOS_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sos"
TOY = {"plugins": ["toy_plugin_register"], "domain": "toy", "format": "toy",
       "search": {"algorithm": "bfs"}, "counts": {"train": 6, "val": 2}, "shard_size": 4, "workers": 1}


def run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, list(args), input=stdin)


def assert_one_line_error(result, text: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def toy_config(tmp_path: Path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({**TOY, "output_dir": str(tmp_path / "ds")}))
    return path


@pytest.mark.usefixtures("toy")
def test_generate_without_flow_prints_the_card(toy_config, tmp_path):
    result = run("generate", "--config", str(toy_config), "counts.train=3", "--no-flow", "--no-track")
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["n_rows"] == 5 and card["splits"]["train"]["rows"] == 3
    assert card["config"]["counts"] == {"train": 3, "val": 2}
    shown = run("dataset-card", str(tmp_path / "ds"))
    assert shown.exit_code == 0 and json.loads(shown.stdout) == card
    rebuilt = json.loads(run("dataset-card", str(tmp_path / "ds"), "--rebuild").stdout)
    assert rebuilt["content_hash"] == card["content_hash"] and rebuilt["config"] == card["config"]


@pytest.mark.usefixtures("toy")
def test_generate_errors_are_one_line(toy_config, tmp_path):
    assert_one_line_error(run("generate", "--config", str(toy_config), "search.node_budget=0", "--no-flow"),
                          "search.single.node_budget: Input should be greater than or equal to 1")
    assert_one_line_error(run("generate", "--config", str(tmp_path / "none.yaml"), "--no-flow"),
                          "config file not found")
    assert_one_line_error(run("generate", "--config", str(toy_config), "domain=chess", "--no-flow"),
                          "unknown domain 'chess'")


def test_dataset_card_errors(tmp_path):
    assert_one_line_error(run("dataset-card", str(tmp_path / "missing")), "dataset folder not found")
    assert_one_line_error(run("dataset-card", str(tmp_path)), "no dataset card")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "part-00000.parquet").write_bytes(b"PAR1 not really")
    assert_one_line_error(run("dataset-card", str(tmp_path), "--rebuild"),
                          "part-00000.parquet: not a readable Parquet file")


@pytest.mark.usefixtures("toy")
def test_validate_trace_from_file_and_stdin(tmp_path):
    trace = "expand 0 0\ngenerate 0,0 1\ngoal 0,0 1\n"
    (tmp_path / "t.txt").write_text(trace)
    result = run("validate-trace", str(tmp_path / "t.txt"), "--domain", "toy", "--instance",
                 '{"target": 1}', "--format", "toy")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["solved"] is True
    piped = run("validate-trace", "-", "--domain", "toy", "--instance", '{"target": 5}', "--format", "toy",
                "--check", stdin=trace)
    assert piped.exit_code == 2 and json.loads(piped.stdout)["reason"] == "no_goal_claimed"


@pytest.mark.usefixtures("toy")
def test_validate_trace_bad_input(tmp_path):
    base = ["validate-trace", "-", "--format", "toy"]
    assert_one_line_error(run(*base, "--domain", "toy", "--instance", "{nope"), "--instance: not valid JSON")
    assert_one_line_error(run(*base, "--domain", "toy", "--instance", '{"x": 1}'),
                          "toy instance needs an integer 'target'")
    assert_one_line_error(run(*base, "--domain", "chess", "--instance", "{}"), "unknown domain 'chess'")
    assert_one_line_error(run("validate-trace", str(tmp_path / "no.txt"), "--domain", "toy", "--format",
                              "toy", "--instance", '{"target": 1}'), "trace file not found")


def test_import_sos_fixture(tmp_path):
    if importlib.util.find_spec("metacot_core.domains.countdown.sos_import") is None:
        pytest.skip("SoS importer not written yet")
    if not (SOS_DATA / "val_target.jsonl").is_file():
        pytest.skip("shared SoS fixture not present")
    out = tmp_path / "sos"
    result = run("import-sos", str(SOS_DATA / "val_target.jsonl"), "--out", str(out), "--shard-size", "40")
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["n_rows"] == 100 and list(card["splits"]) == ["val_target"] and card["n_shards"] == 3
    from metacot_core.domains.countdown.sos_import import iter_sos_records, sos_record_to_row

    records = list(iter_sos_records(SOS_DATA / "val_target.jsonl"))
    expected = [sos_record_to_row(rec, "val_target", i, 0) for i, rec in enumerate(records)]
    rows = list(iter_rows(out))
    assert [json.loads(r["instance"])["target"] for r in rows] == [r["target"] for r in records]
    # every column the importer produced, its extras (valid, sos_rating, ...) included, is stored as is
    assert rows == expected
    assert card["splits"]["val_target"]["solved"] == sum(r["solved"] for r in expected)
    again = run("import-sos", str(SOS_DATA / "val_target.jsonl"), "--out", str(out))
    assert_one_line_error(again, "already holds shards")


def test_import_sos_needs_a_split(tmp_path):
    (tmp_path / "mine.jsonl").write_text("")
    assert_one_line_error(run("import-sos", str(tmp_path / "mine.jsonl"), "--out", str(tmp_path / "o")),
                          "cannot tell the split from the file name; pass --split")
