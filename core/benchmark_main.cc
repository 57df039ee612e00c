// Shared main() for the Google Benchmark binaries: the same process set-up as
// the product binaries (InitProcess), so benchmarks measure what users run.
#include "benchmark/benchmark.h"
#include "core/process_init.h"

int main(int argc, char** argv) {
  fecsearch::InitProcess();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
