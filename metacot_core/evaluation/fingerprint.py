"""Which algorithm a search runs, told by the order of its expansions and not only by its states.

Stream of Search's alignment (metrics.alignment) compares state *sets*: BFS and DFS over the same
tree get 1.0 against each other. Here a trace becomes its **expansion sequence** (the states it
expanded, each the first time, in order: teacher.check_tree keeps it) and two sequences are compared by

    order similarity = LCS(a, b) / max(|a|, |b|)       (normalized longest common subsequence)

Why LCS: it is order-aware (BFS and DFS over one tree share all states but only a subsequence of
their order); a few inserted or skipped states cost one each instead of shifting everything after
them (an edit distance with substitutions would charge a swap twice and a Kendall tau needs equal
sets); it lies in [0, 1] and, normalized by the larger length like SoS's alignment, it never exceeds
the set alignment of the expanded states, reaching it exactly when the shared states come in the same
order. Sequences hold distinct keys, so the LCS is a longest increasing subsequence of positions:
O(n log n), exact.

**Novel searches.** An output whose best similarity to every strategy of the mix is below
`NOVEL_THRESHOLD` (0.75) resembles no teacher strategy. The threshold comes from teacher-vs-teacher
similarities measured by scripts/fingerprint_thresholds.py (Countdown, SoS's 12-strategy mix, node
budget 10,000, the 200 problems of the SoS reference val_target + val files; each strategy at seed 1
against the mix at seed 0; beam breaks ties at random, DFS is deterministic):
  - same strategy, other seed: n 2400, mean 0.936, median 1.0, 5th percentile 0.750, min 0.50;
  - best match of a re-seeded run in the mix (what a genuine teacher search scores here): mean 0.940,
    5th percentile 0.778, min 0.571;
  - best match among the *other* strategies (leave-one-out): mean 0.69, median 0.714, 5th pct 0.30;
  - distinct strategies on one problem, every pair: n 13200, median 0.258, 5th percentile 0.057.
So 0.75 is the 5th percentile of a genuine teacher search's score (0.778 rounded down, equal to the
same-strategy 5th percentile): an output below it is further from its closest strategy than 95% of
teacher searches re-run with other random choices, i.e. the teacher mix does not explain it. The
minimum over distinct pairs (0.013) would call almost nothing novel: distinct strategies share
little order, so it measures how different the teachers are, not how far a search may stray from
one. Neighbouring strategies (beam3 vs beam4, leave-one-out median 0.71) sit close to the
threshold: the fingerprint tells algorithms apart reliably, beam widths only roughly. The analysis
recomputes the distinct and leave-one-out numbers on the evaluation's own teacher runs and reports
them beside the verdicts (another domain or mix may call for another threshold: `--novel-threshold`).

**Combines strategies.** `segment` splits a sequence into contiguous segments, each labelled with
the strategy whose sequence it follows best, maximizing the states explained (per segment: its LCS
with that strategy's whole sequence) minus `SWITCH_PENALTY` x n per segment (at least 1.5 states);
adjacent segments differ in label and are at least `MIN_SEGMENT_SHARE` of the trace long. A switch
must explain 12% of the trace (and 2 states) more than one strategy does. Measured on the re-seeded
teacher runs above (1683 runs with at least 6 expansions): 3.0% are split (nearly all between two
beam widths), 0.2% into segments of different algorithms (`family`); without the 1.5-state floor
5.6% were split, with a penalty of 0.10 8.3%, with 0.08 14.8%.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

NOVEL_THRESHOLD = 0.75
SWITCH_PENALTY = 0.12
MIN_SEGMENT_SHARE = 0.2
MIN_SEGMENT_STATES = 3
MIN_SWITCH_STATES = 1.5  # the penalty's floor: on a short trace a switch must explain 2 states more
MAX_BOUNDARIES = 32  # candidate segment boundaries per trace (cost: boundaries^2 x strategies LIS runs)


def key_text(key: Any) -> str:
    """A state key as stable text (tables store sequences as lists of strings, compared by equality)."""
    return json.dumps(_plain(key), separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def family(label: str) -> str:
    """The algorithm of a strategy label: "beam3-mult" -> "beam", "dfs-sum" -> "dfs", "astar" -> "astar"."""
    return label.split("-")[0].rstrip("0123456789") or label


def distinct(seq: Iterable[Hashable]) -> list[Hashable]:
    """First occurrences only, in order (an expansion sequence expands each state once)."""
    seen: set = set()
    out = []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Longest common subsequence of two sequences of distinct items (duplicates: first kept)."""
    pos = {x: i for i, x in reversed(list(enumerate(b)))}
    tails: list[int] = []  # patience sorting: tails[k] = smallest end of an increasing run of k + 1
    for x in distinct(a):
        p = pos.get(x)
        if p is None:
            continue
        k = bisect_left(tails, p)
        if k == len(tails):
            tails.append(p)
        else:
            tails[k] = p
    return len(tails)


