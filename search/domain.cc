// Defaults of the domain interface.
#include "search/domain.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hashing/functional_hasher.h"
#include "hashing/metrics.h"

namespace fecsearch {

Hash128 FidelityCacheKey(const Hash128& key, const Fidelity& fidelity) {
  return HashBytes(absl::StrCat(key.Hex(), "|fidelity|", fidelity.key));
}

std::vector<std::pair<std::string, std::string>> Domain::FrontColumns(const Objectives& objectives,
                                                                      const ObjectiveSet& chosen) const {
  std::vector<std::pair<std::string, std::string>> columns;
  for (const ObjectiveSet::Entry& e : chosen.entries()) {
    // A unit that only repeats the name ("instructions (instructions)") is left out.
    const bool plain = e.metric.unit.empty() || e.metric.unit == e.metric.name;
    const std::string head = plain ? e.metric.name : absl::StrCat(e.metric.name, " (", e.metric.unit, ")");
    columns.emplace_back(head, absl::StrFormat("%.6g", MetricValue(objectives, e.metric.name)));
  }
  return columns;
}

}  // namespace fecsearch
