// Evaluation context (model, text, reference, calibration, probe) and the Evaluator.
#include "core/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <functional>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/memory_model.h"
#include "core/nuq_fitting.h"
#include "core/paths.h"
#include "core/pipeline_graph.h"
#include "core/version.h"
#include "xxhash.h"

namespace fecsearch {

namespace {

std::string Hex128(XXH128_hash_t h) {
  return absl::StrFormat("%016x%016x", h.high64, h.low64);
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Runs fn(i, pool) for the n windows of an evaluation on `threads` threads. Windows are the
// cheapest parallelism (independent, no synchronisation), so they run side by side when the
// threads divide evenly among them: min(threads, n) windows at a time when threads >= n (each
// with a pool of threads / n for its matrix products and heads) or when threads divides n;
// otherwise one window at a time on a pool of every thread, so that no thread idles while the
// last windows finish. Windows are independent and the pools do not change results, so
// neither does `threads`.
void ForEachWindow(int n, int threads, const std::function<void(int, ThreadPool*)>& fn) {
  threads = std::max(1, threads);
  const int outer = threads >= n ? std::max(1, n) : n % threads == 0 ? threads : 1;
  const int inner = std::max(1, threads / outer);
  auto run = [&](int t) {
    std::unique_ptr<ThreadPool> pool = inner > 1 ? std::make_unique<ThreadPool>(inner) : nullptr;
    for (int i = t; i < n; i += outer) fn(i, pool.get());
  };
  if (outer == 1) {
    run(0);
    return;
  }
  std::vector<std::thread> workers;
  for (int t = 0; t < outer; ++t) workers.emplace_back(run, t);
  for (auto& th : workers) th.join();
}

EvaluationResult ErrorResult(const absl::Status& status) {
  EvaluationResult r;
  r.mutable_status()->set_code(static_cast<int>(status.code()));
  r.mutable_status()->set_message(std::string(status.message()));
  r.set_evaluator_version(kEvaluatorVersion);
  return r;
}

}  // namespace

absl::StatusOr<std::shared_ptr<EvaluationContext>> EvaluationContext::Create(
    const EvaluationSpec& spec_in) {
  std::shared_ptr<EvaluationContext> ctx(new EvaluationContext());
  EvaluationSpec& spec = ctx->spec_;
  spec = spec_in;
  if (spec.window_length() < 2) {
    return absl::InvalidArgumentError(absl::StrCat("evaluation.window_length: ", spec.window_length(),
                                                   " must be at least 2 tokens"));
  }
  if (spec.chunk_length() < 1 || spec.chunk_length() > spec.window_length()) {
    return absl::InvalidArgumentError(absl::StrCat("evaluation.chunk_length: ", spec.chunk_length(),
                                                   " must be 1..window_length (", spec.window_length(), ")"));
  }
  if (spec.threads() < 1 || spec.threads() > 256) {
    return absl::InvalidArgumentError(absl::StrCat("evaluation.threads: ", spec.threads(), " must be 1..256"));
  }
  if (spec.deployment_context() < 1) {
    return absl::InvalidArgumentError("evaluation.deployment_context: must be at least 1 token");
  }
  const std::string model_dir = ResolveInputPath(spec.model_path());
  if (!PathExists(model_dir)) {
    return absl::NotFoundError(absl::StrCat("evaluation.model_path: '", spec.model_path(),
                                            "' does not exist (looked in ", UserWorkingDirectory(),
                                            " and the runfiles)"));
  }
  {
    // The window must fit the model's context (and any sliding window) before the weights
    // are read.
    auto config = LoadModelConfig(model_dir + "/config.json");
    if (config.ok()) {
      absl::Status s = CheckWindowLength(*config, spec.window_length(), "evaluation.window_length");
      if (!s.ok()) return s;
    }
  }
  auto model = DecoderModel::Load(model_dir, spec.window_length());
  if (!model.ok()) return model.status();
  ctx->model_ = std::move(*model);
  const ModelConfig& config = ctx->model_->config();
  const std::string text_path =
      spec.text_path().empty() ? model_dir + "/eval.txt" : ResolveInputPath(spec.text_path());
  auto text = LoadEvaluationText(text_path, spec, model_dir, config.vocab_size);
  if (!text.ok()) return text.status();
  ctx->tokens_ = std::move(text->tokens);
  ctx->bos_ = text->bos;
  ctx->text_description_ = text->description;
  // Windows of W tokens; with a BOS each is BOS followed by the next W-1 tokens of the text.
  const long W = spec.window_length();
  const long stride = ctx->bos_ >= 0 ? W - 1 : W;
  const long available = static_cast<long>(ctx->tokens_.size()) / stride;
  ctx->window_count_ = static_cast<int>(available);
  // Default placement, relative to the windows the text yields (64 for the shipped text:
  // evaluation 0-3, probe 56, calibration 60-63; docs/DOMAIN.md section 4).
  const bool placed = spec.eval_windows_size() == 0 || spec.calibration_windows_size() == 0 || !spec.has_probe_window();
  if (spec.eval_windows_size() == 0)
    for (int w = 0; w < kDefaultEvalWindows; ++w) spec.add_eval_windows(w);
  if (spec.calibration_windows_size() == 0)
    for (long w = std::max(0L, available - 4); w < available; ++w) spec.add_calibration_windows(static_cast<int>(w));
  if (!spec.has_probe_window()) spec.set_probe_window(static_cast<int>(std::max(0L, available - 8)));
  if (placed) {
    // Windows placed by default must exist and be distinct: else the text is too short.
    std::set<int> distinct(spec.eval_windows().begin(), spec.eval_windows().end());
    distinct.insert(spec.calibration_windows().begin(), spec.calibration_windows().end());
    distinct.insert(spec.probe_window());
    const size_t wanted = spec.eval_windows_size() + spec.calibration_windows_size() + 1;
    // (A given window beyond the text is reported below, by its field.)
    const bool in_range = *distinct.rbegin() < available && *distinct.begin() >= 0;
    if (in_range && (distinct.size() < wanted || spec.calibration_windows_size() < 4)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "evaluation.text_path: ", text_path, " yields ", available, " windows of ", W, " tokens (",
          ctx->tokens_.size(), " tokens", ctx->bos_ >= 0 ? ", each window starting with BOS" : "",
          "), too few for distinct evaluation windows, probe window (default N-8) and 4 calibration windows "
          "(default N-4..N-1): use a longer text or a shorter window_length, or place them with eval_windows, "
          "probe_window and calibration_windows"));
    }
  }
  auto check_window = [&](int w, const std::string& field) -> absl::Status {
    if (w < 0 || w >= available) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": window ", w, " needs tokens [", w * stride, ", ", (w + 1) * stride, ") but ", text_path,
          " holds ", ctx->tokens_.size(), " tokens (", available, " windows of ", W, ")"));
    }
    return absl::OkStatus();
  };
  std::set<int> used;
  for (int i = 0; i < spec.eval_windows_size(); ++i) {
    absl::Status s = check_window(spec.eval_windows(i), absl::StrCat("evaluation.eval_windows[", i, "]"));
    if (!s.ok()) return s;
    used.insert(spec.eval_windows(i));
  }
  for (int i = 0; i < spec.calibration_windows_size(); ++i) {
    const int w = spec.calibration_windows(i);
    absl::Status s = check_window(w, absl::StrCat("evaluation.calibration_windows[", i, "]"));
    if (!s.ok()) return s;
    if (used.count(w)) {
      return absl::InvalidArgumentError(absl::StrCat("evaluation.calibration_windows[", i, "]: window ",
                                                     w, " is also an evaluation window"));
    }
  }
  {
    absl::Status s = check_window(spec.probe_window(), "evaluation.probe_window");
    if (!s.ok()) return s;
    const int p = spec.probe_window();
    const auto& cal = spec.calibration_windows();
    if (used.count(p) || std::find(cal.begin(), cal.end(), p) != cal.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "evaluation.probe_window: window ", p, " overlaps the evaluation or calibration windows"));
    }
  }
  // The windows an experiment reads, materialised (with their BOS).
  std::set<int> needed(used.begin(), used.end());
  needed.insert(spec.calibration_windows().begin(), spec.calibration_windows().end());
  needed.insert(spec.probe_window());
  for (int w : needed) {
    std::vector<int>& win = ctx->windows_[w];
    if (ctx->bos_ >= 0) win.push_back(ctx->bos_);
    win.insert(win.end(), ctx->tokens_.begin() + w * stride, ctx->tokens_.begin() + (w + 1) * stride);
  }
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset(st);
  auto add = [&](const std::string& s) {
    XXH3_128bits_update(st, s.data(), s.size());
    XXH3_128bits_update(st, "\0", 1);
  };
  add(kEvaluatorVersion);
  add(ctx->model_->fingerprint());
  XXH3_128bits_update(st, ctx->tokens_.data(), ctx->tokens_.size() * sizeof(int));
  if (ctx->bos_ >= 0) add(absl::StrCat("bos ", ctx->bos_));
  add(absl::StrCat(W, "|", spec.chunk_length(), "|", absl::StrJoin(spec.eval_windows(), ","), "|",
                   absl::StrJoin(spec.calibration_windows(), ","), "|", spec.probe_window(), "|",
                   spec.deployment_context()));
  ctx->fingerprint_ = Hex128(XXH3_128bits_digest(st));
  XXH3_freeState(st);
  return ctx;
}

