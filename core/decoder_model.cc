// Forward-pass pieces in fp32 with Eigen, matching transformers' eager implementation of
// modeling_llama.py, modeling_mistral.py, modeling_qwen2.py and modeling_qwen3.py.
#include "core/decoder_model.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/safetensors.h"
#include "xxhash.h"

namespace fecsearch {
namespace {

// Reads a [rows, cols] tensor into `rows` consecutive rows of `m` starting at `row0`.
absl::Status ReadRows(const Checkpoint& ckpt, const std::string& name, int rows, int cols, RowMatrix* m, int row0) {
  return ckpt.ReadFloat(name, {rows, cols}, m->data() + static_cast<size_t>(row0) * m->cols());
}

absl::Status ReadVector(const Checkpoint& ckpt, const std::string& name, int n, Eigen::RowVectorXf* v, int offset = 0) {
  return ckpt.ReadFloat(name, {n}, v->data() + offset);
}

// XXH3-128 of the config text and every weight file, streamed (files can be many GB).
absl::StatusOr<std::string> Fingerprint(const std::string& config_text, const Checkpoint& ckpt) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  XXH3_128bits_update(state, config_text.data(), config_text.size());
  std::vector<char> buf(4 << 20);
  for (const auto& f : ckpt.files()) {
    const int fd = open(f->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      XXH3_freeState(state);
      return absl::NotFoundError(absl::StrCat(f->path(), ": cannot open to fingerprint"));
    }
    ssize_t r;
    while ((r = read(fd, buf.data(), buf.size())) > 0) XXH3_128bits_update(state, buf.data(), static_cast<size_t>(r));
    close(fd);
  }
  XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  char hex[33];
  snprintf(hex, sizeof(hex), "%016llx%016llx", static_cast<unsigned long long>(h.high64),
           static_cast<unsigned long long>(h.low64));
  return std::string(hex);
}

}  // namespace

#define RETURN_IF_ERROR_MODEL(expr) \
  do {                              \
    absl::Status _s = (expr);       \
    if (!_s.ok()) return _s;        \
  } while (0)

