"""Data commands of `metacot` (mounted at top level): generate, import-sos, validate-trace, dataset-card.

    metacot generate --config configs/countdown/generate-cpu.yaml counts.train=100 search.node_budget=500
    metacot import-sos ../shared/data/sos/train.jsonl ../shared/data/sos/val.jsonl --out data_out/sos
    metacot validate-trace --domain countdown --instance '{"numbers": [1, 2, 3, 4], "target": 24}' \
        --format sos trace.txt        (or - to read the trace from stdin)
    metacot dataset-card data_out/countdown-cpu

A bad config, instance, trace file or dataset prints one line naming the problem and exits with status 1
(cli/boundary.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.boundary import App
from metacot_core.data.schema import DatasetError

app = App()
# SoS reference files -> this project's split names (val.jsonl holds held-out inputs).
SOS_SPLITS = {"train": "train", "val": "val_inputs", "val_inputs": "val_inputs", "val_target": "val_target"}


class UsageError(ValueError):
    """Bad command-line input (instance JSON, unknown names) reported in one line."""


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@app.command("generate")
def generate(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="generation YAML")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key.sub=value overrides")] = None,
    no_flow: Annotated[bool, typer.Option("--no-flow", help="run without Prefect")] = False,
    no_track: Annotated[bool, typer.Option("--no-track", help="with --no-flow: skip MLflow too")] = False,
) -> None:
    """Generate a trace dataset (Ray shards), write its card, log it to MLflow, print the card."""
    from metacot_core.config import load_config
    from metacot_core.data.config import GenerateConfig

    cfg = load_config(GenerateConfig, config, overrides or [])  # fail fast, before Prefect starts
    from flows.generate_traces import generate_no_flow, generate_traces, generate_untracked
    from tasks.tracking import check_tracking

    if no_flow and no_track:
        card = generate_untracked(cfg)
    else:
        check_tracking()
        card = generate_no_flow(cfg) if no_flow else generate_traces(cfg)
    _print_json(card)


def _sos_split(path: Path, split: str | None) -> str:
    if split is not None:
        return split
    if path.stem not in SOS_SPLITS:
        raise UsageError(f"{path}: cannot tell the split from the file name; pass --split")
    return SOS_SPLITS[path.stem]


@app.command("import-sos")
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
    from metacot_core.domains.countdown.sos_import import iter_sos_records, sos_record_to_row

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
    path = Path(trace)
    if trace != "-" and not path.is_file():
        raise FileNotFoundError(f"{path}: trace file not found")
    try:
        return sys.stdin.read() if trace == "-" else path.read_text()
    except UnicodeDecodeError as err:
        where = "stdin" if trace == "-" else str(path)
        raise UsageError(f"{where}: not a UTF-8 text trace (byte {err.start})") from None


@app.command("validate-trace")
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
    except ValueError as err:  # bad JSON, or a number too long to convert (over 4300 digits)
        raise UsageError(f"--instance: not valid JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UsageError("--instance: must be a JSON object")
    try:
        problem_type = registry.get_domain(domain)
        fmt = registry.get_format(format)
    except ValueError as err:
        raise UsageError(str(err)) from None
    try:
        problem = problem_type.from_instance(data)
    except (KeyError, TypeError, ValueError) as err:  # a field missing, of the wrong type, or out of range
        raise UsageError(f"--instance: not a {domain} instance ({type(err).__name__}: {err})") from None
    verdict = fmt.replay(problem, _read_trace(trace))
    _print_json(verdict.to_dict())
    if check and not verdict.solved:
        raise typer.Exit(2)


@app.command("dataset-card")
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
