"""Sokoban as Searchformer uses it (Lehnert et al. 2024): 7x7 levels, 2 boxes, A* search dynamics.

level.py holds the grid and its JSON form, problem.py the rules and heuristics, generate.py the seeded
levels and splits, astar_trace.py and solution_trace.py the trace formats, metrics.py the plan
metrics; importing plugin.py registers the domain and formats.
"""

from metacot_core.domains.sokoban.generate import SokobanConfig, SokobanDomain
from metacot_core.domains.sokoban.level import Level
from metacot_core.domains.sokoban.problem import SokobanProblem

__all__ = ["Level", "SokobanConfig", "SokobanDomain", "SokobanProblem"]
