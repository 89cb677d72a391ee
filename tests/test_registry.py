"""The registry finds the domain packages and the RL methods; RL configs select a method's block."""

from __future__ import annotations

import pytest

from metacot_core import registry
from metacot_core.config import ConfigError, build_config
from metacot_core.rl.config import GrpoConfig, MethodConfig, RLConfig, StarConfig


def test_domain_packages_register_their_domain_and_own_formats():
    assert {"countdown", "maze"} <= set(registry.names("domains"))
    assert registry.get_domain("maze").name == "maze"
    assert {"sos", "sos-arith", "astar", "mcts", "solution"} <= set(registry.names("formats"))
    assert registry.get_format("sos").domains == ("countdown",)


def test_rl_methods_are_registered_config_classes():
    assert registry.names("rl") == ["grpo", "star"]
    assert registry.get_rl_method("star") is StarConfig and registry.get_rl_method("grpo") is GrpoConfig
    assert all(issubclass(registry.get_rl_method(n), MethodConfig) for n in registry.names("rl"))
    with pytest.raises(ValueError, match="unknown RL method 'ppo'"):
        registry.get_rl_method("ppo")


def test_rl_config_has_a_block_per_method_and_method_picks_one():
    cfg = build_config(RLConfig, {"method": "grpo", "grpo": {"steps": 7}})
    assert cfg.method_config is cfg.grpo and cfg.method_config.total_steps() == 7
    assert cfg.star.total_steps() == StarConfig().iterations  # the other block is there, at defaults
    with pytest.raises(ConfigError, match="unknown RL method 'ppo'; known: grpo, star"):
        build_config(RLConfig, {"method": "ppo"})
    with pytest.raises(ConfigError, match="GRPO needs temperature > 0"):
        build_config(RLConfig, {"method": "grpo", "sampling": {"temperature": 0.0}})
    with pytest.raises(ConfigError, match="star.bogus"):
        build_config(RLConfig, {"star": {"bogus": 1}})


def test_rl_trainer_is_looked_up_from_the_method_config():
    from metacot_core.rl.runner import trainer

    assert trainer(RLConfig(method="star")).__module__ == "metacot_core.rl.star"
    grpo = RLConfig(method="grpo", sampling={"temperature": 1.0})
    assert trainer(grpo).__module__ == "metacot_core.rl.grpo"
