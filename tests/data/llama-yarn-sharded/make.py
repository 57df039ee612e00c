#!/usr/bin/env python3
"""llama-yarn-sharded: LlamaForCausalLM, rope_type yarn (factor 4, original_max_position_embeddings
32, beta_fast/beta_slow/attention_factor left to their defaults), F16 weights in 3 shards with
model.safetensors.index.json, untied lm_head.
Regenerate from the repository root: python3 tests/data/llama-yarn-sharded/make.py"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import fixture_lib as F  # noqa: E402


def as_default_rope(c):
    c.pop("rope_scaling", None)
    c["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "default"}
    return c


def yarn_without_attention_factor(c):
    c["rope_parameters"]["attention_factor"] = 1.0
    return c


config = F.llama_config(
    dtype="float16",
    rope_parameters={"factor": 4.0, "original_max_position_embeddings": 32, "rope_theta": 10000.0,
                     "rope_type": "yarn"})
F.build(HERE, config, "F16", seed=202, num_shards=3,
        variants={"rope default": as_default_rope, "yarn attention_factor 1": yarn_without_attention_factor})
