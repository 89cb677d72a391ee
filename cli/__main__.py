"""`python -m cli ...` runs the `metacot` command line (tests use it instead of the console script)."""

from cli.main import app

app()
