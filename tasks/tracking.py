"""Every MLflow call of metacot: the MLflow tracker, the tracking-server check, and the replay of event logs.

    tracker = MlflowTracker("metacot")         # what the Prefect flows and `--no-flow` commands report to
    replay(events_folder, run_id, "metacot")    # an offline or Tune run's event log -> the same MLflow runs

Embedded default: a SQLite file `mlflow.db` in the project folder (artifacts in `mlartifacts/`), so
nothing needs a server. `MLFLOW_TRACKING_URI` points everything at a real server instead; a server
that does not answer is reported in a few seconds (`check_tracking`), not after MLflow's retries.
The tracker implements metacot_core.pipeline.tracker.Tracker; runs nest through MLflow's active run,
so a stage's run opened in a Prefect subflow lands under the pipeline's run.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param

from metacot_core.pipeline.experiment import ResolvedExperiment
from metacot_core.pipeline.state import PipelineState
from metacot_core.pipeline.tracker import FINISHED, KILLED, end_status, flatten, read_runs

PROJECT_ROOT = Path(os.environ.get("METACOT_HOME", Path.cwd())).resolve()
BATCH = 500  # metrics per log_batch call (MLflow's limit is 1000; params: 100)
REPLAYED_NAME = "replayed-mlflow.json"


class TrackingUnreachable(RuntimeError):
    """The configured MLflow server does not answer."""


def default_tracking_uri() -> str:
    """The embedded SQLite store unless MLFLOW_TRACKING_URI says otherwise."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"


def check_tracking(fallback: bool = False, timeout: float = 3.0) -> str:
    """The tracking URI to use; a server that does not answer is an error unless `fallback` is set,
    in which case runs go to the embedded SQLite store (and the environment variable is dropped)."""
    uri = default_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return uri
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return uri
            reason = f"HTTP {response.status}"
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
        reason = str(getattr(err, "reason", err))
    local = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    if not fallback:
        raise TrackingUnreachable(
            f"MLflow tracking server {uri} is not reachable ({reason}); start it (metacot mlflow-server), "
            f"fix MLFLOW_TRACKING_URI, or pass --mlflow-fallback to log to {local}")
    print(f"warning: MLflow server {uri} is not reachable ({reason}); logging to {local} as asked")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return default_tracking_uri()


