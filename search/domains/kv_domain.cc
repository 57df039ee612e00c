// The KV-cache compression domain.
#include "search/domains/kv_domain.h"
#include "hashing/metrics.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/pipeline_graph.h"
#include "search/domains/graph_space.h"

namespace fecsearch {

std::vector<MetricInfo> KvMetrics() {
  return {
      {"effective_bits", "effective bits per cached element", "bits", false, 17.6},
      {"perplexity_increase_percent", "perplexity increase", "%", false, 0},
      {"perplexity", "perplexity", "", false, 0},
      {"mean_nll", "mean NLL", "nats/token", false, 0},
  };
}

absl::StatusOr<std::unique_ptr<KvDomain>> KvDomain::Create(const ExperimentSpec& spec, const FecSpec& fec,
                                                           std::shared_ptr<EvaluationContext> context) {
  auto d = std::unique_ptr<KvDomain>(new KvDomain());
  d->name_ = spec.search_space().representation() == SearchSpaceSpec::PIPELINE_GRAPH ? "kv-pipeline" : "kv-genome";
  d->context_ = context;
  d->evaluator_ = std::make_shared<Evaluator>(context);
  auto space = MakeCandidateSpace(spec.search_space(), context->config(), context->window_length());
  if (!space.ok()) return space.status();
  d->space_ = std::move(*space);
  auto hashes = KvHashSource::Create(context, fec);
  if (!hashes.ok()) return hashes.status();
  d->hashes_ = std::move(*hashes);
  d->seeds_.assign(spec.search_space().seeds().begin(), spec.search_space().seeds().end());
  return d;
}

absl::Status KvDomain::Validate(const Candidate& candidate) const {
  if (!candidate.has_genome() && !candidate.has_pipeline()) {
    return absl::InvalidArgumentError("candidate: a KV-cache candidate is a genome or a pipeline");
  }
  return CompileCandidate(candidate, context_->config(), context_->window_length()).status();
}

std::string KvDomain::Describe(const Candidate& candidate) const {
  return CandidateSummary(candidate, context_->config());
}

std::string KvDomain::Remark(const Candidate& candidate) const {
  const std::string graph_only = GraphOnlyFeatures(candidate, context_->config());
  return graph_only.empty() ? "" : absl::StrCat("graph only: ", graph_only);
}

std::vector<MetricInfo> KvDomain::Metrics() const { return KvMetrics(); }

std::vector<DefaultObjective> KvDomain::DefaultObjectives() const {
  return {{"effective_bits", 1, false, 0}, {"perplexity_increase_percent", 1, false, 0}};
}

absl::StatusOr<EvaluationResult> KvDomain::Evaluate(const Candidate& candidate, int64_t, int) const {
  return evaluator_->Evaluate(candidate);
}

std::vector<std::pair<std::string, std::string>> KvDomain::Facts() const {
  const ModelConfig& c = context_->config();
  return {
      {"model", absl::StrFormat("%s: %s, %d layers, %d heads (%d KV heads of %d), %d parameters",
                                context_->model().dir(), c.model_type, c.num_layers, c.num_heads, c.num_kv_heads,
                                c.head_dim, context_->model().parameter_count())},
      {"text", absl::StrFormat("%s; %d windows of %d tokens", context_->text_description(), context_->window_count(),
                               context_->window_length())},
      {"uncompressed perplexity", absl::StrFormat("%.4f", std::exp(context_->baseline().mean_nll))},
  };
}

std::vector<DetailsTable> KvDomain::ResultDetails(const Candidate& candidate, const EvaluationResult& result) const {
  DetailsTable t;
  t.id = "chosen-layers";
  t.title = "Per layer";
  t.header = {"layer", "keys", "values", "eviction", "CHAI clusters", "bits/element", "attention error (probe)"};
  auto graphs = CandidateToGraphs(candidate, context_->config());
  if (!graphs.ok()) return {t};
  auto stream = [](const StreamPlan& sp) {
    std::vector<std::string> parts;
    for (const Stage& s : sp.stages) {
      parts.push_back(s.kind == StageKind::kSplitOutliers ? absl::StrFormat("%.2g%% outliers", 100 * s.outlier_fraction)
                                                          : QuantizerSummary(s.quantizer));
    }
    std::string out = parts.empty() ? "fp16" : absl::StrJoin(parts, " + ");
    if (sp.quantize_before_rope) absl::StrAppend(&out, ", pre-RoPE");
    if (sp.sink_tokens) absl::StrAppend(&out, ", ", sp.sink_tokens, " fp16 sinks");
    if (sp.recent_window) absl::StrAppend(&out, ", ", sp.recent_window, " fp16 recent");
    return out;
  };
  for (size_t l = 0; l < graphs->size(); ++l) {
    const LayerPlan plan = (*graphs)[l].Compile();
    const std::string eviction = plan.eviction.policy == NO_EVICTION
                                     ? "none"
                                     : absl::StrFormat("%s, keep %.0f %%", EvictionPolicy_Name(plan.eviction.policy),
                                                       100 * plan.eviction.keep_ratio);
    std::string bits, error;
    if (static_cast<int>(l) < result.layers_size()) {
      bits = absl::StrFormat("%.3f", result.layers(l).effective_bits());
      error = absl::StrFormat("%.4f", result.layers(l).attention_relative_error());
    }
    t.rows.push_back({absl::StrCat(l), stream(plan.keys), stream(plan.values), eviction,
                      plan.head_clusters ? absl::StrCat(plan.head_clusters) : "off", bits, error});
  }
  return {t};
}

std::vector<std::pair<std::string, std::string>> KvDomain::FrontColumns(const Objectives& o, const ObjectiveSet&) const {
  // Memory and quality as a practitioner reads them, whatever the objectives (README).
  const double bits = MetricValue(o, "effective_bits");
  return {{"bits/elem", absl::StrFormat("%.3f", bits)},
          {"vs fp16", absl::StrFormat("%.2fx", 16 / bits)},
          {"perplexity", absl::StrFormat("%.4f", MetricValue(o, "perplexity"))},
          {"increase", absl::StrFormat("%+.2f%%", MetricValue(o, "perplexity_increase_percent"))}};
}

}  // namespace fecsearch
