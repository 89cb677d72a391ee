"""CLI commands of one stage (filled in by that stage)."""

import typer

app = typer.Typer()
