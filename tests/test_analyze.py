"""Two-model analysis: shifts in strategy shares, coverage, changed problems side by side, files and
plots, on hand-made evaluation tables; then `metacot analyze` end to end on two tiny-model evaluations
logged to MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest
from test_eval_flow import checkpoint, sos_dataset, tracking_store  # noqa: F401 (fixtures)
from test_eval_generate import one_torch_thread  # noqa: F401 (autouse fixture)
from typer.testing import CliRunner

from metacot_core.evaluation.analyze import analyze, load_eval, side_by_side, tied_best
from metacot_core.evaluation.paired import CompareError
from metacot_core.evaluation.report import write_report

DFS = ["r", "r0", "r00", "r01", "r1", "r10", "r11"]
BFS = ["r", "r0", "r1", "r00", "r01", "r10", "r11"]


def _records(orders: dict[str, list[tuple[bool, list[str]]]]) -> list[dict]:
    """Records of problems p -> [(solved, expansion order) per sample], with a DFS and a BFS teacher."""
    out = []
    for pid, samples in orders.items():
        for i, (solved, seq) in enumerate(samples):
            rec = {"problem_id": pid, "split": "test", "domain": "toy", "format": "sos",
                   "instance": json.dumps({"id": pid}), "prompt": "Current State: 1:[1]\n",
                   "completion": "\n".join(seq), "sample_index": i, "n_tokens": 3 * len(seq),
                   "truncated": False, "label": "solved" if solved else "no_goal_claimed", "solved": solved,
                   "valid": True, "states_visited": len(seq), "expanded": seq,
                   "teacher": {"dfs": {"solved": True, "n_expanded": 7}, "bfs": {"solved": pid != "p3",
                                                                            "n_expanded": 7}}}
            if i == 0:
                rec["teacher_runs"] = [
                    {"strategy": "dfs", "algorithm": "dfs", "weight": 1.0, "solved": pid != "p3",
                     "n_expanded": 7, "expanded": DFS, "error": ""},
                    {"strategy": "bfs", "algorithm": "bfs", "weight": 1.0, "solved": False, "n_expanded": 7,
                     "expanded": BFS, "error": ""}]
            out.append(rec)
    return out


def _folder(path: Path, orders: dict) -> Path:
    write_report(_records(orders), {"splits": {}}, path)
    return path


def test_analyze_two_hand_made_evaluations(tmp_path: Path) -> None:
    # Before: DFS everywhere, solves p1 only. After: BFS, solves p1 and p2; p3 gets garbage (no state).
    before = _folder(tmp_path / "a", {"p1": [(True, DFS[:5]), (False, DFS)],
                                      "p2": [(False, DFS), (False, DFS)], "p3": [(False, DFS), (False, DFS)]})
    after = _folder(tmp_path / "b", {"p1": [(True, BFS[:4]), (True, BFS)], "p2": [(False, BFS), (True, BFS)],
                                     "p3": [(True, []), (False, [])]})
    assert (before / "teacher.parquet").is_file()
    result = analyze(before, after, tmp_path / "out", "sft", "rl")
    s = result.summary
    assert s["a"]["fingerprint"]["closest_share"] == {"dfs": 1.0}
    assert s["b"]["fingerprint"]["closest_share"] == {"bfs": pytest.approx(4 / 6),
                                                      "no-search": pytest.approx(2 / 6)}
    assert s["shift"]["closest_share"] == {"bfs": pytest.approx(4 / 6), "dfs": -1.0,
                                           "no-search": pytest.approx(2 / 6)}
    assert s["b"]["fingerprint"]["no_search_share"] == pytest.approx(1 / 3)
    # Intervals over problems (clustered.py): B's BFS share is 2/2, 2/2, 0/2 by problem, so R = 4/6 and
    # sd = sqrt(3/2 * ((2/3)^2 + (2/3)^2 + (4/3)^2)) / 6 = 1/3; the upper end clips at 1.
    bfs = s["b"]["fingerprint_interval"]["closest_share"]["bfs"]
    assert bfs["value"] == pytest.approx(4 / 6) and bfs["n_problems"] == 3
    assert bfs["low"] == pytest.approx(4 / 6 - 1.959964 / 3) and bfs["high"] == 1.0
    # DFS goes from every output to none on every problem: the paired shift has no spread.
    dfs = s["shift"]["fingerprint_interval"]["closest_share"]["dfs"]
    assert (dfs["value"], dfs["low"], dfs["high"]) == pytest.approx((-1.0, -1.0, -1.0))
    assert "0.667 [0.013, 1.000]" in result.markdown
    assert s["coverage"] == {"a_only": 0, "b_only": 2, "both": 1, "neither": 0}
    assert sorted(s["coverage_ids"]["b_only"]) == ["p2", "p3"]
    # p3: no teacher strategy solves it, B does (a hand-made record: solved with no state written).
    assert s["b"]["efficiency"]["beyond_teacher_ids"] == ["p3"]
    assert s["a"]["pass_at_k"]["1"]["value"] == pytest.approx(1 / 6)
    assert s["b"]["pass_at_k"]["2"]["value"] == pytest.approx(1.0)
    assert s["shift"]["pass_at_k"][2] == pytest.approx(1.0 - 1 / 3)
    # Paired by problem: pass@2 moves by 0, 1 and 1 on p1..p3, so sd = sqrt(3/2 * 6/81) = 1/3.
    paired = s["shift"]["pass_at_k_interval"]["2"]
    assert paired["value"] == pytest.approx(2 / 3) and paired["n_problems"] == 3
    assert paired["low"] == pytest.approx(2 / 3 - 1.959964 / 3) and paired["high"] > 1.0  # a shift: unclipped
    changes = {c["problem_id"]: c["change"] for c in pq.read_table(result.paths["changed"]).to_pylist()}
    assert changes == {"p2": "solved by B only", "p3": "solved by B only", "p1": "strategy"}
    for name in ("fingerprints", "efficiency", "pass_at_k", "coverage", "changed", "markdown", "summary",
                 "plot_pass_at_k", "plot_strategy_shares", "plot_efficiency"):
        assert result.paths[name].is_file() and result.paths[name].stat().st_size > 0, name
    text = result.markdown
    assert "| novel share |" in text and "## Problems that changed (3)" in text
    assert "| algorithm undecided share |" in text and "| tied best mean |" in text
    assert "r00" in text and " | r1" in text  # the two traces side by side


def test_tied_best_names_the_algorithms_that_share_the_best_similarity() -> None:
    """A short search that DFS and a beam search write alike is undecided between algorithms, however
    the closest strategy's tie-break falls; beam widths alone tie within one algorithm."""
    assert tied_best({"dfs-sum": 1.0, "beam1-sum": 1.0, "beam3-mult": 0.5}) == {
        "n_tied_best": 2, "tied_families": "beam+dfs"}
    assert tied_best({"beam1-sum": 0.8, "beam2-sum": 0.8, "dfs-sum": 0.4}) == {
        "n_tied_best": 2, "tied_families": "beam"}
    assert tied_best({"dfs-sum": 0.9, "beam1-sum": 0.3}) == {"n_tied_best": 1, "tied_families": "dfs"}
    assert tied_best({}) == {"n_tied_best": 0, "tied_families": ""}


