// The self-contained HTML report of a search: inline SVG plots (Pareto front, best-so-far
// against evaluations and wall time, cache hit rate), the front as a table and the chosen
// configuration's per-layer settings. No scripts, no network.
#ifndef FECSEARCH_SEARCH_REPORT_H_
#define FECSEARCH_SEARCH_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/model_config.h"
#include "protos/experiment.pb.h"
#include "search/controller.h"

namespace fecsearch {

struct ReportInput {
  ExperimentSpec spec;
  SearchResult result;
  ModelConfig model;
  double baseline_perplexity = 0;
  std::string dedup;       // "functional", "exact" or "none"
  std::string pool;        // where evaluations ran
  std::string database;    // path
};

// Index into result.records of the configuration the report recommends: the front member
// with the lowest scalarised objective (the spec's weights), or -1 if the front is empty.
int ChosenConfiguration(const ExperimentSpec& spec, const SearchResult& result);

std::string RenderReport(const ReportInput& in);
absl::Status WriteReport(const std::string& path, const ReportInput& in);

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_REPORT_H_