absl::Span<const int> EvaluationContext::Window(int index) const {
  auto it = windows_.find(index);
  if (it == windows_.end()) {
    std::fprintf(stderr, "EvaluationContext::Window(%d): not an evaluation, probe or calibration window\n", index);
    std::abort();
  }
  return it->second;
}

const EvaluationContext::Baseline& EvaluationContext::baseline() const {
  absl::MutexLock lock(&mu_);
  if (!baseline_) {
    auto b = std::make_unique<Baseline>();
    ModelPlan exact;
    exact.exact = true;
    const int n = spec_.eval_windows_size();
    b->window_nll_sum.resize(n);
    std::vector<int> scored(n);
    ForEachWindow(n, spec_.threads(), [&](int i, ThreadPool* pool) {
      ForwardResult r = ForwardWindow(*model_, Window(spec_.eval_windows(i)), exact, chunk(), nullptr, pool);
      b->window_nll_sum[i] = r.nll_sum;
      scored[i] = r.scored;
    });
    double sum = 0;
    for (int i = 0; i < n; ++i) {
      sum += b->window_nll_sum[i];
      b->tokens += scored[i];
    }
    b->mean_nll = sum / std::max(1L, b->tokens);
    baseline_ = std::move(b);
  }
  return *baseline_;
}

