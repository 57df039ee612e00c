#!/usr/bin/env python3
"""mistral-gqa: MistralForCausalLM (4 query heads, 2 KV heads), sliding_window 4096 (longer than
any window evaluated, so the mask is plain causal), BF16 weights, untied lm_head.
Regenerate from the repository root: python3 tests/data/mistral-gqa/make.py
(the tokenizer files are made by make_tokenizer.py beside this file)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import fixture_lib as F  # noqa: E402


def window_8(c):
    c["sliding_window"] = 8
    return c


config = F.mistral_config(dtype="bfloat16")
F.build(HERE, config, "BF16", seed=505, variants={"sliding_window 8": window_8})
