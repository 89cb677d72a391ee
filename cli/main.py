"""The `metacot` command line: one sub-app per stage, each defined in its own module.

Every command goes through cli/boundary.py: one line per expected error, and (as a process) servers,
Ray and Prefect's temporary API stopped on SIGTERM, SIGHUP, Ctrl-C or a kill -9.
"""

from __future__ import annotations

import os

# One progress bar per long stage: no per-file bars from transformers and the Hugging Face hub
# ("Writing model shards", "Loading weights") each time a checkpoint is saved or loaded. Set before
# transformers is imported, and inherited by every process a command starts (Ray workers included).
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# Commands without `metacot run`'s own local API (generate, train, eval) let Prefect start its temporary
# server, which it gives 20 s: on a loaded 2-core machine that start failed the command. 90 s here.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

from cli.analyze import app as analyze_app  # noqa: E402
from cli.boundary import App  # noqa: E402
from cli.checkpoints import app as checkpoint_app  # noqa: E402
from cli.data import app as data_app  # noqa: E402
from cli.eval import app as eval_app  # noqa: E402
from cli.experiment import app as experiment_app  # noqa: E402
from cli.ops import app as ops_app  # noqa: E402
from cli.pipeline import app as pipeline_app  # noqa: E402
from cli.train import app as train_app  # noqa: E402

app = App(help="metacot: search traces, SFT, RL and evaluation of transformers that search.",
          no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(train_app, name="train", help="Train a model (sft, rl).")
app.add_typer(checkpoint_app, name="checkpoint", help="Published checkpoints: publish, verify, reproduce.")
# data, eval, analyze, ops, pipeline and experiment commands are top-level (`metacot eval`).
for sub in (data_app, eval_app, analyze_app, ops_app, pipeline_app, experiment_app):
    for command in sub.registered_commands:
        app.registered_commands.append(command)

if __name__ == "__main__":
    app()
