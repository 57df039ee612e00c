// Loading and validating experiment specs, with errors that name the field and its line.
#ifndef FECSEARCH_SEARCH_EXPERIMENT_H_
#define FECSEARCH_SEARCH_EXPERIMENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "google/protobuf/text_format.h"
#include "protos/experiment.pb.h"

namespace fecsearch {

// The text of search/experiments/default.textproto, compiled into the binaries.
extern const char kDefaultExperiment[];

// A parsed spec and where each field came from.
struct LoadedExperiment {
  ExperimentSpec spec;
  std::string source;  // file path, or "<embedded default>"
  std::shared_ptr<google::protobuf::TextFormat::ParseInfoTree> locations;
};

// Parses text-format `text`; syntax errors read "source:line:column: message".
absl::StatusOr<LoadedExperiment> ParseExperiment(const std::string& text, const std::string& source);
// Reads `path` (resolved like every input path), or the embedded default when empty.
absl::StatusOr<LoadedExperiment> LoadExperiment(const std::string& path);

// Checks every field's range and the spec's consistency. With `model`, also checks what
// depends on the model's shape (layer groups, group sizes, cluster counts). Errors read
// "source:line: field.path: message".
absl::Status ValidateExperiment(const LoadedExperiment& experiment, const ModelConfig* model);

// The search space fitted to `model`: gene values this model cannot take are dropped
// (head_clusters above its KV heads, per-token group sizes that do not divide its head_dim)
// and layer_groups is capped at its layer count, so that one spec serves models of any shape.
// `notes` receives one line per change ("search_space.head_clusters: 3 dropped (the model
// has 2 KV heads)"). A list left empty by the drops keeps its first legal value, or is an
// error the validation then names.
ExperimentSpec AdaptToModel(const ExperimentSpec& spec, const ModelConfig& model, std::vector<std::string>* notes);

// If `status`'s message starts with a field path ("evaluation.eval_windows[2]: ..."), prefixes
// it with "source:line: " for that field; otherwise with "source: ".
absl::Status LocateError(const LoadedExperiment& experiment, const absl::Status& status);


}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_EXPERIMENT_H_
