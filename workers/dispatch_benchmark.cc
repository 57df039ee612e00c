// Dispatch benchmarks (docs/BENCHMARKS.md):
//  - round trip of one evaluation through the gRPC worker pool on loopback against a zero-cost
//    simulated worker (target <= 0.5 ms), beside a bare synchronous gRPC call in the same run;
//  - scaling: a search over 1, 4, 16 and 64 worker *processes* whose simulated evaluations
//    sleep 1 s or 100 ms, on a synthetic domain with negligible hashing cost: achieved
//    throughput as a share of the ideal (target >= 95 % at 64 workers for 1 s).
//   bazel run -c opt //workers:dispatch_benchmark
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "core/model_config.h"
#include "core/paths.h"
#include "core/text_proto.h"
#include "grpcpp/grpcpp.h"
#include "hashing/candidate_hasher.h"
#include "hashing/structural_hash.h"
#include "protos/worker.grpc.pb.h"
#include "search/controller.h"
#include "search/domains/genome_space.h"
#include "search/domains/kv_domain.h"
#include "search/experiment.h"
#include "search/simple_domain.h"
#include "workers/grpc_pool.h"
#include "workers/worker_server.h"

extern char** environ;

namespace fecsearch {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

Candidate Genome(int i) {
  Candidate c;
  c.mutable_genome()->add_layers()->mutable_keys()->set_bits(2 + i % 7);
  c.mutable_genome()->mutable_layers(0)->mutable_values()->set_recent_window(i);
  return c;
}

double grpc_round_trip_us = 0;

void BM_BareGrpcRoundTrip(benchmark::State& state) {
  WorkerOptions o;
  o.listen = "127.0.0.1:0";
  auto w = WorkerServer::Start(o, MakeSimulatedBackend(0));
  auto stub = rpc::Evaluator::NewStub(grpc::CreateChannel((*w)->address(), grpc::InsecureChannelCredentials()));
  int64_t i = 0;
  const double t0 = Now();
  for (auto _ : state) {
    grpc::ClientContext ctx;
    rpc::EvaluateRequest req;
    req.set_candidate_id(++i);
    *req.mutable_candidate() = Genome(static_cast<int>(i));
    rpc::EvaluateResponse resp;
    if (!stub->Evaluate(&ctx, req, &resp).ok()) state.SkipWithError("call failed");
  }
  grpc_round_trip_us = 1e6 * (Now() - t0) / state.iterations();
  state.counters["round_trip_us"] = grpc_round_trip_us;
}
BENCHMARK(BM_BareGrpcRoundTrip)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(2);

void BM_PoolRoundTrip(benchmark::State& state) {
  WorkerOptions o;
  o.listen = "127.0.0.1:0";
  o.capacity = 1;
  auto w = WorkerServer::Start(o, MakeSimulatedBackend(0));
  GrpcPoolOptions po;
  po.targets = {(*w)->address()};
  auto pool = GrpcWorkerPool::Create(po);
  while ((*pool)->Backends().empty() || (*pool)->Describe().rfind("1 of", 0) != 0) absl::SleepFor(absl::Milliseconds(10));
  int64_t i = 0;
  std::vector<double> samples;
  for (auto _ : state) {
    std::promise<void> done;
    const double t0 = Now();
    ++i;
    (*pool)->Submit(i, Genome(static_cast<int>(i)), [&](absl::StatusOr<EvaluationResult>, const std::string&, int) {
      done.set_value();
    });
    done.get_future().wait();
    samples.push_back(1e6 * (Now() - t0));
  }
  (*pool)->Shutdown();
  std::sort(samples.begin(), samples.end());
  state.counters["p50_us"] = samples[samples.size() / 2];
  state.counters["p99_us"] = samples[samples.size() * 99 / 100];
  double mean = 0;
  for (double s : samples) mean += s;
  state.counters["mean_us"] = mean / samples.size();
  if (grpc_round_trip_us > 0) state.counters["vs_bare_grpc"] = mean / samples.size() / grpc_round_trip_us;
}
BENCHMARK(BM_PoolRoundTrip)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(2);

// N simulated worker processes.
class WorkerProcesses {
 public:
  WorkerProcesses(int n, double seconds) {
    const std::string binary = ResolveInputPath("workers/worker");
    char dir[] = "/tmp/dispatch_benchmarkXXXXXX";
    dir_ = mkdtemp(dir);
    for (int i = 0; i < n; ++i) {
      const std::string port_file = absl::StrCat(dir_, "/w", i);
      std::vector<std::string> args = {binary, "--mode=simulated", absl::StrCat("--simulate_seconds=", seconds),
                                       "--listen=127.0.0.1:0", "--capacity=1", absl::StrCat("--port_file=", port_file),
                                       absl::StrCat("--name=sim", i)};
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      posix_spawn_file_actions_t fa;
      posix_spawn_file_actions_init(&fa);
      posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
      pid_t pid;
      if (posix_spawn(&pid, binary.c_str(), &fa, nullptr, argv.data(), environ) == 0) pids_.push_back(pid);
      posix_spawn_file_actions_destroy(&fa);
    }
    for (int i = 0; i < n; ++i) {
      const std::string port_file = absl::StrCat(dir_, "/w", i);
      std::string port;
      for (int t = 0; t < 400 && !ReadFile(port_file, &port).ok(); ++t) absl::SleepFor(absl::Milliseconds(25));
      targets_.push_back(absl::StrCat("127.0.0.1:", std::atoi(port.c_str())));
    }
  }
  ~WorkerProcesses() {
    for (pid_t p : pids_) kill(p, SIGKILL);
    for (pid_t p : pids_) waitpid(p, nullptr, 0);
  }
  const std::vector<std::string>& targets() const { return targets_; }

