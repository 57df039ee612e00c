// The KV-cache domain's probe program and hash source.
#include "hashing/kv_probe.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/memory_model.h"
#include "core/pipeline_graph.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "hashing/structural_hash.h"

namespace fecsearch {
namespace {

// splitmix64: a portable generator (std distributions differ between libraries).
class SplitMix {
 public:
  explicit SplitMix(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Uniform() { return (Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_;
};

void AddStreamSignature(const StreamPlan& sp, OutputSink& sink) {
  sink.AddInt(sp.sink_tokens);
  sink.AddInt(sp.recent_window);
  sink.AddInt(sp.quantize_before_rope);
  sink.AddInt(static_cast<int64_t>(sp.stages.size()));
  for (const Stage& st : sp.stages) {
    sink.AddInt(static_cast<int64_t>(st.kind));
    sink.AddInt(st.stored);
    if (st.kind == StageKind::kSplitOutliers) {
      sink.AddInt(static_cast<int64_t>(std::llround(st.outlier_fraction * 1e9)));
      continue;
    }
    const QuantizerConfig& q = st.quantizer;
    for (int64_t v : {static_cast<int64_t>(q.format), int64_t{q.bits}, int64_t{q.posit_es}, int64_t{q.symmetric},
                      static_cast<int64_t>(q.axis), int64_t{q.group_size}}) {
      sink.AddInt(v);
    }
  }
}

// The resolved settings of one layer's plan (see KvProbe::Run for when they are hashed).
void AddPlanSignature(const LayerPlan& l, OutputSink& sink) {
  AddStreamSignature(l.keys, sink);
  AddStreamSignature(l.values, sink);
  const EvictionPlan& e = l.eviction;
  sink.AddInt(e.policy);
  sink.AddInt(static_cast<int64_t>(std::llround(e.keep_ratio * 1e9)));
  if (e.policy == SNAPKV) {
    sink.AddInt(e.observation_window);
    sink.AddInt(e.pooling_kernel);
  }
  if (e.policy == KEY_NORM || e.policy == VALUE_NORM || e.policy == TEMPORAL_REDUNDANCY) {
    sink.AddInt(e.tap_values);
    sink.AddInt(e.tap_after_stages);
    sink.AddInt(e.tap_rotated);
  }
  sink.AddInt(l.head_clusters);
}

}  // namespace

absl::StatusOr<std::unique_ptr<KvProbe>> KvProbe::Create(std::shared_ptr<const EvaluationContext> context,
                                                         int probe_tokens, uint64_t probe_seed) {
  auto captured = context->GetProbe(probe_tokens);
  if (!captured.ok()) return captured.status();
  auto probe = std::unique_ptr<KvProbe>(new KvProbe());
  probe->context_ = context;
  probe->probe_tokens_ = probe_tokens;
  probe->real_ = (*captured)->layers;
  // Synthetic variant: 1 in 8 key and value channels scaled by 3..12x (log-uniform), as
  // large models' outlier channels are; keys re-rotated after scaling. It covers the first
  // half of the probe only (the real part already exercises the long windows), which keeps
  // the probe under 2% of a full evaluation (docs/BENCHMARKS.md).
  const ModelConfig& c = context->config();
  const int D = c.head_dim;
  SplitMix rng(probe_seed);
  const int synthetic_tokens = std::max(2, probe_tokens / 2);
  probe->synthetic_ = probe->real_;
  for (CapturedLayer& layer : probe->synthetic_) {
    for (RowMatrix* m : {&layer.q, &layer.k_pre, &layer.k, &layer.v}) m->conservativeResize(synthetic_tokens, Eigen::NoChange);
    for (RowMatrix* m : {&layer.k_pre, &layer.v}) {
      for (Eigen::Index col = 0; col < m->cols(); ++col) {
        if (rng.Uniform() < 0.125) m->col(col) *= static_cast<float>(std::exp(std::log(3.0) + rng.Uniform() * std::log(4.0)));
      }
    }
    layer.k = layer.k_pre;
    for (Eigen::Index t = 0; t < layer.k.rows(); ++t)
      for (int g = 0; g < c.num_kv_heads; ++g) context->model().rope().Apply(t, layer.k.row(t).data() + g * D);
  }
  return probe;
}

absl::Status KvProbe::Run(const Candidate& candidate, OutputSink& sink) const {
  auto plan = CompileCandidate(candidate, context_->config(), context_->window_length());
  if (!plan.ok()) return plan.status();
  absl::Status s = context_->ResolvePlan(&*plan);
  if (!s.ok()) return s;
  std::vector<RowMatrix> outputs;
  std::vector<LayerRunStats> stats;
  for (const auto* inputs : {&real_, &synthetic_}) {
    RunAttentionOnly(context_->model(), *plan, *inputs, context_->chunk(), &outputs, &stats);
    for (size_t l = 0; l < outputs.size(); ++l) {
      sink.AddFloats(absl::MakeConstSpan(outputs[l].data(), outputs[l].size()));
      // Exact bit counts (integers stored in doubles).
      sink.AddInt(static_cast<int64_t>(std::llround(stats[l].cache_bits)));
      sink.AddInt(static_cast<int64_t>(std::llround(stats[l].end_cache_bits)));
    }
  }
  const double analytic =
      AnalyticPlanBits(*plan, context_->config(), context_->spec().deployment_context());
  sink.AddInt(static_cast<int64_t>(std::llround(analytic * 1e6)));
  // Eviction can hide from the probe what the full evaluation sees: while the sinks and the
  // recent window outnumber the budget (ceil(keep_ratio x tokens seen)), every other token is
  // evicted as soon as it leaves the recent window, so neither the policy nor the quantizers
  // show in the probe's outputs; in a 1024-token window the budget outgrows the protected
  // tokens and both matter. The collision study found such false hits. For every layer with an
  // active eviction, the hash therefore also covers the layer's compiled plan, whose settings
  // are resolved (a width a format ignores, a group of "all", are normalised), so that
  // equivalences among plans remain.
  for (const LayerPlan& l : plan->layers) {
    if (!l.eviction.active()) {
      sink.AddInt(-1);
      continue;
    }
    AddPlanSignature(l, sink);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<KvHashSource>> KvHashSource::Create(std::shared_ptr<const EvaluationContext> context,
                                                                 const FecSpec& fec) {
  auto source = std::unique_ptr<KvHashSource>(new KvHashSource(context));
  if (fec.dedup() != FecSpec::EXACT) {
    auto probe = KvProbe::Create(context, fec.probe_tokens(), fec.probe_seed());
    if (!probe.ok()) return probe.status();
    source->probe_ = std::move(*probe);
  }
  return source;
}

KvHashSource::KvHashSource(std::shared_ptr<const EvaluationContext> context)
    : context_(std::move(context)), structural_(context_->config(), context_->window_length()) {}

absl::StatusOr<Hash128> KvHashSource::StructuralHash(const Candidate& candidate) const {
  // Validates the candidate (every gene, graph and window limit) and hashes its graphs.
  return structural_.Hash(candidate);
}

absl::Status KvHashSource::Probe(const Candidate& candidate, OutputSink& sink) const {
  if (!probe_) return absl::FailedPreconditionError("the KV probe was not captured (exact deduplication)");
  return probe_->Run(candidate, sink);
}

absl::StatusOr<std::unique_ptr<CandidateHasher>> MakeKvCandidateHasher(std::shared_ptr<const EvaluationContext> context,
                                                                       const FecSpec& fec,
                                                                       std::unique_ptr<KvHashSource>* source) {
  auto s = KvHashSource::Create(std::move(context), fec);
  if (!s.ok()) return s.status();
  auto hasher = CandidateHasher::Create(s->get(), fec);
  if (!hasher.ok()) return hasher.status();
  *source = std::move(*s);
  return hasher;
}

}  // namespace fecsearch
