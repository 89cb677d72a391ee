"""PNG plots of an experiment's results table (rows from evaluation.results_table; Agg backend).

- `solve_rate_bars`: solve rate with its 95% interval for every arm (x grid point), grouped by split.
- `crossover`: held-out solve rate against training FLOPs (log x), one line per arm and data setting
  (the grid keys that do not start with `sft.`, e.g. the number of Countdown numbers); the points along
  a line are the compute settings (model size, steps). Where the search-trace line crosses the
  solution line is the regime the experiment looks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot loads
from matplotlib.ticker import NullFormatter  # noqa: E402

from metacot_core.evaluation.plots import save_figure  # noqa: E402

COMPUTE_PREFIXES = ("sft.",)


def _splits(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(_split_name(r) for r in rows))


def _split_name(row: dict[str, Any]) -> str:
    return row["split"] + (f"/{row['format']}" if row.get("format") else "")


def _errors(rows: Sequence[dict[str, Any]]) -> list[list[float]]:
    """Asymmetric error bars (below, above) from the Wilson interval."""
    return [[max(0.0, r["solve_rate"] - r["ci_low"]) for r in rows],
            [max(0.0, r["ci_high"] - r["solve_rate"]) for r in rows]]


def solve_rate_bars(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Grouped bars: one group per split, one bar per arm label, whiskers = 95% Wilson interval."""
    splits = _splits(rows)
    labels = list(dict.fromkeys(r["label"] for r in rows))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(splits) * len(labels) + 3.0), 4.5))
    for i, label in enumerate(labels):
        mine = {_split_name(r): r for r in rows if r["label"] == label}
        xs = [j + (i - (len(labels) - 1) / 2) * width for j, s in enumerate(splits) if s in mine]
        chosen = [mine[s] for s in splits if s in mine]
        ax.bar(xs, [r["solve_rate"] for r in chosen], width=width, yerr=_errors(chosen), capsize=3,
               label=label)
    ax.set_xticks(range(len(splits)), splits)
    ax.set_ylabel("solve rate (95% CI)")
    ax.set_ylim(0, 1.0)
    ax.set_title("Held-out solve rate by arm")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path)


def line_keys(grid_keys: Sequence[str]) -> list[str]:
    """Grid keys that separate lines (data and evaluation settings) rather than move along them."""
    return [k for k in grid_keys if not k.startswith(COMPUTE_PREFIXES)]


def crossover(rows: Sequence[dict[str, Any]], path: str | Path, grid_keys: Sequence[str]) -> Path | None:
    """Solve rate vs training FLOPs per split, one line per arm x data setting; None without FLOPs."""
    rows = [r for r in rows if r.get("train_flops")]
    if not rows:
        return None
    splits = _splits(rows)
    keys = line_keys(grid_keys)
    fig, axes = plt.subplots(1, len(splits), figsize=(5.0 * len(splits), 4.2), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        lines: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            if _split_name(r) == split:
                name = ", ".join([r["arm"], *(f"{k.split('.')[-1]}={r.get(k)}" for k in keys)])
                lines.setdefault(name, []).append(r)
        for name, points in lines.items():
            points.sort(key=lambda r: r["train_flops"])
            ax.errorbar([r["train_flops"] for r in points], [r["solve_rate"] for r in points],
                        yerr=_errors(points), marker="o", capsize=3, label=name)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap within one decade
        ax.set_xlabel("training FLOPs (6 N D)")
        ax.set_ylabel("solve rate (95% CI)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(split)
        ax.legend(fontsize=7)
    fig.suptitle("Solve rate vs training compute")
    return save_figure(fig, path)


def results_plots(rows: Sequence[dict[str, Any]], out_dir: str | Path,
                  grid_keys: Sequence[str] = ()) -> list[Path]:
    """Every plot that the rows support, written under `out_dir`."""
    if not rows:
        return []
    out_dir = Path(out_dir)
    paths = [solve_rate_bars(rows, out_dir / "solve_rate_by_arm.png")]
    if grid_keys:
        curve = crossover(rows, out_dir / "solve_rate_vs_flops.png", grid_keys)
        if curve is not None:
            paths.append(curve)
    return paths

