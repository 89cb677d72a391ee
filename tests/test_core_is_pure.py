"""metacot_core must not import Prefect, Ray or MLflow, even indirectly (DESIGN.md: pure core)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("prefect", "ray", "mlflow")

SCRIPT = """
import importlib, json, pkgutil, sys
import metacot_core
names = sorted(m.name for m in pkgutil.walk_packages(metacot_core.__path__, "metacot_core."))
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as err:  # reported below: a module that cannot be imported is a bug too
        failed[name] = f"{type(err).__name__}: {err}"
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))
print(json.dumps({"modules": names, "failed": failed, "loaded": loaded}))
"""


def test_core_imports_no_orchestration_library():
    out = subprocess.run([sys.executable, "-c", SCRIPT, *FORBIDDEN], capture_output=True, text=True,
                         timeout=300, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert "metacot_core.data.generate" in report["modules"]  # the walk really found the modules
    assert report["failed"] == {}
    assert report["loaded"] == [], f"metacot_core pulled in {report['loaded']}"
