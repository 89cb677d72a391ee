"""Name -> implementation registries for domains, search algorithms and trace formats.

Built-ins are listed as import paths (imported on first use, so `import metacot_core` stays light).
Plugins add their own through the entry-point groups `metacot.domains`, `metacot.search` and
`metacot.formats` in their package metadata, or by calling `register_*` at import time.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

_BUILTIN: dict[str, dict[str, str]] = {
    "domains": {
        "countdown": "metacot_core.problems.countdown:CountdownDomain",
        "maze": "metacot_core.problems.maze:MazeDomain",
    },
    "search": {
        "bfs": "metacot_core.search.bfs:bfs",
        "dfs": "metacot_core.search.dfs:dfs",
        "beam": "metacot_core.search.beam:beam",
        "astar": "metacot_core.search.astar:astar",
        "mcts": "metacot_core.search.mcts:mcts",
    },
    "formats": {
        "sos": "metacot_core.traces.sos:SosFormat",
        "sos-arith": "metacot_core.traces.sos_arith:SosArithFormat",
        "astar": "metacot_core.traces.astar:AstarFormat",
        "mcts": "metacot_core.traces.mcts:MctsFormat",
        "solution": "metacot_core.traces.solution:SolutionFormat",
    },
}
_EXTRA: dict[str, dict[str, Any]] = {"domains": {}, "search": {}, "formats": {}}
_CACHE: dict[tuple[str, str], Any] = {}


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _lookup(kind: str, name: str) -> Any:
    key = (kind, name)
    if key in _CACHE:
        return _CACHE[key]
    if name in _EXTRA[kind]:
        obj = _EXTRA[kind][name]
    elif name in _BUILTIN[kind]:
        obj = _load(_BUILTIN[kind][name])
    else:
        plugins = {ep.name: ep for ep in entry_points(group=f"metacot.{kind}")}
        if name not in plugins:
            known = sorted(set(_BUILTIN[kind]) | set(_EXTRA[kind]) | set(plugins))
            raise ValueError(f"unknown {kind[:-1] if kind != 'search' else 'search algorithm'} "
                             f"{name!r}; known: {', '.join(known)}")
        obj = plugins[name].load()
    if isinstance(obj, type):
        obj = obj()
    _CACHE[key] = obj
    return obj


@functools.cache
def _plugin_names(kind: str) -> frozenset[str]:
    """Entry-point names of `kind`, read once: scanning package metadata costs milliseconds, and
    `names` runs on every config validation."""
    return frozenset(ep.name for ep in entry_points(group=f"metacot.{kind}"))


def names(kind: str) -> list[str]:
    """Every registered name of `kind` ("domains", "search", "formats")."""
    return sorted(set(_BUILTIN[kind]) | set(_EXTRA[kind]) | _plugin_names(kind))


def get_domain(name: str) -> Any:
    """The Domain object registered under `name`."""
    return _lookup("domains", name)


def get_search(name: str) -> Any:
    """The search function registered under `name`: (problem, SearchConfig, random.Random) -> SearchResult."""
    return _lookup("search", name)


def get_format(name: str) -> Any:
    """The TraceFormat object registered under `name`."""
    return _lookup("formats", name)


def register_domain(name: str, domain: Any) -> None:
    _EXTRA["domains"][name] = domain
    _CACHE.pop(("domains", name), None)


def register_search(name: str, fn: Any) -> None:
    _EXTRA["search"][name] = fn
    _CACHE.pop(("search", name), None)


def register_format(name: str, fmt: Any) -> None:
    _EXTRA["formats"][name] = fmt
    _CACHE.pop(("formats", name), None)
