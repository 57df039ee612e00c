// config.json parsing for the supported decoder families, following transformers'
// configuration_{llama,mistral,qwen2,qwen3}.py defaults and rope_config_utils.py.
#include "core/model_config.h"

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace fecsearch {
namespace {

using Json = nlohmann::json;

bool Present(const Json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

absl::Status ReadInt(const Json& j, const char* key, const std::string& where, int* out, bool required,
                     const std::string& prefix = "") {
  if (!Present(j, key)) {
    if (required) return absl::InvalidArgumentError(absl::StrCat(where, ": field '", prefix, key, "' is missing"));
    return absl::OkStatus();
  }
  // Some writers store integers as 8192.0.
  const Json& v = j[key];
  const bool integral = v.is_number_integer() || (v.is_number_float() && v.get<double>() == static_cast<int64_t>(v.get<double>()));
  if (!integral || v.get<double>() <= 0 || v.get<double>() > (1 << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": field '", prefix, key, "' must be a positive integer, got ", v.dump()));
  }
  *out = static_cast<int>(v.get<double>());
  return absl::OkStatus();
}

absl::Status ReadDouble(const Json& j, const char* key, const std::string& where, double* out, bool required,
                        bool positive, const std::string& prefix = "") {
  if (!Present(j, key)) {
    if (required) return absl::InvalidArgumentError(absl::StrCat(where, ": field '", prefix, key, "' is missing"));
    return absl::OkStatus();
  }
  if (!j[key].is_number() || (positive && j[key].get<double>() <= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": field '", prefix, key, "' must be a ",
                                                   positive ? "positive " : "", "number, got ", j[key].dump()));
  }
  *out = j[key].get<double>();
  return absl::OkStatus();
}

absl::Status ReadBool(const Json& j, const char* key, const std::string& where, bool* out) {
  if (!Present(j, key)) return absl::OkStatus();
  if (!j[key].is_boolean()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": field '", key, "' must be true or false, got ", j[key].dump()));
  }
  *out = j[key].get<bool>();
  return absl::OkStatus();
}

#define RETURN_IF_ERROR_CFG(expr)   \
  do {                              \
    absl::Status _s = (expr);       \
    if (!_s.ok()) return _s;        \
  } while (0)

// RoPE from `rope_parameters` (transformers 5) or `rope_scaling` (earlier), with `rope_theta`
// inside or at the top level. Unknown types are refused rather than run unscaled.
absl::Status ParseRope(const Json& j, const std::string& where, ModelConfig* c) {
  RopeConfig& r = c->rope;
  // transformers 5: `rope_parameters = rope_scaling or rope_parameters`.
  const char* key = nullptr;
  for (const char* k : {"rope_scaling", "rope_parameters"}) {
    if (Present(j, k)) {
      if (!j[k].is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": field '", k, "' must be an object, got ", j[k].dump()));
      }
      if (key == nullptr && !j[k].empty()) key = k;
    }
  }
  if (Present(j, "rope_theta")) RETURN_IF_ERROR_CFG(ReadDouble(j, "rope_theta", where, &r.theta, false, true));
  if (key == nullptr) return absl::OkStatus();
  const Json& p = j[key];
  const std::string prefix = absl::StrCat(key, ".");
  // Per-layer-type RoPE (a nested object per attention type) is not used by these families.
  for (const char* nested : {"full_attention", "sliding_attention"}) {
    if (p.contains(nested)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field '", prefix, nested,
                                                     "': per-layer-type RoPE parameters are not supported"));
    }
  }
  std::string type = "default";
  for (const char* type_key : {"rope_type", "type"}) {
    if (!Present(p, type_key)) continue;
    if (!p[type_key].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field '", prefix, type_key, "' must be a string"));
    }
    type = p[type_key].get<std::string>();
    break;
  }
  const char* type_field = Present(p, "rope_type") ? "rope_type" : "type";
  r.type_name = type;
  if (type == "default") {
    r.type = RopeConfig::Type::kDefault;
  } else if (type == "linear") {
    r.type = RopeConfig::Type::kLinear;
  } else if (type == "dynamic") {
    r.type = RopeConfig::Type::kDynamic;
  } else if (type == "llama3") {
    r.type = RopeConfig::Type::kLlama3;
  } else if (type == "yarn") {
    r.type = RopeConfig::Type::kYarn;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": ", prefix, type_field, " '", type,
        "' is not supported (supported: default, linear, dynamic, llama3, yarn)"));
  }
  if (Present(p, "rope_theta")) RETURN_IF_ERROR_CFG(ReadDouble(p, "rope_theta", where, &r.theta, false, true, prefix));
  if (r.type != RopeConfig::Type::kDefault) {
    RETURN_IF_ERROR_CFG(ReadDouble(p, "factor", where, &r.factor, true, true, prefix));
    if (r.factor < 1.0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field '", prefix, "factor' must be at least 1, got ", r.factor));
    }
  }
  if (r.type == RopeConfig::Type::kLlama3 || r.type == RopeConfig::Type::kYarn) {
    // transformers' standardize_rope_params: a top-level original_max_position_embeddings
    // wins, else the rope dict's, else max_position_embeddings.
    if (Present(j, "original_max_position_embeddings")) {
      RETURN_IF_ERROR_CFG(ReadInt(j, "original_max_position_embeddings", where, &r.original_max_positions, true));
    } else if (Present(p, "original_max_position_embeddings")) {
      RETURN_IF_ERROR_CFG(ReadInt(p, "original_max_position_embeddings", where, &r.original_max_positions, true, prefix));
    } else {
      r.original_max_positions = c->max_positions;  // setdefault(..., max_position_embeddings)
    }
  }
  if (r.type == RopeConfig::Type::kLlama3) {
    RETURN_IF_ERROR_CFG(ReadDouble(p, "low_freq_factor", where, &r.low_freq_factor, true, true, prefix));
    RETURN_IF_ERROR_CFG(ReadDouble(p, "high_freq_factor", where, &r.high_freq_factor, true, true, prefix));
    if (r.high_freq_factor <= r.low_freq_factor) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field '", prefix,
                                                     "high_freq_factor' must exceed low_freq_factor"));
    }
  }
  if (r.type == RopeConfig::Type::kYarn) {
    // `beta_fast or 32`: a zero counts as unset, as in transformers.
    RETURN_IF_ERROR_CFG(ReadDouble(p, "beta_fast", where, &r.beta_fast, false, false, prefix));
    RETURN_IF_ERROR_CFG(ReadDouble(p, "beta_slow", where, &r.beta_slow, false, false, prefix));
    if (r.beta_fast == 0) r.beta_fast = 32;
    if (r.beta_slow == 0) r.beta_slow = 1;
    RETURN_IF_ERROR_CFG(ReadDouble(p, "attention_factor", where, &r.attention_factor, false, true, prefix));
    RETURN_IF_ERROR_CFG(ReadDouble(p, "mscale", where, &r.mscale, false, false, prefix));
    RETURN_IF_ERROR_CFG(ReadDouble(p, "mscale_all_dim", where, &r.mscale_all_dim, false, false, prefix));
    RETURN_IF_ERROR_CFG(ReadBool(p, "truncate", where, &r.truncate));
  }
  return absl::OkStatus();
}

