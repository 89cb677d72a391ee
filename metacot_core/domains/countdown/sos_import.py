"""Stream of Search datasets in, canonical rows out; and a faithful replica of SoS's generator run.

`iter_sos_records(path)` streams SoS records from a JSON array file (what `countdown_generate.py`
writes), a JSONL file, or a folder of them, without loading a whole file. `sos_record_to_row` turns one
record into the canonical dataset columns (DESIGN.md), judging its trace with our replay validator:
`solved` and `solution` come from the validator, not from SoS's fields.

`sos_reference_run(seed, ...)` re-runs SoS's `countdown_generate.py --search random` with our fast
solver and searches, drawing from one `random.Random(seed)` in exactly the order SoS draws from its
global `random`; so it yields SoS's records byte for byte (the fixture test checks all 400 of
`shared/data/sos`, a sample of the seed-4 run). It is the interop proof, and a way to make SoS data.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from metacot_core.ascii_text import is_ascii_digits
from metacot_core.data.schema import count_trace_tokens
from metacot_core.domains.countdown.problem import CountdownProblem, reference_solution, solvable_batch
from metacot_core.domains.countdown.solution import sos_optimal_path
from metacot_core.domains.countdown.sos import SosFormat
from metacot_core.search.beam import beam
from metacot_core.search.config import SearchConfig
from metacot_core.search.dfs import dfs

_REQUIRED = ("nums", "target", "search_path")
_MAX_NODES = {2: 4, 3: 48, 4: 1152, 5: 46080}  # SoS's rating denominators per count of numbers
_CHUNK = 1 << 20


def iter_sos_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """SoS records (dicts) from a .json array, a .jsonl file, or a folder of those (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
        if not files:
            raise ValueError(f"{path}: no .json or .jsonl files")
        for file in files:
            yield from iter_sos_records(file)
        return
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such SoS file")
    with path.open(encoding="utf-8") as fh:
        head = fh.read(1)
        while head and head.isspace():
            head = fh.read(1)
        if head == "[":
            yield from _iter_json_array(fh, path)
            return
        if not head:
            return
        yield _record(head + fh.readline(), path, 1)
        for lineno, line in enumerate(fh, start=2):
            if line.strip():
                yield _record(line, path, lineno)


def _record(line: str, path: Path, lineno: int) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{lineno}: not a JSON record ({err.msg})") from None
    if not isinstance(rec, dict):
        raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
    return rec


def _iter_json_array(fh: Any, path: Path) -> Iterator[dict[str, Any]]:
    """Objects of a top-level JSON array, decoded one at a time from a growing buffer."""
    decoder = json.JSONDecoder()
    buf, pos, count = "", 0, 0
    eof = False
    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n,":
            pos += 1
        if pos < len(buf) and buf[pos] == "]":
            return
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as err:
            if eof:
                if not buf[pos:].strip():
                    raise ValueError(f"{path}: JSON array is not closed") from None
                raise ValueError(f"{path}: record {count}: invalid JSON ({err.msg})") from None
            chunk = fh.read(_CHUNK)
            eof = not chunk
            buf = buf[pos:] + chunk
            pos = 0
            continue
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: record {count}: expected a JSON object, got {type(obj).__name__}")
        count += 1
        yield obj
        pos = end


def search_config_for(record: dict[str, Any]) -> SearchConfig:
    """SoS's (search_type, heuristic) as our SearchConfig: "bfs_3" is beam search of width 3."""
    stype = str(record.get("search_type", ""))
    heuristic = str(record.get("heuristic", "")).removesuffix("_heuristic")
    if heuristic not in ("sum", "mult"):
        raise ValueError(f"heuristic: unknown SoS heuristic {record.get('heuristic')!r}")
    if stype == "dfs":
        return _config("dfs", heuristic, 1)
    if stype.startswith("bfs_") and is_ascii_digits(stype[4:]) and int(stype[4:]) >= 1:
        return _config("beam", heuristic, int(stype[4:]))
    raise ValueError(f"search_type: unknown SoS search type {stype!r} (expected dfs or bfs_<b>)")


@lru_cache(maxsize=64)
def _config(algorithm: str, heuristic: str, width: int) -> SearchConfig:
    """Shared configs: building a SearchConfig looks up the search registry (plugin entry points)."""
    return SearchConfig(algorithm=algorithm, heuristic=heuristic, beam_width=width)


def sos_record_to_row(record: dict[str, Any], split: str, index: int, seed: int) -> dict[str, Any]:
    """The canonical dataset row for one SoS record (extra columns: SoS's own fields and the verdict).

    `algorithm` is the search ("dfs", "beam") and `strategy` its SearchConfig.label ("dfs-sum",
    "beam3-mult"), as in generated datasets, so cards and filters treat both alike; `n_expanded`
    counts the states the trace expands (what our searches report); `n_trace_tokens` uses the dataset
    schema's word-level count.
    """
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise ValueError(f"SoS record {index}: missing fields {', '.join(missing)}")
    problem = CountdownProblem(record["nums"], record["target"])
    cfg = search_config_for(record)
    fmt = SosFormat()
    prompt = fmt.prompt(problem)
    text = str(record["search_path"])
    trace = text[len(prompt):] if text.startswith(prompt) else text
    verdict = fmt.replay(problem, prompt + trace)
    return {
        "problem_id": f"countdown/{split}/{index:06d}",
        "domain": "countdown",
        "split": split,
        "instance": json.dumps(problem.to_instance(), sort_keys=True),
        "prompt": prompt,
        "trace": trace,
        "format": "sos",
        "algorithm": cfg.algorithm,
        "solved": verdict.solved,
        "solution": list(verdict.solution or []) if verdict.solved else [],
        "n_expanded": verdict.states_visited,
        "n_trace_tokens": count_trace_tokens(trace),
        "seed": int(seed),
        "index": int(index),
        "strategy": cfg.label,
        "n_trace_chars": len(trace),
        "valid": verdict.valid,
        "reference_solution": [str(s) for s in record.get("solution") or []],
        "sos_rating": float(record.get("rating", 0.0)),
    }


# --- SoS's generator, replayed ------------------------------------------------------------------

def _draw(rng: random.Random, target: int, size: int, max_target: int) -> tuple[list[int], list[str]]:
    """SoS's `CountDown.generate`: numbers 1..max_target-1 until solvable; the first solution found.

    SoS draws one list at a time with `randint`; we draw 8 the same way, check them at once, then
    rewind the generator and draw again up to the first solvable one, so its state ends where SoS's does.
    """
    top = max_target - 1
    while True:
        start = rng.getstate()
        rows = [[rng.randint(1, top) for _ in range(size)] for _ in range(8)]
        hits = np.flatnonzero(solvable_batch(np.array(rows), target))
        if len(hits):
            rng.setstate(start)
            for _ in range(int(hits[0]) + 1):
                nums = [rng.randint(1, top) for _ in range(size)]
            steps = reference_solution(nums, target)
            if steps is None:  # cannot happen: the batch check and the solver agree (tested)
                raise RuntimeError(f"countdown: {nums} -> {target} judged solvable but not solved")
            return nums, steps


def sos_rating(search_path: str, size: int) -> float:
    """SoS's rating: 1 - (explored + 1) / max nodes when the goal was reached, else 0."""
    if "Goal Reached" not in search_path:
        return 0.0
    return max(0.0, 1.0 - (search_path.count("Exploring Operation") + 1) / _MAX_NODES[size])


def sos_reference_run(seed: int = 0, num_samples: int = 1000, val_samples: int = 1000,
                      min_range: int = 4, start_range: int = 4,
                      max_target: int = 100) -> Iterator[tuple[str, dict[str, Any]]]:
    """(split, record) as SoS's `countdown_generate.py --search random` writes them, in its order.

    Splits come in SoS's order: train (`num_samples`), val_target, val (`val_samples` each).
    """
    rng = random.Random(seed)
    targets = list(range(10, max_target + 1))
    rng.shuffle(targets)
    held = targets[:len(targets) // 10]
    kept = targets[len(targets) // 10:]
    fmt = SosFormat()
    train_solutions: set[tuple[str, ...]] = set()
    for split, pool, count in (("train", kept, num_samples), ("val_target", held, val_samples),
                               ("val", kept, val_samples)):
        for _ in range(count):
            size = rng.randint(min_range, start_range)
            target = rng.choice(pool)
            nums, steps = _draw(rng, target, size, max_target)
            # SoS writes the optimal path before re-drawing val problems that repeat a train solution.
            optimal = sos_optimal_path(target, nums, steps, duplicate_bug=True)
            if split == "val":
                while tuple(steps) in train_solutions:
                    target = rng.choice(pool)
                    nums, steps = _draw(rng, target, size, max_target)
            heuristic = rng.choice(("sum", "mult"))
            problem = CountdownProblem(nums, target)
            if rng.choice(("dfs", "bfs")) == "dfs":
                result = dfs(problem, _config("dfs", heuristic, 1), rng)
                search_type = "dfs"
            else:
                width = rng.choice((1, 2, 3, 4, 5))
                result = beam(problem, _config("beam", heuristic, width), rng)
                search_type = f"bfs_{width}"
            path = fmt.prompt(problem) + fmt.linearize(problem, result)
            if split == "train":
                train_solutions.add(tuple(steps))
            yield split, {
                "nums": nums, "target": target, "solution": steps, "search_path": path,
                "rating": sos_rating(path, size), "search_type": search_type, "optimal_path": optimal,
                "heuristic": f"{heuristic}_heuristic",
            }
