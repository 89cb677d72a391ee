"""Sokoban as Searchformer uses it (Lehnert et al. 2024): 7x7 levels, 2 boxes, A* search dynamics.

level.py holds the grid and its JSON form, problem.py the rules, heuristics and the hooks the generic
code asks, generate.py the seeded levels and splits (the Domain), astar_trace.py Searchformer's A*
trace (`sokoban-astar`: its states are the worker and every box, more than the generic `astar`
format's one cell), solution_trace.py the plan-only control (the generic `solution` format hands
Sokoban problems to it), metrics.py the plan metrics (deadlocks, search steps against A*). The generic
`mcts` format needs nothing of its own (its prompt is `problem ` + Searchformer's). Import paths only:
the registry imports this file when it starts.
"""

DOMAIN = "metacot_core.domains.sokoban.generate:SokobanDomain"
FORMATS = {
    "sokoban-astar": "metacot_core.domains.sokoban.astar_trace:SokobanAstarFormat",
}
