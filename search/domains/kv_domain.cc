// The KV-cache compression domain.
#include "search/domains/kv_domain.h"
#include "hashing/metrics.h"

#include <algorithm>
#include <cmath>
#include <set>

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
  if (spec.search().has_fidelity()) {
    // The rungs were checked against the spec (search/experiment.cc); the context has placed
    // the evaluation windows, so check them against its count too.
    auto f = KvFidelities(spec, context->spec().eval_windows_size(), &d->rung_windows_);
    if (!f.ok()) return f.status();
    d->fidelities_ = std::move(*f);
  }
  return d;
}

absl::StatusOr<std::vector<Fidelity>> KvFidelities(const ExperimentSpec& spec, int num_windows,
                                                   std::vector<std::vector<int>>* windows) {
  std::vector<std::vector<int>> rungs;
  for (const FidelitySpec::Rung& r : spec.search().fidelity().rungs()) {
    auto w = WindowSubset(num_windows, std::vector<int>(r.windows().begin(), r.windows().end()));
    if (!w.ok()) return absl::InvalidArgumentError(absl::StrCat("search.fidelity: ", w.status().message()));
    rungs.push_back(std::move(*w));
  }
  rungs.emplace_back();
  for (int i = 0; i < num_windows; ++i) rungs.back().push_back(i);
  std::vector<Fidelity> out;
  for (const std::vector<int>& w : rungs) {
    const int k = static_cast<int>(w.size());
    out.push_back({absl::StrCat(k, k == 1 ? " window" : " windows", k == num_windows ? " (full)" : ""),
                   static_cast<double>(k) / num_windows, absl::StrCat("eval_windows ", absl::StrJoin(w, ","))});
  }
  if (windows != nullptr) *windows = std::move(rungs);
  return out;
}

absl::Status KvDomain::CheckFidelity(int fidelity) const {
  if (fidelity < 0 || fidelity >= static_cast<int>(rung_windows_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("fidelity ", fidelity, " is outside 0..", rung_windows_.size() - 1));
  }
  return absl::OkStatus();
}

// Whether `lower` is a valid result whose windows all belong to the rung (so that the rung's
// result is `lower` merged with the windows it lacks).
static bool NestsIn(const EvaluationResult* lower, const std::vector<int>& want) {
  if (lower == nullptr || lower->status().code() != 0) return false;
  for (const WindowResult& w : lower->windows()) {
    if (!std::binary_search(want.begin(), want.end(), w.index())) return false;
  }
  return true;
}

absl::StatusOr<Domain::FidelityWork> KvDomain::WorkAt(int fidelity, const EvaluationResult* lower) const {
  if (rung_windows_.empty()) return Domain::WorkAt(fidelity, lower);
  absl::Status s = CheckFidelity(fidelity);
  if (!s.ok()) return s;
  const std::vector<int>& want = rung_windows_[fidelity];
  FidelityWork work;
  // No lower result, an invalid one, or one holding windows beyond this rung (a rung it does
  // not nest in): evaluate afresh rather than merge what does not fit.
  if (!NestsIn(lower, want)) {
    work.whole = fidelity + 1 == static_cast<int>(rung_windows_.size());
    if (!work.whole) work.windows = want;
    return work;
  }
  std::set<int> have;
  for (const WindowResult& w : lower->windows()) have.insert(w.index());
  for (int i : want) {
    if (!have.count(i)) work.windows.push_back(i);
  }
  return work;
}

absl::StatusOr<EvaluationResult> KvDomain::CompleteAt(int fidelity, const EvaluationResult* lower,
                                                      const EvaluationResult& scored) const {
  if (rung_windows_.empty()) return Domain::CompleteAt(fidelity, lower, scored);
  auto work = WorkAt(fidelity, lower);
  if (!work.ok()) return work.status();
  if (!work->whole && work->windows.empty()) return *lower;
  if (scored.status().code() != 0) return scored;  // the candidate is invalid
  if (work->whole && scored.windows_size() > 0 && scored.windows_size() != context_->spec().eval_windows_size()) {
    // A whole evaluation scores every window (results without per-window shares come from
    // workers before protocol 2).
    return absl::InvalidArgumentError(absl::StrCat("the result scores ", scored.windows_size(), " windows, a whole evaluation ",
                                                   context_->spec().eval_windows_size()));
  }
  if (!work->whole) {
    // What was asked must be what came back, window for window.
    bool same = scored.windows_size() == static_cast<int>(work->windows.size());
    for (int k = 0; same && k < scored.windows_size(); ++k) same = scored.windows(k).index() == work->windows[k];
    if (!same) {
      std::vector<int> got;
      for (const WindowResult& w : scored.windows()) got.push_back(w.index());
      return absl::InvalidArgumentError(absl::StrCat("the result scores windows [", absl::StrJoin(got, ","),
                                                     "], the request asked for [", absl::StrJoin(work->windows, ","), "]"));
    }
  }
  if (!NestsIn(lower, rung_windows_[fidelity])) return scored;
  return MergeWindowResults(*lower, scored);
}

// Runs WorkAt's work in this process.
absl::StatusOr<EvaluationResult> KvDomain::RunAt(const Candidate& candidate, int fidelity,
                                                 const EvaluationResult* lower) const {
  auto work = WorkAt(fidelity, lower);
  if (!work.ok()) return work.status();
  if (!work->whole && work->windows.empty()) return *lower;
  const EvaluationResult scored = work->whole ? evaluator_->Evaluate(candidate) : evaluator_->Evaluate(candidate, &work->windows);
  return CompleteAt(fidelity, lower, scored);
}

absl::StatusOr<EvaluationResult> KvDomain::EvaluateAt(const Candidate& candidate, int fidelity, int64_t candidate_id,
                                                      int attempt) const {
  if (rung_windows_.empty()) return Domain::EvaluateAt(candidate, fidelity, candidate_id, attempt);
  return RunAt(candidate, fidelity, nullptr);
}

absl::StatusOr<EvaluationResult> KvDomain::ResultAt(const EvaluationResult& higher, int fidelity) const {
  if (rung_windows_.empty()) return Domain::ResultAt(higher, fidelity);
  absl::Status s = CheckFidelity(fidelity);
  if (!s.ok()) return s;
  if (higher.status().code() != 0) return higher;  // an invalid candidate is invalid at every rung
  if (higher.windows_size() == static_cast<int>(rung_windows_[fidelity].size())) {
    bool same = true;
    for (int k = 0; k < higher.windows_size() && same; ++k) same = higher.windows(k).index() == rung_windows_[fidelity][k];
    if (same) return higher;
  }
  return ResultOnWindows(higher, rung_windows_[fidelity]);
}

absl::StatusOr<EvaluationResult> KvDomain::Promote(const Candidate& candidate, const EvaluationResult& lower, int fidelity,
                                                   int64_t candidate_id, int attempt) const {
  if (rung_windows_.empty()) return EvaluateAt(candidate, fidelity, candidate_id, attempt);
  return RunAt(candidate, fidelity, &lower);
}

absl::StatusOr<std::vector<double>> KvDomain::Predict(const Candidate& candidate) const {
  auto p = evaluator_->Screen(candidate);
  if (!p.ok()) return p.status();
  return std::vector<double>{p->bits, p->error};
}

absl::StatusOr<std::vector<double>> KvDomain::PredictedOf(const EvaluationResult& result) const {
  auto p = ScreenPointOf(result);
  if (!p.ok()) return p.status();
  return std::vector<double>{p->bits, p->error};
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
