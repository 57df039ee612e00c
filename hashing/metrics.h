// Measured quantities by name: how any domain's objectives travel through the cache, the
// database and the search (Objectives.metrics), and the interned name lists that keep cache
// entries small. The four KV-cache quantities of results written before named metrics
// existed are read under their field names.
#ifndef FECSEARCH_HASHING_METRICS_H_
#define FECSEARCH_HASHING_METRICS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "protos/evaluation.pb.h"

namespace fecsearch {

// The value of `name` in `o`: Objectives.metrics, else (results written before it) the
// field of that name among mean_nll, effective_bits, perplexity, perplexity_increase_percent;
// NaN if absent.
double MetricValue(const Objectives& o, absl::string_view name);
// Sets metrics[name] (and the field of the same name, for readers of older results).
void SetMetric(Objectives* o, const std::string& name, double value);
// Every metric of `o` sorted by name (the fields of older results included).
std::vector<std::pair<std::string, double>> AllMetrics(const Objectives& o);

// An interned, immutable list of metric names: equal lists share one pointer, so that cache
// entries carry a pointer and their values. Thread-safe; lists live for the process.
using MetricNames = std::vector<std::string>;
const MetricNames* InternMetricNames(const MetricNames& names);
// The same from a comma-separated list ("effective_bits,mean_nll").
const MetricNames* InternMetricNames(absl::string_view comma_separated);
std::string JoinMetricNames(const MetricNames& names);

// Metric values as a cache entry holds them: sorted names (interned) and values.
struct MetricValues {
  const MetricNames* names = nullptr;
  absl::InlinedVector<double, 6> values;

  static MetricValues From(const Objectives& o);
  Objectives ToProto() const;
  // The value of `name`, NaN if absent.
  double Get(absl::string_view name) const;
};

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_METRICS_H_
