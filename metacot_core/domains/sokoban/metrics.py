"""What Sokoban adds to the evaluation: plan quality, deadlocks written, and search steps against A*.

Three pieces, each a pure function, that the evaluator asks through the hooks of problems/base.py
(SokobanProblem.eval_reference and completion_fields, SokobanDomain.plan_metrics):
- `reference(problem, count_tokens)`, once per level: the optimal plan length and the deterministic
  A* teacher's trace size on the same level (steps = create + close lines; closes; tokens).
- `completion_fields(problem, text)`, once per model output: deadlocked states it wrote (a box off a
  dock on a cell from which no dock can be reached, see level.dead_squares; counted whether or not
  the trace is otherwise legal) and its search steps (create + close lines of the readable prefix).
- `plan_metrics(records)` over per-completion records that carry both (first sample per level): the
  generic optimal rate, SWC and ILR (as for mazes: Searchformer's measures), deadlocks per trace and
  the share of traces with one, and Searchformer's "fewer search steps" claim: over levels solved
  optimally, model steps / A* steps in total (`search_steps_ratio`; 1 - ratio is the reduction), and
  the share of those levels where the model took fewer steps than A*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from metacot_core.domains.sokoban.astar_trace import SokobanAstarFormat, parse_steps
from metacot_core.evaluation.metrics import by_problem
from metacot_core.evaluation.metrics import plan_metrics as generic_plan_metrics
from metacot_core.search.astar import astar
from metacot_core.search.config import SearchConfig
from metacot_core.search.events import Close, Create

if TYPE_CHECKING:  # annotations only: problem.py's hooks import this module
    from metacot_core.domains.sokoban.problem import SokobanProblem

REFERENCE_BUDGET = 200_000  # A* closes allowed for the reference run on one level


def reference(problem: SokobanProblem, count_tokens: Callable[[str], int] | None = None) -> dict[str, Any]:
    """Optimal plan length and the A* teacher's steps, closes and (with `count_tokens`) trace tokens."""
    result = astar(problem, SearchConfig(algorithm="astar", node_budget=REFERENCE_BUDGET))
    if not result.solved:
        return {}
    steps = sum(1 for e in result.events if isinstance(e, Create | Close))
    out: dict[str, Any] = {"optimal_length": len(result.solution or []), "astar_closes": result.n_expanded,
                           "astar_steps": steps}
    if count_tokens is not None:
        out["astar_tokens"] = count_tokens(SokobanAstarFormat().linearize(problem, result))
    return out


def completion_fields(problem: SokobanProblem, text: str) -> dict[str, int]:
    """Deadlocked states written and search steps (create/close) in a model's output. Never raises."""
    steps, _ = parse_steps(text if isinstance(text, str) else "")
    seen = set()
    search_steps = 0
    for step in steps:
        if step.kind != "plan":
            search_steps += 1
            if step.state is not None and _well_formed(problem, step.state):
                seen.add(step.state)
    seen.update(_plan_states(problem, [s.cell for s in steps if s.kind == "plan" and s.cell is not None]))
    return {"deadlocks": sum(1 for s in seen if problem.is_deadlocked(s)), "search_steps": search_steps}


def _well_formed(problem: SokobanProblem, state: Any) -> bool:
    """A state with the level's number of boxes, all on floor (others cannot be judged for deadlock)."""
    player, boxes = state
    return len(boxes) == len(problem.level.boxes) and all(problem.level.is_floor(c) for c in (player, *boxes))


def _plan_states(problem: SokobanProblem, cells: Sequence[tuple[int, int]]) -> list[Any]:
    """States a written plan walks through from the start, up to its first illegal move."""
    state = problem.initial_state()
    out = [state]
    for cell in cells[1:]:
        nxt = problem.step_toward(state, cell)
        if nxt is None:
            break
        out.append(nxt)
        state = nxt
    return out


def plan_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """See the module docstring. Record keys used: problem_id, sample_index, solved, plan_length,
    optimal_length, n_tokens, astar_tokens, deadlocks, search_steps, astar_steps."""
    firsts = [recs[0] for recs in by_problem(records).values()]
    firsts = [r for r in firsts if r.get("optimal_length") is not None]
    if not firsts:
        return {}
    out: dict[str, Any] = {"n_levels": len(firsts), **generic_plan_metrics(firsts)}
    counted = [int(r["deadlocks"]) for r in firsts if r.get("deadlocks") is not None]
    if counted:
        out["deadlocks_per_trace"] = sum(counted) / len(counted)
        out["deadlock_trace_share"] = sum(1 for n in counted if n > 0) / len(counted)
    out.update(search_step_metrics(firsts))
    return out


def search_step_metrics(firsts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Model search steps against A*'s on the levels the model solved optimally (empty when none)."""
    both = [r for r in firsts if r.get("solved") and r.get("plan_length") == r.get("optimal_length")
            and r.get("search_steps") is not None and r.get("astar_steps")]
    if not both:
        return {}
    model = sum(int(r["search_steps"]) for r in both)
    teacher = sum(int(r["astar_steps"]) for r in both)
    fewer = sum(1 for r in both if int(r["search_steps"]) < int(r["astar_steps"]))
    return {"search_steps_ratio": model / teacher, "fewer_steps_share": fewer / len(both),
            "n_optimal_with_steps": len(both)}
