// The evaluator: a candidate's teacher-forced perplexity with the compressed KV cache on the
// evaluation windows, plus exact memory accounting and per-layer diagnostics.
#ifndef FECSEARCH_CORE_EVALUATOR_H_
#define FECSEARCH_CORE_EVALUATOR_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "core/forward.h"
#include "core/layer_plan.h"
#include "core/decoder_model.h"
#include "core/evaluation_text.h"
#include "protos/evaluation.pb.h"
#include "protos/experiment.pb.h"
#include "protos/candidate.pb.h"
#include "protos/pipeline_graph.pb.h"

namespace fecsearch {

// Everything fixed for an experiment's evaluations: model, text, windows, the uncompressed
// reference, calibration data and fitted codebooks, the probe capture. Thread-safe: lazily
// computed parts are built once under a mutex and immutable afterwards.
class EvaluationContext {
 public:
  // Validates the spec (paths, window indices against the text length, chunk length, window
  // length against the model's context); errors name the field or path.
  static absl::StatusOr<std::shared_ptr<EvaluationContext>> Create(const EvaluationSpec& spec);

  const DecoderModel& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config(); }
  // The spec with defaults filled in (eval/calibration windows listed explicitly).
  const EvaluationSpec& spec() const { return spec_; }
  int chunk() const { return spec_.chunk_length(); }
  int window_length() const { return spec_.window_length(); }
  // The tokens of window `index` (an evaluation, calibration or probe window; with a BOS
  // first when the tokenizer adds one).
  absl::Span<const int> Window(int index) const;
  // Windows the text yields, and a line saying what the text is (tokens, tokenizer).
  int window_count() const { return window_count_; }
  const std::string& text_description() const { return text_description_; }
  // Hex fingerprint of weights, text, windows, chunk length and evaluator version.
  const std::string& fingerprint() const { return fingerprint_; }

  struct Baseline {
    double mean_nll = 0;
    std::vector<double> window_nll_sum;
    long tokens = 0;
  };
  // The uncompressed model under the same protocol (computed on first use).
  const Baseline& baseline() const;

  // The first `tokens` tokens of the probe window captured through the uncompressed model
  // (per layer: queries, keys before/after RoPE, values), and the uncompressed attention
  // outputs on them. Computed once per length.
  struct Probe {
    std::vector<CapturedLayer> layers;
    std::vector<RowMatrix> exact_outputs;
  };
  absl::StatusOr<const Probe*> GetProbe(int tokens) const;

  // Creates every stage's quantizer, fitting NUQ codebooks on the calibration windows the
  // first time a (layer, stream, domain, grouping, width) combination is needed.
  absl::Status ResolvePlan(ModelPlan* plan) const;

 private:
  EvaluationContext() = default;
  struct Calibration {
    std::vector<CapturedLayer> windows_layers;  // [window * layers + layer], q dropped
    // Mean squared query per (layer, query-head group = KV head, channel), post-RoPE.
    std::vector<std::vector<float>> key_weights;  // [layer][kv_head * hd + c]
  };
  const Calibration& GetCalibration() const;
  const ValueTable* NuqCodebook(int layer, bool values, bool pre_rope, const QuantizerConfig& q) const;

  EvaluationSpec spec_;
  std::unique_ptr<DecoderModel> model_;
  std::vector<int> tokens_;  // the whole text, without BOS
  int bos_ = -1;
  int window_count_ = 0;
  std::string text_description_;
  std::map<int, std::vector<int>> windows_;  // the windows the experiment reads
  std::string fingerprint_;

  mutable absl::Mutex mu_;
  mutable std::unique_ptr<Baseline> baseline_ ABSL_GUARDED_BY(mu_);
  mutable std::unique_ptr<Calibration> calibration_ ABSL_GUARDED_BY(mu_);
  mutable std::map<int, std::unique_ptr<Probe>> probes_ ABSL_GUARDED_BY(mu_);
  mutable absl::Mutex codebook_mu_;
  mutable std::map<std::string, std::unique_ptr<ValueTable>> codebooks_ ABSL_GUARDED_BY(codebook_mu_);
};

