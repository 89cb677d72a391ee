"""Re-evaluate a published checkpoint (checkpoints/<name>/) as its manifest's `reproduce` recipe says.

Kept apart from metacot_core/published.py, which the model loader imports: this module runs the
generate and evaluate stages, which load models themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metacot_core.evaluation.metrics import pooled_solves
from metacot_core.published import MANIFEST, verify


def reproduce(folder: str | Path, work: str | Path, case: str = "small_case",
              root: str | Path = ".") -> dict[str, Any]:
    """Rebuild the evaluation data of a published checkpoint and evaluate it as its manifest says.

    `case` is `small_case` (a few problems: what the test suite checks) or `figure` (the published
    figure itself). Returns the manifest's result beside the one measured now; no tracker, no servers.
    """
    from metacot_core.config import load_config
    from metacot_core.data.config import GenerateConfig
    from metacot_core.evaluation.config import EvalConfig
    from metacot_core.pipeline.stages import run_evaluate, run_generate
    from metacot_core.pipeline.tracker import NullTracker

    folder, work, root = Path(folder), Path(work), Path(root)
    manifest = verify(folder)
    recipe = manifest.get("reproduce") or {}
    if case not in recipe or "generate" not in recipe or "evaluate" not in recipe:
        raise ValueError(f"{folder / MANIFEST}: no `reproduce` recipe with generate, evaluate and {case}")
    gen = load_config(GenerateConfig, str(root / recipe["generate"]["config"]),
                      [*recipe["generate"]["overrides"], f"output_dir={work / 'data'}"])
    run_generate(gen, NullTracker())
    ev = load_config(EvalConfig, str(root / recipe["evaluate"]["config"]),
                     [*recipe["evaluate"]["overrides"], f"max_problems={recipe[case]['max_problems']}",
                      f"checkpoint={folder.resolve()}", f"dataset={gen.output_dir}",
                      f"output_dir={work / f'eval-{case}'}"])
    got = pooled_solves(run_evaluate(ev, NullTracker()))
    return {"name": manifest["name"], "case": case, "expected": recipe[case]["result"], "got": got}