def test_side_by_side_and_unusable_inputs(tmp_path: Path) -> None:
    assert side_by_side("a\nbb", "x", width=3) == "a   | x\nbb  | "
    assert side_by_side("abcdef", "", width=4) == "abc~ | "
    assert side_by_side("1\n2\n3", "", width=1, max_lines=2).endswith("... (1 more lines)")
    a = _folder(tmp_path / "a", {"p1": [(True, DFS)]})
    with pytest.raises(CompareError, match="no evaluation table"):
        analyze(a, tmp_path / "missing", tmp_path / "out")
    other = _records({"p9": [(True, DFS)]})
    write_report(other, {}, tmp_path / "c")
    with pytest.raises(CompareError, match="share no problem"):
        analyze(a, tmp_path / "c", tmp_path / "out")
    mixed = _records({"p1": [(True, DFS)]})
    mixed += [{**mixed[0], "format": "solution", "teacher_runs": None}]
    write_report(mixed, {}, tmp_path / "m")
    with pytest.raises(CompareError, match="holds formats solution, sos"):
        load_eval(tmp_path / "m", "m")
    assert len(load_eval(tmp_path / "m", "m", "solution").samples) == 1


def test_old_tables_without_expansion_order_still_analyze(tmp_path: Path) -> None:
    recs = _records({"p1": [(True, DFS)], "p2": [(False, BFS)]})
    for r in recs:
        r.pop("expanded")
        r.pop("teacher_runs", None)
    write_report(recs, {}, tmp_path / "a")
    result = analyze(tmp_path / "a", tmp_path / "a", tmp_path / "out")
    assert result.summary["a"]["fingerprint"] == {}
    assert "expansions=true" in result.summary["a"]["fingerprint_note"]
    assert result.summary["a"]["efficiency"]["unit"] == "states_visited / n_expanded"
    assert result.summary["a"]["efficiency"]["ratio_best_median"] == 1.0  # 7 states against dfs's 7


