"""Where a stage reports what it did: runs, params, metrics per step, artifacts, datasets and models.

The stage loop and the stage bodies (metacot_core.pipeline.loop and .stages) talk only to a `Tracker`,
so one pipeline run is written once and reported in three ways:
  - `NullTracker`: nothing is kept (tests, notebooks);
  - `JsonlTracker`: one JSON-lines event log per run, in a folder beside the stage folders. The core
    runner, Ray Tune trials and a machine without MLflow use it; `tasks.tracking.replay` turns the logs
    into the same MLflow runs a direct run would have made;
  - the MLflow tracker (`tasks.tracking.MlflowTracker`, outside the pure core).
Runs nest: `run()` opens a run under the one currently open. A run is FINISHED when its block ends,
FAILED when it raises, KILLED when it is interrupted. `step_logger()` gives a small picklable callable
bound to the open run, for the process that trains (a Ray Train worker) to log step metrics into it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"


def end_status(error: BaseException | None) -> str:
    """FINISHED, KILLED for an interruption (Ctrl-C, SIGTERM turned into SystemExit), else FAILED."""
    if error is None:
        return FINISHED
    return KILLED if isinstance(error, KeyboardInterrupt | SystemExit) else FAILED


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dict -> {"a.b": "value"}; values longer than MLflow's param limit are cut."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            text = str(value)
            out[name] = text if len(text) <= 6000 else text[:5997] + "..."
    return out


class StepLogger(Protocol):
    """Step metrics into one run, callable from another process; `flush` sends what is buffered."""

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def flush(self) -> None: ...


@runtime_checkable
class Tracker(Protocol):
    """What every stage reports to; see the module docstring for the implementations."""

    kind: str

    def run(self, name: str, tags: Mapping[str, str] | None = None,
            params: Mapping[str, Any] | None = None, resume: str | None = None) -> Any:
        """Context manager: a run nested under the open one (or `resume`, when that run exists);
        yields its id. `params` may be nested: they are flattened."""
        ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...

    def log_dict(self, data: Any, name: str) -> None: ...

    def log_text(self, text: str, name: str) -> None: ...

    def log_dataset(self, path: str | Path, name: str, digest: str, context: str) -> None:
        """A dataset folder as an input of the open run; the digest names its content."""
        ...

    def log_model(self, model_dir: str | Path) -> None:
        """A transformers model folder (weights + tokenizer) as the open run's model."""
        ...

    def child_runs(self, parent: str) -> list[tuple[str, str]]:
        """(run id, status) of the runs nested directly under `parent`, oldest first."""
        ...

    def mark_killed(self, run_id: str) -> None: ...

    def step_logger(self) -> StepLogger: ...

    def where(self) -> str:
        """Where the runs are (a tracking URI, a folder), for the lines a person reads."""
        ...


# --------------------------------------------------------------------------------------------- null


class _NullStepLogger:
    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        return None

    def flush(self) -> None:
        return None


class NullTracker:
    """Keeps nothing; run ids are fresh uuids so the loop's bookkeeping still works."""

    kind = "null"

    @contextmanager
    def run(self, name: str, tags: Mapping[str, str] | None = None,
            params: Mapping[str, Any] | None = None, resume: str | None = None) -> Iterator[str]:
        yield resume or uuid.uuid4().hex

    def log_params(self, params: Mapping[str, Any]) -> None:
        return None

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        return None

    def set_tags(self, tags: Mapping[str, str]) -> None:
        return None

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        return None

    def log_dict(self, data: Any, name: str) -> None:
        return None

    def log_text(self, text: str, name: str) -> None:
        return None

    def log_dataset(self, path: str | Path, name: str, digest: str, context: str) -> None:
        return None

    def log_model(self, model_dir: str | Path) -> None:
        return None

    def child_runs(self, parent: str) -> list[tuple[str, str]]:
        return []

    def mark_killed(self, run_id: str) -> None:
        return None

    def step_logger(self) -> StepLogger:
        return _NullStepLogger()

    def where(self) -> str:
        return "nowhere (no tracker)"


# -------------------------------------------------------------------------------------------- JSONL


def _now_ms() -> int:
    return int(time.time() * 1000)


