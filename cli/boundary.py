"""What every `metacot` command goes through: one error boundary, and the process guard of the entry.

Error boundary: an expected failure (a corrupt Parquet shard or safetensors file, a pickle where
safetensors belong, a bad state file, an output path under a regular file, a binary trace, a bad
config) prints one line, `error: <what, naming the file or field>`, and exits with status 1; a bug
keeps its traceback. METACOT_DEBUG=1 shows the traceback of an expected failure too. When the
exception itself names no file, the line ends with the paths the command was given.

Process guard (the console script and `python -m cli` only, not typer's CliRunner): SIGTERM and
SIGHUP end a command the way Ctrl-C does (its clean-up runs, exit status 128 + signal), a local Ray
is shut down on the way out, and cli/watchdog.py stops what is left if the command is killed.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import typer

from cli.processes import install_exit_signals, interrupt_exit_code, start_watchdog

F = TypeVar("F", bound=Callable[..., Any])
DEBUG_ENV = "METACOT_DEBUG"
# Expected failures from libraries a command may have loaded, by module and name: a class whose
# module was never imported cannot have raised, so nothing heavy is imported to check.
EXPECTED_ELSEWHERE = (("safetensors", "SafetensorError"), ("pyarrow", "ArrowException"),
                      ("yaml", "YAMLError"), ("pickle", "UnpicklingError"),
                      ("tasks.tracking", "TrackingUnreachable"), ("metacot_core.rl.grpo", "CollapseError"),
                      ("cli.processes", "ServerFailed"), ("metacot_core.pipeline.lock", "FolderBusy"))
OWN_PACKAGES = {"cli", "flows", "metacot_core", "tasks"}


def expected(err: BaseException) -> bool:
    """A failure of the inputs or the machine (reported in one line), not of the code."""
    if isinstance(err, (OSError, ValueError, KeyError)):  # ValueError: pydantic, JSON, UnicodeDecodeError
        return True
    for module, name in EXPECTED_ELSEWHERE:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(err, cls):
            return True
    return False


def one_line(err: BaseException, inputs: list[str]) -> str:
    """The error as one line that names a file: the exception's own, else the command's inputs."""
    if isinstance(err, KeyError):
        text = f"missing key {err.args[0]!r}" if err.args else "missing key"
    elif isinstance(err, UnicodeDecodeError):
        text = f"not UTF-8 text ({err.reason} at byte {err.start})"
    else:
        lines = str(err).strip().splitlines()
        text = lines[0] if lines else type(err).__name__
    filename = getattr(err, "filename", None)
    if filename is not None and str(filename) not in text:
        text = f"{filename}: {text}"
    elif inputs and not _ours(err) and not any(path in text for path in inputs):
        text = f"{text} (inputs: {', '.join(inputs)})"
    return text


def _ours(err: BaseException) -> bool:
    """Errors this project raises name their file or field already."""
    return type(err).__module__.split(".")[0] in OWN_PACKAGES


def path_inputs(kwargs: dict[str, Any]) -> list[str]:
    """The file and folder arguments of a command call, as given."""
    out: list[str] = []
    for value in kwargs.values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, Path):
                out.append(str(item))
    return out


def one_line_errors(fn: F) -> F:
    """Wrap a command: expected failures -> `error: ...` on stderr, exit 1; Ctrl-C, SIGTERM, SIGHUP
    -> exit 128 + signal once the command's own clean-up ran."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # typer.Exit is a RuntimeError: let click handle its own
        except KeyboardInterrupt as err:
            raise typer.Exit(interrupt_exit_code(err)) from None
        except Exception as err:
            if os.environ.get(DEBUG_ENV) == "1" or not expected(err):
                raise
            typer.echo(f"error: {one_line(err, path_inputs(kwargs))}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def shutdown_local_ray() -> None:
    """ray.shutdown() if this process started or joined Ray: an interrupted Ray Train run otherwise
    ends in the interpreter's teardown with Ray's threads still running (exit 134)."""
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        ray.shutdown()


@contextmanager
def guarded_process() -> Iterator[None]:
    """The entry's process guard (see the module docstring)."""
    install_exit_signals()
    _reinstall_after_ray_init()
    start_watchdog()
    try:
        yield
    except KeyboardInterrupt as err:  # one that landed outside a command (while click parsed)
        raise SystemExit(interrupt_exit_code(err)) from None
    finally:
        shutdown_local_ray()


def _reinstall_after_ray_init() -> None:
    """ray.init() replaces the SIGTERM handler with `sys.exit(15)`, which skips the clean-up of Ctrl-C
    (and a Ray Train run ends in an abort); Ray calls `_post_init_hooks` at the end of every init, so
    ours is put back there. Hooked in when Ray is first imported, so commands without Ray never load it."""
    if "ray._private.worker" in sys.modules:
        _add_ray_hook(sys.modules["ray._private.worker"])
    else:
        sys.meta_path.insert(0, _RayImportHook())


def _add_ray_hook(worker: Any) -> None:
    hooks = getattr(worker, "_post_init_hooks", None)
    if isinstance(hooks, list) and install_exit_signals not in hooks:
        hooks.append(install_exit_signals)


class _RayImportHook:
    """A meta-path finder for one module: it finds `ray._private.worker` the usual way and adds the
    hook once the module has run."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "ray._private.worker":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                run(module)
                _add_ray_hook(module)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


class App(typer.Typer):
    """A Typer app whose every command goes through `one_line_errors`, and whose call (the process
    entry) runs inside `guarded_process`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(fn: F) -> F:
            register(one_line_errors(fn))
            return fn

        return decorator

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with guarded_process():
            return super().__call__(*args, **kwargs)
