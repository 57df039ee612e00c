// bazel run //core:evaluate -- --candidate=FILE | --genome='TEXT'
// Evaluates one candidate (a genome or a pipeline graph, as a text proto) and prints the
// result: for people debugging a configuration.
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/evaluator.h"
#include "core/paths.h"
#include "core/process_init.h"
#include "core/pipeline_graph.h"
#include "core/text_proto.h"
#include "google/protobuf/util/json_util.h"

ABSL_FLAG(std::string, candidate, "",
          "File with a text-format Candidate, KvCompressionGenome or PipelineGraphCandidate.");
ABSL_FLAG(std::string, genome, "",
          "Inline text-format KvCompressionGenome, e.g. 'layers { keys { format: INT bits: 2 } }'.");
ABSL_FLAG(std::string, experiment, "",
          "Experiment spec whose `evaluation` section to use (default: the built-in defaults).");
ABSL_FLAG(std::string, model, "", "Model directory (overrides the experiment).");
ABSL_FLAG(std::string, text, "", "Evaluation text (overrides the experiment).");
ABSL_FLAG(std::string, windows, "", "Comma-separated evaluation windows, e.g. 0,1,2,3.");
ABSL_FLAG(int, chunk, 0, "Chunk length in tokens (0 = the experiment's, default 16).");
ABSL_FLAG(int, eval_threads, 0, "Threads of the evaluation: windows in parallel, and matrix products and heads within a window (default 0: the machine's cores; results do not depend on it).");
ABSL_FLAG(bool, json, false, "Print the EvaluationResult as JSON instead of a table.");

namespace fecsearch {
namespace {

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "evaluate: %s\n", message.c_str());
  return code;
}

// Line and column of a parse error ("where:LINE:COL: ..."), for choosing among errors.
std::pair<int, int> ErrorPosition(const absl::Status& s, const std::string& where) {
  absl::string_view m = s.message();
  if (!absl::ConsumePrefix(&m, where) || !absl::ConsumePrefix(&m, ":")) return {0, 0};
  std::vector<absl::string_view> parts = absl::StrSplit(m, absl::MaxSplits(':', 2));
  int line = 0, col = 0;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[0], &line)) return {0, 0};
  if (!absl::SimpleAtoi(parts[1], &col)) col = 0;
  return {line, col};
}

absl::Status ParseCandidate(const std::string& text, const std::string& where, Candidate* out) {
  // A Candidate, a bare genome or a bare pipeline: whichever parses. If none does, the error
  // of the reading that got furthest into the text is the one that names the real mistake.
  absl::Status candidate_status = ParseTextProto(text, where, out);
  if (candidate_status.ok()) return absl::OkStatus();
  KvCompressionGenome genome;
  absl::Status genome_status = ParseTextProto(text, where, &genome);
  if (genome_status.ok()) {
    *out->mutable_genome() = genome;
    return absl::OkStatus();
  }
  PipelineGraphCandidate pipeline;
  absl::Status pipeline_status = ParseTextProto(text, where, &pipeline);
  if (pipeline_status.ok()) {
    *out->mutable_pipeline() = pipeline;
    return absl::OkStatus();
  }
  absl::Status best = candidate_status;
  for (const absl::Status& s : {genome_status, pipeline_status}) {
    if (ErrorPosition(s, where) > ErrorPosition(best, where)) best = s;
  }
  return best;
}

