// Placeholder until the controller lands: validates the experiment and prints usage.
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "search/experiment.h"

ABSL_FLAG(std::string, experiment, "", "Experiment spec (default: the embedded default).");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto e = fecsearch::LoadExperiment(absl::GetFlag(FLAGS_experiment));
  if (!e.ok()) {
    std::fprintf(stderr, "search: %s\n", std::string(e.status().message()).c_str());
    return 2;
  }
  absl::Status s = fecsearch::ValidateExperiment(*e, nullptr);
  if (!s.ok()) {
    std::fprintf(stderr, "search: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  std::printf("usage: bazel run //search -- [--experiment=FILE]\nexperiment '%s' is valid; the controller is not built yet.\n",
              e->spec.name().c_str());
  return 0;
}
