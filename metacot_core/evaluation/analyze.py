"""Before and after: did RL change the algorithm, or only the answers? Two evaluations compared.

    result = analyze("runs/eval/sft", "runs/eval/rl", "runs/analysis/sft-vs-rl", "sft", "rl")

Each evaluation folder holds table.parquet (one row per completion, with each output's expansion
order) and teacher.parquet (each teacher strategy's run per problem), written by the evaluator with
`expansions` on. Per model: the algorithm fingerprint of every output (fingerprint.py: closest
strategy by expansion order, novel searches, strategy switches), efficiency against the teacher
(efficiency.py), pass@k curves and coverage (boundary.py), trace lengths. Then the shifts from A to B
and the problems that changed, with their two traces side by side. Everything is written into the
output folder (Parquet tables, analysis.md, summary.json, plots); the command (`metacot analyze`)
logs the folder through a tracker. Problems are matched by (split, instance), as eval-compare does,
so the two evaluations may use different trace formats of the same problems.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from metacot_core.evaluation import boundary, clustered, efficiency
from metacot_core.evaluation.fingerprint import (
    NOVEL_THRESHOLD,
    Fingerprint,
    describe,
    family,
    fingerprint,
    teacher_similarities,
)
from metacot_core.evaluation.paired import CompareError, table_path

NO_SEARCH = "no-search"  # an MLflow metric name: no parentheses
MAX_CHANGED_TRACES = 12  # problems whose two traces analysis.md shows side by side
Key = tuple[str, str]  # (split, instance)


@dataclass(slots=True)
class EvalFolder:
    """One evaluation's completions and teacher runs, grouped by problem."""

    name: str
    path: Path
    samples: dict[Key, list[dict[str, Any]]]
    teacher: dict[Key, list[dict[str, Any]]]
    has_sequences: bool


def load_eval(path: str | Path, name: str, fmt: str | None = None) -> EvalFolder:
    """Read an evaluation folder (its rows of format `fmt`, which it must name when it holds several);
    raises CompareError when there is nothing to analyze."""
    table = pq.read_table(table_path(path)).to_pylist()
    formats = sorted({r["format"] for r in table})
    if fmt is not None:
        table = [r for r in table if r["format"] == fmt]
    elif len(formats) > 1:
        raise CompareError(f"{path}: the table holds formats {', '.join(formats)}; pick one (--format-a/-b)")
    if not table:
        raise CompareError(f"{path}: no evaluated outputs" + (f" in format {fmt!r}" if fmt else ""))
    samples: dict[Key, list[dict[str, Any]]] = {}
    for row in table:
        samples.setdefault((row["split"], row["instance"]), []).append(row)
    for rows in samples.values():
        rows.sort(key=lambda r: r.get("sample_index") or 0)
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    teacher: dict[Key, list[dict[str, Any]]] = {}
    if (folder / "teacher.parquet").is_file():
        for row in pq.read_table(folder / "teacher.parquet").to_pylist():
            key = (row["split"], row["instance"])
            if row["format"] == samples.get(key, [{}])[0].get("format", row["format"]):
                teacher.setdefault(key, []).append(row)
    has_sequences = bool(teacher) and all(r.get("expanded") is not None for rows in samples.values()
                                          for r in rows)
    return EvalFolder(name, Path(path), samples, teacher, has_sequences)


