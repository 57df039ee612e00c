// What a search optimises, for any domain: the domain names what it measures (MetricInfo);
// the spec picks objectives and constraints among those by name; ObjectiveSet turns a result
// into the minimised vector the algorithms rank, its constraint violation, its scalarised
// fitness and the hypervolume reference. Maximised quantities enter negated.
#ifndef FECSEARCH_SEARCH_OBJECTIVES_H_
#define FECSEARCH_SEARCH_OBJECTIVES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "protos/evaluation.pb.h"
#include "protos/experiment.pb.h"
#include "search/algorithms.h"

namespace fecsearch {

// One quantity a domain measures.
struct MetricInfo {
  std::string name;   // the key in Objectives.metrics
  std::string label;  // for axes and tables ("effective bits per cached element")
  std::string unit;   // "bits", "%", "nats"; "" for unitless
  bool maximize = false;
  // Hypervolume reference when neither the spec nor a constraint gives one (own units; 0 =
  // derive from the first results).
  double default_reference = 0;
};

// An objective the domain proposes when the spec lists none.
struct DefaultObjective {
  std::string name;
  double weight = 1;
  bool has_reference = false;
  double reference = 0;  // own units
};

// The name of a KV-cache Metric enum value ("effective_bits", ...).
std::string MetricName(Metric metric);

// Immutable; thread-compatible.
class ObjectiveSet {
 public:
  struct Entry {
    MetricInfo metric;
    double weight = 1;
    bool has_reference = false;
    double reference = 0;  // own units
  };
  struct Bound {
    MetricInfo metric;
    bool has_max = false, has_min = false;
    double max_value = 0, min_value = 0;
  };

  // `search.objectives` (or, if empty, `defaults`) and `search.constraints`, each checked
  // against the domain's `metrics`; errors name the field ("search.objectives[1].name: ...").
  static absl::StatusOr<ObjectiveSet> Create(const SearchSpec& search, const std::vector<MetricInfo>& metrics,
                                             const std::vector<DefaultObjective>& defaults);

  // The minimised objective vector (a maximised objective negated) and the summed relative
  // constraint violation of `o`.
  void Score(const Objectives& o, Individual* ind) const;
  // Weighted sum of the minimised objectives (single-objective fitness, lower is better).
  double Scalarize(const Individual& ind) const;
  // The hypervolume reference of the first two objectives, minimised: each objective's own
  // reference, else 1.1 x a max constraint on it (minimised objectives), else the metric's
  // default, else a margin beyond the worst of `seen`.
  std::vector<double> Reference(const std::vector<Individual>& seen) const;
  // An objective value back in its own units.
  double Display(size_t i, double minimised) const { return entries_[i].metric.maximize ? -minimised : minimised; }

  const std::vector<Entry>& entries() const { return entries_; }
  const std::vector<Bound>& bounds() const { return bounds_; }
  // "effective bits per cached element (bits)".
  static std::string Axis(const MetricInfo& m);

 private:
  std::vector<Entry> entries_;
  std::vector<Bound> bounds_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_OBJECTIVES_H_
