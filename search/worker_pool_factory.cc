// Evaluation pool selection.
#include "search/worker_pool_factory.h"

namespace fecsearch {

absl::StatusOr<std::unique_ptr<EvaluationPool>> MakeEvaluationPool(const ExperimentSpec& spec,
                                                                   std::shared_ptr<EvaluationContext> context,
                                                                   int threads) {
  if (spec.has_workers()) {
    return absl::UnimplementedError("workers.targets: remote workers are not available in this build yet");
  }
  auto evaluator = std::make_shared<const Evaluator>(std::move(context));
  return std::unique_ptr<EvaluationPool>(new LocalPool(evaluator, threads));
}

}  // namespace fecsearch
