// Llama forward-pass pieces in fp32 with Eigen, matching transformers' eager implementation.
#include "core/llama_model.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/safetensors.h"
#include "xxhash.h"

namespace fecsearch {

RopeTable::RopeTable(int head_dim, double theta, int max_positions)
    : head_dim_(head_dim), max_positions_(max_positions) {
  const int half = head_dim / 2;
  cos_.resize(static_cast<size_t>(max_positions) * half);
  sin_.resize(cos_.size());
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)) in fp32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float p = std::pow(static_cast<float>(theta), exponent);
    inv_freq[i] = 1.0f / p;
  }
  for (int pos = 0; pos < max_positions; ++pos) {
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos) * inv_freq[i];
      cos_[static_cast<size_t>(pos) * half + i] = static_cast<float>(std::cos(double{angle}));
      sin_[static_cast<size_t>(pos) * half + i] = static_cast<float>(std::sin(double{angle}));
    }
  }
}

void RopeTable::Apply(int pos, float* x) const {
  const int half = head_dim_ / 2;
  const float* c = &cos_[static_cast<size_t>(pos) * half];
  const float* s = &sin_[static_cast<size_t>(pos) * half];
  for (int i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * c[i] - b * s[i];
    x[i + half] = b * c[i] + a * s[i];
  }
}

void RopeTable::Unapply(int pos, float* x) const {
  const int half = head_dim_ / 2;
  const float* c = &cos_[static_cast<size_t>(pos) * half];
  const float* s = &sin_[static_cast<size_t>(pos) * half];
  for (int i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * c[i] + b * s[i];
    x[i + half] = b * c[i] - a * s[i];
  }
}

namespace {

absl::StatusOr<RowMatrix> ReadMatrix(const SafetensorsFile& f, const std::string& name, int rows,
                                     int cols) {
  auto data = f.ReadFloat(name, {rows, cols});
  if (!data.ok()) return data.status();
  return RowMatrix(Eigen::Map<const RowMatrix>(data->data(), rows, cols));
}

absl::StatusOr<Eigen::RowVectorXf> ReadVector(const SafetensorsFile& f, const std::string& name,
                                              int n) {
  auto data = f.ReadFloat(name, {n});
  if (!data.ok()) return data.status();
  return Eigen::RowVectorXf(Eigen::Map<const Eigen::RowVectorXf>(data->data(), n));
}

}  // namespace

#define ASSIGN_OR_RETURN_MODEL(lhs, expr) \
  {                                       \
    auto _r = (expr);                     \
    if (!_r.ok()) return _r.status();     \
    lhs = std::move(*_r);                 \
  }

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(const std::string& dir) {
  const std::string config_path = dir + "/config.json";
  std::ifstream cin(config_path);
  if (!cin) {
    return absl::NotFoundError(absl::StrCat(config_path, ": cannot open (is '", dir,
                                            "' a Hugging Face model directory?)"));
  }
  std::stringstream config_text;
  config_text << cin.rdbuf();
  auto config = ParseModelConfig(config_text.str(), config_path);
  if (!config.ok()) return config.status();
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  if (!file.ok()) return file.status();

  auto model = std::unique_ptr<LlamaModel>(new LlamaModel());
  model->config_ = *config;
  model->dir_ = dir;
  const ModelConfig& c = model->config_;
  const int q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  ASSIGN_OR_RETURN_MODEL(model->embed_,
                         ReadMatrix(*file, "model.embed_tokens.weight", c.vocab_size, c.hidden_size));
  if (c.tie_word_embeddings && !file->tensors().count("lm_head.weight")) {
    model->lm_head_ = model->embed_;
  } else {
    ASSIGN_OR_RETURN_MODEL(model->lm_head_,
                           ReadMatrix(*file, "lm_head.weight", c.vocab_size, c.hidden_size));
  }
  ASSIGN_OR_RETURN_MODEL(model->final_norm_, ReadVector(*file, "model.norm.weight", c.hidden_size));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    Layer layer;
    RowMatrix wq, wk, wv, wgate, wup;
    ASSIGN_OR_RETURN_MODEL(wq, ReadMatrix(*file, p + "self_attn.q_proj.weight", q_dim, c.hidden_size));
    ASSIGN_OR_RETURN_MODEL(wk, ReadMatrix(*file, p + "self_attn.k_proj.weight", kv_dim, c.hidden_size));
    ASSIGN_OR_RETURN_MODEL(wv, ReadMatrix(*file, p + "self_attn.v_proj.weight", kv_dim, c.hidden_size));
    ASSIGN_OR_RETURN_MODEL(layer.wo, ReadMatrix(*file, p + "self_attn.o_proj.weight", c.hidden_size, q_dim));
    ASSIGN_OR_RETURN_MODEL(wgate, ReadMatrix(*file, p + "mlp.gate_proj.weight", c.intermediate_size, c.hidden_size));
    ASSIGN_OR_RETURN_MODEL(wup, ReadMatrix(*file, p + "mlp.up_proj.weight", c.intermediate_size, c.hidden_size));
    ASSIGN_OR_RETURN_MODEL(layer.wdown, ReadMatrix(*file, p + "mlp.down_proj.weight", c.hidden_size, c.intermediate_size));
    ASSIGN_OR_RETURN_MODEL(layer.attn_norm, ReadVector(*file, p + "input_layernorm.weight", c.hidden_size));
    ASSIGN_OR_RETURN_MODEL(layer.mlp_norm, ReadVector(*file, p + "post_attention_layernorm.weight", c.hidden_size));
    layer.wqkv.resize(q_dim + 2 * kv_dim, c.hidden_size);
    layer.wqkv << wq, wk, wv;
    layer.wgate_up.resize(2 * c.intermediate_size, c.hidden_size);
    layer.wgate_up << wgate, wup;
    model->layers_.push_back(std::move(layer));
  }
  model->rope_ = std::make_unique<RopeTable>(c.head_dim, c.rope_theta, std::min(c.max_positions, 65536));
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  XXH3_128bits_update(state, config_text.str().data(), config_text.str().size());
  XXH3_128bits_update(state, file->data().data(), file->data().size());
  XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  char hex[33];
  snprintf(hex, sizeof(hex), "%016llx%016llx", static_cast<unsigned long long>(h.high64),
           static_cast<unsigned long long>(h.low64));
  model->fingerprint_ = hex;
  return model;
}

