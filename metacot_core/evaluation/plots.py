"""PNG plots of an evaluation (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot loads


def _by_split(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        out.setdefault(rec["split"], []).append(rec)
    return out


def _bins(values: list[float], n_bins: int) -> list[float]:
    """Quantile edges, so every bin holds about as many problems (trace lengths are long-tailed)."""
    ordered = sorted(values)
    last = len(ordered) - 1
    edges = [ordered[min(last, round(i * last / n_bins))] for i in range(n_bins + 1)]
    return sorted(set(edges))


def solve_rate_by_length(records: Sequence[dict[str, Any]], path: str | Path, n_bins: int = 6) -> Path:
    """Solve rate against the teacher's trace length (a proxy of how hard the problem is to search)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for split, recs in _by_split(records).items():
        key = "teacher_trace_tokens" if all(r.get("teacher_trace_tokens") for r in recs) else "n_tokens"
        values = [float(r.get(key) or 0) for r in recs]
        edges = _bins(values, n_bins)
        xs, ys = [], []
        for lo, hi in zip(edges, edges[1:], strict=False):
            inside = [r for r, v in zip(recs, values, strict=True) if lo <= v <= hi]
            if inside:
                xs.append((lo + hi) / 2)
                ys.append(sum(r["solved"] for r in inside) / len(inside))
        if len(edges) == 1:
            xs, ys = [edges[0]], [sum(r["solved"] for r in recs) / len(recs)]
        ax.plot(xs, ys, marker="o", label=f"{split} (x: {key})")
    ax.set_xlabel("trace length (tokens)")
    ax.set_ylabel("solve rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Solve rate by trace length")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def states_model_vs_teacher(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """States the model explored against the nodes the dataset's teacher expanded, per problem."""
    fig, ax = plt.subplots(figsize=(5, 5))
    top = 1.0
    for split, recs in _by_split(records).items():
        pts = [(float(r.get("teacher_n_expanded") or 0), float(r.get("states_visited") or 0), r["solved"])
               for r in recs]
        top = max([top] + [max(x, y) for x, y, _ in pts])
        for solved, marker in ((True, "o"), (False, "x")):
            sel = [(x, y) for x, y, s in pts if s == solved]
            if sel:
                ax.scatter([x for x, _ in sel], [y for _, y in sel], marker=marker, alpha=0.6,
                           label=f"{split} {'solved' if solved else 'unsolved'}")
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("teacher: nodes expanded")
    ax.set_ylabel("model: states explored")
    ax.set_title("States explored, model vs teacher")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def verdict_breakdown(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Share of each verdict class per split (stacked bars)."""
    splits = _by_split(records)
    labels = sorted({r["label"] for r in records})
    fig, ax = plt.subplots(figsize=(6, 4))
    bottoms = [0.0] * len(splits)
    names = list(splits)
    for label in labels:
        shares = [Counter(r["label"] for r in splits[s])[label] / len(splits[s]) for s in names]
        ax.bar(names, shares, bottom=bottoms, label=label)
        bottoms = [b + s for b, s in zip(bottoms, shares, strict=True)]
    ax.set_ylabel("share of completions")
    ax.set_ylim(0, 1.0)
    ax.set_title("Verdicts")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path)


def all_plots(records: Sequence[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not records:
        return []
    return [
        solve_rate_by_length(records, out_dir / "solve_rate_by_length.png"),
        states_model_vs_teacher(records, out_dir / "states_model_vs_teacher.png"),
        verdict_breakdown(records, out_dir / "verdicts.png"),
    ]


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write `fig` as a PNG (folders made as needed) and close it, so long runs do not hold figures."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
