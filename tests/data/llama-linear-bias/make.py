#!/usr/bin/env python3
"""llama-linear-bias: LlamaForCausalLM with attention_bias (q,k,v,o biases) and mlp_bias
(gate,up,down biases), linear RoPE scaling (factor 4) in the LEGACY spelling
"rope_scaling": {"type": "linear", "factor": 4.0} with a top-level rope_theta and no head_dim,
as transformers 4.42 wrote configs; F32 weights; tied embeddings (no lm_head.weight stored).
Regenerate from the repository root: python3 tests/data/llama-linear-bias/make.py"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import fixture_lib as F  # noqa: E402


def as_default_rope(c):
    c.pop("rope_scaling", None)
    c["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "default"}
    return c


def no_bias(c):
    c["attention_bias"] = False
    c["mlp_bias"] = False
    return c


def untied(c):
    c["tie_word_embeddings"] = False  # lm_head would then be a copy of embed_tokens: no change
    return c


config = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": True, "attention_dropout": 0.0, "bos_token_id": 1,
    "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
    "intermediate_size": 160, "max_position_embeddings": 1024, "mlp_bias": True, "model_type": "llama",
    "num_attention_heads": 4, "num_hidden_layers": 3, "num_key_value_heads": 2, "pretraining_tp": 1,
    "rms_norm_eps": 1e-06, "rope_scaling": {"factor": 4.0, "type": "linear"}, "rope_theta": 10000.0,
    "tie_word_embeddings": True, "torch_dtype": "float32", "transformers_version": "4.42.4",
    "use_cache": True, "vocab_size": 512,
}
F.build(HERE, config, "F32", seed=303, embed_std=0.4,
        variants={"rope default": as_default_rope, "biases ignored": no_bias})
