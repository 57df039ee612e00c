// The self-contained HTML report of a search, for any domain: inline SVG plots (the Pareto
// front of the first two objectives, best-so-far against evaluations and wall time, cache hit
// rate), the front as a table, and the chosen configuration with the details its domain gives.
// No scripts, no network.
#ifndef FECSEARCH_SEARCH_REPORT_H_
#define FECSEARCH_SEARCH_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "protos/experiment.pb.h"
#include "search/controller.h"
#include "search/domain.h"
#include "search/hit_audit.h"
#include "search/objectives.h"

namespace fecsearch {

struct ReportInput {
  ExperimentSpec spec;
  SearchResult result;
  const Domain* domain = nullptr;          // describes candidates and the context
  const ObjectiveSet* objectives = nullptr;
  std::string dedup;       // "functional", "exact" or "none"
  std::string pool;        // where evaluations ran
  std::string database;    // path
  const HitAudit* hits = nullptr;  // the hits' classification and checks (optional)
};

// Index into result.records of the configuration the report recommends: the front member
// with the lowest scalarised objective (the spec's weights), or -1 if the front is empty.
int ChosenConfiguration(const ObjectiveSet& objectives, const SearchResult& result);

std::string RenderReport(const ReportInput& in);
absl::Status WriteReport(const std::string& path, const ReportInput& in);

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_REPORT_H_
