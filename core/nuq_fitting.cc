// Weighted 1-D k-means on sorted samples with prefix sums.
#include "core/nuq_fitting.h"

#include <algorithm>
#include <cmath>

namespace fecsearch {

std::vector<double> FitWeightedKMeans1D(std::vector<float> values, std::vector<float> weights,
                                        int clusters, int iterations) {
  const size_t n = values.size();
  if (n == 0) return std::vector<double>(clusters, 0.0);
  // Sort (value, weight) pairs by value. Sorting the pairs themselves rather than an index
  // array keeps the comparisons in cache; std::sort makes the same comparisons either way, so
  // the order (ties included) is the one an index sort gives.
  struct Sample {
    float v, w;
  };
  std::vector<Sample> sorted(n);
  for (size_t i = 0; i < n; ++i) sorted[i] = {values[i], weights[i]};
  std::sort(sorted.begin(), sorted.end(),
            [](const Sample& a, const Sample& b) { return a.v < b.v; });
  std::vector<double> x(n), w(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = sorted[i].v;
    w[i] = std::max(0.0f, sorted[i].w) + 1e-12;  // every sample counts a little
  }
  // Prefix sums of w and w*x give each interval's weighted mean in O(1).
  std::vector<double> sw(n + 1, 0), swx(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    sw[i + 1] = sw[i] + w[i];
    swx[i + 1] = swx[i] + w[i] * x[i];
  }
  auto mean = [&](size_t a, size_t b) { return (swx[b] - swx[a]) / (sw[b] - sw[a]); };
  // Initial centroids at weighted quantiles.
  std::vector<double> c(clusters);
  for (int k = 0; k < clusters; ++k) {
    const double target = sw[n] * (k + 0.5) / clusters;
    size_t i = std::lower_bound(sw.begin() + 1, sw.end(), target) - (sw.begin() + 1);
    c[k] = x[std::min(i, n - 1)];
  }
  std::vector<size_t> bounds(clusters + 1);
  for (int it = 0; it < iterations; ++it) {
    std::sort(c.begin(), c.end());
    // Cluster k holds the samples in [bounds[k], bounds[k+1]), split at centroid midpoints.
    bounds[0] = 0;
    bounds[clusters] = n;
    for (int k = 1; k < clusters; ++k) {
      const double mid = 0.5 * (c[k - 1] + c[k]);
      bounds[k] = std::upper_bound(x.begin(), x.end(), mid) - x.begin();
      bounds[k] = std::max(bounds[k], bounds[k - 1]);
    }
    bool changed = false;
    for (int k = 0; k < clusters; ++k) {
      double next;
      if (bounds[k + 1] > bounds[k]) {
        next = mean(bounds[k], bounds[k + 1]);
      } else {
        // Empty cluster: move it into the middle of the widest non-empty cluster.
        int widest = 0;
        double width = -1;
        for (int j = 0; j < clusters; ++j) {
          if (bounds[j + 1] > bounds[j]) {
            const double wd = x[bounds[j + 1] - 1] - x[bounds[j]];
            if (wd > width) {
              width = wd;
              widest = j;
            }
          }
        }
        const size_t a = bounds[widest], b = bounds[widest + 1];
        next = x[a + (b - a) / 4];
      }
      if (std::fabs(next - c[k]) > 1e-12) changed = true;
      c[k] = next;
    }
    if (!changed) break;
  }
  std::sort(c.begin(), c.end());
  return c;
}

}  // namespace fecsearch
