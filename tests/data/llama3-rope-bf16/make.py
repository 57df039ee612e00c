#!/usr/bin/env python3
"""llama3-rope-bf16: LlamaForCausalLM, rope_type llama3 (factor 8, low/high freq factor 1/4,
original_max_position_embeddings 32), BF16 weights in one model.safetensors, untied lm_head.
Regenerate from the repository root: python3 tests/data/llama3-rope-bf16/make.py
(the tokenizer files are made by make_tokenizer.py beside this file)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import fixture_lib as F  # noqa: E402


def as_default_rope(c):
    c.pop("rope_scaling", None)
    c["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "default"}
    return c


config = F.llama_config(
    dtype="bfloat16", bos_token_id=511, eos_token_id=None,
    rope_parameters={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 32, "rope_theta": 10000.0, "rope_type": "llama3"})
F.build(HERE, config, "BF16", seed=101, variants={"rope default": as_default_rope})