absl::StatusOr<const EvaluationContext::Probe*> EvaluationContext::GetProbe(int tokens) const {
  if (tokens < 2 || tokens > spec_.window_length()) {
    return absl::InvalidArgumentError(absl::StrCat("probe length ", tokens,
                                                   " must be 2..window_length (",
                                                   spec_.window_length(), ")"));
  }
  absl::MutexLock lock(&mu_);
  auto& slot = probes_[tokens];
  if (!slot) {
    auto p = std::make_unique<Probe>();
    ModelPlan exact;
    exact.exact = true;
    ForwardCapture cap;
    cap.layer_inputs = true;
    std::unique_ptr<ThreadPool> pool = spec_.threads() > 1 ? std::make_unique<ThreadPool>(spec_.threads()) : nullptr;
    ForwardWindow(*model_, Window(spec_.probe_window()).subspan(0, tokens), exact, chunk(), &cap, pool.get());
    p->layers = std::move(cap.layers);
    std::vector<LayerRunStats> stats;
    RunAttentionOnly(*model_, exact, p->layers, chunk(), &p->exact_outputs, &stats, pool.get());
    slot = std::move(p);
  }
  return slot.get();
}

const EvaluationContext::Calibration& EvaluationContext::GetCalibration() const {
  absl::MutexLock lock(&mu_);
  if (!calibration_) {
    auto cal = std::make_unique<Calibration>();
    const ModelConfig& c = config();
    const int nw = spec_.calibration_windows_size();
    cal->windows_layers.resize(static_cast<size_t>(nw) * c.num_layers);
    std::vector<std::vector<std::vector<double>>> q2(nw);
    ModelPlan exact;
    exact.exact = true;
    ForEachWindow(nw, spec_.threads(), [&](int w, ThreadPool* pool) {
      ForwardCapture cap;
      cap.layer_inputs = true;
      cap.attention_received = true;
      ForwardWindow(*model_, Window(spec_.calibration_windows(w)), exact, chunk(), &cap, pool);
      q2[w].assign(c.num_layers, std::vector<double>(c.num_kv_heads * c.head_dim, 0.0));
      for (int l = 0; l < c.num_layers; ++l) {
        CapturedLayer& cl = cap.layers[l];
        for (Eigen::Index t = 0; t < cl.q.rows(); ++t) {
          for (int h = 0; h < c.num_heads; ++h) {
            const int g = h / c.group_size();
            for (int d = 0; d < c.head_dim; ++d) {
              const double qv = cl.q(t, h * c.head_dim + d);
              q2[w][l][g * c.head_dim + d] += qv * qv;
            }
          }
        }
        cl.q.resize(0, 0);
        cal->windows_layers[static_cast<size_t>(w) * c.num_layers + l] = std::move(cl);
      }
    });
    cal->key_weights.assign(c.num_layers, std::vector<float>(c.num_kv_heads * c.head_dim, 0.0f));
    for (int l = 0; l < c.num_layers; ++l)
      for (int i = 0; i < c.num_kv_heads * c.head_dim; ++i) {
        double s = 0;
        for (int w = 0; w < nw; ++w) s += q2[w][l][i];
        cal->key_weights[l][i] = static_cast<float>(s / (nw * spec_.window_length() * c.group_size()));
      }
    calibration_ = std::move(cal);
  }
  return *calibration_;
}

