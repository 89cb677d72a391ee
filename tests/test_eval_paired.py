"""Paired comparison of two evaluations (exact McNemar): the p-value is the binomial tail, rows are
matched by problem across formats, and tables that cannot be compared say why."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from metacot_core.evaluation.paired import CompareError, compare, markdown, mcnemar_exact


def _table(path: Path, solved: list[bool], answer: list[bool] | None = None, split: str = "val_target",
           fmt: str = "sos") -> Path:
    n = len(solved)
    cols = {"split": [split] * n, "instance": [f'{{"numbers": [{i}], "target": 1}}' for i in range(n)],
            "sample_index": [0] * n, "format": [fmt] * n, "solved": solved,
            "answer_solved": answer if answer is not None else [None] * n}
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols, schema=pa.schema([
        ("split", pa.string()), ("instance", pa.string()), ("sample_index", pa.int64()),
        ("format", pa.string()), ("solved", pa.bool_()), ("answer_solved", pa.bool_())])),
        path / "table.parquet")
    return path


def test_mcnemar_exact_is_the_two_sided_binomial_tail() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 2 ** 10)
    assert mcnemar_exact(119, 91) == pytest.approx(
        2 * sum(math.comb(210, i) for i in range(92)) / 2 ** 210)
    assert mcnemar_exact(3, 9) == mcnemar_exact(9, 3)


def test_compare_counts_discordant_problems_per_split_and_overall(tmp_path: Path) -> None:
    a = [True] * 30 + [False] * 10
    b = [True] * 20 + [False] * 18 + [True] * 2
    ta = _table(tmp_path / "a", a, fmt="sos-arith")
    tb = _table(tmp_path / "b", b, fmt="solution")
    [res] = compare(ta, tb)
    assert (res.n, res.a_only, res.b_only) == (40, 10, 2)
    assert (res.a_rate, res.b_rate) == (0.75, 0.55)
    assert res.p_value == pytest.approx(mcnemar_exact(10, 2))
    assert "| val_target | solved | 40 | 0.750 | 0.550 | 10 | 2 |" in markdown([res], "x", "y")


def test_tables_that_cannot_be_compared_say_why(tmp_path: Path) -> None:
    ta = _table(tmp_path / "a", [True, False])
    tb = _table(tmp_path / "b", [True, True], split="val_inputs")
    with pytest.raises(CompareError, match="share no problem"):
        compare(ta, tb)
    with pytest.raises(CompareError, match="no 'answer_solved' scores"):
        compare(ta, ta, "answer_solved")
    with pytest.raises(CompareError, match="no evaluation table"):
        compare(tmp_path / "missing", ta)


def test_eval_compare_command_prints_and_logs_to_mlflow(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from cli.main import app

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    ta = _table(tmp_path / "a", [True] * 8 + [False] * 2, [True] * 9 + [False])
    tb = _table(tmp_path / "b", [False] * 10, [True] + [False] * 9)
    result = CliRunner().invoke(app, ["eval-compare", str(ta), str(tb), "--name-a", "arith",
                                      "--name-b", "solution", "--experiment", "cmp"])
    assert result.exit_code == 0, result.output
    assert "| val_target | answer_solved | 10 | 0.900 | 0.100 | 8 | 0 |" in result.output
    [run] = mlflow.search_runs(experiment_names=["cmp"], output_format="list")
    assert run.data.metrics["val_target.solved.a_only"] == 8
    assert run.data.metrics["val_target.solved.p_value"] == pytest.approx(mcnemar_exact(8, 0))
    bad = CliRunner().invoke(app, ["eval-compare", str(ta), str(tmp_path / "nowhere"), "--no-track"])
    assert bad.exit_code == 1 and "no evaluation table" in bad.output