int Main() {
  Candidate candidate;
  const std::string file = absl::GetFlag(FLAGS_candidate);
  const std::string inline_text = absl::GetFlag(FLAGS_genome);
  if (file.empty() == inline_text.empty()) {
    return Fail("give exactly one of --candidate=FILE or --genome='TEXT' (see --help)", 2);
  }
  if (!file.empty()) {
    std::string text;
    absl::Status s = ReadFile(ResolveInputPath(file), &text);
    if (!s.ok()) return Fail(std::string(s.message()), 2);
    s = ParseCandidate(text, file, &candidate);
    if (!s.ok()) return Fail(std::string(s.message()), 2);
  } else {
    absl::Status s = ParseCandidate(inline_text, "--genome", &candidate);
    if (!s.ok()) return Fail(std::string(s.message()), 2);
  }
  EvaluationSpec spec;
  if (!absl::GetFlag(FLAGS_experiment).empty()) {
    ExperimentSpec experiment;
    absl::Status s = ReadTextProtoFile(ResolveInputPath(absl::GetFlag(FLAGS_experiment)), &experiment);
    if (!s.ok()) return Fail(std::string(s.message()), 2);
    spec = experiment.evaluation();
  }
  if (!absl::GetFlag(FLAGS_model).empty()) spec.set_model_path(absl::GetFlag(FLAGS_model));
  if (!absl::GetFlag(FLAGS_text).empty()) spec.set_text_path(absl::GetFlag(FLAGS_text));
  if (!absl::GetFlag(FLAGS_model).empty() && absl::GetFlag(FLAGS_text).empty() && !absl::GetFlag(FLAGS_experiment).empty()) {
    // A new model without a new text reads the model directory's eval.txt.
    spec.clear_text_path();
  }
  if (absl::GetFlag(FLAGS_chunk) < 0) return Fail(absl::StrCat("--chunk: ", absl::GetFlag(FLAGS_chunk), " tokens is negative"), 2);
  if (absl::GetFlag(FLAGS_eval_threads) < 0 || absl::GetFlag(FLAGS_eval_threads) > 256) {
    return Fail(absl::StrCat("--eval_threads: ", absl::GetFlag(FLAGS_eval_threads), " is outside 0..256 (0 = the machine's cores)"), 2);
  }
  if (absl::GetFlag(FLAGS_chunk) > 0) spec.set_chunk_length(absl::GetFlag(FLAGS_chunk));
  // One candidate: by default the whole machine works on it.
  spec.set_threads(absl::GetFlag(FLAGS_eval_threads) > 0 ? absl::GetFlag(FLAGS_eval_threads)
                                                         : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  if (!absl::GetFlag(FLAGS_windows).empty()) {
    spec.clear_eval_windows();
    for (absl::string_view w : absl::StrSplit(absl::GetFlag(FLAGS_windows), ',')) {
      int index;
      if (!absl::SimpleAtoi(w, &index)) return Fail(absl::StrCat("--windows: '", w, "' is not an integer"), 2);
      spec.add_eval_windows(index);
    }
  }
  std::fprintf(stderr, "evaluate: loading %s ...\n", spec.model_path().c_str());
  auto context = EvaluationContext::Create(spec);
  if (!context.ok()) return Fail(std::string(context.status().message()), 2);
  Evaluator evaluator(*context);
  std::fprintf(stderr, "evaluate: %s, %lld parameters; text: %s, %d windows of %d tokens\n",
               (*context)->config().model_type.c_str(), static_cast<long long>((*context)->model().parameter_count()),
               (*context)->text_description().c_str(), (*context)->window_count(), (*context)->window_length());
  std::fprintf(stderr, "evaluate: uncompressed reference on %d windows ...\n",
               (*context)->spec().eval_windows_size());
  (*context)->baseline();
  std::fprintf(stderr, "evaluate: candidate ...\n");
  EvaluationResult r = evaluator.Evaluate(candidate);
  if (absl::GetFlag(FLAGS_json)) {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(r, &json, options);
    std::cout << json << std::endl;
  }
  if (r.status().code() != 0) return Fail(r.status().message(), 2);
  if (absl::GetFlag(FLAGS_json)) return 0;
  const Objectives& o = r.objectives();
  std::printf("configuration        %s\n", CandidateSummary(candidate, (*context)->config()).c_str());
  std::printf("mean NLL             %.5f nats/token (uncompressed %.5f, delta %+.5f)\n", o.mean_nll(),
              r.baseline_mean_nll(), r.delta_nll());
  std::printf("perplexity           %.4f (uncompressed %.4f, %+.2f%%)\n", o.perplexity(),
              r.baseline_perplexity(), o.perplexity_increase_percent());
  std::printf("effective bits       %.3f bits/element measured (%.3f at window end; analytic %.3f at %lld tokens)\n",
              o.effective_bits(), r.end_of_window_effective_bits(), r.analytic_effective_bits(),
              static_cast<long long>(r.deployment_context()));
  std::printf("compression ratio    %.2fx vs fp16 (%lld of %lld byte-boundaries: bytes summed over chunk boundaries)\n",
              r.compression_ratio(), static_cast<long long>(r.cache_bytes()),
              static_cast<long long>(r.fp16_cache_bytes()));
  std::vector<std::string> sizes;
  for (int64_t b : r.end_of_window_cache_bytes()) sizes.push_back(absl::StrCat(b));
  std::printf("cache at window end  %s bytes (one per window)\n", absl::StrJoin(sizes, ", ").c_str());
  std::printf("tokens scored        %lld\n", static_cast<long long>(r.tokens_scored()));
  std::printf("cost                 %.3f s\n", r.cost_seconds());
  std::printf("\nlayer  bits/elem  kept tokens  attention rel. error (probe)\n");
  for (const LayerMetrics& l : r.layers()) {
    std::printf("%5d  %9.3f  %10.1f%%  %.5f\n", l.layer(), l.effective_bits(),
                100 * l.kept_token_fraction(), l.attention_relative_error());
  }
  return 0;
}

}  // namespace
}  // namespace fecsearch

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Evaluates one KV-cache compression candidate on the model and prints perplexity, memory "
      "and per-layer diagnostics.\n  bazel run //core:evaluate -- --genome='layers { keys { "
      "format: INT bits: 2 axis: PER_CHANNEL group_size: 32 } values { format: INT bits: 2 "
      "group_size: 32 } }'");
  fecsearch::InitProcess();
  absl::ParseCommandLine(argc, argv);
  return fecsearch::Main();
}
