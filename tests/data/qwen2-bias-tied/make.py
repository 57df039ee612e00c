#!/usr/bin/env python3
"""qwen2-bias-tied: Qwen2ForCausalLM (q/k/v biases, no o_proj bias), tie_word_embeddings true
(no lm_head.weight stored), use_sliding_window false, F32 weights.
Regenerate from the repository root: python3 tests/data/qwen2-bias-tied/make.py"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import fixture_lib as F  # noqa: E402


def as_llama_without_bias(c):
    c["model_type"] = "llama"
    c["attention_bias"] = False
    return c


config = F.qwen2_config(dtype="float32", tie_word_embeddings=True)
F.build(HERE, config, "F32", seed=606, embed_std=0.4, variants={"biases ignored": as_llama_without_bias})
