"""What orchestration costs: the pipeline through Prefect + Ray + MLflow against the core stages called
directly in one Python process, on the same experiment config.

    .venv/bin/python bench/bench_orchestration.py                                   # pipeline-tiny.yaml
    .venv/bin/python bench/bench_orchestration.py --config configs/countdown/pipeline-cpu.yaml

Both sides run as fresh subprocesses (so both pay interpreter and import start-up) into fresh folders
(so nothing is reused from a cache): the baseline generates in-process, trains SFT in-process, runs
RL and evaluates with metacot_core only (no Prefect, Ray or MLflow import); the pipeline side is
`python -m flows.pipeline` with a temporary Prefect API, Ray where the config asks for it, and every
stage logged to a throwaway MLflow SQLite store. Prints both wall times and the overhead ratio
(target: <= 15% on the CPU config, where start-up costs are small next to training).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def direct(config: str, overrides: list[str]) -> None:
    """Every stage with core calls only, in this process."""
    from metacot_core.data.card import build_card, write_card
    from metacot_core.data.generate import plan_shards, write_shard
    from metacot_core.evaluation.generate import load_checkpoint
    from metacot_core.evaluation.report import write_report
    from metacot_core.evaluation.runner import evaluate_items, load_items, summarize
    from metacot_core.pipeline_config import load_pipeline
    from metacot_core.rl.runner import run as run_rl
    from metacot_core.training import sft

    pipe = load_pipeline(config, overrides)
    gen = pipe.generate.model_copy(update={"workers": 1})
    for spec in plan_shards(gen):
        write_shard(gen, spec)
    write_card(gen.output_dir, build_card(gen.output_dir, gen.model_dump(mode="json")))
    in_process = pipe.sft.ray.model_copy(update={"enabled": False})
    cfg, _ = sft.prepare_run(pipe.sft.model_copy(update={"ray": in_process}))
    checkpoint = sft.train(cfg, progress=False)["final_dir"]
    if pipe.rl is not None:
        checkpoint = run_rl(pipe.rl).get("checkpoint") or checkpoint
    ev = pipe.evaluate.model_copy(update={"checkpoint": str(checkpoint), "progress": False})
    model, tokenizer = load_checkpoint(ev.checkpoint, ev.generation.device)
    items = load_items(ev.dataset, ev.splits, ev.max_problems, ev.format)
    records = evaluate_items(model, tokenizer, items, ev)
    write_report(records, summarize(records, ev), ev.output_dir)


def timed(cmd: list[str], env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "wb") as out:
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    elapsed = time.perf_counter() - start
    if code != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed with code {code}; see {log}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/countdown/pipeline-tiny.yaml")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--keep-log", type=Path, help="copy the pipeline run's log here")
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)  # the baseline child
    args = parser.parse_args()
    if args.direct:
        direct(args.config, args.overrides)
        return
    with tempfile.TemporaryDirectory(prefix="bench-orch-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "METACOT_HOME": tmp,
               "PREFECT_HOME": str(work / "prefect")}
        env.pop("PREFECT_API_URL", None)  # a temporary local API, like a first-time user gets
        base = [sys.executable, str(Path(__file__).resolve()), "--direct", "--config", args.config,
                *args.overrides, f"output_root={work / 'direct'}"]
        flow = [sys.executable, "-m", "flows.pipeline", args.config, *args.overrides,
                f"output_root={work / 'pipeline'}"]
        t_direct = timed(base, env, work / "direct.log")
        t_flow = timed(flow, env, work / "pipeline.log")
        if args.keep_log is not None:  # the pipeline's log, to see where the time went
            args.keep_log.write_bytes((work / "pipeline.log").read_bytes())
    overhead = t_flow / t_direct - 1
    print(f"config: {args.config} {' '.join(args.overrides)}")
    print(f"core stages, one process : {t_direct:8.1f} s")
    print(f"Prefect + Ray + MLflow   : {t_flow:8.1f} s")
    print(f"overhead                 : {overhead:+8.1%}  (ratio {t_flow / t_direct:.3f}; "
          "target <= +15% on the CPU config)")


if __name__ == "__main__":
    main()
