#!/usr/bin/env python3
"""llama-dynamic: LlamaForCausalLM, rope_type dynamic (dynamic NTK, factor 4) with
max_position_embeddings 32, so the 128-token golden window is past the threshold; F32 weights.
Regenerate from the repository root: python3 tests/data/llama-dynamic/make.py"""
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
    dtype="float32", max_position_embeddings=32,
    rope_parameters={"factor": 4.0, "rope_theta": 10000.0, "rope_type": "dynamic"})
F.build(HERE, config, "F32", seed=404, variants={"rope default": as_default_rope})