@pytest.mark.e2e
def test_analyze_command_on_two_tiny_evaluations(checkpoint, sos_dataset, tmp_path,  # noqa: F811
                                                 tracking_store) -> None:  # noqa: F811
    from cli.main import app
    from metacot_core.evaluation.config import EvalConfig
    from metacot_core.evaluation.runner import run_evaluation

    dirs = []
    for seed in (0, 1):
        cfg = EvalConfig.model_validate({
            "checkpoint": str(checkpoint), "dataset": str(sos_dataset),
            "output_dir": str(tmp_path / f"e{seed}"),
            "progress": False, "max_problems": 4, "pass_k": [1, 4], "teacher": {"node_budget": 200},
            "generation": {"max_new_tokens": 24, "batch_size": 16, "n_samples": 4, "temperature": 1.0,
                           "seed": seed}})
        run_evaluation(cfg)
        dirs.append(tmp_path / f"e{seed}")
    teacher = pq.read_table(dirs[0] / "teacher.parquet").to_pylist()
    assert len(teacher) == 4 * 12 and all(r["expanded"] for r in teacher)  # SoS's 12 strategies
    table = pq.read_table(dirs[0] / "table.parquet").to_pylist()
    assert len(table) == 16 and all(r["expanded"] is not None for r in table)
    out = tmp_path / "analysis"
    result = CliRunner().invoke(app, ["analyze", str(dirs[0]), str(dirs[1]), "--name-a", "s0",
                                      "--name-b", "s1", "--output", str(out), "--experiment", "analysis"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# s0 vs s1") and "| novel share |" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["a"]["n_samples_min"] == 4 and set(summary["a"]["pass_at_k"]) == {"1", "2", "4"}
    assert summary["a"]["fingerprint"]["n_outputs"] == 16
    [run] = mlflow.search_runs(experiment_names=["analysis"], output_format="list")
    assert run.info.run_name == "analyze-s0-vs-s1" and "a.pass_at_k.4.value" in run.data.metrics
    client = mlflow.MlflowClient()
    files = {a.path for a in client.list_artifacts(run.info.run_id, "analysis")}
    assert {"analysis/analysis.md", "analysis/fingerprints.parquet", "analysis/plots"} <= files
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "analysis/plots")}
    assert {"analysis/plots/pass_at_k.png", "analysis/plots/strategy_shares.png"} <= plots
    bad = CliRunner().invoke(app, ["analyze", str(dirs[0]), str(tmp_path / "nowhere"), "--no-track"])
    assert bad.exit_code == 1 and "no evaluation table" in bad.output
