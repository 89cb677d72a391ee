"""Grid mazes (Searchformer): the problem with its Searchformer prompt. Its traces are the generic
`astar`, `mcts` and `solution` formats; its plans are scored by the generic plan metrics (optimal
rate, SWC, ILR) because the problem declares `optimal_plans`.
"""

DOMAIN = "metacot_core.domains.maze.problem:MazeDomain"
FORMATS: dict[str, str] = {}
