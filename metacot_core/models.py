"""Causal LMs built from a config (never downloaded): GPT-2, Llama and GPT-Neo, in named sizes.

Presets (parameter counts with a ~1.4k-token trace vocabulary; the token embedding is tied):
  1m        GPT-2, 2 layers x 128, 4 heads          ~0.7M  (CPU tests, minutes-long CPU runs)
  25m       GPT-2, 8 layers x 512, 8 heads          ~28M   (one GPU, or a patient CPU)
  100m      GPT-2, 14 layers x 768, 12 heads        ~103M  (one GPU)
  sos-250m  GPT-Neo, 16 layers x 1024, 16 heads, 4096 positions: Stream of Search's model
            (~207M here; SoS counts ~250M with GPT-2's 50k-token vocabulary)
Any preset field can be overridden (`model.n_layer=4`, `model.arch=llama`). `init_from` loads a
local checkpoint instead (`trust_remote_code=False`, local files only).

Attention is SDPA where transformers supports it (GPT-2, Llama); GPT-Neo has only eager attention in
transformers 5. Training runs bf16 autocast on GPU with fp32 master weights (see training.sft).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from metacot_core.published import verify_if_published

Arch = Literal["gpt2", "llama", "gpt_neo"]

PRESETS: dict[str, dict[str, Any]] = {
    "1m": {"arch": "gpt2", "n_layer": 2, "d_model": 128, "n_head": 4, "context": 1024},
    "25m": {"arch": "gpt2", "n_layer": 8, "d_model": 512, "n_head": 8, "context": 4096},
    "100m": {"arch": "gpt2", "n_layer": 14, "d_model": 768, "n_head": 12, "context": 4096},
    "sos-250m": {"arch": "gpt_neo", "n_layer": 16, "d_model": 1024, "n_head": 16, "context": 4096},
}


class ModelConfig(BaseModel):
    """Which network to train: a preset (with field overrides) or a local checkpoint."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field("1m", description=f"named size: {', '.join(PRESETS)}")
    arch: Arch | None = Field(None, description="gpt2, llama or gpt_neo (default: the preset's)")
    n_layer: int | None = Field(None, ge=1, description="transformer blocks (default: the preset's)")
    d_model: int | None = Field(None, ge=8, description="hidden width (default: the preset's)")
    n_head: int | None = Field(None, ge=1, description="attention heads (default: the preset's)")
    context: int | None = Field(None, ge=8, description="max positions (default: the preset's)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout everywhere (0: small data, few epochs)")
    init_from: str | None = Field(None, description="local checkpoint directory to start from instead")
    attn_implementation: str | None = Field(None, description="override (sdpa, eager); default: best known")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.init_from is None and self.preset not in PRESETS:
            raise ValueError(f"preset: unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        if self.init_from is None and self.resolved("d_model") % self.resolved("n_head"):
            raise ValueError(
                f"n_head: d_model {self.resolved('d_model')} is not divisible by "
                f"n_head {self.resolved('n_head')}"
            )
        return self

    def resolved(self, name: str) -> Any:
        value = getattr(self, name)
        return PRESETS[self.preset][name] if value is None else value


def default_attention(arch: str) -> str:
    return "eager" if arch == "gpt_neo" else "sdpa"


def hf_config(cfg: ModelConfig, vocab_size: int, bos_id: int, eos_id: int, pad_id: int) -> Any:
    """The transformers config object for a preset (no network access)."""
    from transformers import GPT2Config, GPTNeoConfig, LlamaConfig

    arch, n_layer, d, heads, ctx = (
        cfg.resolved(k) for k in ("arch", "n_layer", "d_model", "n_head", "context")
    )
    ids = {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": pad_id, "vocab_size": vocab_size}
    if arch == "gpt2":
        return GPT2Config(
            n_layer=n_layer,
            n_embd=d,
            n_head=heads,
            n_positions=ctx,
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            use_cache=True,
            **ids,
        )
    if arch == "llama":
        inner = int(round(d * 8 / 3 / 64)) * 64 or 64
        return LlamaConfig(
            hidden_size=d,
            intermediate_size=inner,
            num_hidden_layers=n_layer,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=ctx,
            attention_dropout=cfg.dropout,
            tie_word_embeddings=True,
            **ids,
        )
    if n_layer % 2:
        raise ValueError(
            f"n_layer: GPT-Neo alternates global/local attention, needs an even count, got {n_layer}"
        )
    return GPTNeoConfig(
        hidden_size=d,
        num_layers=n_layer,
        num_heads=heads,
        max_position_embeddings=ctx,
        attention_types=[[["global", "local"], n_layer // 2]],
        embed_dropout=cfg.dropout,
        resid_dropout=cfg.dropout,
        attention_dropout=cfg.dropout,
        **ids,
    )


def build_model(
    cfg: ModelConfig, vocab_size: int, bos_id: int, eos_id: int, pad_id: int, seed: int = 0
) -> Any:
    """A freshly initialised model (seeded) or the `init_from` checkpoint."""
    from transformers import AutoModelForCausalLM

    if cfg.init_from is not None:
        model = load_local_model(cfg.init_from, cfg.attn_implementation)
        if model.get_input_embeddings().num_embeddings < vocab_size:
            raise ValueError(
                f"init_from {cfg.init_from}: model vocabulary "
                f"({model.get_input_embeddings().num_embeddings}) is smaller than the "
                f"tokenizer's ({vocab_size})"
            )
        return model
    config = hf_config(cfg, vocab_size, bos_id, eos_id, pad_id)
    attn = cfg.attn_implementation or default_attention(cfg.resolved("arch"))
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn)


def is_model_dir(path: str | Path) -> bool:
    path = Path(path)
    weights = list(path.glob("*.safetensors")) + list(path.glob("pytorch_model*.bin"))
    return (path / "config.json").is_file() and bool(weights)


def refuse_remote_code(path: str | Path) -> None:
    """ValueError naming the file when a checkpoint folder declares classes of its own (`auto_map`).

    A checkpoint is untrusted input: transformers would import the module `auto_map` names (on a
    terminal it even asks [y/N] whatever trust_remote_code's default), so such a folder is refused
    before any load; metacot's models and tokenizers are all built-in transformers classes.
    """
    for name in ("config.json", "tokenizer_config.json"):
        file = Path(path) / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{file}: not a readable JSON file ({type(err).__name__})") from None
        if isinstance(data, dict) and "auto_map" in data:
            raise ValueError(f"{file}: declares auto_map (code shipped with the checkpoint); "
                             "metacot loads no checkpoint code, only built-in transformers classes")


def load_local_model(path: str | Path, attn_implementation: str | None = None) -> Any:
    """A causal LM from a local directory; a one-line error when the directory holds no model."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"init_from {path}: directory not found")
    if not is_model_dir(path):
        raise ValueError(f"init_from {path}: not a model directory (needs config.json and *.safetensors)")
    refuse_remote_code(path)
    verify_if_published(path)  # a checkpoints/<name>/ folder: every file as its manifest hashed it
    config = AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    attn = attn_implementation or default_attention(config.model_type)
    return AutoModelForCausalLM.from_pretrained(
        str(path),
        local_files_only=True,
        trust_remote_code=False,
        attn_implementation=attn,
        dtype=torch.float32,
    )


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct trainable parameters (tied embeddings counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def flops_per_token(model: Any, seq_len: int) -> float:
    """Training FLOPs per token, 6N + 12 * layers * width * seq_len (PaLM appendix B), for MFU."""
    cfg = model.config
    n_layer = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None) or cfg.num_layers
    width = getattr(cfg, "hidden_size", None) or cfg.n_embd
    non_embedding = count_parameters(model) - model.get_input_embeddings().weight.numel()
    return 6.0 * non_embedding + 12.0 * n_layer * width * seq_len
