// The gRPC worker pool against in-process workers on loopback: spreading work, a worker dying
// mid-evaluation, a worker joining through a target file, bad targets.
#include "workers/grpc_pool.h"

#include <netdb.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/model_test_util.h"
#include "gtest/gtest.h"
#include "workers/worker_server.h"

namespace fecsearch {
namespace {

std::unique_ptr<WorkerServer> Worker(const std::string& name, double seconds, int capacity = 2) {
  WorkerOptions o;
  o.listen = "127.0.0.1:0";
  o.name = name;
  o.capacity = capacity;
  o.shutdown_grace = absl::ZeroDuration();
  auto w = WorkerServer::Start(o, MakeSimulatedBackend(seconds));
  EXPECT_TRUE(w.ok()) << w.status();
  return std::move(*w);
}

Candidate C(int i) {
  Candidate c;
  c.mutable_genome()->add_layers()->mutable_keys()->set_bits(2 + i % 7);
  c.mutable_genome()->mutable_layers(0)->set_head_clusters(i);
  return c;
}

// Collects completions; each candidate must complete exactly once.
struct Collector {
  std::mutex mu;
  std::map<int64_t, int> completions;
  std::map<std::string, int> by_worker;
  std::vector<std::string> errors;
  EvaluationPool::Done For(int64_t id) {
    return [this, id](absl::StatusOr<EvaluationResult> r, const std::string& worker, int) {
      std::lock_guard<std::mutex> lock(mu);
      ++completions[id];
      if (r.ok()) {
        ++by_worker[worker];
      } else {
        errors.push_back(std::string(r.status().message()));
      }
    };
  }
  bool WaitFor(size_t n, absl::Duration timeout) {
    const absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (completions.size() >= n) return true;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }
};

TEST(GrpcPoolTest, SpreadsWorkOverWorkersUpToTheirCapacity) {
  auto a = Worker("a", 0.05), b = Worker("b", 0.05), c = Worker("c", 0.05);
  GrpcPoolOptions o;
  o.targets = {a->address(), b->address(), c->address()};
  auto pool = GrpcWorkerPool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  // Capacity appears once the workers have described themselves.
  for (int i = 0; i < 100 && (*pool)->Capacity() < 6; ++i) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ((*pool)->Capacity(), 6);
  Collector col;
  for (int i = 0; i < 30; ++i) (*pool)->Submit(i, C(i), col.For(i));
  ASSERT_TRUE(col.WaitFor(30, absl::Seconds(30)));
  (*pool)->Shutdown();
  EXPECT_TRUE(col.errors.empty()) << col.errors[0];
  for (const auto& [id, n] : col.completions) EXPECT_EQ(n, 1) << id;
  EXPECT_EQ(col.by_worker.size(), 3u) << "every worker received work";
  EXPECT_EQ(a->served() + b->served() + c->served(), 30);
}

TEST(GrpcPoolTest, AWorkerDyingMidEvaluationHasItsCandidatesDispatchedElsewhere) {
  auto a = Worker("a", 0.3), b = Worker("b", 0.3);
  GrpcPoolOptions o;
  o.targets = {a->address(), b->address()};
  auto pool = GrpcWorkerPool::Create(o);
  ASSERT_TRUE(pool.ok());
  for (int i = 0; i < 100 && (*pool)->Capacity() < 4; ++i) absl::SleepFor(absl::Milliseconds(20));
  Collector col;
  for (int i = 0; i < 12; ++i) (*pool)->Submit(i, C(i), col.For(i));
  absl::SleepFor(absl::Milliseconds(150));  // both workers busy
  std::thread killer([&] { b->Shutdown(); });  // no grace: its calls are cancelled
  ASSERT_TRUE(col.WaitFor(12, absl::Seconds(60))) << "every candidate completes";
  killer.join();
  (*pool)->Shutdown();
  EXPECT_TRUE(col.errors.empty()) << (col.errors.empty() ? "" : col.errors[0]);
  for (const auto& [id, n] : col.completions) EXPECT_EQ(n, 1) << "candidate " << id << " completed " << n << " times";
  EXPECT_GT(col.by_worker["a"], 6) << "the survivor took over";
}

TEST(GrpcPoolTest, AWorkerAddedToTheTargetFileReceivesWork) {
  auto a = Worker("a", 0.1, 1);
  const std::string file = TestTempDir("pool_targets") + "/workers.txt";
  std::ofstream(file) << "# workers, one per line\n" << a->address() << "\n";
  GrpcPoolOptions o;
  o.targets = {"file:" + file};
  o.resolve_interval = absl::Milliseconds(100);
  auto pool = GrpcWorkerPool::Create(o);
  ASSERT_TRUE(pool.ok()) << pool.status();
  Collector col;
  for (int i = 0; i < 5; ++i) (*pool)->Submit(i, C(i), col.For(i));
  ASSERT_TRUE(col.WaitFor(5, absl::Seconds(30)));
  auto b = Worker("b", 0.1, 1);
  std::ofstream(file) << a->address() << "\n" << b->address() << "\n";
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ((*pool)->Backends().size(), 2u);
  for (int i = 5; i < 25; ++i) (*pool)->Submit(i, C(i), col.For(i));
  ASSERT_TRUE(col.WaitFor(25, absl::Seconds(30)));
  (*pool)->Shutdown();
  EXPECT_GT(col.by_worker["b"], 0) << "the new worker received work";
}

TEST(GrpcPoolTest, DnsTargetsResolveToOneBackendPerAddress) {
  auto a = Worker("a", 0);
  // A numeric host resolves everywhere; "localhost" needs /etc/hosts (absent in a bare
  // chroot), so it is checked where the system can resolve it.
  std::vector<std::string> names = {"127.0.0.1"};
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo("localhost", nullptr, &hints, &found) == 0) {
    freeaddrinfo(found);
    names.push_back("localhost");
  }
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const std::string target = absl::StrCat("dns:///", name, ":", a->port());
    auto addresses = ResolveTargets({target});
    ASSERT_TRUE(addresses.ok()) << addresses.status();
    ASSERT_FALSE(addresses->empty());
    for (const std::string& address : *addresses) {
      EXPECT_NE(address.find(absl::StrCat(":", a->port())), std::string::npos) << address;
    }
    GrpcPoolOptions o;
    o.targets = {target};
    auto pool = GrpcWorkerPool::Create(o);
    ASSERT_TRUE(pool.ok());
    Collector col;
    (*pool)->Submit(1, C(1), col.For(1));
    ASSERT_TRUE(col.WaitFor(1, absl::Seconds(20)));
    EXPECT_TRUE(col.errors.empty());
    (*pool)->Shutdown();
  }
}

