"""Sokoban as Searchformer uses it (Lehnert et al. 2024): 7x7 levels, 2 boxes, A* search dynamics.

level.py holds the grid and its JSON form, problem.py the rules and heuristics, generate.py the seeded
levels and splits, astar_trace.py and solution_trace.py the trace formats, metrics.py the plan
metrics; importing plugin.py registers the domain and formats.
"""

# Import paths only, loaded on first use: metacot_core.registry imports every domain package while it
# is itself being imported, so an eager import of the search code here is a circular import.
_LAZY = {"SokobanConfig": "generate", "SokobanDomain": "generate", "Level": "level",
         "SokobanProblem": "problem"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
