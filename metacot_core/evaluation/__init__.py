"""Evaluation: did the model learn to search?

generate (batched KV-cache decoding) -> judge (replay every step against the rules) -> metrics (solve
rate with CI, pass@k, validity, teacher comparison, strategy alignment, maze SWC/ILR) -> report
(per-problem table, summary, plots). Orchestration-free: `tasks/evaluate.py` and `flows/evaluate.py`
add MLflow and Prefect.
"""
