"""Data commands of `metacot` (mounted at top level): generate, import-sos, validate-trace, dataset-card.

    metacot generate --config configs/countdown/generate-cpu.yaml counts.train=100 search.node_budget=500
    metacot import-sos ../shared/data/sos/train.jsonl ../shared/data/sos/val.jsonl --out data_out/sos
    metacot validate-trace --domain countdown --instance '{"numbers": [1, 2, 3, 4], "target": 24}' \
        --format sos trace.txt        (or - to read the trace from stdin)
    metacot dataset-card data_out/countdown-cpu

A bad config, instance or dataset prints one line naming the problem and exits with status 1.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from metacot_core.config import ConfigError
from metacot_core.data.schema import DatasetError
from metacot_core.output_lock import OutputLocked

app = typer.Typer()
F = TypeVar("F", bound=Callable[..., Any])
# SoS reference files -> this project's split names (val.jsonl holds held-out inputs).
SOS_SPLITS = {"train": "train", "val": "val_inputs", "val_inputs": "val_inputs", "val_target": "val_target"}


class UsageError(ValueError):
    """Bad command-line input (instance JSON, unknown names) reported in one line."""


def _one_line_errors(fn: F) -> F:
    """Turn the errors a user can fix into one line on stderr and exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, DatasetError, FileNotFoundError, OutputLocked, UsageError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@app.command("generate")
@_one_line_errors
def generate(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="generation YAML")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
    no_flow: Annotated[bool, typer.Option("--no-flow", help="run without Prefect")] = False,
    no_track: Annotated[bool, typer.Option("--no-track", help="with --no-flow: skip MLflow too")] = False,
) -> None:
    """Generate a trace dataset (Ray shards), write its card, log it to MLflow, print the card."""
    from metacot_core.config import load_config
    from metacot_core.data.config import GenerateConfig

    load_config(GenerateConfig, config, overrides or [])  # fail fast, before Prefect starts
    path = str(config) if config is not None else None
    if no_flow:
        from flows.generate_traces import generate_without_prefect

        card = generate_without_prefect(path, overrides or [], track=not no_track)
    else:
        from flows.generate_traces import generate_traces

        card = generate_traces(path, overrides or [])
    _print_json(card)


def _sos_split(path: Path, split: str | None) -> str:
    if split is not None:
        return split
    if path.stem not in SOS_SPLITS:
        raise UsageError(f"{path}: cannot tell the split from the file name; pass --split")
    return SOS_SPLITS[path.stem]


@app.command("import-sos")
@_one_line_errors
def import_sos(
    files: Annotated[list[Path], typer.Argument(help="Stream of Search .jsonl files")],
    out: Annotated[Path, typer.Option("--out", "-o", help="dataset folder to create")],
    split: Annotated[str | None, typer.Option(help="split for every file (default: from file name)")] = None,
    seed: Annotated[int, typer.Option(help="seed recorded in the rows")] = 0,
    shard_size: Annotated[int, typer.Option(min=1, help="rows per shard file")] = 1000,
) -> None:
    """Convert Stream of Search JSONL records into a metacot trace dataset (with card)."""
    from metacot_core.data.card import build_card, write_card
    from metacot_core.data.writer import write_split
    from metacot_core.traces.sos_import import iter_sos_records, sos_record_to_row

    plan = [(f, _sos_split(f, split)) for f in files]
    for f, name in plan:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: file not found")
        if (out / name).exists() and any((out / name).glob("*.parquet")):
            raise DatasetError(f"{out / name}: already holds shards; use a new --out")
    if len({name for _, name in plan}) != len(plan):
        raise UsageError("two files map to the same split; import them into separate --out folders")
    for f, name in plan:
        rows = (sos_record_to_row(rec, name, i, seed) for i, rec in enumerate(iter_sos_records(f)))
        write_split(out, name, rows, shard_size=shard_size, meta={"source": f.name})
    config = {"source": "sos-import", "files": {name: str(f) for f, name in plan}, "seed": seed,
              "shard_size": shard_size}
    card = build_card(out, config)
    write_card(out, card)
    _print_json(card)


def _read_trace(trace: str) -> str:
    if trace == "-":
        return sys.stdin.read()
    path = Path(trace)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trace file not found")
    return path.read_text()


@app.command("validate-trace")
@_one_line_errors
def validate_trace(
    trace: Annotated[str, typer.Argument(help="trace text file, or - for stdin")],
    domain: Annotated[str, typer.Option(help="domain name, e.g. countdown, maze")],
    instance: Annotated[str, typer.Option(help="the instance as JSON")],
    format: Annotated[str, typer.Option("--format", "-f", help="trace format, e.g. sos, astar")],
    check: Annotated[bool, typer.Option(help="exit 2 unless the trace is a valid solved search")] = False,
) -> None:
    """Replay a trace against the problem's rules and print the Verdict as JSON."""
    from metacot_core import registry

    try:
        data = json.loads(instance)
    except json.JSONDecodeError as err:
        raise UsageError(f"--instance: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise UsageError("--instance: must be a JSON object")
    try:
        problem = registry.get_domain(domain).from_instance(data)
        fmt = registry.get_format(format)
    except ValueError as err:
        raise UsageError(str(err)) from None
    verdict = fmt.replay(problem, _read_trace(trace))
    _print_json(verdict.to_dict())
    if check and not verdict.solved:
        raise typer.Exit(2)


@app.command("dataset-card")
@_one_line_errors
def dataset_card(
    root: Annotated[Path, typer.Argument(help="dataset folder")],
    rebuild: Annotated[bool, typer.Option(help="recompute card.json from the files")] = False,
) -> None:
    """Print a dataset's card (counts, solved rate, trace lengths, algorithm mix, config, hash)."""
    from metacot_core.data.card import build_card, read_card, write_card

    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    if rebuild:
        old = read_card(root) if (root / "card.json").is_file() else {}
        card = build_card(root, old.get("config"), {k: old[k] for k in ("generation",) if k in old})
        write_card(root, card)
    else:
        card = read_card(root)
    _print_json(card)
