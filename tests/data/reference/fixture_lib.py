"""Shared builder for the random-weight model fixtures under tests/data/<name>/.

Each fixture's make.py describes its config and calls build(); build() writes config.json,
the safetensors weights (single file or shards + index) and golden.json, all deterministic.
The golden values come from hf_numpy.forward() run on the weights AS STORED (after rounding
to BF16/F16), in float64.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_numpy as R  # noqa: E402

T = 128
INPUT_SEED = 20261202
LOGIT_POSITIONS = (0, 63, 127)
KV_POSITIONS = (0, 17, 127)
GOLDEN_KEYS = ("source", "transformers_commit", "input_ids", "window_length", "nll_sum", "tokens_scored",
               "mean_nll_nats", "logits", "kv", "mean_entropy_nats", "rope")
SOURCE = ("plain numpy reference tests/data/reference/hf_numpy.py written from transformers "
          f"{R.TRANSFORMERS_COMMIT} ({R.TRANSFORMERS_VERSION}) source by a session that never read "
          "the project's model code; float64")


def input_ids(vocab_size=512):
    return [int(x) for x in np.random.default_rng(INPUT_SEED).integers(0, vocab_size, T)]


def write_json(path, obj, indent=2, sort_keys=True):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


def golden_from(spec, weights, ids):
    out = R.forward(spec, weights, ids)
    nll, ent = R.nll_and_entropy(out["logits"], ids)
    g = {
        "source": SOURCE,
        "transformers_commit": R.TRANSFORMERS_COMMIT,
        "input_ids": list(ids),
        "window_length": len(ids),
        "nll_sum": nll,
        "tokens_scored": len(ids) - 1,
        "mean_nll_nats": nll / (len(ids) - 1),
        "logits": {str(p): [float(x) for x in out["logits"][p]] for p in LOGIT_POSITIONS},
        "kv": [{"layer": l, "position": p,
                "key_pre_rope": [float(x) for x in out["key_pre_rope"][l][p]],
                "key": [float(x) for x in out["key"][l][p]],
                "value": [float(x) for x in out["value"][l][p]]}
               for l in range(spec.num_layers) for p in KV_POSITIONS],
        "mean_entropy_nats": float(ent.mean()),
        "rope": {"type": spec.rope["rope_type"], "inv_freq": [float(x) for x in out["inv_freq"]],
                 "attention_scaling": float(out["attention_scaling"])},
    }
    assert tuple(g) == GOLDEN_KEYS
    return g, ent


def build(fixture_dir, config, dtype, seed, num_shards=1, variants=None, **gains):
    """Writes the fixture; returns the golden dict. gains go to hf_numpy.random_weights.
    variants: {label: function(config copy) -> changed config}; for each, prints how far the
    logits move when the same stored weights are run under the changed config (to show that the
    fixture's quirk matters)."""
    os.makedirs(fixture_dir, exist_ok=True)
    for fn in os.listdir(fixture_dir):  # drop stale weight files from an earlier layout
        if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
            os.remove(os.path.join(fixture_dir, fn))
    write_json(os.path.join(fixture_dir, "config.json"), config)
    spec = R.Spec(config)
    weights = R.random_weights(spec, np.random.default_rng(seed), **gains)
    R.save_checkpoint(fixture_dir, weights, dtype, num_shards)
    # Golden values from the files as written (this re-reads them: the decode path is tested too).
    spec2, stored, _ = R.load_model(fixture_dir)
    ids = input_ids(spec2.vocab_size)
    g, ent = golden_from(spec2, stored, ids)
    write_json(os.path.join(fixture_dir, "golden.json"), g, indent=1, sort_keys=False)
    sens = {}
    for label, fn in (variants or {}).items():
        c2 = fn(json.loads(json.dumps(config)))
        sp3 = R.Spec(c2)
        w3 = dict(stored)
        if sp3.tie and not spec2.tie:
            w3.pop("lm_head.weight")
        if not sp3.tie and spec2.tie:
            w3["lm_head.weight"] = w3["model.embed_tokens.weight"]
        o3 = R.forward(sp3, w3, ids)
        sens[label] = round(float(max(np.max(np.abs(o3["logits"][p] - np.array(g["logits"][str(p)])))
                                      for p in LOGIT_POSITIONS)), 4)
    print(json.dumps({"fixture": os.path.basename(os.path.abspath(fixture_dir)),
                      "mean_nll_nats": round(g["mean_nll_nats"], 4),
                      "mean_entropy_nats": round(g["mean_entropy_nats"], 4),
                      "entropy_at_0_63_127": [round(float(ent[p]), 4) for p in LOGIT_POSITIONS],
                      "logit_std": round(float(np.std(g["logits"]["63"])), 3),
                      "rope": g["rope"]["type"], "inv_freq": [round(x, 6) for x in g["rope"]["inv_freq"]],
                      "attention_scaling": g["rope"]["attention_scaling"],
                      "max_abs_logit_change_under_variant": sens}))
    return g


# config.json bodies, in the keys PreTrainedConfig.to_diff_dict keeps for each class
def llama_config(**over):
    c = {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": None, "dtype": "float32", "eos_token_id": None, "head_dim": 16, "hidden_act": "silu",
        "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 160, "max_position_embeddings": 1024,
        "mlp_bias": False, "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 3,
        "num_key_value_heads": 2, "pad_token_id": None, "pretraining_tp": 1, "rms_norm_eps": 1e-06,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "tie_word_embeddings": False,
        "transformers_version": R.TRANSFORMERS_VERSION, "use_cache": True, "vocab_size": 512,
    }
    c.update(over)
    return c


def mistral_config(**over):
    c = {
        "architectures": ["MistralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "dtype": "bfloat16",
        "eos_token_id": 2, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
        "intermediate_size": 160, "max_position_embeddings": 131072, "model_type": "mistral",
        "num_attention_heads": 4, "num_hidden_layers": 3, "num_key_value_heads": 2, "pad_token_id": None,
        "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "sliding_window": 4096, "tie_word_embeddings": False, "transformers_version": R.TRANSFORMERS_VERSION,
        "use_cache": True, "vocab_size": 512,
    }
    c.update(over)
    return c


def qwen2_config(**over):
    c = {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": None, "dtype": "float32",
        "eos_token_id": None, "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
        "intermediate_size": 160, "layer_types": ["full_attention"] * 3, "max_position_embeddings": 32768,
        "max_window_layers": 28, "model_type": "qwen2", "num_attention_heads": 4, "num_hidden_layers": 3,
        "num_key_value_heads": 2, "pad_token_id": None, "rms_norm_eps": 1e-06,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}, "sliding_window": None,
        "tie_word_embeddings": False, "transformers_version": R.TRANSFORMERS_VERSION, "use_cache": True,
        "use_sliding_window": False, "vocab_size": 512,
    }
    c.update(over)
    return c


def qwen3_config(**over):
    c = qwen2_config(architectures=["Qwen3ForCausalLM"], model_type="qwen3", attention_bias=False, head_dim=32)
    c.update(over)
    return c