TEST(GrpcPoolTest, BadTargetsAreNamed) {
  auto r = ResolveTargets({"no-port-here"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no-port-here"), std::string::npos);
  r = ResolveTargets({"file:/no/such/file"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/no/such/file"), std::string::npos);
  r = ResolveTargets({"dns:///no-such-host.invalid:1"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no-such-host.invalid"), std::string::npos);
}

TEST(GrpcPoolTest, WrongTokenFailsTheCandidateWithTheReason) {
  WorkerOptions wo;
  wo.listen = "127.0.0.1:0";
  wo.auth_token = "right";
  auto w = WorkerServer::Start(wo, MakeSimulatedBackend(0));
  ASSERT_TRUE(w.ok());
  GrpcPoolOptions o;
  o.targets = {(*w)->address()};
  o.auth_token = "wrong";
  o.max_attempts = 2;
  auto pool = GrpcWorkerPool::Create(o);
  ASSERT_TRUE(pool.ok());
  Collector col;
  (*pool)->Submit(1, C(1), col.For(1));
  ASSERT_TRUE(col.WaitFor(1, absl::Seconds(20))) << "the candidate fails instead of waiting for ever";
  ASSERT_EQ(col.errors.size(), 1u);
  EXPECT_NE(col.errors[0].find("refused the credentials"), std::string::npos) << col.errors[0];
  EXPECT_EQ((*w)->served(), 0);
}

TEST(GrpcPoolTest, UnreachableWorkersAreReportedWhileWaitingAndFailAfterTheDeadline) {
  // Nothing listens on port 1: the wait is reported with the worker's error, then the
  // queued candidate fails with the reason.
  GrpcPoolOptions o;
  o.targets = {"127.0.0.1:1"};
  o.deadline = absl::Seconds(2);
  auto pool = GrpcWorkerPool::Create(o);
  ASSERT_TRUE(pool.ok());
  Collector col;
  testing::internal::CaptureStderr();
  (*pool)->Submit(1, C(1), col.For(1));
  const bool completed = col.WaitFor(1, absl::Seconds(20));
  (*pool)->Shutdown();
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(completed) << "the candidate fails instead of waiting for ever";
  ASSERT_EQ(col.errors.size(), 1u);
  EXPECT_NE(col.errors[0].find("no worker was usable"), std::string::npos) << col.errors[0];
  EXPECT_NE(log.find("no worker usable for"), std::string::npos) << log;
  EXPECT_NE(log.find("127.0.0.1:1 (UNAVAILABLE"), std::string::npos) << log;
}

}  // namespace
}  // namespace fecsearch
