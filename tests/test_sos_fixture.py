"""The Stream of Search fixture (shared/data/sos: 400 records of SoS's own generator, seed 4).

Every trace replays as valid with our judge; our searches and writers reproduce SoS's text; records
import to canonical rows. The full-run test re-runs SoS's generator (our solver and searches, SoS's
random draws) and finds every fixture record in it, byte for byte, beam shuffles included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metacot_core.data.schema import count_trace_tokens
from metacot_core.domains.countdown.problem import CountdownProblem
from metacot_core.domains.countdown.solution import sos_optimal_path
from metacot_core.domains.countdown.sos import SosFormat
from metacot_core.domains.countdown.sos_import import (
    iter_sos_records,
    search_config_for,
    sos_record_to_row,
    sos_reference_run,
)
from metacot_core.search.beam import beam
from metacot_core.search.dfs import dfs

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sos"
FILES = {"train": "train.jsonl", "val": "val.jsonl", "val_target": "val_target.jsonl"}
SOS = SosFormat()

pytestmark = pytest.mark.skipif(not (FIXTURE / "train.jsonl").exists(), reason="SoS fixture not present")


@pytest.fixture(scope="module")
def records() -> list[tuple[str, dict]]:
    out = []
    for split, name in FILES.items():
        out += [(split, rec) for rec in iter_sos_records(FIXTURE / name)]
    assert len(out) == 400
    return out


def test_every_trace_replays_valid_and_solved_matches_rating(records):
    for _, rec in records:
        problem = CountdownProblem(rec["nums"], rec["target"])
        verdict = SOS.replay(problem, rec["search_path"])
        assert verdict.valid, (rec["nums"], rec["target"], verdict.detail)
        assert verdict.solved == (rec["rating"] > 0)
        events = SOS.parse(rec["search_path"])
        assert SOS.prompt(problem) + SOS.linearize(problem, _as_result(events)) == rec["search_path"]


def _as_result(events):
    from metacot_core.search.result import SearchResult

    return SearchResult(algorithm="parsed", events=events)


def test_dfs_and_width1_beam_records_reproduced_exactly(records):
    # DFS is deterministic, and beam of width 1 never consumes randomness (shuffling one child).
    checked = 0
    for _, rec in records:
        cfg = search_config_for(rec)
        if cfg.algorithm == "beam" and cfg.beam_width > 1:
            continue
        problem = CountdownProblem(rec["nums"], rec["target"])
        result = dfs(problem, cfg) if cfg.algorithm == "dfs" else beam(problem, cfg, None)
        assert SOS.prompt(problem) + SOS.linearize(problem, result) == rec["search_path"]
        checked += 1
    assert checked == 194 + 50


def test_optimal_path_reproduced(records):
    differs = 0
    for _, rec in records:
        exact = sos_optimal_path(rec["target"], rec["nums"], rec["solution"], duplicate_bug=True)
        assert exact == rec["optimal_path"]
        problem = CountdownProblem(rec["nums"], rec["target"])
        assert problem.reference_solution() == rec["solution"]  # SoS's generator solution
        differs += sos_optimal_path(rec["target"], rec["nums"], rec["solution"]) != exact
    # Only lists with a repeated operand value are written differently (SoS drops every copy).
    assert differs <= sum(len(set(r["nums"])) < len(r["nums"]) for _, r in records)


def test_import_rows(records):
    for index, (split, rec) in enumerate(records):
        row = sos_record_to_row(rec, split, index, seed=4)
        assert row["prompt"] + row["trace"] == rec["search_path"]
        assert row["format"] == "sos" and row["domain"] == "countdown" and row["seed"] == 4
        assert row["strategy"] in {"dfs-sum", "dfs-mult"} | {f"beam{b}-{h}" for b in range(1, 6)
                                                            for h in ("sum", "mult")}
        assert row["algorithm"] == row["strategy"].split("-")[0].rstrip("12345")
        assert row["solved"] == (rec["rating"] > 0) and row["valid"]
        assert json.loads(row["instance"]) == {"numbers": rec["nums"], "target": rec["target"]}
        if row["solved"]:
            assert CountdownProblem(rec["nums"], rec["target"]).verify(row["solution"])
        assert row["n_expanded"] >= 1 and row["n_trace_tokens"] == count_trace_tokens(row["trace"])
        if not row["trace"]:  # SoS's DFS writes only the prompt when every root child is pruned
            assert rec["search_type"] == "dfs" and not row["solved"]


def test_iter_json_array_and_folder(tmp_path, records):
    sample = [rec for _, rec in records[:5]]
    (tmp_path / "a.json").write_text(json.dumps(sample, indent=4))
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in sample[:2]) + "\n")
    assert list(iter_sos_records(tmp_path / "a.json")) == sample
    assert list(iter_sos_records(tmp_path)) == sample + sample[:2]
    (tmp_path / "bad.json").write_text('[{"nums": [1, 2]}, {"nums": ')
    with pytest.raises(ValueError, match="bad.json"):
        list(iter_sos_records(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="search_type"):
        sos_record_to_row({**sample[0], "search_type": "astar"}, "train", 0, 0)


@pytest.mark.e2e
def test_full_reference_run_reproduces_every_record(records):
    """SoS ran 10,000 train + 1,000 val_target + 1,000 val problems with seed 4; the fixture samples it."""
    wanted = {(split, tuple(rec["nums"]), rec["target"]): rec for split, rec in records}
    found = 0
    for split, rec in sos_reference_run(seed=4, num_samples=10_000, val_samples=1_000):
        key = (split, tuple(rec["nums"]), rec["target"])
        if key in wanted:
            assert rec == wanted.pop(key)
            found += 1
    assert found == 400 and not wanted