absl::StatusOr<std::unique_ptr<DecoderModel>> DecoderModel::Load(const std::string& dir, int positions) {
  const std::string config_path = dir + "/config.json";
  std::ifstream cin(config_path);
  if (!cin) {
    return absl::NotFoundError(absl::StrCat(config_path, ": cannot open (is '", dir, "' a Hugging Face model directory?)"));
  }
  std::stringstream config_text;
  config_text << cin.rdbuf();
  auto config = ParseModelConfig(config_text.str(), config_path);
  if (!config.ok()) return config.status();
  if (positions <= 0) positions = std::min(config->max_positions, 4096);
  RETURN_IF_ERROR_MODEL(CheckWindowLength(*config, positions, config_path));
  auto ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) return ckpt.status();
  const Checkpoint& f = **ckpt;

  auto model = std::unique_ptr<DecoderModel>(new DecoderModel());
  model->config_ = *config;
  model->dir_ = dir;
  const ModelConfig& c = model->config_;
  const int H = c.hidden_size, I = c.intermediate_size;
  const int q_dim = c.num_heads * c.head_dim, kv_dim = c.num_kv_heads * c.head_dim;
  model->embed_.resize(c.vocab_size, H);
  RETURN_IF_ERROR_MODEL(ReadRows(f, "model.embed_tokens.weight", c.vocab_size, H, &model->embed_, 0));
  int64_t params = static_cast<int64_t>(c.vocab_size) * H;
  // Tied embeddings: transformers ties lm_head to embed_tokens (any lm_head.weight in the
  // file is ignored); one matrix serves both.
  if (!c.tie_word_embeddings) {
    model->lm_head_.resize(c.vocab_size, H);
    RETURN_IF_ERROR_MODEL(ReadRows(f, "lm_head.weight", c.vocab_size, H, &model->lm_head_, 0));
    params += static_cast<int64_t>(c.vocab_size) * H;
  }
  model->final_norm_.resize(H);
  RETURN_IF_ERROR_MODEL(ReadVector(f, "model.norm.weight", H, &model->final_norm_));
  params += H;
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    Layer L;
    L.wqkv.resize(q_dim + 2 * kv_dim, H);
    RETURN_IF_ERROR_MODEL(ReadRows(f, p + "self_attn.q_proj.weight", q_dim, H, &L.wqkv, 0));
    RETURN_IF_ERROR_MODEL(ReadRows(f, p + "self_attn.k_proj.weight", kv_dim, H, &L.wqkv, q_dim));
    RETURN_IF_ERROR_MODEL(ReadRows(f, p + "self_attn.v_proj.weight", kv_dim, H, &L.wqkv, q_dim + kv_dim));
    if (c.qkv_bias) {
      L.bqkv.resize(q_dim + 2 * kv_dim);
      RETURN_IF_ERROR_MODEL(ReadVector(f, p + "self_attn.q_proj.bias", q_dim, &L.bqkv, 0));
      RETURN_IF_ERROR_MODEL(ReadVector(f, p + "self_attn.k_proj.bias", kv_dim, &L.bqkv, q_dim));
      RETURN_IF_ERROR_MODEL(ReadVector(f, p + "self_attn.v_proj.bias", kv_dim, &L.bqkv, q_dim + kv_dim));
    }
    L.wo.resize(H, q_dim);
    RETURN_IF_ERROR_MODEL(ReadRows(f, p + "self_attn.o_proj.weight", H, q_dim, &L.wo, 0));
    if (c.o_bias) {
      L.bo.resize(H);
      RETURN_IF_ERROR_MODEL(ReadVector(f, p + "self_attn.o_proj.bias", H, &L.bo));
    }
    if (c.qk_norm) {
      L.q_norm.resize(c.head_dim);
      L.k_norm.resize(c.head_dim);
      RETURN_IF_ERROR_MODEL(ReadVector(f, p + "self_attn.q_norm.weight", c.head_dim, &L.q_norm));
      RETURN_IF_ERROR_MODEL(ReadVector(f, p + "self_attn.k_norm.weight", c.head_dim, &L.k_norm));
    }
    L.wgate_up.resize(2 * I, H);
    RETURN_IF_ERROR_MODEL(ReadRows(f, p + "mlp.gate_proj.weight", I, H, &L.wgate_up, 0));
    RETURN_IF_ERROR_MODEL(ReadRows(f, p + "mlp.up_proj.weight", I, H, &L.wgate_up, I));
    L.wdown.resize(H, I);
    RETURN_IF_ERROR_MODEL(ReadRows(f, p + "mlp.down_proj.weight", H, I, &L.wdown, 0));
    if (c.mlp_bias) {
      L.bgate_up.resize(2 * I);
      L.bdown.resize(H);
      RETURN_IF_ERROR_MODEL(ReadVector(f, p + "mlp.gate_proj.bias", I, &L.bgate_up, 0));
      RETURN_IF_ERROR_MODEL(ReadVector(f, p + "mlp.up_proj.bias", I, &L.bgate_up, I));
      RETURN_IF_ERROR_MODEL(ReadVector(f, p + "mlp.down_proj.bias", H, &L.bdown));
    }
    L.attn_norm.resize(H);
    L.mlp_norm.resize(H);
    RETURN_IF_ERROR_MODEL(ReadVector(f, p + "input_layernorm.weight", H, &L.attn_norm));
    RETURN_IF_ERROR_MODEL(ReadVector(f, p + "post_attention_layernorm.weight", H, &L.mlp_norm));
    params += L.wqkv.size() + L.bqkv.size() + L.wo.size() + L.bo.size() + L.wgate_up.size() + L.bgate_up.size() +
              L.wdown.size() + L.bdown.size() + L.attn_norm.size() + L.mlp_norm.size() + L.q_norm.size() +
              L.k_norm.size();
    model->layers_.push_back(std::move(L));
  }
  model->parameters_ = params;
  model->rope_ = std::make_unique<RopeTable>(c, positions);
  auto fp = Fingerprint(config_text.str(), f);
  if (!fp.ok()) return fp.status();
  model->fingerprint_ = *fp;
  return model;
}

void DecoderModel::Embed(absl::Span<const int> tokens, RowMatrix* h) const {
  h->resize(tokens.size(), config_.hidden_size);
  for (size_t t = 0; t < tokens.size(); ++t) h->row(t) = embed_.row(tokens[t]);
}

void DecoderModel::RmsNorm(const RowMatrix& x, const Eigen::RowVectorXf& w, RowMatrix* out) const {
  out->resize(x.rows(), x.cols());
  const float eps = static_cast<float>(config_.rms_norm_eps);
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const float variance = x.row(t).squaredNorm() / static_cast<float>(x.cols());
    const float inv = 1.0f / std::sqrt(variance + eps);
    out->row(t) = (x.row(t) * inv).cwiseProduct(w);
  }
}

