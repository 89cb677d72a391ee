"""RL post-training on verifiable search rewards: expert iteration (STaR) and GRPO.

config: typed settings; rewards: the verifier-backed reward; grpo_math: advantages, clipped loss, KL;
star / grpo: one method each (rollout, score, select or advantages, update); guards: collapse alarms;
common: problems, rollouts, judging, held-out eval, checkpoints; runner: one run from a config.
Submodules are imported on use so `import metacot_core.rl` stays light.
"""