def configure(experiment: str = "metacot", uri: str | None = None) -> str:
    """Point MLflow at the tracking store and make sure `experiment` exists; returns its id.

    A new experiment on the embedded store gets a local artifact folder next to the database, so
    artifacts never land in an unexpected working directory.
    """
    uri = uri or default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        location = (PROJECT_ROOT / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
        exp_id = mlflow.create_experiment(experiment, artifact_location=location)
    else:
        exp_id = found.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def run_exists(run_id: str | None) -> bool:
    if not run_id:
        return False
    try:
        mlflow.MlflowClient().get_run(run_id)
    except Exception:  # noqa: BLE001 - each store raises its own error for an unknown id
        return False
    return True


def metric_name(key: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and space; anything else becomes _."""
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in key)


def log_metric_batch(client: mlflow.MlflowClient, run_id: str, metrics: list[Metric]) -> None:
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i:i + BATCH])


def log_param_batch(client: mlflow.MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    items = [Param(k, v) for k, v in sorted(params.items())]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])


def log_path(client: mlflow.MlflowClient, run_id: str, path: str | Path, artifact_path: str | None) -> None:
    """A file, or a folder's contents, as artifacts of `run_id`."""
    if Path(path).is_dir():
        client.log_artifacts(run_id, str(path), artifact_path=artifact_path)
    else:
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def log_dataset_input(client: mlflow.MlflowClient, run_id: str, path: str | Path, name: str, digest: str,
                      context: str) -> None:
    """The folder as a metadata-only MLflow dataset (nothing loaded) with its content digest."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    with warnings.catch_warnings():
        # MLflow registers the local source twice (schemes "" and "file") and warns it cannot choose.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(Path(path).resolve()))
    dataset = MetaDataset(source, name=name, digest=digest)
    tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value=context)]
    client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags)])


@contextmanager
def quiet_progress() -> Iterator[None]:
    """No per-file progress bars while a model is saved, loaded and uploaded (one bar per stage only);
    transformers' bars are left as they were (the command line turns them off for good)."""
    import transformers

    bars_were_on = transformers.utils.logging.is_progress_bar_enabled()
    names = ("HF_HUB_DISABLE_PROGRESS_BARS", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    before = {k: os.environ.get(k) for k in names}
    os.environ.update({"HF_HUB_DISABLE_PROGRESS_BARS": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars_were_on:
            transformers.utils.logging.enable_progress_bar()
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def log_transformers_model(model_dir: str | Path) -> None:
    """A model folder + tokenizer as an MLflow transformers model of the active run."""
    import torch
    import transformers
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from metacot_core.models import refuse_remote_code

    with quiet_progress():
        refuse_remote_code(model_dir)  # a folder named in an event log is checked like any checkpoint
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, local_files_only=True, trust_remote_code=False, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, trust_remote_code=False)
        # explicit requirements: mlflow's inference imports every optional vision/audio package
        reqs = [f"torch=={torch.__version__.split('+')[0]}", f"transformers=={transformers.__version__}"]
        # our own card: without one, mlflow asks the Hugging Face hub for a card named after the path
        card = ModelCard("---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n"
                         "# metacot model\nTrained by metacot (see sft_config.json for how).\n")
        mlflow.transformers.log_model({"model": model, "tokenizer": tokenizer}, name="model",
                                      task="text-generation", pip_requirements=reqs, model_card=card)


# ----------------------------------------------------------------------------------------- tracker


def server_answers(uri: str, timeout: float = 2.0) -> bool:
    """True unless `uri` is an HTTP server that does not answer its /health (a file store always does)."""
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@contextmanager
def one_try() -> Iterator[None]:
    """MLflow's HTTP calls without their retries (7, with exponential backoff: minutes of a training
    loop blocked per call while a server is down); MLflow reads these at every request."""
    names = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    before = {k: os.environ.get(k) for k in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class MlflowStepLogger:
    """Step metrics to an MLflow run by id, batched (one call per `flush_every` steps); picklable, so a
    Ray Train worker logs straight into the driver's run.

    A tracking server that is down does not stop training: a batch that cannot be sent stays buffered
    (up to `max_buffered` metrics, the oldest dropped beyond that) and goes out with the next batch
    once the server answers again, with its original steps and times. `flush()`, called when training
    ends, waits up to `patience_s` for the server; the run then records what the outage cost:
    `tracking.late_metrics` (sent after an outage) and `tracking.dropped_metrics` (lost to the cap).
    Only if the server is still down after that does `flush()` raise, saying how many metrics are lost.
    """

    def __init__(self, run_id: str, tracking_uri: str, flush_every: int = 20, max_buffered: int = 200_000,
                 patience_s: float = 300.0) -> None:
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.flush_every = flush_every
        self.max_buffered = max_buffered
        self.patience_s = patience_s
        self.pending: list[Metric] = []
        self.calls = 0
        self.late = 0  # metrics that waited out an outage
        self.dropped = 0
        self.failed_flushes = 0
        self.outage = False

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self.pending += [Metric(metric_name(k), float(v), now, int(step)) for k, v in metrics.items()
                         if isinstance(v, int | float)]
        self.calls += 1
        if self.calls % self.flush_every == 0 or "val_loss" in metrics:
            self.try_flush()

    def _send(self) -> None:
        client = mlflow.MlflowClient(self.tracking_uri)
        log_metric_batch(client, self.run_id, self.pending)
        if self.outage:
            self.late += len(self.pending)
            self.outage = False
        self.pending = []

    def outage_metrics(self) -> list[Metric]:
        now = int(time.time() * 1000)
        return [Metric("tracking.late_metrics", float(self.late), now, 0),
                Metric("tracking.dropped_metrics", float(self.dropped), now, 0)]

    def try_flush(self) -> bool:
        """Send the buffer if the server answers now; else keep it (bounded). True when sent."""
        if not self.pending:
            return True
        try:
            if not server_answers(self.tracking_uri):
                raise TrackingUnreachable(f"MLflow server {self.tracking_uri} does not answer")
            with one_try():
                self._send()
            return True
        except Exception as err:  # noqa: BLE001 - any failure to send: keep the metrics, train on
            if not self.outage:
                print(f"warning: MLflow at {self.tracking_uri} unreachable ({type(err).__name__}); "
                      "buffering step metrics until it answers", flush=True)
            self.outage = True
            self.failed_flushes += 1
            overflow = len(self.pending) - self.max_buffered
            if overflow > 0:
                del self.pending[:overflow]
                self.dropped += overflow
            return False

    def flush(self) -> None:
        """Send everything buffered, waiting up to `patience_s` for a server that is down."""
        deadline = time.monotonic() + self.patience_s
        while not self.try_flush():
            if time.monotonic() > deadline:
                raise TrackingUnreachable(
                    f"MLflow server {self.tracking_uri} still down after {self.patience_s:.0f} s: "
                    f"{len(self.pending)} step metrics of run {self.run_id} are lost")
            time.sleep(2.0)
        if self.late or self.dropped:  # the outage's cost, in the run itself
            log_metric_batch(mlflow.MlflowClient(self.tracking_uri), self.run_id, self.outage_metrics())


class MlflowTracker:
    """The Tracker on MLflow: runs nest under MLflow's active run; logging goes to the run by id."""

    kind = "mlflow"

    def __init__(self, experiment: str = "metacot", tracking_uri: str | None = None) -> None:
        self.experiment = experiment
        self.tracking_uri = tracking_uri  # None: MLFLOW_TRACKING_URI, else the embedded store
        self._stack: list[str] = []

    @property
    def current(self) -> str:
        if not self._stack:
            raise RuntimeError("MlflowTracker: no open run to log to")
        return self._stack[-1]

    @property
    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient()

    @contextmanager
    def run(self, name: str, tags: Mapping[str, str] | None = None,
            params: Mapping[str, Any] | None = None, resume: str | None = None) -> Iterator[str]:
        if mlflow.active_run() is None:
            configure(self.experiment, self.tracking_uri)
        if resume and run_exists(resume) and mlflow.active_run() is None:
            run = mlflow.start_run(run_id=resume)
        else:
            nested = mlflow.active_run() is not None
            run = mlflow.start_run(run_name=name, nested=nested, tags=dict(tags or {}))
        self._stack.append(run.info.run_id)
        error: BaseException | None = None
        try:
            if params:
                self.log_params(params)
            yield run.info.run_id
        except BaseException as err:
            error = err
            raise
        finally:
            self._stack.pop()
            mlflow.end_run(status=end_status(error))

    def log_params(self, params: Mapping[str, Any]) -> None:
        log_param_batch(self.client, self.current, flatten(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        log_metric_batch(self.client, self.current,
                         [Metric(metric_name(k), float(v), now, int(step)) for k, v in metrics.items()])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.current, key, str(value))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        log_path(self.client, self.current, path, artifact_path)

    def log_dict(self, data: Any, name: str) -> None:
        self.client.log_dict(self.current, data, name)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.current, text, name)

    def log_dataset(self, path: str | Path, name: str, digest: str, context: str) -> None:
        log_dataset_input(self.client, self.current, path, name, digest, context)

    def log_model(self, model_dir: str | Path) -> None:
        log_transformers_model(model_dir)

    def child_runs(self, parent: str) -> list[tuple[str, str]]:
        return [(r.info.run_id, r.info.status) for r in child_runs(parent)]

    def mark_killed(self, run_id: str) -> None:
        self.client.set_terminated(run_id, status=KILLED)

    def step_logger(self) -> MlflowStepLogger:
        return MlflowStepLogger(self.current, mlflow.get_tracking_uri())

    def where(self) -> str:
        return mlflow.get_tracking_uri()


def child_runs(parent_id: str) -> list[Any]:
    """Runs nested directly under `parent_id`, oldest first."""
    client = mlflow.MlflowClient()
    exp = client.get_run(parent_id).info.experiment_id
    runs = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                              order_by=["attributes.start_time ASC"], max_results=1000)
    return list(runs)


# ------------------------------------------------------------------------------------- experiments

ROW_METRICS = ("solve_rate", "ci_low", "ci_high", "validity_rate")


def _experiment_params(exp: ResolvedExperiment) -> dict[str, str]:
    cfg = exp.config
    params = {"name": cfg.name, "base": cfg.base, "overrides": json.dumps(cfg.overrides),
              "grid": json.dumps(cfg.grid), "cli_overrides": json.dumps(exp.cli_overrides),
              "n_pipelines": str(len(exp.arms)), "config_hash": exp.key}
    params |= {f"arm.{name}": json.dumps(items) for name, items in cfg.arms.items()}
    return {k: v if len(v) <= 6000 else v[:5997] + "..." for k, v in params.items()}


def open_experiment_run(exp: ResolvedExperiment, state: PipelineState) -> str:
    """The experiment's MLflow run: the one an earlier attempt with the same arms opened, else new."""
    exp_id = configure(exp.config.experiment)
    client = mlflow.MlflowClient()  # after configure: a client binds the tracking URI when it is made
    if state.parent_run_id:
        try:
            client.update_run(state.parent_run_id, status="RUNNING")
            return state.parent_run_id
        except Exception:  # noqa: BLE001 - each store raises its own error for an unknown id
            pass
    tags = {"stage": "experiment", "experiment.name": exp.config.name, "config_hash": exp.key}
    run = client.create_run(exp_id, run_name=f"experiment-{exp.config.name}", tags=tags)
    run_id = run.info.run_id
    log_param_batch(client, run_id, _experiment_params(exp))
    client.log_dict(run_id, exp.config.model_dump(mode="json"), "experiment_config.json")
    state.set_parent(run_id)
    return run_id


def log_experiment_results(run_id: str, rows: list[dict[str, Any]], paths: dict[str, Any]) -> None:
    """`<label>/<split>/<metric>` metrics and the table, markdown and plots as artifacts."""
    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    metrics = []
    for row in rows:
        split = row["split"] + (f"/{row['format']}" if row.get("format") else "")
        metrics += [Metric(f"{row['label']}/{split}/{k}", float(row[k]), now, 0) for k in ROW_METRICS
                    if row.get(k) is not None]
    log_metric_batch(client, run_id, metrics)
    for key in ("markdown", "parquet", "arms"):
        client.log_artifact(run_id, str(paths[key]))
    for plot in paths["plots"]:
        client.log_artifact(run_id, str(plot), artifact_path="plots")


def nest_under(run_id: str, parent_id: str, tags: Mapping[str, str]) -> None:
    """Nest a finished pipeline run under the experiment's run (in the UI) and tag it."""
    client = mlflow.MlflowClient()
    client.set_tag(run_id, "mlflow.parentRunId", parent_id)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def end_run(run_id: str, status: str) -> None:
    mlflow.MlflowClient().set_terminated(run_id, status=status)


def set_run_tag(run_id: str, key: str, value: str) -> None:
    mlflow.MlflowClient().set_tag(run_id, key, value)


def tracking_uri() -> str:
    """The URI MLflow logs to now (after `configure`)."""
    return mlflow.get_tracking_uri()


def run_location(run_id: str) -> dict[str, str]:
    """Where a run is: its id, experiment id and the tracking URI, for the lines a person reads."""
    run = mlflow.MlflowClient().get_run(run_id)
    return {"run_id": run_id, "experiment_id": run.info.experiment_id,
            "tracking_uri": mlflow.get_tracking_uri()}


def nesting_tags(explicit_parent: str | None, found_parent: str | None, experiment: str) -> dict[str, str]:
    """Tags that nest a standalone run under another run: `explicit_parent` (asked for, so it must
    exist) else `found_parent` (e.g. the run id a checkpoint records; skipped when stale). None when a
    run is already active (the new run nests under it anyway)."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    parent = explicit_parent or found_parent
    if mlflow.active_run() is not None or parent is None:
        return {}
    configure(experiment)
    if run_exists(parent):
        return {MLFLOW_PARENT_RUN_ID: parent}
    if explicit_parent:
        raise ValueError(f"parent_run_id: no MLflow run {parent!r} in this tracking store")
    return {}


# ------------------------------------------------------------------------------------------ replay


def replay(folder: str | Path, run_id: str, experiment: str, parent: str | None = None,
           tags: Mapping[str, str] | None = None) -> str:
    """The logged run `run_id` and every run under it, as MLflow runs under `parent`; returns the MLflow
    id of `run_id`. The runs get the logged names, tags, params, step metrics (with their times),
    artifacts, datasets and models, and their final status; a run replayed before (kept in
    `<folder>/replayed-mlflow.json`) is not made twice, but runs logged under it since are added."""
    root = Path(folder)
    runs = read_runs(root)
    if run_id not in runs:
        raise ValueError(f"{root}: no event log of run {run_id}")
    done_path = root / REPLAYED_NAME
    done: dict[str, str] = json.loads(done_path.read_text()) if done_path.is_file() else {}
    exp_id = configure(experiment)
    children: dict[str | None, list[str]] = {}
    for logged in sorted(runs.values(), key=lambda r: r.order):
        children.setdefault(logged.parent, []).append(logged.run_id)

    def make(local: str, mlflow_parent: str | None, extra: Mapping[str, str]) -> str:
        if local not in done:
            done[local] = _replay_one(runs[local], exp_id, mlflow_parent, extra)
            done_path.write_text(json.dumps(done, indent=2))
        for child in children.get(local, []):
            make(child, done[local], {})
        return done[local]

    return make(run_id, parent, tags or {})


def _replay_one(logged: Any, exp_id: str, parent: str | None, extra: Mapping[str, str]) -> str:
    client = mlflow.MlflowClient()
    tags = {**logged.tags, **extra}
    if parent:
        tags["mlflow.parentRunId"] = parent
    run_id = client.create_run(exp_id, run_name=logged.name, tags=tags,
                               start_time=logged.start_time or None).info.run_id
    log_param_batch(client, run_id, logged.params)
    log_metric_batch(client, run_id, [Metric(metric_name(k), v, t, s) for k, v, t, s in logged.metrics])
    for name, data in logged.dicts:
        client.log_dict(run_id, data, name)
    for name, text in logged.texts:
        client.log_text(run_id, text, name)
    for path, artifact_path in logged.artifacts:
        if Path(path).exists():
            log_path(client, run_id, path, artifact_path)
    for ds in logged.datasets:
        log_dataset_input(client, run_id, ds["path"], ds["name"], ds["digest"], ds["context"])
    for model_dir in logged.models:
        if Path(model_dir).is_dir():
            with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
                log_transformers_model(model_dir)
    status = logged.status if logged.status != "RUNNING" else KILLED
    client.set_terminated(run_id, status=status if status else FINISHED, end_time=logged.end_time)
    return run_id
