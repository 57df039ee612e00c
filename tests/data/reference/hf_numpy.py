#!/usr/bin/env python3
"""Plain-numpy reference forward pass of Hugging Face decoder LMs (float64 compute).

Model types: llama, mistral, qwen2, qwen3 (the *ForCausalLM classes of transformers).
Written from the transformers source at commit
decba1d2ea4ed3cbf0495d1828abad4b2dba1846 (main, 2026-08-19, version 5.16.0.dev0):
models/{llama,mistral,qwen2,qwen3}/modeling_*.py and configuration_*.py,
modeling_rope_utils.py, configuration_utils.py (config loading / rope standardisation),
masking_utils.py (sliding-window mask) and modeling_utils.py (shard index format).
It was written without reading any of the C++ code it is meant to check.

What it computes, for ONE sequence with positions 0..T-1 in ONE forward pass (no cache):
  logits [T, vocab], and per layer the keys before RoPE (after bias; for qwen3 after k_norm),
  the keys after RoPE, and the values, each [T, num_kv_heads*head_dim], heads concatenated
  in head order (the layout of k_proj's output rows).

Everything is float64. Weights stored as BF16/F16 are decoded exactly (BF16 = the upper 16
bits of an fp32). transformers itself keeps inv_freq in float32 and runs the model in the
checkpoint's or the requested dtype; expect differences of about 1e-6 relative against an
fp32 run of transformers.

Only numpy is needed.  `python3 hf_numpy.py --selftest` runs the self checks;
`python3 hf_numpy.py MODEL_DIR [ids...]` prints the summed NLL of the ids (or of 0..15).
"""
import json
import math
import os
import struct
import sys

import numpy as np

TRANSFORMERS_COMMIT = "decba1d2ea4ed3cbf0495d1828abad4b2dba1846"
TRANSFORMERS_VERSION = "5.16.0.dev0"

# --------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length N, N bytes of JSON header
# {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
# then the raw little-endian data; offsets are relative to the end of the header.
# --------------------------------------------------------------------------------------
_DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1}
_NP_DTYPE = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
             "I8": "i1", "U8": "u1", "BOOL": "u1"}