namespace {

// qwen3's q_norm / k_norm: RMSNorm over every head vector of every row, in place.
void HeadRmsNorm(RowMatrix* x, int head_dim, const Eigen::RowVectorXf& w, float eps) {
  const int heads = static_cast<int>(x->cols()) / head_dim;
  for (Eigen::Index t = 0; t < x->rows(); ++t) {
    for (int h = 0; h < heads; ++h) {
      auto seg = x->row(t).segment(static_cast<Eigen::Index>(h) * head_dim, head_dim);
      const float variance = seg.squaredNorm() / static_cast<float>(head_dim);
      const float inv = 1.0f / std::sqrt(variance + eps);
      seg = (seg * inv).cwiseProduct(w);
    }
  }
}

}  // namespace

void DecoderModel::AttentionInputs(int layer, const RowMatrix& h, RowMatrix* q, RowMatrix* k_pre, RowMatrix* k,
                                   RowMatrix* v, ThreadPool* pool) const {
  const Layer& L = layers_[layer];
  const int hd = config_.head_dim;
  const int q_dim = config_.num_heads * hd, kv_dim = config_.num_kv_heads * hd;
  RowMatrix x, qkv;
  RmsNorm(h, L.attn_norm, &x);
  MatMulTransposed(x, L.wqkv, &qkv, pool);
  if (L.bqkv.size() > 0) qkv.rowwise() += L.bqkv;
  *q = qkv.leftCols(q_dim);
  *k_pre = qkv.middleCols(q_dim, kv_dim);
  *v = qkv.rightCols(kv_dim);
  if (config_.qk_norm) {
    const float eps = static_cast<float>(config_.rms_norm_eps);
    HeadRmsNorm(q, hd, L.q_norm, eps);
    HeadRmsNorm(k_pre, hd, L.k_norm, eps);
  }
  *k = *k_pre;
  for (Eigen::Index t = 0; t < h.rows(); ++t) {
    for (int head = 0; head < config_.num_heads; ++head) rope_->Apply(t, q->row(t).data() + head * hd);
    for (int head = 0; head < config_.num_kv_heads; ++head) rope_->Apply(t, k->row(t).data() + head * hd);
  }
}

void DecoderModel::FinishLayer(int layer, const RowMatrix& attn, RowMatrix* h, ThreadPool* pool) const {
  const Layer& L = layers_[layer];
  if (L.bo.size() > 0) {
    RowMatrix o;
    MatMulTransposed(attn, L.wo, &o, pool);
    o.rowwise() += L.bo;
    *h += o;
  } else {
    MatMulTransposedAdd(attn, L.wo, h, pool);
  }
  RowMatrix x, gu;
  RmsNorm(*h, L.mlp_norm, &x);
  const int inter = config_.intermediate_size;
  MatMulTransposed(x, L.wgate_up, &gu, pool);
  if (L.bgate_up.size() > 0) gu.rowwise() += L.bgate_up;
  RowMatrix act(h->rows(), inter);
  auto g = gu.leftCols(inter).array();
  act.array() = (g / (1.0f + (-g).exp())) * gu.rightCols(inter).array();
  if (L.bdown.size() > 0) {
    RowMatrix d;
    MatMulTransposed(act, L.wdown, &d, pool);
    d.rowwise() += L.bdown;
    *h += d;
  } else {
    MatMulTransposedAdd(act, L.wdown, h, pool);
  }
}

double DecoderModel::NextTokenNll(const RowMatrix& h, absl::Span<const int> tokens, ThreadPool* pool,
                                  RowMatrix* logits) const {
  constexpr int kRows = 128;  // logits of 128 positions at a time
  const Eigen::Index T = h.rows();
  if (logits) logits->resize(T, config_.vocab_size);
  double nll = 0;
  RowMatrix x, block;
  for (Eigen::Index t0 = 0; t0 < T; t0 += kRows) {
    const Eigen::Index rows = std::min<Eigen::Index>(kRows, T - t0);
    RmsNorm(h.middleRows(t0, rows), final_norm_, &x);
    MatMulTransposed(x, lm_head(), &block, pool);
    for (Eigen::Index r = 0; r < rows; ++r) {
      const Eigen::Index t = t0 + r;
      if (t + 1 >= T) break;
      const float m = block.row(r).maxCoeff();
      const double lse = m + std::log(static_cast<double>((block.row(r).array() - m).exp().sum()));
      nll += lse - block(r, tokens[t + 1]);
    }
    if (logits) logits->middleRows(t0, rows) = block;
  }
  return nll;
}

}  // namespace fecsearch