def append_event(path: Path, event: dict[str, Any]) -> None:
    """One line, written with a single append so a second writer (a training worker) never interleaves."""
    line = json.dumps({"time": _now_ms(), **event}, default=str) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class JsonlStepLogger:
    """Step metrics appended to one run's event log (picklable: it holds only the path)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        if clean:
            append_event(Path(self.path), {"event": "metrics", "step": int(step), "metrics": clean})

    def flush(self) -> None:
        return None


class JsonlTracker:
    """One event log per run, `<folder>/<run id>.jsonl`; a run's first line names it and its parent."""

    kind = "jsonl"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._stack: list[str] = []

    def _path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.jsonl"

    def _emit(self, event: dict[str, Any], run_id: str | None = None) -> None:
        target = run_id or (self._stack[-1] if self._stack else None)
        if target is None:
            raise RuntimeError("JsonlTracker: no open run to log to")
        append_event(self._path(target), event)

    @contextmanager
    def run(self, name: str, tags: Mapping[str, str] | None = None,
            params: Mapping[str, Any] | None = None, resume: str | None = None) -> Iterator[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        if resume and self._path(resume).is_file():
            run_id = resume
            self._emit({"event": "resume"}, run_id)
        else:
            run_id = uuid.uuid4().hex
            parent = self._stack[-1] if self._stack else None
            self._emit({"event": "start", "name": name, "parent": parent, "tags": dict(tags or {}),
                        "ns": time.time_ns()}, run_id)
        self._stack.append(run_id)
        error: BaseException | None = None
        try:
            if params:
                self.log_params(params)
            yield run_id
        except BaseException as err:
            error = err
            raise
        finally:
            self._stack.pop()
            self._emit({"event": "end", "status": end_status(error)}, run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._emit({"event": "params", "params": flatten(params)})

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        JsonlStepLogger(str(self._path(self._stack[-1])))(step, metrics)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._emit({"event": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._emit({"event": "artifact", "path": str(Path(path).resolve()), "artifact_path": artifact_path})

    def log_dict(self, data: Any, name: str) -> None:
        self._emit({"event": "dict", "name": name, "data": data})

    def log_text(self, text: str, name: str) -> None:
        self._emit({"event": "text", "name": name, "text": text})

    def log_dataset(self, path: str | Path, name: str, digest: str, context: str) -> None:
        self._emit({"event": "dataset", "path": str(Path(path).resolve()), "name": name, "digest": digest,
                    "context": context})

    def log_model(self, model_dir: str | Path) -> None:
        self._emit({"event": "model", "path": str(Path(model_dir).resolve())})

    def child_runs(self, parent: str) -> list[tuple[str, str]]:
        runs = [r for r in read_runs(self.folder).values() if r.parent == parent]
        return [(r.run_id, r.status) for r in sorted(runs, key=lambda r: r.order)]

    def mark_killed(self, run_id: str) -> None:
        self._emit({"event": "end", "status": KILLED}, run_id)

    def step_logger(self) -> StepLogger:
        return JsonlStepLogger(str(self._path(self._stack[-1])))

    def where(self) -> str:
        return f"event logs in {self.folder}"


# --------------------------------------------------------------------------------- reading the logs


class LoggedRun:
    """One run rebuilt from its event log, in the order the events were written."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.name = ""
        self.parent: str | None = None
        self.tags: dict[str, str] = {}
        self.params: dict[str, str] = {}
        self.metrics: list[tuple[str, float, int, int]] = []  # (key, value, time ms, step)
        self.artifacts: list[tuple[str, str | None]] = []
        self.dicts: list[tuple[str, Any]] = []
        self.texts: list[tuple[str, str]] = []
        self.datasets: list[dict[str, Any]] = []
        self.models: list[str] = []
        self.status = RUNNING
        self.start_time = 0
        self.order = 0  # ns at the start: runs begun in the same millisecond keep their order
        self.end_time: int | None = None

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "start":
            self.name, self.parent = event["name"], event.get("parent")
            self.tags.update(event.get("tags") or {})
            self.start_time = event["time"]
            self.order = event.get("ns", event["time"] * 1_000_000)
        elif kind == "resume":
            self.status = RUNNING
        elif kind == "params":
            self.params.update(event["params"])
        elif kind == "metrics":
            self.metrics += [(k, v, event["time"], event["step"]) for k, v in event["metrics"].items()]
        elif kind == "tags":
            self.tags.update(event["tags"])
        elif kind == "artifact":
            self.artifacts.append((event["path"], event.get("artifact_path")))
        elif kind == "dict":
            self.dicts.append((event["name"], event["data"]))
        elif kind == "text":
            self.texts.append((event["name"], event["text"]))
        elif kind == "dataset":
            self.datasets.append(event)
        elif kind == "model":
            self.models.append(event["path"])
        elif kind == "end":
            self.status, self.end_time = event["status"], event["time"]


def read_run(path: Path) -> LoggedRun:
    """A run from its log; a line cut short by a killed writer (the last one) is skipped."""
    run = LoggedRun(path.stem)
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        run.apply(event)
    return run


def read_runs(folder: str | Path) -> dict[str, LoggedRun]:
    """Every run logged in `folder`, by id."""
    root = Path(folder)
    if not root.is_dir():
        return {}
    return {p.stem: read_run(p) for p in sorted(root.glob("*.jsonl"))}
