#!/usr/bin/env python3
"""qwen3-qknorm-sharded-bf16: Qwen3ForCausalLM with per-head q_norm/k_norm (RMSNorm over head_dim,
before RoPE), explicit head_dim 32 (so q_proj is 128x64 and o_proj 64x128, head_dim*heads !=
hidden_size), untied lm_head, BF16 weights in 2 shards with model.safetensors.index.json.
Regenerate from the repository root: python3 tests/data/qwen3-qknorm-sharded-bf16/make.py"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import fixture_lib as F  # noqa: E402


def as_llama_without_qk_norm(c):
    c["model_type"] = "llama"
    return c


config = F.qwen3_config(dtype="bfloat16", tie_word_embeddings=False)
F.build(HERE, config, "BF16", seed=808, num_shards=2, variants={"q/k norm ignored": as_llama_without_qk_norm})
