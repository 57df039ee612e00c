// config.json parsing for Llama-architecture models.
#include "core/model_config.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace fecsearch {
namespace {

absl::Status ReadInt(const nlohmann::json& j, const char* key, const std::string& where, int* out,
                     bool required) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) return absl::InvalidArgumentError(absl::StrCat(where, ": field '", key, "' is missing"));
    return absl::OkStatus();
  }
  if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0 ||
      j[key].get<int64_t>() > (1 << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": field '", key, "' must be a positive integer, got ", j[key].dump()));
  }
  *out = j[key].get<int>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text,
                                             const std::string& where) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
  }
  if (j.contains("model_type") && j["model_type"].is_string() &&
      j["model_type"].get<std::string>() != "llama") {
    return absl::InvalidArgumentError(absl::StrCat(where, ": model_type '",
                                                   j["model_type"].get<std::string>(),
                                                   "' is not supported (need 'llama')"));
  }
  if (j.contains("hidden_act") && j["hidden_act"] != "silu") {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": hidden_act ", j["hidden_act"].dump(), " is not supported (need silu)"));
  }
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    if (j.contains(bias) && j[bias].is_boolean() && j[bias].get<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", bias, " = true is not supported"));
    }
  }
  ModelConfig c;
  absl::Status s;
  if (!(s = ReadInt(j, "hidden_size", where, &c.hidden_size, true)).ok()) return s;
  if (!(s = ReadInt(j, "intermediate_size", where, &c.intermediate_size, true)).ok()) return s;
  if (!(s = ReadInt(j, "num_hidden_layers", where, &c.num_layers, true)).ok()) return s;
  if (!(s = ReadInt(j, "num_attention_heads", where, &c.num_heads, true)).ok()) return s;
  if (!(s = ReadInt(j, "vocab_size", where, &c.vocab_size, true)).ok()) return s;
  c.num_kv_heads = c.num_heads;
  if (!(s = ReadInt(j, "num_key_value_heads", where, &c.num_kv_heads, false)).ok()) return s;
  c.head_dim = c.hidden_size / c.num_heads;
  if (!(s = ReadInt(j, "head_dim", where, &c.head_dim, false)).ok()) return s;
  c.max_positions = 1 << 20;
  if (!(s = ReadInt(j, "max_position_embeddings", where, &c.max_positions, false)).ok()) return s;
  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": num_attention_heads ", c.num_heads, " is not a multiple of num_key_value_heads ",
        c.num_kv_heads));
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": head_dim ", c.head_dim, " must be even for RoPE"));
  }
  if (j.contains("rms_norm_eps")) {
    if (!j["rms_norm_eps"].is_number() || j["rms_norm_eps"].get<double>() <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": rms_norm_eps must be a positive number"));
    }
    c.rms_norm_eps = j["rms_norm_eps"].get<double>();
  }
  // RoPE: `rope_theta` (older transformers) or `rope_parameters.rope_theta` (newer). Scaled
  // RoPE variants (`rope_type`, or `type` in older `rope_scaling` objects) are refused rather
  // than silently run unscaled.
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!j.contains(key) || !j[key].is_object()) continue;
    const nlohmann::json& rope = j[key];
    for (const char* type_key : {"rope_type", "type"}) {
      if (!rope.contains(type_key)) continue;
      const std::string type = rope[type_key].is_string() ? rope[type_key].get<std::string>() : rope[type_key].dump();
      if (type != "default") {
        return absl::InvalidArgumentError(absl::StrCat(where, ": ", key, ".", type_key, " '", type,
                                                       "' is not supported (only default RoPE)"));
      }
    }
    if (rope.contains("rope_theta")) {
      if (!rope["rope_theta"].is_number()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": ", key, ".rope_theta must be a number"));
      }
      c.rope_theta = rope["rope_theta"].get<double>();
    }
  }
  if (j.contains("rope_theta")) {
    if (!j["rope_theta"].is_number()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": rope_theta must be a number"));
    }
    c.rope_theta = j["rope_theta"].get<double>();
  }
  if (c.rope_theta <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": rope_theta must be positive"));
  }
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean()) {
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open model config"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseModelConfig(ss.str(), path);
}

}  // namespace fecsearch