@dataclass(slots=True)
class ModelAnalysis:
    """Everything measured on one model."""

    name: str
    fingerprints: list[dict[str, Any]] = field(default_factory=list)
    efficiency: list[efficiency.ProblemEfficiency] = field(default_factory=list)
    counts: dict[Key, tuple[int, int]] = field(default_factory=dict)
    curve: list[boundary.PassPoint] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _teacher_sequences(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    return {r["strategy"]: list(r.get("expanded") or ()) for r in rows}


def fingerprint_rows(folder: EvalFolder, threshold: float = NOVEL_THRESHOLD) -> list[dict[str, Any]]:
    """One fingerprint per output (empty when the evaluation recorded no expansion order)."""
    if not folder.has_sequences:
        return []
    rows = []
    for key, samples in folder.samples.items():
        teacher = _teacher_sequences(folder.teacher.get(key, []))
        for rec in samples:
            fp: Fingerprint = fingerprint(rec.get("expanded") or [], teacher, threshold,
                                          truncated=bool(rec.get("truncated")))
            rows.append({
                "model": folder.name, "problem_id": rec["problem_id"], "split": key[0], "instance": key[1],
                "sample_index": int(rec.get("sample_index") or 0), "solved": bool(rec["solved"]),
                "label": rec.get("label"), "n_tokens": int(rec.get("n_tokens") or 0),
                "n_expanded": fp.n_expanded, "closest": fp.closest, "similarity": fp.similarity,
                "set_alignment": fp.set_alignment, "novel": fp.novel, "combines": fp.combines,
                "combines_algorithms": fp.combines_algorithms, **tied_best(fp.similarities),
                "segments_json": json.dumps([s.to_dict() for s in fp.segments]),
                "similarities_json": json.dumps(fp.similarities, sort_keys=True),
            })
    return rows


def tied_best(similarities: Mapping[str, float]) -> dict[str, Any]:
    """How many strategies share the best order similarity, and which algorithms they belong to.

    On short searches (Countdown-3: 2 or 3 expansions) most strategies write the same sequence, and
    the closest strategy is then the tie-break's choice, not the output's; these fields say when.
    """
    if not similarities:
        return {"n_tied_best": 0, "tied_families": ""}
    best = max(similarities.values())
    tied = [label for label, value in similarities.items() if value == best]
    return {"n_tied_best": len(tied), "tied_families": "+".join(sorted({family(t) for t in tied}))}


def fingerprint_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Closest-strategy shares, novel and combined shares, mean similarities over all outputs."""
    if not rows:
        return {}
    n = len(rows)
    searched = [r for r in rows if r["closest"] is not None]
    shares = Counter(r["closest"] or NO_SEARCH for r in rows)
    out: dict[str, Any] = {
        "n_outputs": n,
        "closest_share": {k: v / n for k, v in sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))},
        "novel_share": sum(r["novel"] for r in rows) / n,
        "no_search_share": (n - len(searched)) / n,
        "combines_share": sum(r["combines"] for r in rows) / n,
        "combines_algorithms_share": sum(r["combines_algorithms"] for r in rows) / n,
    }
    if searched:
        # outputs whose best-matching strategies span several algorithms: "which algorithm" is undecided
        out["algorithm_undecided_share"] = sum("+" in r["tied_families"] for r in searched) / n
        out["tied_best_mean"] = sum(r["n_tied_best"] for r in searched) / len(searched)
        out["similarity_mean"] = sum(r["similarity"] for r in searched) / len(searched)
        out["set_alignment_mean"] = sum(r["set_alignment"] for r in searched) / len(searched)
    return out


Row = Mapping[str, Any]


def _everyone(row: Row) -> bool:
    return True


def _searched(row: Row) -> bool:
    return row["closest"] is not None


# The fingerprint's pooled figures as ratios over outputs: (what an output adds, whether it is in the
# denominator, bounds). Shares count over all outputs, means over those that wrote a search.
RatioSpec = tuple[Callable[[Row], float], Callable[[Row], bool], tuple[float, float] | None]
FINGERPRINT_RATIOS: dict[str, RatioSpec] = {
    "novel_share": (lambda r: float(r["novel"]), _everyone, (0.0, 1.0)),
    "no_search_share": (lambda r: float(r["closest"] is None), _everyone, (0.0, 1.0)),
    "combines_share": (lambda r: float(r["combines"]), _everyone, (0.0, 1.0)),
    "combines_algorithms_share": (lambda r: float(r["combines_algorithms"]), _everyone, (0.0, 1.0)),
    "algorithm_undecided_share": (lambda r: float("+" in r["tied_families"]), _everyone, (0.0, 1.0)),
    "similarity_mean": (lambda r: float(r["similarity"]), _searched, (0.0, 1.0)),
    "set_alignment_mean": (lambda r: float(r["set_alignment"]), _searched, (0.0, 1.0)),
    "tied_best_mean": (lambda r: float(r["n_tied_best"]), _searched, None),
}


def _groups(rows: Sequence[Row], value: Callable[[Row], float], counted: Callable[[Row], bool]
            ) -> dict[Key, tuple[float, float]]:
    """(sum of `value`, number counted) per problem, over the rows `counted` keeps."""
    out: dict[Key, list[float]] = {}
    for r in rows:
        acc = out.setdefault((r["split"], r["instance"]), [0.0, 0.0])
        if counted(r):
            acc[0] += value(r)
            acc[1] += 1.0
    return {k: (x, m) for k, (x, m) in out.items()}


def _closest_is(label: str) -> Callable[[Row], float]:
    return lambda r: float((r["closest"] or NO_SEARCH) == label)


def _ratios(rows_a: Sequence[Row], rows_b: Sequence[Row] = ()) -> dict[str, Any]:
    """Each fingerprint ratio's groups for one model (or two): {name: (groups A, groups B, bounds)}."""
    labels = sorted({r["closest"] or NO_SEARCH for r in (*rows_a, *rows_b)})
    specs = {**FINGERPRINT_RATIOS,
             **{f"closest_share.{s}": (_closest_is(s), _everyone, (0.0, 1.0)) for s in labels}}
    return {name: (_groups(rows_a, value, counted), _groups(rows_b, value, counted), clip)
            for name, (value, counted, clip) in specs.items()}


def _nest(flat: Mapping[str, clustered.Estimate | None]) -> dict[str, Any]:
    """{"closest_share.dfs-sum": e} as {"closest_share": {"dfs-sum": e.to_dict()}}; empty ratios left out."""
    out: dict[str, Any] = {}
    for name, est in flat.items():
        if est is None:
            continue
        head, _, tail = name.partition(".")
        if tail:
            out.setdefault(head, {})[tail] = est.to_dict()
        else:
            out[head] = est.to_dict()
    return out


def fingerprint_intervals(rows: Sequence[Row]) -> dict[str, Any]:
    """The 95% interval of each fingerprint share and mean, clustered by problem (clustered.py)."""
    return _nest({name: clustered.ratio(ga, clip=clip) for name, (ga, _, clip) in _ratios(rows).items()})


def fingerprint_shift_intervals(rows_a: Sequence[Row], rows_b: Sequence[Row]) -> dict[str, Any]:
    """B - A for each fingerprint share and mean on the problems both hold, paired by problem."""
    ratios = _ratios(rows_a, rows_b)
    return _nest({name: clustered.ratio_shift(ga, gb) for name, (ga, gb, _) in ratios.items()})


def efficiency_rows(folder: EvalFolder) -> tuple[list[efficiency.ProblemEfficiency], str]:
    """Per-problem efficiency and the unit it is counted in."""
    out = []
    unit = efficiency.SEQUENCE_UNIT if folder.has_sequences else efficiency.FALLBACK_UNIT
    for key, samples in folder.samples.items():
        if folder.has_sequences:
            runs = efficiency.teacher_runs_from_rows(folder.teacher.get(key, []))
        else:
            raw = samples[0].get("teacher_json")
            runs = efficiency.teacher_runs_from_json(json.loads(raw)) if raw else []
            samples = [{**r, "expanded": None} for r in samples]
        out.append(efficiency.problem_efficiency(key, samples, runs))
    return out, unit


def teacher_evidence(folder: EvalFolder) -> dict[str, Any]:
    """Teacher-vs-teacher similarities on this evaluation's problems (context for the novel threshold)."""
    pooled: dict[str, list[float]] = {}
    for rows in folder.teacher.values():
        for kind, values in teacher_similarities(_teacher_sequences(rows)).items():
            pooled.setdefault(kind, []).extend(values)
    return {kind: describe(values) for kind, values in pooled.items()}


def analyze_model(folder: EvalFolder, threshold: float = NOVEL_THRESHOLD) -> ModelAnalysis:
    """Fingerprints, efficiency, pass@k and trace lengths of one evaluation."""
    out = ModelAnalysis(folder.name)
    out.fingerprints = fingerprint_rows(folder, threshold)
    out.efficiency, unit = efficiency_rows(folder)
    records = [r for rows in folder.samples.values() for r in rows]
    out.counts = boundary.solve_counts(records)
    out.curve = boundary.pass_curve(out.counts)
    solved = [r for r in records if r["solved"]]
    out.summary = {
        "n_problems": len(folder.samples),
        "n_samples_min": min(len(v) for v in folder.samples.values()),
        "solve_rate": len(solved) / len(records),
        "tokens_mean": sum(int(r.get("n_tokens") or 0) for r in records) / len(records),
        "tokens_mean_solved": _mean(int(r.get("n_tokens") or 0) for r in solved),
        "fingerprint": fingerprint_summary(out.fingerprints),
        "fingerprint_interval": fingerprint_intervals(out.fingerprints),
        "efficiency": efficiency.summarize(out.efficiency, unit),
        "pass_at_k": {str(p.k): p.to_dict() for p in out.curve},
        "teacher_similarity": teacher_evidence(folder),
    }
    if not folder.has_sequences:
        out.summary["fingerprint_note"] = ("no expansion order recorded (evaluate again with expansions=true "
                                           "to fingerprint the algorithm)")
    return out


def _mean(values: Any) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0


def _shift(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, float]:
    """b - a for the numeric leaves both hold, one level of nesting flattened with dots."""
    out: dict[str, float] = {}
    for key in a.keys() & b.keys():
        va, vb = a[key], b[key]
        if isinstance(va, dict) and isinstance(vb, dict):
            for sub, d in _shift(va, vb).items():
                out[f"{key}.{sub}"] = d
        elif isinstance(va, int | float) and isinstance(vb, int | float) and not isinstance(va, bool):
            out[key] = float(vb) - float(va)
    return out


def shifts(a: ModelAnalysis, b: ModelAnalysis) -> dict[str, Any]:
    """What moved from A to B: strategy shares (every strategy either shows), rates, pass@k, efficiency."""
    fa, fb = a.summary["fingerprint"], b.summary["fingerprint"]
    out: dict[str, Any] = {}
    if fa and fb:
        labels = sorted(set(fa["closest_share"]) | set(fb["closest_share"]))
        out["closest_share"] = {s: fb["closest_share"].get(s, 0.0) - fa["closest_share"].get(s, 0.0)
                                for s in labels}
        out["fingerprint"] = {k: v for k, v in _shift(fa, fb).items() if not k.startswith("closest_share")}
        out["fingerprint_interval"] = fingerprint_shift_intervals(a.fingerprints, b.fingerprints)
    out["efficiency"] = _shift(a.summary["efficiency"], b.summary["efficiency"])
    out["pass_at_k"] = {p.k: q.value - p.value for p, q in zip(a.curve, b.curve, strict=False) if p.k == q.k}
    paired = boundary.pass_shift(a.counts, b.counts, [p.k for p in a.curve])
    out["pass_at_k_interval"] = {str(k): e.to_dict() for k, e in paired.items()}
    for key in ("solve_rate", "tokens_mean", "tokens_mean_solved"):
        out[key] = b.summary[key] - a.summary[key]
    return out


def _first(rows: Sequence[Mapping[str, Any]], key: Key) -> dict[str, Any] | None:
    return next((dict(r) for r in rows if (r["split"], r["instance"]) == key and r["sample_index"] == 0),
                None)


def _shown_trace(samples: Sequence[Mapping[str, Any]]) -> tuple[int, str]:
    """The trace to show for a problem: a solving sample if there is one, else sample 0."""
    pick = next((r for r in samples if r["solved"]), samples[0])
    return int(pick.get("sample_index") or 0), (pick.get("prompt") or "") + (pick.get("completion") or "")


def changed_problems(fa: EvalFolder, fb: EvalFolder, a: ModelAnalysis,
                     b: ModelAnalysis) -> list[dict[str, Any]]:
    """Problems both hold whose outcome or closest strategy differs, with both traces.

    change: "solved by A only" / "solved by B only" (in any of the n samples: the coverage sets),
    else "first sample: A solves" / "first sample: B solves", else "strategy" (sample 0's closest
    strategy differs); unchanged problems are left out.
    """
    out = []
    for key in fa.samples:
        if key not in fb.samples:
            continue
        sa, sb = fa.samples[key], fb.samples[key]
        ca, cb = a.counts[key][1], b.counts[key][1]
        pa, pb = _first(a.fingerprints, key), _first(b.fingerprints, key)
        closest_a, closest_b = (pa or {}).get("closest"), (pb or {}).get("closest")
        if (ca > 0) != (cb > 0):
            change = f"solved by {'A' if ca else 'B'} only"
        elif bool(sa[0]["solved"]) != bool(sb[0]["solved"]):
            change = f"first sample: {'A' if sa[0]['solved'] else 'B'} solves"
        elif pa and pb and closest_a != closest_b:
            change = "strategy"
        else:
            continue
        ia, ta = _shown_trace(sa)
        ib, tb = _shown_trace(sb)
        out.append({"problem_id": sa[0]["problem_id"], "split": key[0], "instance": key[1], "change": change,
                    "a_solved": ca, "a_samples": len(sa), "b_solved": cb, "b_samples": len(sb),
                    "a_closest": closest_a, "b_closest": closest_b,
                    "a_similarity": (pa or {}).get("similarity"),
                    "b_similarity": (pb or {}).get("similarity"),
                    "a_sample": ia, "a_trace": ta, "b_sample": ib, "b_trace": tb})
    order = {"solved by A only": 0, "solved by B only": 0, "first sample: A solves": 1,
             "first sample: B solves": 1, "strategy": 2}
    out.sort(key=lambda r: (order[r["change"]], r["split"], r["problem_id"]))
    return out


def side_by_side(left: str, right: str, width: int = 60, max_lines: int = 60) -> str:
    """Two texts in two columns (cut to `width` characters and `max_lines` lines)."""
    la, lb = left.splitlines(), right.splitlines()
    rows = max(len(la), len(lb))
    lines = []
    for i in range(min(rows, max_lines)):
        x = la[i] if i < len(la) else ""
        y = lb[i] if i < len(lb) else ""
        x = x if len(x) <= width else x[:width - 1] + "~"
        lines.append(f"{x:<{width}} | {y[:width]}")
    if rows > max_lines:
        lines.append(f"... ({rows - max_lines} more lines)")
    return "\n".join(lines)


@dataclass(slots=True)
class Analysis:
    summary: dict[str, Any]
    paths: dict[str, Path]
    markdown: str


def analyze(dir_a: str | Path, dir_b: str | Path, out_dir: str | Path, name_a: str = "a", name_b: str = "b",
            threshold: float = NOVEL_THRESHOLD, format_a: str | None = None,
            format_b: str | None = None) -> Analysis:
    """Analyze two evaluations of the same problems; write tables, markdown and plots into `out_dir`."""
    from metacot_core.evaluation import analyze_plots

    fa, fb = load_eval(dir_a, name_a, format_a), load_eval(dir_b, name_b, format_b)
    if not fa.samples.keys() & fb.samples.keys():
        raise CompareError(f"{dir_a} and {dir_b} share no problem (same split and instance)")
    a, b = analyze_model(fa, threshold), analyze_model(fb, threshold)
    cover = boundary.coverage(a.counts, b.counts)
    changed = changed_problems(fa, fb, a, b)
    ids_a = {k: rows[0]["problem_id"] for k, rows in fa.samples.items()}
    summary: dict[str, Any] = {
        "name_a": name_a, "name_b": name_b, "novel_threshold": threshold, "a": a.summary, "b": b.summary,
        "shift": shifts(a, b),
        "coverage": {kind: len(keys) for kind, keys in cover.items()},
        "coverage_ids": {kind: [ids_a[k] for k in cover[kind]] for kind in ("a_only", "b_only")},
        "n_changed": len(changed),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = _write_tables(out, a, b, cover, changed, ids_a, fa, fb)
    text = markdown(summary, changed)
    paths["markdown"] = out / "analysis.md"
    paths["markdown"].write_text(text)
    paths["summary"] = out / "summary.json"
    paths["summary"].write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    for name, path in analyze_plots.all_plots(a, b, out / "plots").items():
        paths[f"plot_{name}"] = path
    return Analysis(summary, paths, text)


def _write(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(list(rows)) if rows else pa.table({}), path)
    return path


def _write_tables(out: Path, a: ModelAnalysis, b: ModelAnalysis, cover: Mapping[str, list[Hashable]],
                  changed: Sequence[Mapping[str, Any]], ids: Mapping[Key, str], fa: EvalFolder,
                  fb: EvalFolder) -> dict[str, Path]:
    eff = [{"model": m.name, **p.to_dict()} for m in (a, b) for p in m.efficiency]
    curve = [{"model": m.name, **p.to_dict()} for m in (a, b) for p in m.curve]
    coverage = [{"problem_id": ids[k], "split": k[0], "instance": k[1], "set": kind,
                 "a_solved": a.counts[k][1], "a_samples": a.counts[k][0], "b_solved": b.counts[k][1],
                 "b_samples": b.counts[k][0]} for kind, keys in cover.items() for k in keys]
    return {
        "fingerprints": _write(a.fingerprints + b.fingerprints, out / "fingerprints.parquet"),
        "efficiency": _write(eff, out / "efficiency.parquet"),
        "pass_at_k": _write(curve, out / "pass_at_k.parquet"),
        "coverage": _write(coverage, out / "coverage.parquet"),
        "changed": _write(changed, out / "changed.parquet"),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _fmt_interval(est: Mapping[str, Any] | None, fallback: Any = None) -> str:
    """"0.523 [0.462, 0.584]" from an Estimate's dict; the bare value when its bounds are NaN."""
    if not est:
        return _fmt(fallback)
    if math.isnan(est["low"]):
        return _fmt(est["value"])
    return f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]"


def markdown(summary: Mapping[str, Any], changed: Sequence[Mapping[str, Any]]) -> str:
    """The analysis as a markdown report: headline numbers, shares, pass@k, coverage, changed problems."""
    na, nb = summary["name_a"], summary["name_b"]
    a, b = summary["a"], summary["b"]
    fa, fb = a["fingerprint"], b["fingerprint"]
    ea, eb = a["efficiency"], b["efficiency"]
    lines = [f"# {na} vs {nb}", "", f"| measure | {na} | {nb} | shift |", "|---|---|---|---|"]

    def row(label: str, x: Any, y: Any) -> None:
        d = y - x if isinstance(x, int | float) and isinstance(y, int | float) else None
        lines.append(f"| {label} | {_fmt(x)} | {_fmt(y)} | {_fmt(d)} |")

    row("problems", a["n_problems"], b["n_problems"])
    row("samples per problem", a["n_samples_min"], b["n_samples_min"])
    row("solve rate (all samples)", a["solve_rate"], b["solve_rate"])
    row("tokens per trace", a["tokens_mean"], b["tokens_mean"])
    row("tokens per solved trace", a["tokens_mean_solved"], b["tokens_mean_solved"])
    ia, ib = a.get("fingerprint_interval", {}), b.get("fingerprint_interval", {})
    ish = summary["shift"].get("fingerprint_interval", {})
    for key in ("similarity_mean", "set_alignment_mean", "novel_share", "no_search_share", "combines_share",
                "combines_algorithms_share", "tied_best_mean", "algorithm_undecided_share"):
        if key in ia or key in ib:
            lines.append(f"| {key.replace('_', ' ')} | {_fmt_interval(ia.get(key))} | "
                         f"{_fmt_interval(ib.get(key))} | {_fmt_interval(ish.get(key))} |")
        else:
            row(key.replace("_", " "), fa.get(key), fb.get(key))
    for key in ("ratio_best_median", "ratio_mix_median", "fewer_than_best_share", "beyond_teacher_share"):
        row(f"efficiency: {key.replace('_', ' ')}", ea.get(key), eb.get(key))
    lines += ["", f"Order similarity: normalized LCS of expansion orders; novel below "
              f"{summary['novel_threshold']:.2f}. Efficiency unit: {ea.get('unit')}.", ""]
    for note in {a.get("fingerprint_note"), b.get("fingerprint_note")} - {None}:
        lines += [f"Note: {note}", ""]
    if fa or fb:
        lines += ["## Closest strategy (share of outputs, 95% interval over problems)", "",
                  f"| strategy | {na} | {nb} | shift |", "|---|---|---|---|"]
        labels = sorted(set(fa.get("closest_share", {})) | set(fb.get("closest_share", {})))
        ca, cb, csh = (side.get("closest_share", {}) for side in (ia, ib, ish))
        lines += [f"| {s} | {_fmt_interval(ca.get(s), fa.get('closest_share', {}).get(s, 0.0))} | "
                  f"{_fmt_interval(cb.get(s), fb.get('closest_share', {}).get(s, 0.0))} | "
                  f"{_fmt_interval(csh.get(s))} |" for s in labels]
        lines.append("")
    lines += ["## pass@k (95% interval over problems; shift paired by problem)", "",
              f"| k | {na} | {nb} | shift |", "|---|---|---|---|"]
    shift_k = summary["shift"].get("pass_at_k_interval", {})
    for k in sorted({int(k) for k in a["pass_at_k"]} | {int(k) for k in b["pass_at_k"]}):
        cells = [_fmt_interval(points.get(str(k))) for points in (a["pass_at_k"], b["pass_at_k"], shift_k)]
        lines.append(f"| {k} | {cells[0]} | {cells[1]} | {cells[2]} |")
    cov, ids = summary["coverage"], summary["coverage_ids"]
    lines += ["", "## Coverage (solved in at least one sample)", "",
              f"both {cov['both']}, neither {cov['neither']}, {na} only {cov['a_only']}, "
              f"{nb} only {cov['b_only']}",
              "", f"- {na} only: {', '.join(ids['a_only'][:50]) or '-'}",
              f"- {nb} only: {', '.join(ids['b_only'][:50]) or '-'}", "",
              "## Beyond the teacher (solved, no strategy solves within the budget)", "",
              f"- {na}: {', '.join(ea.get('beyond_teacher_ids', [])[:50]) or '-'}",
              f"- {nb}: {', '.join(eb.get('beyond_teacher_ids', [])[:50]) or '-'}", ""]
    ta = a.get("teacher_similarity", {})
    if ta:
        lines += ["## Teacher vs teacher (order similarity on these problems)", "",
                  "| pairs | n | mean | p05 | median |", "|---|---|---|---|---|"]
        lines += [f"| {kind} | {d.get('n')} | {_fmt(d.get('mean'))} | {_fmt(d.get('p05'))} | "
                  f"{_fmt(d.get('median'))} |" for kind, d in ta.items()]
        lines.append("")
    lines += [f"## Problems that changed ({len(changed)})", "",
              f"| problem | change | {na} solved | {nb} solved | {na} closest | {nb} closest |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {c['problem_id']} | {c['change']} | {c['a_solved']}/{c['a_samples']} | "
              f"{c['b_solved']}/{c['b_samples']} | {_fmt(c['a_closest'])} | {_fmt(c['b_closest'])} |"
              for c in changed]
    for c in changed[:MAX_CHANGED_TRACES]:
        lines += ["", f"### {c['problem_id']}: {c['change']}", "",
                  f"left: {na} sample {c['a_sample']}, right: {nb} sample {c['b_sample']}", "", "```",
                  side_by_side(c["a_trace"], c["b_trace"]), "```"]
    return "\n".join(lines) + "\n"
