"""What orchestration costs: the pipeline through Prefect + Ray + MLflow against the core stages called
directly in one Python process, on the same experiment config.

    .venv/bin/python bench/bench_orchestration.py                                   # pipeline-tiny.yaml
    .venv/bin/python bench/bench_orchestration.py --config configs/countdown/pipeline-cpu.yaml
    .venv/bin/python bench/bench_orchestration.py --fresh    # no Prefect database or MLflow store yet

Both sides run as fresh subprocesses (so both pay interpreter and import start-up) into fresh folders
(so nothing is reused from a cache): the baseline generates in-process, trains SFT in-process, runs
RL and evaluates with metacot_core only (no Prefect, Ray or MLflow import); the pipeline side is
`metacot run` (the README's main command) with a temporary Prefect API, Ray where the config asks for
it, and every stage logged to a throwaway MLflow SQLite store. By default a tiny pipeline runs first
in the same throwaway Prefect home and MLflow store, so that both databases exist, as they do after
a user's first run (`--fresh` measures that first run instead: creating them costs about 7 s more).
Prints both wall times, the seconds of each stage on both sides, and the overhead ratio (target:
<= 15% on the CPU config, where start-up costs are small next to training).
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


def direct(config: str, overrides: list[str], times_path: Path) -> None:
    """Every stage with core calls only, in this process; writes each stage's seconds to `times_path`."""
    import json

    from metacot_core.data.card import build_card, write_card
    from metacot_core.data.generate import plan_shards, write_shard
    from metacot_core.evaluation.generate import load_checkpoint
    from metacot_core.evaluation.report import write_report
    from metacot_core.evaluation.runner import evaluate_items, load_items, summarize
    from metacot_core.pipeline.config import load_pipeline
    from metacot_core.rl.runner import run as run_rl
    from metacot_core.training import sft

    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[stage] = now - clock
        clock = now

    pipe = load_pipeline(config, overrides)
    gen = pipe.generate.model_copy(update={"workers": 1})
    for spec in plan_shards(gen):
        write_shard(gen, spec)
    write_card(gen.output_dir, build_card(gen.output_dir, gen.model_dump(mode="json")))
    lap("generate")
    in_process = pipe.sft.ray.model_copy(update={"enabled": False})
    cfg, _ = sft.prepare_run(pipe.sft.model_copy(update={"ray": in_process}))
    checkpoint = sft.train(cfg, progress=False)["final_dir"]
    lap("sft")
    if pipe.rl is not None:
        checkpoint = run_rl(pipe.rl).get("checkpoint") or checkpoint
        lap("rl")
    ev = pipe.evaluate.model_copy(update={"checkpoint": str(checkpoint), "progress": False})
    model, tokenizer = load_checkpoint(ev.checkpoint, ev.generation.device)
    items = load_items(ev.dataset, ev.splits, ev.max_problems, ev.format)
    records = evaluate_items(model, tokenizer, items, ev)
    write_report(records, summarize(records, ev), ev.output_dir)
    lap("evaluate")
    times_path.write_text(json.dumps(times))


def timed(cmd: list[str], env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with open(log, "wb") as out:
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    elapsed = time.perf_counter() - start
    if code != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed with code {code}; see {log}")
    return elapsed


def pipeline_stage_times(root: Path) -> dict[str, float]:
    """Seconds per stage as the pipeline recorded them in its state file."""
    import json

    times: dict[str, float] = {}
    for path in root.rglob("pipeline-state-*.json"):
        for stage, entry in json.loads(path.read_text())["stages"].items():
            if entry.get("seconds") is not None:
                times[stage] = entry["seconds"]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/countdown/pipeline-tiny.yaml")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--fresh", action="store_true",
                        help="no Prefect database or MLflow store yet (a first run on a new machine); by "
                             "default both exist, as after any earlier metacot run")
    parser.add_argument("--keep-log", type=Path, help="copy the pipeline run's log here")
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)  # the baseline child
    parser.add_argument("--times", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct:
        direct(args.config, args.overrides, args.times)
        return
    with tempfile.TemporaryDirectory(prefix="bench-orch-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "METACOT_HOME": tmp,
               "PREFECT_HOME": str(work / "prefect")}
        env.pop("PREFECT_API_URL", None)  # the temporary local API that a run without a server gets
        if not args.fresh:  # an earlier run made the Prefect database and the MLflow store
            timed([sys.executable, "-m", "cli", "run", "--config",
                   "configs/countdown/pipeline-tiny.yaml", f"output_root={work / 'prime'}"], env,
                  work / "prime.log")
        base = [sys.executable, str(Path(__file__).resolve()), "--direct", "--config", args.config,
                *args.overrides, f"output_root={work / 'direct'}", "--times", str(work / "direct.json")]
        flow = [sys.executable, "-m", "cli", "run", "--config", args.config, *args.overrides,
                f"output_root={work / 'pipeline'}"]  # `metacot run`, the README's main command
        t_direct = timed(base, env, work / "direct.log")
        t_flow = timed(flow, env, work / "pipeline.log")
        if args.keep_log is not None:  # the pipeline's log, to see where the time went
            args.keep_log.write_bytes((work / "pipeline.log").read_bytes())
        import json

        d_times = json.loads((work / "direct.json").read_text())
        p_times = pipeline_stage_times(work / "pipeline")
    overhead = t_flow / t_direct - 1
    print(f"config: {args.config} {' '.join(args.overrides)}  "
          f"({'fresh: no Prefect database or MLflow store yet' if args.fresh else 'both stores exist'})")
    print(f"{'':<25}{'direct':>9}{'pipeline':>10}{'difference':>12}")
    for stage in d_times:
        print(f"  {stage:<23}{d_times[stage]:8.1f}s{p_times.get(stage, 0.0):9.1f}s"
              f"{p_times.get(stage, 0.0) - d_times[stage]:+11.1f}s")
    d_out, p_out = t_direct - sum(d_times.values()), t_flow - sum(p_times.values())
    print(f"  {'outside stages':<23}{d_out:8.1f}s{p_out:9.1f}s{p_out - d_out:+11.1f}s"
          "   (imports, Prefect API start, MLflow parent run, exit)")
    print(f"core stages, one process : {t_direct:8.1f} s")
    print(f"Prefect + Ray + MLflow   : {t_flow:8.1f} s")
    print(f"overhead                 : {overhead:+8.1%}  (ratio {t_flow / t_direct:.3f}; "
          "target <= +15% on the CPU config)")


if __name__ == "__main__":
    main()
