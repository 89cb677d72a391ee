"""Name -> implementation registries for domains, search algorithms, trace formats and RL methods.

Built-ins are listed as import paths (imported on first use, so `import metacot_core` stays light).
Each package under `metacot_core/domains/` is a built-in domain: its `__init__.py` names its Domain
class (`DOMAIN`) and the formats only it speaks (`FORMATS`), so adding a domain edits no list here.
Plugins add their own through the entry-point groups `metacot.domains`, `metacot.search`,
`metacot.formats` and `metacot.rl` in their package metadata, or by calling `register_*` at import time.
RL methods are registered by their config class (see metacot_core.rl.config), not an instance.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Any

import metacot_core.domains

_BUILTIN: dict[str, dict[str, str]] = {
    "domains": {},
    "search": {
        "bfs": "metacot_core.search.bfs:bfs",
        "dfs": "metacot_core.search.dfs:dfs",
        "beam": "metacot_core.search.beam:beam",
        "astar": "metacot_core.search.astar:astar",
        "mcts": "metacot_core.search.mcts:mcts",
    },
    "formats": {
        "astar": "metacot_core.traces.astar:AstarFormat",
        "mcts": "metacot_core.traces.mcts:MctsFormat",
        "solution": "metacot_core.traces.solution_only:SolutionFormat",
    },
    "rl": {
        "star": "metacot_core.rl.config:StarConfig",
        "grpo": "metacot_core.rl.config:GrpoConfig",
    },
}
_EXTRA: dict[str, dict[str, Any]] = {"domains": {}, "search": {}, "formats": {}, "rl": {}}
_CACHE: dict[tuple[str, str], Any] = {}
_CLASSES = ("rl",)  # kinds registered as classes, looked up without making an instance
_WHAT = {"search": "search algorithm", "rl": "RL method"}  # the word error messages use for a kind


def _add_domain_packages() -> None:
    """Each `metacot_core/domains/<name>/` package adds its Domain and its own formats to the built-ins.

    The package's `__init__.py` holds import paths only, so scanning costs no heavy import.
    """
    for info in pkgutil.iter_modules(metacot_core.domains.__path__):
        if not info.ispkg:
            continue
        package = importlib.import_module(f"metacot_core.domains.{info.name}")
        if not hasattr(package, "DOMAIN"):  # a package that registers itself as a plugin (sokoban)
            continue
        _BUILTIN["domains"][info.name] = package.DOMAIN
        _BUILTIN["formats"].update(getattr(package, "FORMATS", {}))


_add_domain_packages()


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
            raise ValueError(f"unknown {_WHAT.get(kind, kind[:-1])} {name!r}; known: {', '.join(known)}")
        obj = plugins[name].load()
    if isinstance(obj, type) and kind not in _CLASSES:
        obj = obj()
    _CACHE[key] = obj
    return obj


@functools.cache
def _plugin_names(kind: str) -> frozenset[str]:
    """Entry-point names of `kind`, read once: scanning package metadata costs milliseconds, and
    `names` runs on every config validation."""
    return frozenset(ep.name for ep in entry_points(group=f"metacot.{kind}"))


def names(kind: str) -> list[str]:
    """Every registered name of `kind` ("domains", "search", "formats", "rl")."""
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


def get_rl_method(name: str) -> Any:
    """The config class of the RL method registered under `name` (its `trainer` names the loop)."""
    return _lookup("rl", name)


def register_domain(name: str, domain: Any) -> None:
    _EXTRA["domains"][name] = domain
    _CACHE.pop(("domains", name), None)


def register_search(name: str, fn: Any) -> None:
    _EXTRA["search"][name] = fn
    _CACHE.pop(("search", name), None)


def register_format(name: str, fmt: Any) -> None:
    _EXTRA["formats"][name] = fmt
    _CACHE.pop(("formats", name), None)


def register_rl_method(name: str, config_cls: type) -> None:
    _EXTRA["rl"][name] = config_cls
    _CACHE.pop(("rl", name), None)
