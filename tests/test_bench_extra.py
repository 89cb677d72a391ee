"""TRL is a bench-only extra: not a runtime or test dependency, never imported by the library."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_trl_is_only_in_the_bench_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(d.startswith("trl") for d in extras["bench"])
    for name, deps in [("dependencies", project["dependencies"])] + [(k, v) for k, v in extras.items()
                                                                      if k != "bench"]:
        assert not any(d.startswith(("trl", "datasets", "accelerate")) for d in deps), name


def test_the_rl_library_does_not_import_trl():
    code = ("import sys, metacot_core.rl.grpo, metacot_core.rl.star, metacot_core.evaluation.generate; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('trl', 'datasets', 'accelerate')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
