"""metacot_core: the pure library of metacot.

Problems, symbolic search, trace formats (write and parse), the replay validator, datasets,
tokenizer, models, training and evaluation logic. Nothing here imports Prefect, Ray or MLflow:
every piece is usable from a notebook and testable alone (see tests/test_core_is_pure.py).
"""

__version__ = "0.1.0"