const ValueTable* EvaluationContext::NuqCodebook(int layer, bool values, bool pre_rope,
                                                 const QuantizerConfig& q) const {
  const std::string key = absl::StrCat(layer, values ? "v" : "k", pre_rope ? "pre" : "post", "|",
                                       q.axis, "|", q.group_size, "|", q.symmetric, "|", q.bits);
  {
    absl::MutexLock lock(&codebook_mu_);
    auto it = codebooks_.find(key);
    if (it != codebooks_.end()) return it->second.get();
  }
  const Calibration& cal = GetCalibration();
  const ModelConfig& c = config();
  const int D = c.head_dim, G = c.num_kv_heads, half = D / 2;
  const std::vector<float>& kw = cal.key_weights[layer];
  std::vector<float> samples, weights;
  // Samples are the calibration keys (or values) normalised group by group exactly as the
  // quantizer normalises them; at most ~128k, taken at a fixed stride over groups.
  const int nw = spec_.calibration_windows_size();
  const int T = spec_.window_length();
  const long group_elems = q.axis == PER_TOKEN ? q.group_size : std::min(q.group_size, T);
  const long total_groups = static_cast<long>(nw) * T * G * D / std::max(1L, group_elems);
  const long stride = std::max(1L, total_groups * group_elems / 131072);
  long group_index = 0;
  std::vector<float> gx, gw;
  for (int w = 0; w < nw; ++w) {
    const CapturedLayer& cl = cal.windows_layers[static_cast<size_t>(w) * c.num_layers + layer];
    const RowMatrix& X = values ? cl.v : (pre_rope ? cl.k_pre : cl.k);
    auto weight = [&](int t, int g, int d) -> float {
      if (values) return cl.attention_received[static_cast<size_t>(t) * G + g];
      if (!pre_rope) return kw[g * D + d];
      const int pair = d < half ? d + half : d - half;
      return 0.5f * (kw[g * D + d] + kw[g * D + pair]);
    };
    // Every group is non-empty and counts toward the stride; only the sampled ones are
    // gathered, so skipping the rest changes nothing but the time taken.
    auto sampled = [&]() { return group_index++ % stride == 0; };
    auto flush = [&]() {
      float lo = *std::min_element(gx.begin(), gx.end());
      float hi = *std::max_element(gx.begin(), gx.end());
      float center = 0, scale;
      if (q.symmetric) {
        scale = std::max(std::fabs(lo), std::fabs(hi));
      } else {
        center = 0.5f * (lo + hi);
        scale = 0.5f * (hi - lo);
      }
      if (scale > 0) {
        for (size_t i = 0; i < gx.size(); ++i) {
          samples.push_back((gx[i] - center) / scale);
          weights.push_back(gw[i]);
        }
      }
      gx.clear();
      gw.clear();
    };
    for (int g = 0; g < G; ++g) {
      if (q.axis == PER_TOKEN) {
        for (int t = 0; t < T; ++t)
          for (int d0 = 0; d0 < D; d0 += q.group_size) {
            if (!sampled()) continue;
            for (int d = d0; d < d0 + q.group_size; ++d) {
              gx.push_back(X(t, g * D + d));
              gw.push_back(weight(t, g, d));
            }
            flush();
          }
      } else {
        for (int d = 0; d < D; ++d)
          for (int t0 = 0; t0 < T; t0 += q.group_size) {
            if (!sampled()) continue;
            for (int t = t0; t < std::min(T, t0 + q.group_size); ++t) {
              gx.push_back(X(t, g * D + d));
              gw.push_back(weight(t, g, d));
            }
            flush();
          }
      }
    }
  }
  std::vector<double> centroids = FitWeightedKMeans1D(samples, weights, 1 << q.bits);
  auto table = std::make_unique<ValueTable>(centroids);
  absl::MutexLock lock(&codebook_mu_);
  auto& slot = codebooks_[key];
  if (!slot) slot = std::move(table);
  return slot.get();
}