 private:
  std::string dir_;
  std::vector<pid_t> pids_;
  std::vector<std::string> targets_;
};

void BM_Scaling(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const double seconds = state.range(1) / 1000.0;
  const int rounds = seconds >= 1 ? 10 : 30;
  auto model = LoadModelConfig(ResolveInputPath("data/tinylm-bytes-5m/config.json"));
  if (!model.ok()) return state.SkipWithError("model config not found");
  ExperimentSpec spec = LoadExperiment("")->spec;
  spec.mutable_search()->clear_fidelity();  // remote workers evaluate at full fidelity
  spec.mutable_search()->clear_screen();
  spec.mutable_search()->set_algorithm(SearchSpec::RANDOM_SEARCH);
  spec.mutable_search()->set_max_evaluations(static_cast<int64_t>(n) * rounds);
  auto space = GenomeSpace::Create(spec.search_space(), *model);
  // The workers evaluate; the domain here only proposes and names the metrics.
  SimpleDomain domain("kv-genome", &*space, KvMetrics(),
                      {{"effective_bits", 1, false, 0}, {"perplexity_increase_percent", 1, false, 0}},
                      [](const Candidate&) -> absl::StatusOr<EvaluationResult> {
                        return absl::InternalError("evaluated by the workers");
                      });
  auto objectives = ObjectiveSet::Create(spec.search(), domain.Metrics(), domain.DefaultObjectives());
  if (!objectives.ok()) return state.SkipWithError(std::string(objectives.status().message()).c_str());
  for (auto _ : state) {
    WorkerProcesses workers(n, seconds);
    GrpcPoolOptions po;
    po.targets = workers.targets();
    po.deadline = absl::Seconds(60);
    auto pool = GrpcWorkerPool::Create(po);
    if (!pool.ok()) return state.SkipWithError(std::string(pool.status().message()).c_str());
    for (int t = 0; t < 400 && (*pool)->Capacity() < n; ++t) absl::SleepFor(absl::Milliseconds(25));
    if ((*pool)->Capacity() < n) return state.SkipWithError("workers did not come up");
    const std::string db_path = absl::StrCat("/tmp/dispatch_benchmark_", getpid(), "_", n, ".db");
    for (const char* s : {"", "-wal", "-shm"}) unlink((db_path + s).c_str());
    auto db = ExperimentDb::Open(db_path, false);
    ExperimentRecord rec;
    rec.name = "scaling";
    ControllerOptions o;
    o.spec = spec;
    o.experiment_id = *(*db)->StartExperiment(rec);
    o.use_cache = false;
    StructuralHasher structural(*model, 1024);
    Keyer keyer = [&](const Candidate& c) -> absl::StatusOr<CandidateHashes> {
      auto h = structural.Hash(c);
      if (!h.ok()) return h.status();
      CandidateHashes out;
      out.structural = *h;
      out.exact = ExactHash("scaling", c);
      out.key = out.exact;
      return out;
    };
    Controller controller(o, domain, *objectives, keyer, nullptr, pool->get(), db->get(), nullptr);
    const double t0 = Now();
    auto result = controller.Run();
    const double wall = Now() - t0;
    state.SetIterationTime(wall);
    if (!result.ok()) return state.SkipWithError(std::string(result.status().message()).c_str());
    const double throughput = result->progress.evaluations / wall;
    const double ideal = n / seconds;
    state.counters["workers"] = n;
    state.counters["evaluations"] = result->progress.evaluations;
    state.counters["evals_per_s"] = throughput;
    state.counters["ideal_per_s"] = ideal;
    state.counters["efficiency"] = throughput / ideal;
    (*pool)->Shutdown();
    for (const char* s : {"", "-wal", "-shm"}) unlink((db_path + s).c_str());
  }
}
BENCHMARK(BM_Scaling)
    ->ArgsProduct({{1, 4, 16, 64}, {1000, 100}})
    ->Unit(benchmark::kSecond)
    ->UseManualTime()
    ->Iterations(1);

}  // namespace
}  // namespace fecsearch
