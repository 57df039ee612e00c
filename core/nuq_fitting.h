// Weighted 1-D k-means for non-uniform (NUQ) codebooks, as KVQuant fits them, with a
// sensitivity weight per sample instead of KVQuant's Fisher information (we have no
// backward pass; docs/EVALUATOR.md says which proxy is used).
#ifndef FECSEARCH_CORE_NUQ_FITTING_H_
#define FECSEARCH_CORE_NUQ_FITTING_H_

#include <vector>

namespace fecsearch {

// Returns 2^bits centroids, sorted, minimising sum_i w_i (x_i - c(x_i))^2. Deterministic:
// initialised at weighted quantiles, then Lloyd iterations on the sorted samples (exact
// for 1-D, where clusters are intervals). Empty clusters are re-seeded by splitting the
// widest one. `values` and `weights` have the same length; weights must be >= 0.
std::vector<double> FitWeightedKMeans1D(std::vector<float> values, std::vector<float> weights,
                                        int clusters, int iterations = 100);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_NUQ_FITTING_H_