absl::Status EvaluationContext::ResolvePlan(ModelPlan* plan) const {
  for (size_t l = 0; l < plan->layers.size(); ++l) {
    LayerPlan& lp = plan->layers[l];
    for (int stream = 0; stream < 2; ++stream) {
      StreamPlan& sp = stream == 0 ? lp.keys : lp.values;
      for (Stage& s : sp.stages) {
        if (s.kind == StageKind::kSplitOutliers) continue;
        const ValueTable* codebook = nullptr;
        if (s.quantizer.format == NUQ) {
          codebook = NuqCodebook(static_cast<int>(l), stream == 1, sp.quantize_before_rope, s.quantizer);
        }
        auto q = Quantizer::Create(s.quantizer, codebook);
        if (!q.ok()) return q.status();
        s.resolved = std::make_shared<const Quantizer>(std::move(*q));
      }
    }
  }
  return absl::OkStatus();
}

namespace {

// The objectives and memory figures of `r` from its per-window shares (r->windows, in
// eval_windows order): one computation for a fresh evaluation and for a lower fidelity taken
// from a higher one (ResultOnWindows), so that both give the same numbers bit for bit.
void AggregateWindows(EvaluationResult* r) {
  double nll = 0, base_nll = 0, cache_bits = 0, fp16_bits = 0, end_ratio = 0;
  long scored = 0;
  r->clear_end_of_window_cache_bytes();
  for (const WindowResult& w : r->windows()) {
    nll += w.nll_sum();
    base_nll += w.baseline_nll_sum();
    scored += w.tokens_scored();
    cache_bits += w.cache_bits();
    fp16_bits += w.fp16_cache_bits();
    end_ratio += w.end_fp16_cache_bits() > 0 ? w.end_cache_bits() / w.end_fp16_cache_bits() : 1.0;
    r->add_end_of_window_cache_bytes(static_cast<int64_t>(std::llround(w.end_cache_bits() / 8)));
  }
  const int n = r->windows_size();
  Objectives* o = r->mutable_objectives();
  o->set_mean_nll(nll / std::max(1L, scored));
  o->set_perplexity(std::exp(o->mean_nll()));
  const double eff = fp16_bits > 0 ? 16.0 * cache_bits / fp16_bits : 16.0;
  o->set_effective_bits(eff);
  const double base_mean = base_nll / std::max(1L, scored);
  r->set_baseline_mean_nll(base_mean);
  r->set_baseline_perplexity(std::exp(base_mean));
  r->set_delta_nll(o->mean_nll() - base_mean);
  o->set_perplexity_increase_percent(100.0 * (std::exp(o->mean_nll() - base_mean) - 1.0));
  // The same by name, as every domain reports its measurements.
  for (const auto& [name, value] : {std::make_pair("mean_nll", o->mean_nll()), std::make_pair("effective_bits", eff),
                                    std::make_pair("perplexity", o->perplexity()),
                                    std::make_pair("perplexity_increase_percent", o->perplexity_increase_percent())}) {
    (*o->mutable_metrics())[name] = value;
  }
  r->set_compression_ratio(16.0 / eff);
  r->set_cache_bytes(static_cast<int64_t>(std::llround(cache_bits / 8)));
  r->set_fp16_cache_bytes(static_cast<int64_t>(std::llround(fp16_bits / 8)));
  r->set_end_of_window_effective_bits(16.0 * end_ratio / std::max(1, n));
  r->set_tokens_scored(scored);
}

}  // namespace