def bf16_bits_to_f32(bits):
    """uint16 BF16 bit patterns -> float32 values (exact: the bits are the fp32's upper half)."""
    bits = np.asarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 -> BF16 bit patterns, round to nearest even (what torch's .to(bfloat16) does)."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if not np.all(np.isfinite(x)):
        raise ValueError("non-finite value in BF16 conversion")
    b = x.view(np.uint32).astype(np.uint64)
    rounded = (b + np.uint64(0x7FFF) + ((b >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    return rounded.astype(np.uint16)


def read_safetensors(path):
    """Returns ({name: float64 ndarray}, {name: dtype string}, metadata dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} past the end of the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    tensors, dtypes = {}, {}
    spans = []
    for name, info in header.items():
        dt, shape, (b, e) = info["dtype"], list(info["shape"]), info["data_offsets"]
        if dt not in _DTYPE_SIZE:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        count = int(np.prod(shape)) if shape else 1
        if e - b != count * _DTYPE_SIZE[dt] or e > len(data) or b < 0:
            raise ValueError(f"{path}: tensor {name}: data_offsets {b},{e} do not fit shape {shape} {dt}")
        raw = bytes(data[b:e])
        if dt == "BF16":
            arr = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2")).astype(np.float64)
        else:
            arr = np.frombuffer(raw, dtype=_NP_DTYPE[dt]).astype(np.float64)
        tensors[name] = arr.reshape(shape)
        dtypes[name] = dt
        spans.append((b, e))
    spans.sort()
    for (b0, e0), (b1, e1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise ValueError(f"{path}: overlapping tensor data")
    return tensors, dtypes, meta


def encode_tensor(arr, dtype):
    """float ndarray -> (raw little-endian bytes, the float64 values that the bytes decode to)."""
    arr = np.asarray(arr)
    if dtype == "BF16":
        bits = f32_to_bf16_bits(arr.astype(np.float32))
        return bits.astype("<u2").tobytes(), bf16_bits_to_f32(bits).astype(np.float64)
    if dtype in ("F32", "F16", "F64"):
        a = arr.astype(_NP_DTYPE[dtype])
        if not np.all(np.isfinite(a)):
            raise ValueError(f"value out of range for {dtype}")
        return a.tobytes(), a.astype(np.float64)
    raise ValueError(f"unsupported dtype {dtype}")


def write_safetensors(path, tensors, dtype, metadata=None):
    """Writes {name: ndarray} all in `dtype` ("F32", "F16", "BF16") the way the safetensors
    library lays a file out: tensors sorted by (dtype alignment desc, name), compact JSON header
    with "__metadata__" first, header padded with spaces to a multiple of 8 bytes.
    Returns {name: float64 values as stored}."""
    names = sorted(tensors)
    header, chunks, stored, off = {}, [], {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in names:
        raw, vals = encode_tensor(tensors[name], dtype)
        header[name] = {"dtype": dtype, "shape": list(np.shape(tensors[name])),
                        "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        stored[name] = vals.reshape(np.shape(tensors[name]))
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)
    return stored


def load_checkpoint(model_dir):
    """Reads config.json and the weights (model.safetensors, or the shards listed in
    model.safetensors.index.json). Returns (config dict, {name: float64 ndarray}, {name: dtype})."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    weights, dtypes = {}, {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
        wmap = index["weight_map"]
        for shard in sorted(set(wmap.values())):
            t, d, _ = read_safetensors(os.path.join(model_dir, shard))
            for name in t:
                if wmap.get(name) != shard:
                    raise ValueError(f"{shard}: tensor {name} not mapped to this shard in the index")
                if name in weights:
                    raise ValueError(f"tensor {name} in two shards")
            weights.update(t)
            dtypes.update(d)
        missing = set(wmap) - set(weights)
        if missing:
            raise ValueError(f"index names tensors absent from the shards: {sorted(missing)[:5]}")
        total = index.get("metadata", {}).get("total_size")
        actual = sum(int(np.prod(w.shape)) * _DTYPE_SIZE[dtypes[n]] for n, w in weights.items())
        if total is not None and int(total) != actual:
            raise ValueError(f"index metadata.total_size {total} != {actual} bytes of tensor data")
    elif os.path.exists(single):
        weights, dtypes, _ = read_safetensors(single)
    else:
        raise FileNotFoundError(f"{model_dir}: no model.safetensors or model.safetensors.index.json")
    return cfg, weights, dtypes


# --------------------------------------------------------------------------------------
# Config resolution (what the transformers config classes end up with after __post_init__)
# --------------------------------------------------------------------------------------
SUPPORTED = ("llama", "mistral", "qwen2", "qwen3")

# Class defaults that matter when a key is ABSENT from config.json (configuration_*.py).
_CLASS_DEFAULTS = {
    "llama": dict(num_key_value_heads=None, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  attention_bias=False, mlp_bias=False, max_position_embeddings=2048, hidden_act="silu"),
    "mistral": dict(num_key_value_heads=8, rms_norm_eps=1e-6, tie_word_embeddings=False,
                    sliding_window=4096, max_position_embeddings=4096 * 32, hidden_act="silu"),
    "qwen2": dict(num_key_value_heads=32, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  use_sliding_window=False, sliding_window=4096, max_window_layers=28,
                  max_position_embeddings=32768, hidden_act="silu"),
    "qwen3": dict(num_key_value_heads=32, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  attention_bias=False, head_dim=128, use_sliding_window=False, sliding_window=4096,
                  max_window_layers=28, max_position_embeddings=32768, hidden_act="silu"),
}


class Unsupported(ValueError):
    pass


def _get(cfg, key):
    mt = cfg["model_type"]
    if key in cfg:
        return cfg[key]
    return _CLASS_DEFAULTS[mt].get(key)


def resolve_rope(cfg, head_dim):
    """The standardised rope parameters, as RotaryEmbeddingConfigMixin.convert_rope_params_to_dict
    and standardize_rope_params leave them (modeling_rope_utils.py)."""
    # convert_rope_params_to_dict: `self.rope_parameters = rope_scaling or self.rope_parameters`
    rp = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    rp = json.loads(json.dumps(rp))  # deep copy
    layer_types = cfg.get("layer_types")
    if layer_types and rp and set(rp).issubset(set(layer_types)):
        raise Unsupported("per-layer-type rope_parameters")
    rope_theta_top = cfg.get("rope_theta", 10000.0)  # default_theta = 10_000.0
    rp.setdefault("rope_theta", rope_theta_top)
    if rp["rope_theta"] is None:
        raise Unsupported("rope_theta is null")
    prf = cfg.get("partial_rotary_factor", rp.get("partial_rotary_factor"))
    if prf is not None:
        rp["partial_rotary_factor"] = prf
    # standardize_rope_params: rope_type <- rope_type, else the legacy "type", else "default"
    rp.setdefault("rope_type", rp.get("type", "default"))
    rtype = rp["rope_type"]
    if rtype in ("llama3", "yarn", "longrope"):
        if "original_max_position_embeddings" in cfg:
            # a top-level original_max_position_embeddings wins over the one in the rope dict
            rp["original_max_position_embeddings"] = cfg["original_max_position_embeddings"]
        else:
            rp.setdefault("original_max_position_embeddings", _get(cfg, "max_position_embeddings"))
    if float(rp.get("partial_rotary_factor", 1.0)) != 1.0:
        # The llama-family default rope ignores it while the scaled types shorten inv_freq, and
        # apply_rotary_pos_emb then rotates the whole head: not something to imitate here.
        raise Unsupported("partial_rotary_factor != 1 is not supported")
    if rtype not in ("default", "linear", "dynamic", "yarn", "llama3"):
        raise Unsupported(f"rope_type {rtype!r}")
    rp["_dim"] = head_dim
    rp["_max_position_embeddings"] = _get(cfg, "max_position_embeddings")
    return rp


def _default_inv_freq(base, dim):
    return 1.0 / (float(base) ** (np.arange(0, dim, 2, dtype=np.float64) / dim))


def rope_inv_freq(rp, seq_len):
    """(inv_freq [dim/2], attention_scaling) as used for one forward pass whose largest position
    id is seq_len-1, on a freshly built model."""
    rtype, dim, base = rp["rope_type"], rp["_dim"], float(rp["rope_theta"])
    mpe = rp["_max_position_embeddings"]
    if rtype == "default":
        return _default_inv_freq(base, dim), 1.0
    if rtype == "linear":
        return _default_inv_freq(base, dim) / float(rp["factor"]), 1.0
    if rtype == "dynamic":
        # _compute_dynamic_ntk_parameters, called by dynamic_rope_update's
        # dynamic_frequency_update only when seq_len (= max(position_ids)+1) exceeds
        # max_seq_len_cached (= config.max_position_embeddings on a fresh model); at init it
        # is called with seq_len=None -> max_position_embeddings, which gives the default
        # frequencies. seq_len = max(seq_len, max_position_embeddings) covers both cases.
        factor = float(rp["factor"])
        L = max(int(seq_len), int(mpe))
        nb = base * ((factor * L / mpe) - (factor - 1)) ** (dim / (dim - 2))
        return _default_inv_freq(nb, dim), 1.0
    if rtype == "yarn":
        factor = rp.get("factor")
        ompe = rp["original_max_position_embeddings"]
        if factor is None:
            factor = mpe / ompe
        factor = float(factor)
        attention_factor = rp.get("attention_factor")
        mscale, mscale_all_dim = rp.get("mscale"), rp.get("mscale_all_dim")

        def get_mscale(scale, m=1):
            if scale <= 1:
                return 1.0
            return 0.1 * m * math.log(scale) + 1.0

        if attention_factor is None:
            if mscale and mscale_all_dim:
                attention_factor = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
            else:
                attention_factor = get_mscale(factor)
        beta_fast = rp.get("beta_fast") or 32
        beta_slow = rp.get("beta_slow") or 1

        def find_correction_dim(num_rotations):
            return (dim * math.log(ompe / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

        truncate = rp.get("truncate", True)
        low = find_correction_dim(beta_fast)
        high = find_correction_dim(beta_slow)
        if truncate:
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
        extrap_factor = 1.0 - ramp
        pos_freqs = base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
        inv_extrap = 1.0 / pos_freqs
        inv_interp = 1.0 / (factor * pos_freqs)
        inv = inv_interp * (1 - extrap_factor) + inv_extrap * extrap_factor
        return inv, float(attention_factor)
    if rtype == "llama3":
        inv = _default_inv_freq(base, dim)
        factor = float(rp["factor"])
        lff, hff = float(rp["low_freq_factor"]), float(rp["high_freq_factor"])
        old = float(rp["original_max_position_embeddings"])
        low_wl, high_wl = old / lff, old / hff
        wavelen = 2 * math.pi / inv
        inv_l = np.where(wavelen > low_wl, inv / factor, inv)
        smooth = (old / wavelen - lff) / (hff - lff)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = (~(wavelen < high_wl)) & (~(wavelen > low_wl))
        return np.where(medium, smoothed, inv_l), 1.0
    raise Unsupported(rtype)


class Spec:
    """The architecture as the four modeling files build it from a config dict."""

    def __init__(self, cfg):
        mt = cfg.get("model_type")
        if mt not in SUPPORTED:
            raise Unsupported(f"model_type {mt!r}")
        self.model_type = mt
        self.vocab_size = int(cfg["vocab_size"])
        self.hidden_size = int(cfg["hidden_size"])
        self.num_layers = int(cfg["num_hidden_layers"])
        self.num_heads = int(cfg["num_attention_heads"])
        kv = _get(cfg, "num_key_value_heads")
        self.num_kv_heads = int(kv) if kv is not None else self.num_heads
        if self.num_heads % self.num_kv_heads:
            raise Unsupported("num_attention_heads not a multiple of num_key_value_heads")
        self.intermediate_size = int(cfg["intermediate_size"])
        self.eps = float(_get(cfg, "rms_norm_eps"))
        if _get(cfg, "hidden_act") != "silu":
            raise Unsupported(f"hidden_act {_get(cfg, 'hidden_act')!r}")
        if mt == "qwen3":
            hd = _get(cfg, "head_dim")  # Qwen3Config default is 128, NOT hidden/heads
        else:
            hd = cfg.get("head_dim")
        if hd is None:
            if "head_dim" in cfg and mt == "qwen2":
                raise Unsupported("qwen2 with head_dim null")
            hd = self.hidden_size // self.num_heads
        self.head_dim = int(hd)
        self.tie = bool(_get(cfg, "tie_word_embeddings"))
        if mt == "llama":
            ab = bool(_get(cfg, "attention_bias"))
            self.qkv_bias, self.o_bias, self.mlp_bias = ab, ab, bool(_get(cfg, "mlp_bias"))
        elif mt == "mistral":
            self.qkv_bias = self.o_bias = self.mlp_bias = False
        elif mt == "qwen2":
            self.qkv_bias, self.o_bias, self.mlp_bias = True, False, False
        else:  # qwen3
            ab = bool(_get(cfg, "attention_bias"))
            self.qkv_bias, self.o_bias, self.mlp_bias = ab, ab, False
        self.qk_norm = mt == "qwen3"
        # sliding windows (masking_utils.sliding_window_overlay: kv_idx > q_idx - window)
        self.windows = [None] * self.num_layers
        if mt == "mistral":
            w = _get(cfg, "sliding_window")
            self.windows = [w] * self.num_layers
        elif mt in ("qwen2", "qwen3") and _get(cfg, "use_sliding_window"):
            w = _get(cfg, "sliding_window")
            lt = cfg.get("layer_types")
            if lt is None:
                mwl = _get(cfg, "max_window_layers")
                lt = ["sliding_attention" if w is not None and i >= mwl else "full_attention"
                      for i in range(self.num_layers)]
            self.windows = [w if t == "sliding_attention" else None for t in lt]
        self.scaling = self.head_dim ** -0.5
        self.rope = resolve_rope(cfg, self.head_dim)

    def expected_tensors(self):
        """{name: shape} of the tensors a checkpoint must hold (lm_head absent when tied)."""
        H, hd, nq, nk, I = self.hidden_size, self.head_dim, self.num_heads, self.num_kv_heads, self.intermediate_size
        out = {"model.embed_tokens.weight": (self.vocab_size, H), "model.norm.weight": (H,)}
        if not self.tie:
            out["lm_head.weight"] = (self.vocab_size, H)
        for l in range(self.num_layers):
            p = f"model.layers.{l}."
            out[p + "self_attn.q_proj.weight"] = (nq * hd, H)
            out[p + "self_attn.k_proj.weight"] = (nk * hd, H)
            out[p + "self_attn.v_proj.weight"] = (nk * hd, H)
            out[p + "self_attn.o_proj.weight"] = (H, nq * hd)
            if self.qkv_bias:
                out[p + "self_attn.q_proj.bias"] = (nq * hd,)
                out[p + "self_attn.k_proj.bias"] = (nk * hd,)
                out[p + "self_attn.v_proj.bias"] = (nk * hd,)
            if self.o_bias:
                out[p + "self_attn.o_proj.bias"] = (H,)
            if self.qk_norm:
                out[p + "self_attn.q_norm.weight"] = (hd,)
                out[p + "self_attn.k_norm.weight"] = (hd,)
            out[p + "mlp.gate_proj.weight"] = (I, H)
            out[p + "mlp.up_proj.weight"] = (I, H)
            out[p + "mlp.down_proj.weight"] = (H, I)
            if self.mlp_bias:
                out[p + "mlp.gate_proj.bias"] = (I,)
                out[p + "mlp.up_proj.bias"] = (I,)
                out[p + "mlp.down_proj.bias"] = (H,)
            out[p + "input_layernorm.weight"] = (H,)
            out[p + "post_attention_layernorm.weight"] = (H,)
        return out

    def check_weights(self, weights):
        exp = self.expected_tensors()
        extra = set(weights) - set(exp)
        if self.tie:
            extra.discard("lm_head.weight")  # tied: lm_head is embed_tokens whatever the file holds
        missing = set(exp) - set(weights)
        if missing or extra:
            raise ValueError(f"tensor set mismatch: missing {sorted(missing)[:6]}, unexpected {sorted(extra)[:6]}")
        for n, s in exp.items():
            if tuple(weights[n].shape) != tuple(s):
                raise ValueError(f"{n}: shape {weights[n].shape}, expected {s}")


# --------------------------------------------------------------------------------------
# Forward pass
# --------------------------------------------------------------------------------------
def rms_norm(x, w, eps):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return w * (x / np.sqrt(var + eps))


def silu(x):
    return x / (1.0 + np.exp(-x))


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rope_cos_sin(inv_freq, positions, attention_scaling):
    freqs = np.outer(np.asarray(positions, dtype=np.float64), inv_freq)  # [T, dim/2]
    emb = np.concatenate([freqs, freqs], axis=-1)  # [T, dim]
    return np.cos(emb) * attention_scaling, np.sin(emb) * attention_scaling


def apply_rope(x, cos, sin):
    """x [T, heads, hd]; cos/sin [T, hd]."""
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def _linear(x, weights, name, bias):
    y = x @ weights[name + ".weight"].T
    if bias:
        y = y + weights[name + ".bias"]
    return y


def log_softmax(z):
    m = np.max(z, axis=-1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def forward(spec, weights, ids):
    """One forward pass over ids at positions 0..T-1. Returns a dict with logits [T, V],
    key_pre_rope / key / value: lists (per layer) of [T, kv*hd], inv_freq, attention_scaling."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0 or ids.min() < 0 or ids.max() >= spec.vocab_size:
        raise ValueError("ids must be a non-empty 1-d list of valid token ids")
    T = ids.size
    nq, nk, hd = spec.num_heads, spec.num_kv_heads, spec.head_dim
    rep = nq // nk
    positions = np.arange(T)
    inv_freq, att_scale = rope_inv_freq(spec.rope, seq_len=int(positions.max()) + 1)
    cos, sin = rope_cos_sin(inv_freq, positions, att_scale)
    h = weights["model.embed_tokens.weight"][ids]
    out = {"key_pre_rope": [], "key": [], "value": [], "inv_freq": inv_freq, "attention_scaling": att_scale}
    qi = positions[:, None]
    kj = positions[None, :]
    for l in range(spec.num_layers):
        p = f"model.layers.{l}."
        x = rms_norm(h, weights[p + "input_layernorm.weight"], spec.eps)
        q = _linear(x, weights, p + "self_attn.q_proj", spec.qkv_bias).reshape(T, nq, hd)
        k = _linear(x, weights, p + "self_attn.k_proj", spec.qkv_bias).reshape(T, nk, hd)
        v = _linear(x, weights, p + "self_attn.v_proj", spec.qkv_bias).reshape(T, nk, hd)
        if spec.qk_norm:  # per-head RMSNorm over head_dim, before RoPE
            q = rms_norm(q, weights[p + "self_attn.q_norm.weight"], spec.eps)
            k = rms_norm(k, weights[p + "self_attn.k_norm.weight"], spec.eps)
        out["key_pre_rope"].append(k.reshape(T, nk * hd).copy())
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        out["key"].append(k.reshape(T, nk * hd).copy())
        out["value"].append(v.reshape(T, nk * hd).copy())
        allowed = kj <= qi
        if spec.windows[l] is not None:
            allowed &= kj > qi - int(spec.windows[l])
        attn = np.empty((T, nq, hd))
        for hq in range(nq):
            g = hq // rep  # repeat_kv: query head hq reads kv head hq // (nq/nk)
            s = (q[:, hq, :] @ k[:, g, :].T) * spec.scaling
            s = np.where(allowed, s, -np.inf)
            s = s - s.max(axis=-1, keepdims=True)
            pr = np.exp(s)
            pr /= pr.sum(axis=-1, keepdims=True)
            attn[:, hq, :] = pr @ v[:, g, :]
        h = h + _linear(attn.reshape(T, nq * hd), weights, p + "self_attn.o_proj", spec.o_bias)
        x = rms_norm(h, weights[p + "post_attention_layernorm.weight"], spec.eps)
        g_ = _linear(x, weights, p + "mlp.gate_proj", spec.mlp_bias)
        u_ = _linear(x, weights, p + "mlp.up_proj", spec.mlp_bias)
        h = h + _linear(silu(g_) * u_, weights, p + "mlp.down_proj", spec.mlp_bias)
    h = rms_norm(h, weights["model.norm.weight"], spec.eps)
    head = weights["model.embed_tokens.weight"] if spec.tie else weights["lm_head.weight"]
    out["logits"] = h @ head.T
    return out


def nll_and_entropy(logits, ids):
    lp = log_softmax(logits)
    ids = np.asarray(ids)
    nll = -lp[np.arange(len(ids) - 1), ids[1:]]
    ent = -np.sum(np.exp(lp) * lp, axis=-1)
    return float(nll.sum()), ent


def load_model(model_dir):
    cfg, weights, dtypes = load_checkpoint(model_dir)
    spec = Spec(cfg)
    spec.check_weights(weights)
    return spec, weights, cfg


def run_model_dir(model_dir, ids):
    spec, weights, _ = load_model(model_dir)
    return forward(spec, weights, ids)


# --------------------------------------------------------------------------------------
# Random weights (used by the fixtures' make.py and by the self test)
# --------------------------------------------------------------------------------------
def random_weights(spec, rng, embed_std=1.0, proj_gain=1.0, qk_gain=1.5, head_gain=3.0,
                   norm_spread=0.2, bias_std=0.5, qk_norm_spread=0.3):
    """Seeded random weights in HF names, in transformers' state-dict order. Projections are
    N(0, gain^2/fan_in); norm weights 1 + N(0, spread^2); biases N(0, bias_std^2)."""
    W = {}
    H, hd, nq, nk, I = spec.hidden_size, spec.head_dim, spec.num_heads, spec.num_kv_heads, spec.intermediate_size

    def lin(out_f, in_f, gain):
        return rng.standard_normal((out_f, in_f)) * (gain / math.sqrt(in_f))

    def norm(n, spread):
        return 1.0 + spread * rng.standard_normal(n)

    W["model.embed_tokens.weight"] = rng.standard_normal((spec.vocab_size, H)) * embed_std
    for l in range(spec.num_layers):
        p = f"model.layers.{l}."
        W[p + "self_attn.q_proj.weight"] = lin(nq * hd, H, qk_gain)
        if spec.qkv_bias:
            W[p + "self_attn.q_proj.bias"] = rng.standard_normal(nq * hd) * bias_std
        W[p + "self_attn.k_proj.weight"] = lin(nk * hd, H, qk_gain)
        if spec.qkv_bias:
            W[p + "self_attn.k_proj.bias"] = rng.standard_normal(nk * hd) * bias_std
        W[p + "self_attn.v_proj.weight"] = lin(nk * hd, H, proj_gain)
        if spec.qkv_bias:
            W[p + "self_attn.v_proj.bias"] = rng.standard_normal(nk * hd) * bias_std
        W[p + "self_attn.o_proj.weight"] = lin(H, nq * hd, proj_gain)
        if spec.o_bias:
            W[p + "self_attn.o_proj.bias"] = rng.standard_normal(H) * bias_std
        if spec.qk_norm:
            W[p + "self_attn.q_norm.weight"] = norm(hd, qk_norm_spread)
            W[p + "self_attn.k_norm.weight"] = norm(hd, qk_norm_spread)
        W[p + "mlp.gate_proj.weight"] = lin(I, H, proj_gain)
        if spec.mlp_bias:
            W[p + "mlp.gate_proj.bias"] = rng.standard_normal(I) * bias_std
        W[p + "mlp.up_proj.weight"] = lin(I, H, proj_gain)
        if spec.mlp_bias:
            W[p + "mlp.up_proj.bias"] = rng.standard_normal(I) * bias_std
        W[p + "mlp.down_proj.weight"] = lin(H, I, proj_gain)
        if spec.mlp_bias:
            W[p + "mlp.down_proj.bias"] = rng.standard_normal(H) * bias_std
        W[p + "input_layernorm.weight"] = norm(H, norm_spread)
        W[p + "post_attention_layernorm.weight"] = norm(H, norm_spread)
    W["model.norm.weight"] = norm(H, norm_spread)
    if not spec.tie:
        W["lm_head.weight"] = lin(spec.vocab_size, H, head_gain)
    return W


def split_into_shards(names_sizes, max_shard_size):
    """huggingface_hub.split_torch_state_dict_into_shards' greedy rule, in state-dict order:
    start a new shard when adding the tensor would pass max_shard_size."""
    shards, cur, cur_size = [], [], 0
    for name, size in names_sizes:
        if size > max_shard_size:  # a tensor bigger than the limit gets a shard of its own
            if cur:
                shards.append(cur)
            shards.append([name])
            cur, cur_size = [], 0
            continue
        if cur and cur_size + size > max_shard_size:
            shards.append(cur)
            cur, cur_size = [], 0
        cur.append(name)
        cur_size += size
    if cur:
        shards.append(cur)
    return shards


def save_checkpoint(model_dir, weights, dtype, num_shards=1):
    """Writes model.safetensors (num_shards == 1) or model-0000K-of-0000N.safetensors plus
    model.safetensors.index.json like PreTrainedModel.save_pretrained. Returns stored weights."""
    size = {n: int(np.prod(np.shape(w))) * _DTYPE_SIZE[dtype] for n, w in weights.items()}
    meta = {"format": "pt"}
    if num_shards == 1:
        return write_safetensors(os.path.join(model_dir, "model.safetensors"), weights, dtype, meta)
    total = sum(size.values())
    order = list(weights)  # state-dict order
    shards = None
    for limit in range(total // num_shards, total + 1, max(1, total // 1000)):
        s = split_into_shards([(n, size[n]) for n in order], limit)
        if len(s) == num_shards:
            shards = s
            break
    if shards is None:
        raise ValueError(f"could not split into {num_shards} shards")
    stored, wmap = {}, {}
    for k, names in enumerate(shards):
        fn = f"model-{k + 1:05d}-of-{num_shards:05d}.safetensors"
        stored.update(write_safetensors(os.path.join(model_dir, fn), {n: weights[n] for n in names}, dtype, meta))
        for n in names:
            wmap[n] = fn
    n_params = sum(int(np.prod(np.shape(w))) for w in weights.values())
    index = {"metadata": {"total_parameters": n_params, "total_size": total}, "weight_map": wmap}
    with open(os.path.join(model_dir, "model.safetensors.index.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return stored


# --------------------------------------------------------------------------------------
# Self test
# --------------------------------------------------------------------------------------
def _tiny_cfg(model_type="llama", **kw):
    cfg = dict(model_type=model_type, vocab_size=40, hidden_size=32, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
               rms_norm_eps=1e-6, max_position_embeddings=64, rope_parameters={"rope_theta": 10000.0, "rope_type": "default"})
    cfg.update(kw)
    return cfg


def selftest():
    import tempfile
    rng = np.random.default_rng(0)
    n_checks = 0

    def check(cond, what):
        nonlocal n_checks
        if not cond:
            raise AssertionError(what)
        n_checks += 1

    # 1. BF16 decode is exact and the encoder rounds to nearest even.
    bits = np.array([0x3F80, 0xC000, 0x0001, 0x7F7F, 0x3EAA], dtype=np.uint16)
    vals = bf16_bits_to_f32(bits)
    check(vals[0] == 1.0 and vals[1] == -2.0 and vals[2] == np.float32(2.0 ** -133), "bf16 decode")
    check(np.array_equal(f32_to_bf16_bits(vals), bits), "bf16 round trip")
    one_plus = np.array([1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8], dtype=np.float32)  # ties
    check(list(f32_to_bf16_bits(one_plus)) == [0x3F80, 0x3F82], "bf16 ties to even")

    # 2. safetensors round trip for every dtype, sharded and single.
    spec = Spec(_tiny_cfg())
    W = random_weights(spec, rng)
    for dt in ("F32", "F16", "BF16"):
        for shards in (1, 3):
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump(_tiny_cfg(), f)
                stored = save_checkpoint(d, W, dt, shards)
                _, back, dts = load_checkpoint(d)
                check(set(back) == set(W) and all(np.array_equal(back[n], stored[n]) for n in W),
                      f"safetensors round trip {dt} x{shards}")
                check(set(dts.values()) == {dt}, "dtype kept")
                tol = {"F32": 1e-6, "F16": 1e-3, "BF16": 1e-2}[dt]
                check(all(np.allclose(stored[n], W[n], rtol=tol, atol=tol) for n in W), f"{dt} values close")
                check(len([x for x in os.listdir(d) if x.endswith(".safetensors")]) == shards, "shard count")

    # 3. RoPE variants at their identity settings equal the default frequencies.
    base = rope_inv_freq(resolve_rope(_tiny_cfg(), 8), 10)
    d8 = _default_inv_freq(10000.0, 8)
    check(np.allclose(base[0], d8, rtol=0, atol=0) and base[1] == 1.0, "default")
    lin1 = rope_inv_freq(resolve_rope(_tiny_cfg(rope_scaling={"type": "linear", "factor": 1.0}), 8), 10)
    check(np.allclose(lin1[0], d8, rtol=1e-15, atol=0), "linear factor 1 == default")
    lin4 = rope_inv_freq(resolve_rope(_tiny_cfg(rope_scaling={"type": "linear", "factor": 4.0}), 8), 10)
    check(np.allclose(lin4[0] * 4, d8, rtol=1e-15), "linear factor 4 = default / 4")
    dyn = resolve_rope(_tiny_cfg(rope_parameters={"rope_type": "dynamic", "factor": 4.0, "rope_theta": 10000.0}), 8)
    check(np.allclose(rope_inv_freq(dyn, 64)[0], d8, rtol=1e-15), "dynamic at seq_len == max_position_embeddings")
    check(np.allclose(rope_inv_freq(dyn, 5)[0], d8, rtol=1e-15), "dynamic below max_position_embeddings")
    dyn_long = rope_inv_freq(dyn, 256)[0]
    check(np.all(dyn_long[1:] < d8[1:]) and dyn_long[0] == 1.0, "dynamic past the threshold lowers frequencies")
    y1 = rope_inv_freq(resolve_rope(_tiny_cfg(rope_parameters={"rope_type": "yarn", "factor": 1.0,
                                                                 "rope_theta": 10000.0, "original_max_position_embeddings": 64}), 8), 10)
    check(np.allclose(y1[0], d8, rtol=1e-15) and y1[1] == 1.0, "yarn factor 1 == default")
    y4 = rope_inv_freq(resolve_rope(_tiny_cfg(rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                                                 "rope_theta": 10000.0, "original_max_position_embeddings": 16}), 8), 10)
    check(abs(y4[1] - (0.1 * math.log(4) + 1)) < 1e-15, "yarn attention factor")
    check(np.all(y4[0] <= d8 * (1 + 1e-15)) and np.all(y4[0] >= d8 / 4 * (1 - 1e-15)), "yarn between interp and extrap")
    l31 = rope_inv_freq(resolve_rope(_tiny_cfg(rope_parameters={"rope_type": "llama3", "factor": 1.0, "low_freq_factor": 1.0,
                                                                  "high_freq_factor": 4.0, "rope_theta": 10000.0,
                                                                  "original_max_position_embeddings": 16}), 8), 10)
    check(np.allclose(l31[0], d8, rtol=1e-15), "llama3 factor 1 == default")
    # old and new config spellings agree
    old = resolve_rope(_tiny_cfg(rope_parameters=None, rope_theta=500.0, rope_scaling={"type": "linear", "factor": 2.0}), 8)
    new = resolve_rope(_tiny_cfg(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}), 8)
    check(np.array_equal(rope_inv_freq(old, 3)[0], rope_inv_freq(new, 3)[0]) and old["rope_type"] == "linear", "spellings")
    try:
        resolve_rope(_tiny_cfg(partial_rotary_factor=0.5), 8)
        check(False, "partial_rotary_factor must be refused")
    except Unsupported:
        n_checks += 1

    # 4. RoPE is a rotation: norms kept, and q.k depends only on the position difference.
    inv = _default_inv_freq(10000.0, 8)
    qv, kv = rng.standard_normal(8), rng.standard_normal(8)
    c, s = rope_cos_sin(inv, np.arange(20), 1.0)
    qr = apply_rope(np.tile(qv, (20, 1))[:, None, :], c, s)[:, 0]
    kr = apply_rope(np.tile(kv, (20, 1))[:, None, :], c, s)[:, 0]
    check(np.allclose(np.linalg.norm(kr, axis=1), np.linalg.norm(kv)), "rope keeps norms")
    check(abs(qr[9] @ kr[4] - qr[15] @ kr[10]) < 1e-12, "rope relative positions")

    # 5. Causality: changing a later token leaves earlier logits unchanged, not later ones.
    for mt, extra in (("llama", dict(attention_bias=True, mlp_bias=True)), ("qwen2", {}),
                      ("qwen3", dict(head_dim=12)), ("mistral", dict(sliding_window=3))):
        sp = Spec(_tiny_cfg(mt, **extra))
        Wm = random_weights(sp, np.random.default_rng(1))
        sp.check_weights(Wm)
        ids = rng.integers(0, sp.vocab_size, 12)
        a = forward(sp, Wm, ids)
        ids2 = ids.copy()
        ids2[7] = (ids2[7] + 1) % sp.vocab_size
        b = forward(sp, Wm, ids2)
        check(np.array_equal(a["logits"][:7], b["logits"][:7]), f"{mt}: earlier logits unchanged")
        check(not np.allclose(a["logits"][7:], b["logits"][7:]), f"{mt}: later logits change")
        check(np.all(np.isfinite(a["logits"])), f"{mt}: finite")
        # keys before/after rope have equal per-head norms (attention_scaling 1)
        kp = a["key_pre_rope"][0].reshape(12, sp.num_kv_heads, sp.head_dim)
        kr_ = a["key"][0].reshape(12, sp.num_kv_heads, sp.head_dim)
        check(np.allclose(np.linalg.norm(kp, axis=-1), np.linalg.norm(kr_, axis=-1)), f"{mt}: rope norm")
        check(np.array_equal(kp[0], kr_[0]), f"{mt}: position 0 is not rotated")
    # qwen3's k_norm makes every pre-rope key head have rms == k_norm weight's rms-weighted norm
    sp = Spec(_tiny_cfg("qwen3", head_dim=12))
    Wm = random_weights(sp, np.random.default_rng(2))
    Wm["model.layers.0.self_attn.k_norm.weight"] = np.ones(12)
    kp = forward(sp, Wm, [1, 2, 3])["key_pre_rope"][0].reshape(3, 2, 12)
    check(np.allclose(np.sqrt(np.mean(kp ** 2, axis=-1)), 1.0, atol=1e-5), "qwen3 k_norm before rope")
    # a sliding window of 3 differs from full attention past position 2 only
    spf = Spec(_tiny_cfg("mistral", sliding_window=None))
    spw = Spec(_tiny_cfg("mistral", sliding_window=3))
    Wm = random_weights(spf, np.random.default_rng(3))
    ids = rng.integers(0, 40, 8)
    lf, lw = forward(spf, Wm, ids)["logits"], forward(spw, Wm, ids)["logits"]
    check(np.array_equal(lf[:3], lw[:3]) and not np.allclose(lf[3:], lw[3:]), "sliding window")
    # mistral's class default sliding_window (4096) applies when the key is absent
    cfg_nw = _tiny_cfg("mistral")
    check(Spec(cfg_nw).windows == [4096, 4096], "mistral default window")

    # 6. GQA head mapping: a 4-kv-head copy with duplicated kv weights gives the same logits.
    sp2 = Spec(_tiny_cfg())
    W2 = random_weights(sp2, np.random.default_rng(4))
    sp4 = Spec(_tiny_cfg(num_key_value_heads=4))
    W4 = dict(W2)
    hd = sp2.head_dim
    for l in range(2):
        for nm in ("k_proj", "v_proj"):
            w = W2[f"model.layers.{l}.self_attn.{nm}.weight"].reshape(2, hd, -1)
            W4[f"model.layers.{l}.self_attn.{nm}.weight"] = np.repeat(w, 2, axis=0).reshape(4 * hd, -1)
    ids = rng.integers(0, 40, 9)
    check(np.allclose(forward(sp2, W2, ids)["logits"], forward(sp4, W4, ids)["logits"], rtol=1e-12, atol=1e-12),
          "GQA == MHA with repeated kv heads")

    # 7. tied embeddings use embed_tokens as the output matrix
    spt = Spec(_tiny_cfg(tie_word_embeddings=True))
    Wt = random_weights(spt, np.random.default_rng(5))
    check("lm_head.weight" not in Wt, "tied: no lm_head")
    spu = Spec(_tiny_cfg())
    Wu = dict(Wt)
    Wu["lm_head.weight"] = Wt["model.embed_tokens.weight"]
    check(np.array_equal(forward(spt, Wt, [3, 4])["logits"], forward(spu, Wu, [3, 4])["logits"]), "tied == copied")
    print(f"selftest: {n_checks} checks passed")


def main(argv):
    if len(argv) >= 2 and argv[1] == "--selftest":
        selftest()
        return 0
    if len(argv) >= 2:
        ids = [int(x) for x in argv[2:]] or list(range(16))
        out = run_model_dir(argv[1], ids)
        nll, ent = nll_and_entropy(out["logits"], ids)
        print(json.dumps({"nll_sum": nll, "tokens_scored": len(ids) - 1, "mean_entropy_nats": float(ent.mean())}))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
