"""Typed configs from YAML files plus `a.b=value` overrides, with one-line errors naming the field.

Every stage defines a pydantic model (extra fields forbidden, so a typo is an error, not a silent
default). `load_config(Model, "configs/x.yaml", ["search.node_budget=500"])` reads, overrides and
validates; a failure raises ConfigError whose message is one line: `<field.path>: <what is wrong>`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def _names_a_folder(value: str) -> str:
    if not value.strip():
        raise ValueError("give a folder (an empty path would write into the working directory)")
    return value


# An output folder must name something: "" would write into the working directory (the project root).
OutputDir = Annotated[str, AfterValidator(_names_a_folder)]


class ConfigError(ValueError):
    """A config that cannot be used; the message names the field."""


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value), the value parsed as YAML (numbers, lists, true/false)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{item}: an override must look like key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of `data` with each dotted override set (intermediate dicts created as needed)."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return out


def format_validation_error(err: ValidationError) -> str:
    """One line per problem, `field.path: message` (first line is what users see first)."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


def build_config(model: type[M], data: Mapping[str, Any], overrides: Iterable[str] = ()) -> M:
    """Validate `data` (after overrides) into `model`, raising ConfigError naming the field."""
    merged = apply_overrides(dict(data), overrides)
    try:
        return model.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(f"invalid {model.__name__}: {format_validation_error(err)}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    data = {} if data is None else data  # an empty file: every default (a `false` or `0` is not)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of fields")
    return data


def load_config(model: type[M], path: str | Path | None, overrides: Iterable[str] = ()) -> M:
    """Read YAML at `path` (or start empty), apply overrides, validate into `model`."""
    data = read_yaml(path) if path is not None else {}
    return build_config(model, data, overrides)


def config_hash(cfg: BaseModel) -> str:
    """A short stable hash of a config's content (for caching and lineage)."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