absl::StatusOr<std::vector<int>> WindowSubset(int num_windows, const std::vector<int>& indices) {
  std::vector<int> out;
  for (size_t k = 0; k < indices.size(); ++k) {
    const int i = indices[k];
    if (i < 0 || i >= num_windows) {
      return absl::InvalidArgumentError(absl::StrCat("window index ", i, " is outside 0..", num_windows - 1,
                                                     " (the experiment has ", num_windows, " evaluation windows)"));
    }
    if (k > 0 && i <= indices[k - 1]) {
      return absl::InvalidArgumentError(absl::StrCat("window indices must increase: ", indices[k - 1], " then ", i));
    }
    out.push_back(i);
  }
  return out;
}

absl::StatusOr<EvaluationResult> ResultOnWindows(const EvaluationResult& result, const std::vector<int>& indices) {
  if (result.status().code() != 0) return result;
  EvaluationResult r = result;
  r.clear_windows();
  int next = 0;
  for (size_t k = 0; k < indices.size(); ++k) {
    const int i = indices[k];
    if (k > 0 && i <= indices[k - 1]) {
      return absl::InvalidArgumentError(absl::StrCat("window indices must increase: ", indices[k - 1], " then ", i));
    }
    while (next < result.windows_size() && result.windows(next).index() < i) ++next;
    if (next == result.windows_size() || result.windows(next).index() != i) {
      return absl::NotFoundError(absl::StrCat("the result did not score evaluation window ", i,
                                              result.windows_size() == 0 ? " (it keeps no per-window shares: stored by an earlier version)" : ""));
    }
    *r.add_windows() = result.windows(next);
  }
  AggregateWindows(&r);
  // Per-layer bits and kept tokens are over the windows the result scored, not the subset's:
  // cleared; the probe's attention errors do not depend on the windows and stay.
  for (LayerMetrics& l : *r.mutable_layers()) {
    l.clear_effective_bits();
    l.clear_kept_token_fraction();
  }
  return r;
}

absl::StatusOr<EvaluationResult> MergeWindowResults(const EvaluationResult& a, const EvaluationResult& b) {
  if (a.status().code() != 0 || b.status().code() != 0) {
    return absl::InvalidArgumentError("only two successful results can be merged");
  }
  EvaluationResult r = a;
  r.clear_windows();
  int i = 0, j = 0;
  while (i < a.windows_size() || j < b.windows_size()) {
    if (i < a.windows_size() && j < b.windows_size() && a.windows(i).index() == b.windows(j).index()) {
      return absl::InvalidArgumentError(absl::StrCat("both results scored evaluation window ", a.windows(i).index()));
    }
    const bool take_a = j == b.windows_size() || (i < a.windows_size() && a.windows(i).index() < b.windows(j).index());
    *r.add_windows() = take_a ? a.windows(i++) : b.windows(j++);
  }
  AggregateWindows(&r);
  r.set_cost_seconds(a.cost_seconds() + b.cost_seconds());
  // Per-layer bits and kept tokens were measured over each part's windows: cleared (as in
  // ResultOnWindows); the probe's attention errors are the same in both and stay.
  for (LayerMetrics& l : *r.mutable_layers()) {
    l.clear_effective_bits();
    l.clear_kept_token_fraction();
  }
  return r;
}