def order_similarity(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """LCS(a, b) / max(|a|, |b|) over distinct items; 0 when both are empty (as SoS's alignment)."""
    a, b = distinct(a), distinct(b)
    larger = max(len(a), len(b))
    return lcs_length(a, b) / larger if larger else 0.0


def set_alignment(a: Iterable[Hashable], b: Iterable[Hashable]) -> float:
    """SoS's alignment of the two state sets, beside the order similarity."""
    sa, sb = set(a), set(b)
    larger = max(len(sa), len(sb))
    return len(sa & sb) / larger if larger else 0.0


@dataclass(slots=True)
class Segment:
    """States [start, end) of a sequence, best explained by `strategy` (`matched` of them in order)."""

    start: int
    end: int
    strategy: str
    matched: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Fingerprint:
    """The verdict on one output: closest strategy by order, and whether it is novel or combined."""

    n_expanded: int
    closest: str | None
    similarity: float
    set_alignment: float
    novel: bool
    combines: bool  # segments best explained by different strategies
    combines_algorithms: bool = False  # ... by strategies of different algorithms (dfs then beam)
    segments: list[Segment] = field(default_factory=list)
    similarities: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["segments"] = [s.to_dict() for s in self.segments]
        return out


def closest_strategy(similarities: Mapping[str, float],
                     alignments: Mapping[str, float] | None = None) -> str | None:
    """The strategy with the highest order similarity (ties: higher set alignment, then mix order)."""
    if not similarities:
        return None
    alignments = alignments or {}
    order = {label: i for i, label in enumerate(similarities)}
    return max(similarities, key=lambda s: (similarities[s], alignments.get(s, 0.0), -order[s]))


def fingerprint(model: Sequence[Hashable], teacher: Mapping[str, Sequence[Hashable]],
                threshold: float = NOVEL_THRESHOLD, penalty: float = SWITCH_PENALTY,
                min_share: float = MIN_SEGMENT_SHARE, truncated: bool = False) -> Fingerprint:
    """Closest strategy, its similarity, novelty and segmentation of one output. Never raises.

    An output with no legal expanded state (empty, garbage, illegal from its first line) gets the
    verdict "no search": no closest strategy, similarity 0, neither novel nor combined. A `truncated`
    output (cut by the token limit) is compared with each strategy's first as many expansions as it
    made: it did not get to finish, and a faithful DFS cut after 40 of 120 states is still DFS.
    """
    model = distinct(model)
    if not model or not teacher:
        return Fingerprint(len(model), None, 0.0, 0.0, False, False, False)
    if truncated:
        teacher = {label: distinct(seq)[:len(model)] for label, seq in teacher.items()}
    sims = {label: order_similarity(model, seq) for label, seq in teacher.items()}
    aligns = {label: set_alignment(model, seq) for label, seq in teacher.items()}
    best = closest_strategy(sims, aligns)
    assert best is not None
    segments = segment(model, teacher, penalty, min_share)
    return Fingerprint(len(model), best, sims[best], aligns[best], sims[best] < threshold,
                       len(segments) > 1, len({family(s.strategy) for s in segments}) > 1, segments, sims)


def _boundaries(n: int) -> list[int]:
    step = max(1, math.ceil(n / MAX_BOUNDARIES))
    return sorted(set(range(0, n, step)) | {n})


def _lcs_from(model: Sequence[Hashable], positions: Mapping[Hashable, int], start: int,
              ends: Sequence[int]) -> dict[int, int]:
    """LCS(model[start:end], strategy) for each end in `ends`, by one online patience sort."""
    out: dict[int, int] = {}
    tails: list[int] = []
    wanted = {e for e in ends if e > start}
    for j in range(start, len(model)):
        p = positions.get(model[j])
        if p is not None:
            k = bisect_left(tails, p)
            if k == len(tails):
                tails.append(p)
            else:
                tails[k] = p
        if j + 1 in wanted:
            out[j + 1] = len(tails)
    return out


def segment(model: Sequence[Hashable], teacher: Mapping[str, Sequence[Hashable]],
            penalty: float = SWITCH_PENALTY, min_share: float = MIN_SEGMENT_SHARE) -> list[Segment]:
    """Contiguous segments of `model`, each labelled by the strategy it follows best (see module doc).

    Maximizes sum over segments of LCS(segment, strategy) - max(penalty * n, MIN_SWITCH_STATES) per
    segment (a switch gaining a single state on a 7-state trace is noise, not a second strategy), adjacent
    segments labelled differently, every segment at least max(MIN_SEGMENT_STATES, min_share * n)
    states; boundaries are searched on a grid of at most MAX_BOUNDARIES points (every state for
    short traces). One segment means the whole trace follows one strategy.
    """
    model = distinct(model)
    n = len(model)
    if n == 0 or not teacher:
        return []
    labels = list(teacher)
    positions = {s: {x: i for i, x in reversed(list(enumerate(distinct(teacher[s]))))} for s in labels}
    grid = _boundaries(n)
    min_len = max(MIN_SEGMENT_STATES, math.ceil(min_share * n))
    cost = max(penalty * n, MIN_SWITCH_STATES)
    lcs = {(i, s): _lcs_from(model, positions[s], i, grid) for i in grid[:-1] for s in labels}
    # best[j][s]: the best score of a segmentation of model[:j] whose last segment is labelled s
    best: dict[int, dict[str, tuple[float, int | None, str | None]]] = {0: {}}
    for j in grid[1:]:
        best[j] = {}
        for i in grid:
            if i >= j:
                break
            if j - i < min_len and not (i == 0 and j == n):
                continue
            prev = best.get(i)
            if prev is None or (i > 0 and not prev):
                continue
            for s in labels:
                gain = lcs[(i, s)].get(j, 0) - cost
                if i == 0:
                    score, back = gain, None
                else:
                    options = [(v[0], t) for t, v in prev.items() if t != s]
                    if not options:
                        continue
                    score_prev, back = max(options)
                    score = score_prev + gain
                if s not in best[j] or score > best[j][s][0] + 1e-12:
                    best[j][s] = (score, i, back)
    end = best[n]
    order = {s: k for k, s in enumerate(labels)}
    label = max(end, key=lambda s: (end[s][0], -order[s]))
    segments: list[Segment] = []
    j: int | None = n
    while label is not None and j is not None and j > 0:
        _, i, back = best[j][label]
        assert i is not None
        segments.append(Segment(i, j, label, lcs[(i, label)].get(j, 0)))
        j, label = i, back
    segments.reverse()
    return segments


def teacher_similarities(runs: Mapping[str, Sequence[Hashable]],
                         reseeded: Mapping[str, Sequence[Hashable]] | None = None) -> dict[str, list[float]]:
    """Teacher-vs-teacher similarities on one problem, the evidence for the novel threshold.

    `runs`: strategy -> expansion sequence. Returns "distinct" (every pair of different strategies)
    and "leave_one_out" (each strategy's best match among the others); with `reseeded` (the same
    strategies at another seed) also "same_strategy" (each against itself re-seeded) and
    "best_of_mix" (each re-seeded run's best match in the mix: what a genuine teacher search scores).
    """
    labels = [s for s in runs if runs[s]]
    out: dict[str, list[float]] = {"distinct": [], "leave_one_out": []}
    sim = {(a, b): order_similarity(runs[a], runs[b]) for a in labels for b in labels if a < b}
    for (_, _), value in sim.items():
        out["distinct"].append(value)
    for a in labels:
        others = [sim[(min(a, b), max(a, b))] for b in labels if b != a]
        if others:
            out["leave_one_out"].append(max(others))
    if reseeded:
        out["same_strategy"], out["best_of_mix"] = [], []
        for a, seq in reseeded.items():
            if not seq or a not in runs:
                continue
            out["same_strategy"].append(order_similarity(seq, runs[a]))
            out["best_of_mix"].append(max(order_similarity(seq, runs[b]) for b in labels))
    return out


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (nan for no values)."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def describe(values: Sequence[float]) -> dict[str, float]:
    """n, mean, min, 5th percentile, median of a list of similarities (for the threshold table)."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": sum(values) / len(values), "min": min(values),
            "p05": quantile(values, 0.05), "median": quantile(values, 0.5)}
