// Chooses where a search's evaluations run: in-process threads, or the gRPC worker pool
// when the spec (or --workers) names worker targets.
#ifndef FECSEARCH_SEARCH_WORKER_POOL_FACTORY_H_
#define FECSEARCH_SEARCH_WORKER_POOL_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "search/domain.h"
#include "protos/experiment.pb.h"
#include "search/evaluation_pool.h"

namespace fecsearch {

// In-process pools evaluate with `domain` (which must outlive the pool).
absl::StatusOr<std::unique_ptr<EvaluationPool>> MakeEvaluationPool(const ExperimentSpec& spec, const Domain& domain,
                                                                   int threads);

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_WORKER_POOL_FACTORY_H_