// Which layers use sliding-window attention, as transformers' configs derive `layer_types`.
absl::Status ParseSlidingWindow(const Json& j, const std::string& where, ModelConfig* c) {
  // MistralConfig defaults sliding_window to 4096 when the key is absent (null turns it off).
  int window = c->model_type == "mistral" && !j.contains("sliding_window") ? 4096 : 0;
  if (Present(j, "sliding_window")) RETURN_IF_ERROR_CFG(ReadInt(j, "sliding_window", where, &window, false));
  if (Present(j, "layer_types")) {
    if (!j["layer_types"].is_array() || static_cast<int>(j["layer_types"].size()) != c->num_layers) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field 'layer_types' must list one type per layer (",
                                                     c->num_layers, ")"));
    }
    for (int l = 0; l < c->num_layers; ++l) {
      const Json& t = j["layer_types"][l];
      if (t == "sliding_attention") {
        c->sliding_layers.push_back(l);
      } else if (t != "full_attention") {
        return absl::InvalidArgumentError(absl::StrCat(where, ": field 'layer_types[", l, "]' ", t.dump(),
                                                       " is not supported (full_attention or sliding_attention)"));
      }
    }
  } else if (c->model_type == "mistral") {
    if (window > 0)
      for (int l = 0; l < c->num_layers; ++l) c->sliding_layers.push_back(l);
  } else if (c->model_type == "qwen2" || c->model_type == "qwen3") {
    bool use = false;
    RETURN_IF_ERROR_CFG(ReadBool(j, "use_sliding_window", where, &use));
    int max_window_layers = c->num_layers;
    if (Present(j, "max_window_layers")) {
      if (!j["max_window_layers"].is_number_integer() || j["max_window_layers"].get<int64_t>() < 0) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": field 'max_window_layers' must be a non-negative integer"));
      }
      max_window_layers = j["max_window_layers"].get<int>();
    }
    if (use && window > 0)
      for (int l = max_window_layers; l < c->num_layers; ++l) c->sliding_layers.push_back(l);
  }
  if (!c->sliding_layers.empty()) {
    if (window <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": layers use sliding-window attention but field "
                                                     "'sliding_window' is not set"));
    }
    c->sliding_window = window;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& where) {
  Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
  }
  ModelConfig c;
  if (Present(j, "model_type")) {
    if (!j["model_type"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field 'model_type' must be a string"));
    }
    c.model_type = j["model_type"].get<std::string>();
  }
  static const std::set<std::string> kFamilies = {"llama", "mistral", "qwen2", "qwen3"};
  if (!kFamilies.count(c.model_type)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": model_type '", c.model_type,
                                                   "' is not supported (supported: llama, mistral, qwen2, qwen3)"));
  }
  // Mixture-of-experts layers are a different architecture, whatever model_type says.
  for (const char* moe : {"num_experts", "num_local_experts", "n_routed_experts", "moe_intermediate_size"}) {
    if (Present(j, moe) && !(j[moe].is_number() && j[moe].get<double>() == 0)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field '", moe, "' asks for mixture-of-experts layers, "
                                                     "which are not supported"));
    }
  }
  if (Present(j, "hidden_act") && j["hidden_act"] != "silu") {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": field 'hidden_act' ", j["hidden_act"].dump(), " is not supported (need \"silu\")"));
  }
  for (const char* prf : {"partial_rotary_factor"}) {
    if (Present(j, prf) && !(j[prf].is_number() && j[prf].get<double>() == 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field '", prf, "' ", j[prf].dump(),
                                                     " is not supported (only 1.0: RoPE over the whole head)"));
    }
  }
  if (Present(j, "pretraining_tp") && !(j["pretraining_tp"].is_number_integer() && j["pretraining_tp"].get<int>() >= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": field 'pretraining_tp' must be a positive integer"));
  }
  RETURN_IF_ERROR_CFG(ReadInt(j, "hidden_size", where, &c.hidden_size, true));
  RETURN_IF_ERROR_CFG(ReadInt(j, "intermediate_size", where, &c.intermediate_size, true));
  RETURN_IF_ERROR_CFG(ReadInt(j, "num_hidden_layers", where, &c.num_layers, true));
  RETURN_IF_ERROR_CFG(ReadInt(j, "num_attention_heads", where, &c.num_heads, true));
  RETURN_IF_ERROR_CFG(ReadInt(j, "vocab_size", where, &c.vocab_size, true));
  // Absent num_key_value_heads: the configs' own defaults (llama: one per query head).
  c.num_kv_heads = c.model_type == "llama" ? c.num_heads : c.model_type == "mistral" ? 8 : 32;
  if (j.contains("num_key_value_heads") && j["num_key_value_heads"].is_null()) c.num_kv_heads = c.num_heads;
  RETURN_IF_ERROR_CFG(ReadInt(j, "num_key_value_heads", where, &c.num_kv_heads, false));
  // qwen3's config defaults head_dim to 128; the others derive it.
  c.head_dim = c.model_type == "qwen3" && !Present(j, "head_dim") ? 128 : c.hidden_size / c.num_heads;
  RETURN_IF_ERROR_CFG(ReadInt(j, "head_dim", where, &c.head_dim, false));
  c.max_positions = c.model_type == "llama" ? 2048 : c.model_type == "mistral" ? 4096 * 32 : 32768;
  RETURN_IF_ERROR_CFG(ReadInt(j, "max_position_embeddings", where, &c.max_positions, false));
  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": num_attention_heads ", c.num_heads,
                                                   " is not a multiple of num_key_value_heads ", c.num_kv_heads));
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": head_dim ", c.head_dim, " must be even for RoPE"));
  }
  RETURN_IF_ERROR_CFG(ReadDouble(j, "rms_norm_eps", where, &c.rms_norm_eps, false, true));
  RETURN_IF_ERROR_CFG(ReadBool(j, "tie_word_embeddings", where, &c.tie_word_embeddings));
  bool attention_bias = false, mlp_bias = false;
  RETURN_IF_ERROR_CFG(ReadBool(j, "attention_bias", where, &attention_bias));
  RETURN_IF_ERROR_CFG(ReadBool(j, "mlp_bias", where, &mlp_bias));
  if (c.model_type == "llama") {
    c.qkv_bias = c.o_bias = attention_bias;
    c.mlp_bias = mlp_bias;
  } else if (c.model_type == "qwen2") {
    c.qkv_bias = true;  // Qwen2Attention: q/k/v with bias, o_proj without
  } else if (c.model_type == "qwen3") {
    c.qkv_bias = c.o_bias = attention_bias;
    c.qk_norm = true;
  }
  RETURN_IF_ERROR_CFG(ParseRope(j, where, &c));
  RETURN_IF_ERROR_CFG(ParseSlidingWindow(j, where, &c));
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open model config"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseModelConfig(ss.str(), path);
}

absl::Status CheckWindowLength(const ModelConfig& c, int window_length, const std::string& field) {
  if (c.rope.type != RopeConfig::Type::kDynamic && window_length > c.max_positions) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", window_length,
                                                   " tokens exceed the model's max_position_embeddings (",
                                                   c.max_positions, ")"));
  }
  if (!c.sliding_layers.empty() && window_length > c.sliding_window) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", window_length, " tokens exceed the model's sliding_window of ", c.sliding_window,
        " tokens (layers ", absl::StrJoin(c.sliding_layers, ","),
        "); sliding-window attention is not implemented, so windows must fit in it"));
  }
  return absl::OkStatus();
}

}  // namespace fecsearch