absl::StatusOr<std::vector<double>> ProbeAttentionErrors(const EvaluationContext& ctx, const ModelPlan& plan) {
  auto probe = ctx.GetProbe(std::min(256, ctx.window_length()));
  if (!probe.ok()) return probe.status();
  std::vector<RowMatrix> outputs;
  std::vector<LayerRunStats> probe_stats;
  const int threads = ctx.spec().threads();
  std::unique_ptr<ThreadPool> pool = threads > 1 ? std::make_unique<ThreadPool>(threads) : nullptr;
  RunAttentionOnly(ctx.model(), plan, (*probe)->layers, ctx.chunk(), &outputs, &probe_stats, pool.get());
  std::vector<double> errors(outputs.size(), 0.0);
  for (size_t l = 0; l < outputs.size(); ++l) {
    const RowMatrix& ref = (*probe)->exact_outputs[l];
    const double denom = ref.norm();
    errors[l] = denom > 0 ? (outputs[l] - ref).norm() / denom : 0.0;
  }
  return errors;
}

absl::StatusOr<ScreenPoint> Evaluator::Screen(const Candidate& candidate) const {
  auto plan = CompileCandidate(candidate, context_->config(), context_->window_length());
  if (!plan.ok()) return plan.status();
  absl::Status s = context_->ResolvePlan(&*plan);
  if (!s.ok()) return s;
  const std::string key = candidate.SerializeAsString();
  auto errors = ProbeErrorsOf(*plan, &key);
  if (!errors.ok()) return errors.status();
  ScreenPoint p;
  p.bits = plan->exact ? 16.0 : AnalyticPlanBits(*plan, context_->config(), context_->spec().deployment_context());
  for (double e : *errors) p.error += e / std::max<size_t>(1, errors->size());
  return p;
}

absl::StatusOr<ScreenPoint> ScreenPointOf(const EvaluationResult& result) {
  if (result.status().code() != 0 || result.layers_size() == 0) {
    return absl::NotFoundError("the result holds no per-layer probe errors");
  }
  ScreenPoint p;
  p.bits = result.analytic_effective_bits();
  for (const LayerMetrics& l : result.layers()) p.error += l.attention_relative_error() / result.layers_size();
  return p;
}

EvaluationResult Evaluator::Evaluate(const Candidate& candidate, const std::vector<int>* windows) const {
  const auto start = std::chrono::steady_clock::now();
  auto plan = CompileCandidate(candidate, context_->config(), context_->window_length());
  if (!plan.ok()) return ErrorResult(plan.status());
  const double compile_seconds = Seconds(start);
  const std::string key = candidate.SerializeAsString();
  EvaluationResult r = EvaluateResolvable(std::move(*plan), windows, &key);
  if (r.status().code() == 0) r.set_cost_seconds(r.cost_seconds() + compile_seconds);
  return r;
}

absl::StatusOr<std::vector<double>> Evaluator::ProbeErrorsOf(const ModelPlan& plan, const std::string* candidate_key) const {
  if (candidate_key) {
    absl::MutexLock lock(&probe_errors_mu_);
    auto it = probe_errors_.find(*candidate_key);
    if (it != probe_errors_.end()) return it->second;
  }
  auto errors = ProbeAttentionErrors(*context_, plan);
  if (errors.ok() && candidate_key) {
    absl::MutexLock lock(&probe_errors_mu_);
    // Bounded: past 65536 candidates it starts over (a forgotten one is recomputed, same values).
    if (probe_errors_.size() >= 65536) probe_errors_.clear();
    probe_errors_.emplace(*candidate_key, *errors);
  }
  return errors;
}

EvaluationResult Evaluator::EvaluatePlan(ModelPlan plan, const std::vector<int>* window_subset) const {
  return EvaluateResolvable(std::move(plan), window_subset, nullptr);
}

