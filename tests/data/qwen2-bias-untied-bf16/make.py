#!/usr/bin/env python3
"""qwen2-bias-untied-bf16: Qwen2ForCausalLM (q/k/v biases, no o_proj bias), untied lm_head,
use_sliding_window false, BF16 weights.
Regenerate from the repository root: python3 tests/data/qwen2-bias-untied-bf16/make.py"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import fixture_lib as F  # noqa: E402


def as_llama_without_bias(c):
    c["model_type"] = "llama"
    c["attention_bias"] = False
    return c


config = F.qwen2_config(dtype="bfloat16", tie_word_embeddings=False)
F.build(HERE, config, "BF16", seed=707, variants={"biases ignored": as_llama_without_bias})
