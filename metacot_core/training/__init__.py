"""Supervised fine-tuning on search traces: config, data (masking, packing, overflow), loop, checkpoints.

Pure library code: no Ray, Prefect or MLflow here (tasks/sft.py runs `sft.train` in Ray Train workers
and sends its metrics to MLflow).
"""
