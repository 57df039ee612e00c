// Objectives and constraints by name, with directions.
#include "search/objectives.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hashing/metrics.h"

namespace fecsearch {

std::string MetricName(Metric metric) {
  switch (metric) {
    case MEAN_NLL: return "mean_nll";
    case PERPLEXITY: return "perplexity";
    case PERPLEXITY_INCREASE_PERCENT: return "perplexity_increase_percent";
    case EFFECTIVE_BITS: return "effective_bits";
    default: return "";
  }
}

namespace {

const MetricInfo* Find(const std::vector<MetricInfo>& metrics, const std::string& name) {
  for (const MetricInfo& m : metrics)
    if (m.name == name) return &m;
  return nullptr;
}

std::string Known(const std::vector<MetricInfo>& metrics) {
  std::vector<std::string> names;
  for (const MetricInfo& m : metrics) names.push_back(m.name);
  return absl::StrJoin(names, ", ");
}

}  // namespace

absl::StatusOr<ObjectiveSet> ObjectiveSet::Create(const SearchSpec& search, const std::vector<MetricInfo>& metrics,
                                                  const std::vector<DefaultObjective>& defaults) {
  ObjectiveSet set;
  for (int i = 0; i < search.objectives_size(); ++i) {
    const Objective& o = search.objectives(i);
    const std::string field = absl::StrCat("search.objectives[", i, "]");
    const std::string name = o.has_name() ? o.name() : MetricName(o.metric());
    if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": give a name (or a metric)"));
    const MetricInfo* m = Find(metrics, name);
    if (m == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(field, o.has_name() ? ".name" : ".metric", ": '", name,
                                                     "' is not measured by this domain (it measures: ", Known(metrics),
                                                     ")"));
    }
    Entry e;
    e.metric = *m;
    e.weight = o.weight();
    // 0 (the default) has always meant "derive it".
    e.has_reference = o.hypervolume_reference() > 0;
    e.reference = o.hypervolume_reference();
    set.entries_.push_back(e);
  }
  if (set.entries_.empty()) {
    for (const DefaultObjective& d : defaults) {
      const MetricInfo* m = Find(metrics, d.name);
      if (m == nullptr) return absl::InternalError(absl::StrCat("domain default objective '", d.name, "' is not a metric"));
      set.entries_.push_back({*m, d.weight, d.has_reference, d.reference});
    }
  }
  if (set.entries_.empty()) return absl::InvalidArgumentError("search.objectives: the search needs at least one objective");
  for (int i = 0; i < search.constraints_size(); ++i) {
    const Constraint& c = search.constraints(i);
    const std::string field = absl::StrCat("search.constraints[", i, "]");
    const std::string name = c.has_name() ? c.name() : MetricName(c.metric());
    if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": give a name (or a metric)"));
    const MetricInfo* m = Find(metrics, name);
    if (m == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(field, c.has_name() ? ".name" : ".metric", ": '", name,
                                                     "' is not measured by this domain (it measures: ", Known(metrics),
                                                     ")"));
    }
    if (!c.has_max_value() && !c.has_min_value()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".max_value: a constraint needs max_value or min_value"));
    }
    set.bounds_.push_back({*m, c.has_max_value(), c.has_min_value(), c.max_value(), c.min_value()});
  }
  return set;
}

void ObjectiveSet::Score(const Objectives& o, Individual* ind) const {
  ind->objectives.clear();
  for (const Entry& e : entries_) {
    const double v = MetricValue(o, e.metric.name);
    ind->objectives.push_back(e.metric.maximize ? -v : v);
  }
  ind->violation = 0;
  for (const Bound& b : bounds_) {
    const double v = MetricValue(o, b.metric.name);
    if (b.has_max && v > b.max_value) ind->violation += (v - b.max_value) / std::max(1.0, std::fabs(b.max_value));
    if (b.has_min && v < b.min_value) ind->violation += (b.min_value - v) / std::max(1.0, std::fabs(b.min_value));
  }
}

double ObjectiveSet::Scalarize(const Individual& ind) const {
  double s = 0;
  for (size_t i = 0; i < entries_.size() && i < ind.objectives.size(); ++i) s += entries_[i].weight * ind.objectives[i];
  return s;
}

std::vector<double> ObjectiveSet::Reference(const std::vector<Individual>& seen) const {
  std::vector<double> ref;
  for (size_t i = 0; i < entries_.size() && i < 2; ++i) {
    const Entry& e = entries_[i];
    const bool max = e.metric.maximize;
    double r = 0;  // own units
    bool set = e.has_reference;
    if (set) r = e.reference;
    for (const Bound& b : bounds_) {
      if (set || b.metric.name != e.metric.name) continue;
      if (!max && b.has_max) r = 1.1 * b.max_value, set = r > 0;
      if (max && b.has_min) r = 0.9 * b.min_value, set = true;
    }
    if (!set && e.metric.default_reference != 0) r = e.metric.default_reference, set = true;
    if (!set) {
      if (!max) {
        double m = 0;
        for (const Individual& ind : seen)
          if (i < ind.objectives.size()) m = std::max(m, ind.objectives[i]);
        r = m > 0 ? 1.1 * m : 1.0;
      } else {
        bool any = false;
        double worst = 0;  // the smallest value seen, own units
        for (const Individual& ind : seen) {
          if (i >= ind.objectives.size()) continue;
          worst = any ? std::min(worst, -ind.objectives[i]) : -ind.objectives[i];
          any = true;
        }
        r = !any || worst == 0 ? -1.0 : worst - 0.1 * std::fabs(worst);
      }
    }
    ref.push_back(max ? -r : r);
  }
  return ref;
}

std::string ObjectiveSet::Axis(const MetricInfo& m) {
  const std::string label = m.label.empty() ? m.name : m.label;
  return m.unit.empty() ? label : absl::StrCat(label, " (", m.unit, ")");
}

}  // namespace fecsearch