EvaluationResult Evaluator::EvaluateResolvable(ModelPlan plan, const std::vector<int>* window_subset,
                                               const std::string* candidate_key) const {
  const EvaluationContext& ctx = *context_;
  const EvaluationSpec& spec = ctx.spec();
  std::vector<int> indices;
  if (window_subset) {
    auto checked = WindowSubset(spec.eval_windows_size(), *window_subset);
    if (!checked.ok()) return ErrorResult(checked.status());
    indices = std::move(*checked);
  } else {
    for (int i = 0; i < spec.eval_windows_size(); ++i) indices.push_back(i);
  }
  // Resolving may fit NUQ codebooks, once per experiment for all later evaluations: not part
  // of this evaluation's cost (which the cache reports as time saved by each hit).
  absl::Status s = ctx.ResolvePlan(&plan);
  if (!s.ok()) return ErrorResult(s);
  const auto start = std::chrono::steady_clock::now();
  const int n = static_cast<int>(indices.size());
  std::vector<ForwardResult> windows(n);
  ForEachWindow(n, spec.threads(), [&](int k, ThreadPool* pool) {
    windows[k] = ForwardWindow(ctx.model(), ctx.Window(spec.eval_windows(indices[k])), plan, ctx.chunk(), nullptr, pool);
  });
  const ModelConfig& c = ctx.config();
  const EvaluationContext::Baseline& base = ctx.baseline();
  EvaluationResult r;
  r.mutable_status()->set_code(0);
  std::vector<double> layer_cache(c.num_layers, 0), layer_fp16(c.num_layers, 0), layer_kept(c.num_layers, 0);
  for (int k = 0; k < n; ++k) {
    const ForwardResult& w = windows[k];
    WindowResult* wr = r.add_windows();
    wr->set_index(indices[k]);
    wr->set_window(spec.eval_windows(indices[k]));
    wr->set_nll_sum(w.nll_sum);
    wr->set_baseline_nll_sum(base.window_nll_sum[indices[k]]);
    wr->set_tokens_scored(w.scored);
    double cache = 0, fp16 = 0, end_cache = 0, end_fp16 = 0;
    for (int l = 0; l < c.num_layers; ++l) {
      const LayerRunStats& ls = w.layers[l];
      cache += ls.cache_bits;
      fp16 += ls.fp16_bits;
      layer_cache[l] += ls.cache_bits;
      layer_fp16[l] += ls.fp16_bits;
      end_cache += ls.end_cache_bits;
      end_fp16 += ls.end_fp16_bits;
      layer_kept[l] += ls.end_total_tokens > 0 ? static_cast<double>(ls.end_kept_tokens) / ls.end_total_tokens : 1.0;
    }
    wr->set_cache_bits(cache);
    wr->set_fp16_cache_bits(fp16);
    wr->set_end_cache_bits(end_cache);
    wr->set_end_fp16_cache_bits(end_fp16);
  }
  AggregateWindows(&r);
  r.set_deployment_context(spec.deployment_context());
  r.set_analytic_effective_bits(plan.exact ? 16.0 : AnalyticPlanBits(plan, c, spec.deployment_context()));
  // Single-layer diagnostic on the probe window: attention outputs with this cache against
  // the uncompressed ones, on the same (uncompressed) inputs.
  auto errors = ProbeErrorsOf(plan, candidate_key);
  for (int l = 0; l < c.num_layers; ++l) {
    LayerMetrics* lm = r.add_layers();
    lm->set_layer(l);
    lm->set_effective_bits(layer_fp16[l] > 0 ? 16.0 * layer_cache[l] / layer_fp16[l] : 16.0);
    lm->set_kept_token_fraction(layer_kept[l] / std::max(1, n));
    if (errors.ok()) lm->set_attention_relative_error((*errors)[l]);
  }
  r.set_cost_seconds(Seconds(start));
  r.set_evaluator_version(kEvaluatorVersion);
  r.set_context_fingerprint(ctx.fingerprint());
  return r;
}

}  // namespace fecsearch
