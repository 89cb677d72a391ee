"""The `metacot` command line: one sub-app per stage, each defined in its own module.

Every command goes through cli/boundary.py: one line per expected error, and (as a process) servers,
Ray and Prefect's temporary API stopped on SIGTERM, SIGHUP, Ctrl-C or a kill -9.
"""

from __future__ import annotations

from cli.analyze import app as analyze_app
from cli.boundary import App
from cli.data import app as data_app
from cli.eval import app as eval_app
from cli.experiment import app as experiment_app
from cli.ops import app as ops_app
from cli.pipeline import app as pipeline_app
from cli.train import app as train_app

app = App(help="metacot: search traces, SFT, RL and evaluation of transformers that search.",
          no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(train_app, name="train", help="Train a model (sft, rl).")
# data, eval, analyze, ops, pipeline and experiment commands are top-level (`metacot eval`).
for sub in (data_app, eval_app, analyze_app, ops_app, pipeline_app, experiment_app):
    for command in sub.registered_commands:
        app.registered_commands.append(command)

if __name__ == "__main__":
    app()
