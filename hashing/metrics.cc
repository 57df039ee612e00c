// Named metrics and interned name lists.
#include "hashing/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"

namespace fecsearch {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The fields results carried before Objectives.metrics.
bool LegacyField(const Objectives& o, absl::string_view name, double* value) {
  if (name == "mean_nll" && o.has_mean_nll()) return *value = o.mean_nll(), true;
  if (name == "effective_bits" && o.has_effective_bits()) return *value = o.effective_bits(), true;
  if (name == "perplexity" && o.has_perplexity()) return *value = o.perplexity(), true;
  if (name == "perplexity_increase_percent" && o.has_perplexity_increase_percent()) {
    return *value = o.perplexity_increase_percent(), true;
  }
  return false;
}

}  // namespace

double MetricValue(const Objectives& o, absl::string_view name) {
  auto it = o.metrics().find(std::string(name));
  if (it != o.metrics().end()) return it->second;
  double v;
  return LegacyField(o, name, &v) ? v : kNaN;
}

void SetMetric(Objectives* o, const std::string& name, double value) {
  (*o->mutable_metrics())[name] = value;
  if (name == "mean_nll") o->set_mean_nll(value);
  if (name == "effective_bits") o->set_effective_bits(value);
  if (name == "perplexity") o->set_perplexity(value);
  if (name == "perplexity_increase_percent") o->set_perplexity_increase_percent(value);
}

std::vector<std::pair<std::string, double>> AllMetrics(const Objectives& o) {
  std::map<std::string, double> all(o.metrics().begin(), o.metrics().end());
  for (const char* name : {"mean_nll", "effective_bits", "perplexity", "perplexity_increase_percent"}) {
    double v;
    if (!all.count(name) && LegacyField(o, name, &v)) all[name] = v;
  }
  return {all.begin(), all.end()};
}

const MetricNames* InternMetricNames(const MetricNames& names) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* lists = new std::set<MetricNames>();
  absl::MutexLock lock(&mu);
  return &*lists->insert(names).first;
}

const MetricNames* InternMetricNames(absl::string_view comma_separated) {
  MetricNames names;
  if (!comma_separated.empty()) {
    for (absl::string_view n : absl::StrSplit(comma_separated, ',')) names.emplace_back(n);
  }
  return InternMetricNames(names);
}

std::string JoinMetricNames(const MetricNames& names) { return absl::StrJoin(names, ","); }

MetricValues MetricValues::From(const Objectives& o) {
  MetricValues m;
  MetricNames names;
  for (const auto& [name, value] : AllMetrics(o)) {
    names.push_back(name);
    m.values.push_back(value);
  }
  m.names = InternMetricNames(names);
  return m;
}

Objectives MetricValues::ToProto() const {
  Objectives o;
  if (names == nullptr) return o;
  for (size_t i = 0; i < names->size() && i < values.size(); ++i) SetMetric(&o, (*names)[i], values[i]);
  return o;
}

double MetricValues::Get(absl::string_view name) const {
  if (names == nullptr) return kNaN;
  for (size_t i = 0; i < names->size() && i < values.size(); ++i)
    if ((*names)[i] == name) return values[i];
  return kNaN;
}

}  // namespace fecsearch
