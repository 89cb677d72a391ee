"""`metacot analyze`: did RL change the algorithm or only the answers? Two evaluations compared.

    metacot analyze runs/eval/sft runs/eval/rl --name-a sft --name-b rl --output runs/analysis/sft-vs-rl

Both folders come from `metacot eval` on the same problems (for pass@k and coverage: many samples at
temperature 1.0, e.g. generation.n_samples=64 generation.temperature=1.0). Prints the report's headline
table and writes the tables (Parquet), analysis.md, summary.json and the plots into `--output`; unless
--no-track, logs them (metrics, tables, plots) to an MLflow run `analyze-A-vs-B`. See
metacot_core/evaluation/analyze.py for what is measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.boundary import App

app = App()


@app.command("analyze")
def analyze_command(
    a: Annotated[Path, typer.Argument(help="evaluation folder of the first model (before)")],
    b: Annotated[Path, typer.Argument(help="evaluation folder of the second model (after), same problems")],
    name_a: Annotated[str, typer.Option(help="label of the first")] = "a",
    name_b: Annotated[str, typer.Option(help="label of the second")] = "b",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="folder for tables, report and plots (default runs/analysis/A-vs-B)")] = None,
    novel_threshold: Annotated[float | None, typer.Option(
        help="order similarity below which a search is novel (default: fingerprint.NOVEL_THRESHOLD)")] = None,
    format_a: Annotated[str | None, typer.Option(help="format of A's rows, if it holds several")] = None,
    format_b: Annotated[str | None, typer.Option(help="format of B's rows, if it holds several")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment of the analysis run")] = "metacot",
    no_track: Annotated[bool, typer.Option("--no-track", help="the folder only, no MLflow run")] = False,
) -> None:
    """Compare two models' algorithms, efficiency and exploration boundary on the same problems."""
    from metacot_core.evaluation.analyze import analyze
    from metacot_core.evaluation.fingerprint import NOVEL_THRESHOLD
    from metacot_core.evaluation.metrics import flat_metrics

    if novel_threshold is not None and not 0.0 <= novel_threshold <= 1.0:
        raise typer.BadParameter("must lie in [0, 1]", param_hint="--novel-threshold")
    out = output or Path("runs/analysis") / f"{name_a}-vs-{name_b}"
    threshold = NOVEL_THRESHOLD if novel_threshold is None else novel_threshold
    result = analyze(a, b, out, name_a, name_b, threshold, format_a, format_b)
    typer.echo(result.markdown.split("\n## ")[0].rstrip())
    if no_track:
        typer.echo(json.dumps({"output_dir": str(out)}))
        return
    from tasks.tracking import MlflowTracker

    params = {"a": str(a), "b": str(b), "name_a": name_a, "name_b": name_b, "novel_threshold": threshold,
              "output_dir": str(out)}
    tracker = MlflowTracker(experiment)
    with tracker.run(f"analyze-{name_a}-vs-{name_b}", {"stage": "analyze"}, params) as run_id:
        summary = result.summary
        tracker.log_metrics(flat_metrics({k: summary[k] for k in ("a", "b", "shift", "coverage")}))
        tracker.log_text(result.markdown, "analysis/analysis.md")
        tracker.log_dict(summary, "analysis/summary.json")
        for name, path in result.paths.items():
            if name.startswith("plot_"):
                tracker.log_artifact(path, artifact_path="analysis/plots")
            elif path.suffix == ".parquet":
                tracker.log_artifact(path, artifact_path="analysis")
    typer.echo(json.dumps({"output_dir": str(out), "mlflow_run_id": run_id}))