void LlamaModel::Embed(absl::Span<const int> tokens, RowMatrix* h) const {
  h->resize(tokens.size(), config_.hidden_size);
  for (size_t t = 0; t < tokens.size(); ++t) h->row(t) = embed_.row(tokens[t]);
}

void LlamaModel::RmsNorm(const RowMatrix& x, const Eigen::RowVectorXf& w, RowMatrix* out) const {
  out->resize(x.rows(), x.cols());
  const float eps = static_cast<float>(config_.rms_norm_eps);
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const float variance = x.row(t).squaredNorm() / static_cast<float>(x.cols());
    const float inv = 1.0f / std::sqrt(variance + eps);
    out->row(t) = (x.row(t) * inv).cwiseProduct(w);
  }
}

void LlamaModel::AttentionInputs(int layer, const RowMatrix& h, RowMatrix* q, RowMatrix* k_pre,
                                 RowMatrix* k, RowMatrix* v) const {
  const Layer& L = layers_[layer];
  const int hd = config_.head_dim;
  const int q_dim = config_.num_heads * hd, kv_dim = config_.num_kv_heads * hd;
  RowMatrix x;
  RmsNorm(h, L.attn_norm, &x);
  RowMatrix qkv(h.rows(), q_dim + 2 * kv_dim);
  qkv.noalias() = x * L.wqkv.transpose();
  *q = qkv.leftCols(q_dim);
  *k_pre = qkv.middleCols(q_dim, kv_dim);
  *v = qkv.rightCols(kv_dim);
  *k = *k_pre;
  for (Eigen::Index t = 0; t < h.rows(); ++t) {
    for (int head = 0; head < config_.num_heads; ++head) rope_->Apply(t, q->row(t).data() + head * hd);
    for (int head = 0; head < config_.num_kv_heads; ++head) rope_->Apply(t, k->row(t).data() + head * hd);
  }
}

void LlamaModel::FinishLayer(int layer, const RowMatrix& attn, RowMatrix* h) const {
  const Layer& L = layers_[layer];
  h->noalias() += attn * L.wo.transpose();
  RowMatrix x;
  RmsNorm(*h, L.mlp_norm, &x);
  const int inter = config_.intermediate_size;
  RowMatrix gu(h->rows(), 2 * inter);
  gu.noalias() = x * L.wgate_up.transpose();
  RowMatrix act(h->rows(), inter);
  auto g = gu.leftCols(inter).array();
  act.array() = (g / (1.0f + (-g).exp())) * gu.rightCols(inter).array();
  h->noalias() += act * L.wdown.transpose();
}

void LlamaModel::Logits(const RowMatrix& h, RowMatrix* logits) const {
  RowMatrix x;
  RmsNorm(h, final_norm_, &x);
  logits->resize(h.rows(), config_.vocab_size);
  logits->noalias() = x * lm_head_.transpose();
}

}  // namespace fecsearch
