"""Plots of a two-model analysis: pass@k curves, closest-strategy shares, efficiency against the teacher."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from metacot_core.evaluation.plots import plt, save_figure

if TYPE_CHECKING:
    from metacot_core.evaluation.analyze import ModelAnalysis


def pass_at_k(models: list[ModelAnalysis], path: Path) -> Path:
    """One line per model, pass@k against k (log2 axis), the 95% interval shaded."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in models:
        if not m.curve:
            continue
        ks = [p.k for p in m.curve]
        ax.plot(ks, [p.value for p in m.curve], marker="o", label=m.name)
        ax.fill_between(ks, [p.low for p in m.curve], [p.high for p in m.curve], alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("pass@k")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("pass@k")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def strategy_shares(models: list[ModelAnalysis], path: Path) -> Path:
    """Grouped bars: share of outputs closest to each strategy, plus novel, before and after."""
    shares = [m.summary["fingerprint"].get("closest_share", {}) for m in models]
    labels = sorted({k for s in shares for k in s}) + ["novel"]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(labels)), 4))
    width = 0.8 / max(1, len(models))
    for i, (m, share) in enumerate(zip(models, shares, strict=True)):
        values = [share.get(k, 0.0) for k in labels[:-1]] + [m.summary["fingerprint"].get("novel_share", 0.0)]
        ax.bar([x + i * width for x in range(len(labels))], values, width=width, label=m.name)
    ax.set_xticks([x + width * (len(models) - 1) / 2 for x in range(len(labels))])
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of outputs")
    ax.set_title("Closest teacher strategy (by expansion order)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def efficiency(models: list[ModelAnalysis], path: Path) -> Path:
    """Per solved problem: the model's states against the best teacher strategy's (diagonal = equal)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    top = 1.0
    for m in models:
        pts = [(p.best_states, p.model_states) for p in m.efficiency
               if p.model_states is not None and p.best_states]
        if pts:
            top = max([top] + [max(x, y) for x, y in pts])
            ax.scatter([x for x, _ in pts], [y for _, y in pts], alpha=0.6, label=m.name)
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("best teacher strategy: states expanded")
    ax.set_ylabel("model: states expanded (solving samples)")
    ax.set_title("Efficiency against the best teacher")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def all_plots(a: ModelAnalysis, b: ModelAnalysis, out_dir: str | Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    models = [a, b]
    out = {"pass_at_k": pass_at_k(models, out_dir / "pass_at_k.png"),
           "efficiency": efficiency(models, out_dir / "efficiency.png")}
    if a.fingerprints or b.fingerprints:
        out["strategy_shares"] = strategy_shares(models, out_dir / "strategy_shares.png")
    return out
