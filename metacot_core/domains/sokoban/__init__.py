"""Sokoban as Searchformer uses it (Lehnert et al. 2024): 7x7 levels, 2 boxes, A* search dynamics.

level.py holds the grid and its JSON form, problem.py the rules and heuristics, generate.py the seeded
levels and splits, astar_trace.py and solution_trace.py the trace formats, metrics.py the plan
metrics. Import paths only: the registry imports this file when it starts.
"""

DOMAIN = "metacot_core.domains.sokoban.generate:SokobanDomain"
FORMATS = {
    "sokoban-astar": "metacot_core.domains.sokoban.astar_trace:SokobanAstarFormat",
    "sokoban-solution": "metacot_core.domains.sokoban.solution_trace:SokobanSolutionFormat",
}