// OK if `indices` are increasing indices into `num_windows` evaluation windows
// (evaluation.eval_windows); INVALID_ARGUMENT naming the first that is not.
absl::StatusOr<std::vector<int>> WindowSubset(int num_windows, const std::vector<int>& indices);

// The evaluation windows a spec has: its own eval_windows, or the default placement's
// kDefaultEvalWindows (windows 0-3) when it leaves them empty.
constexpr int kDefaultEvalWindows = 4;
inline int EvalWindowCount(const EvaluationSpec& spec) {
  return spec.eval_windows_size() > 0 ? spec.eval_windows_size() : kDefaultEvalWindows;
}

// The result a lower fidelity would have given, from one that scored at least its windows:
// the objectives, memory figures and per-window shares of `indices` alone (bit for bit what
// evaluating on those windows gives). NOT_FOUND if `result` lacks one of them (results stored
// before per-window shares existed lack all). Per-layer bits and kept-token shares are cleared
// (they were measured over the result's windows); the probe's attention errors stay.
absl::StatusOr<EvaluationResult> ResultOnWindows(const EvaluationResult& result, const std::vector<int>& indices);

// One result from two of the same candidate on disjoint windows (a promotion scores only the
// windows the lower rung lacks): the windows of both in eval_windows order, the objectives
// and memory figures aggregated over them (bit for bit what evaluating on the union gives),
// the costs added. INVALID_ARGUMENT if they share a window or one is not OK.
absl::StatusOr<EvaluationResult> MergeWindowResults(const EvaluationResult& a, const EvaluationResult& b);

// What probe screening predicts of a candidate (search.screen): its plan's exact bits at the
// deployment context (bits per cached element) and the mean over layers of its attention's
// relative error on the probe window against exact attention (the numbers a result's
// analytic_effective_bits and layers[].attention_relative_error hold).
struct ScreenPoint {
  double bits = 0;
  double error = 0;
};
// Per layer: the compressed cache's attention against exact attention on the probe window's
// uncompressed inputs (relative Frobenius error). `plan` must be resolved.
absl::StatusOr<std::vector<double>> ProbeAttentionErrors(const EvaluationContext& ctx, const ModelPlan& plan);
// The screen point a full result records; NOT_FOUND for results without per-layer errors.
absl::StatusOr<ScreenPoint> ScreenPointOf(const EvaluationResult& result);

// Evaluates candidates in one context. Thread-safe (several threads may share one
// Evaluator); each call uses up to spec.threads threads for its windows.
class Evaluator {
 public:
  explicit Evaluator(std::shared_ptr<EvaluationContext> context) : context_(std::move(context)) {}

  // Never fails on a bad candidate: the result's status says what is wrong (naming the field).
  // `windows`: indices into the spec's eval_windows, increasing (a lower fidelity: the
  // objectives are those of these windows, against the uncompressed model on the same
  // windows); null: all of them.
  EvaluationResult Evaluate(const Candidate& candidate, const std::vector<int>* windows = nullptr) const;
  // The screen point of a candidate, without evaluating it (the probe window only; about
  // what hashing costs). INVALID_ARGUMENT for a candidate that does not compile.
  absl::StatusOr<ScreenPoint> Screen(const Candidate& candidate) const;
  // Same, for an already compiled plan (used by tests and benchmarks).
  EvaluationResult EvaluatePlan(ModelPlan plan, const std::vector<int>* windows = nullptr) const;

  const EvaluationContext& context() const { return *context_; }
  std::shared_ptr<EvaluationContext> shared_context() const { return context_; }

 private:
  EvaluationResult EvaluateResolvable(ModelPlan plan, const std::vector<int>* windows,
                                      const std::string* candidate_key) const;
  // The probe's attention errors of a resolved plan, remembered by candidate (its serialized
  // bytes; null: not remembered). A candidate is screened, then scored at one rung and
  // promoted to others, and the errors depend on none of that.
  absl::StatusOr<std::vector<double>> ProbeErrorsOf(const ModelPlan& plan, const std::string* candidate_key) const;

  std::shared_ptr<EvaluationContext> context_;
  mutable absl::Mutex probe_errors_mu_;
  mutable std::map<std::string, std::vector<double>> probe_errors_ ABSL_GUARDED_BY(probe_errors_mu_);
};

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_EVALUATOR_H_
