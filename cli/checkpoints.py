"""`metacot checkpoint`: publish, verify and re-evaluate the small models under `checkpoints/`.

    metacot checkpoint publish runs/.../sft/final checkpoints/NAME --backs "RESULTS.md 6" \
        --made-by "metacot experiment ..." --provenance prov.json --reproduce recipe.json
    metacot checkpoint verify checkpoints/NAME          # every file against its manifest's sha256
    metacot checkpoint reproduce checkpoints/NAME       # the manifest's small case, evaluated again
    metacot checkpoint reproduce checkpoints/NAME --case figure   # the published figure itself

See metacot_core/published.py for what a published folder holds and why.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.boundary import App

app = App(no_args_is_help=True)


def read_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


@app.command("publish")
def publish_command(
    source: Annotated[Path, typer.Argument(help="trained checkpoint directory (e.g. runs/.../sft/final)")],
    dest: Annotated[Path, typer.Argument(help="checkpoints/<name>")],
    backs: Annotated[str, typer.Option(help="the RESULTS.md section (or BENCHMARKS.md entry) it backs")],
    made_by: Annotated[str, typer.Option(help="the command that trained it")],
    provenance: Annotated[Path | None, typer.Option(help="JSON: config, arm, MLflow run id, ...")] = None,
    reproduce: Annotated[Path | None, typer.Option(help="JSON: evaluation recipe, results")] = None,
) -> None:
    """Copy a checkpoint's safetensors and JSON files to `dest` with a sha256 manifest."""
    from metacot_core.published import publish

    manifest = publish(source, dest, backs=backs, made_by=made_by, provenance=read_json(provenance),
                       reproduce=read_json(reproduce))
    size = sum(f["bytes"] for f in manifest["files"].values())
    typer.echo(f"published {dest}: {len(manifest['files'])} files, {size / 1e6:.1f} MB"
               + (f" (left out: {', '.join(manifest['left_out'])})" if manifest["left_out"] else ""))


@app.command("verify")
def verify_command(
    folders: Annotated[list[Path], typer.Argument(help="published checkpoint folders")],
) -> None:
    """Check every file of each folder against its manifest (one error line on the first mismatch)."""
    from metacot_core.published import verify

    for folder in folders:
        manifest = verify(folder)
        typer.echo(f"{folder}: {len(manifest['files'])} files match the manifest (backs {manifest['backs']})")


@app.command("reproduce")
def reproduce_command(
    folder: Annotated[Path, typer.Argument(help="published checkpoint folder")],
    case: Annotated[str, typer.Option(help="small_case (a few problems) or figure (the published one)")]
    = "small_case",
    work: Annotated[Path | None, typer.Option(help="folder for the rebuilt data and evaluation")] = None,
) -> None:
    """Rebuild the evaluation data and evaluate the checkpoint as its manifest says; exit 1 if the
    result differs from the published one."""
    from metacot_core.pipeline.reproduce import reproduce

    with tempfile.TemporaryDirectory(prefix="metacot-reproduce-") as scratch:
        result = reproduce(folder, work or Path(scratch), case)
    want, got = result["expected"], result["got"]
    typer.echo(f"{folder} ({case}): published {want['solved']}/{want['n']}, now {got['solved']}/{got['n']}")
    if (want["solved"], want["n"]) != (got["solved"], got["n"]):
        raise typer.Exit(1)
