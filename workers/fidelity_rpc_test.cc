// Worker protocol 2 (multi-fidelity search over gRPC) on loopback with the shipped model:
// window subsets scored by a worker equal the in-process evaluation of those windows, the pool
// sends a rung only the windows a candidate lacks, bad windows and wrong answers are refused
// by name, retries are idempotent by (candidate id, rung), and workers that score whole
// evaluations only get no subsets.
#include <future>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/evaluator.h"
#include "core/model_test_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "protos/worker.grpc.pb.h"
#include "search/domains/kv_domain.h"
#include "search/experiment.h"
#include "workers/grpc_pool.h"
#include "workers/worker_server.h"

namespace fecsearch {
namespace {

std::unique_ptr<WorkerServer> Start(const std::string& name, std::unique_ptr<EvaluationBackend> backend, int capacity = 2) {
  WorkerOptions o;
  o.listen = "127.0.0.1:0";
  o.name = name;
  o.capacity = capacity;
  o.shutdown_grace = absl::ZeroDuration();
  auto w = WorkerServer::Start(o, std::move(backend));
  EXPECT_TRUE(w.ok()) << w.status();
  return std::move(*w);
}

std::unique_ptr<rpc::Evaluator::Stub> Stub(const WorkerServer& w) {
  return rpc::Evaluator::NewStub(grpc::CreateChannel(w.address(), grpc::InsecureChannelCredentials()));
}

grpc::Status Call(rpc::Evaluator::Stub& stub, const rpc::EvaluateRequest& req, rpc::EvaluateResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return stub.Evaluate(&ctx, req, resp);
}

Candidate Genome(int key_bits, int value_bits) {
  Candidate c;
  auto* layer = c.mutable_genome()->add_layers();
  layer->mutable_keys()->set_format(INT);
  layer->mutable_keys()->set_bits(key_bits);
  layer->mutable_keys()->set_axis(PER_CHANNEL);
  layer->mutable_keys()->set_group_size(32);
  layer->mutable_values()->set_format(INT);
  layer->mutable_values()->set_bits(value_bits);
  return c;
}

std::vector<int> Windows(const EvaluationResult& r) {
  std::vector<int> out;
  for (const WindowResult& w : r.windows()) out.push_back(w.index());
  return out;
}

// Bit for bit: every objective, the bytes and the tokens scored.
void ExpectSame(const EvaluationResult& a, const EvaluationResult& b, const std::string& what) {
  ASSERT_EQ(a.status().code(), 0) << what << ": " << a.status().message();
  ASSERT_EQ(b.status().code(), 0) << what << ": " << b.status().message();
  EXPECT_EQ(Windows(a), Windows(b)) << what;
  ASSERT_EQ(a.objectives().metrics().size(), b.objectives().metrics().size()) << what;
  for (const auto& [name, value] : a.objectives().metrics()) {
    EXPECT_EQ(b.objectives().metrics().at(name), value) << what << ": " << name;
  }
  EXPECT_EQ(a.cache_bytes(), b.cache_bytes()) << what;
  EXPECT_EQ(a.tokens_scored(), b.tokens_scored()) << what;
}

// The shipped model's default context (evaluation windows 0..3) with a ladder of rungs
// [1] and [1, 3] below the full evaluation.
struct Ladder {
  std::shared_ptr<EvaluationContext> context;
  std::unique_ptr<KvDomain> domain;
};

Ladder MakeLadder() {
  Ladder l;
  auto e = ParseExperiment(
      "search_space { layer_groups: 1 keys { formats { format: INT bits: 3 } } }\n"
      "search { fidelity { eta: 3 rungs { windows: [1] } rungs { windows: [1, 3] } } }\n"
      "fec { dedup: EXACT }\nevaluation { threads: 1 }",
      "spec");
  EXPECT_TRUE(e.ok()) << e.status();
  auto ctx = EvaluationContext::Create(e->spec.evaluation());
  EXPECT_TRUE(ctx.ok()) << ctx.status();
  l.context = *ctx;
  auto d = KvDomain::Create(e->spec, e->spec.fec(), l.context);
  EXPECT_TRUE(d.ok()) << d.status();
  l.domain = std::move(*d);
  return l;
}

TEST(WorkerProtocolTest, AWorkerScoresTheWindowSubsetAskedBitForBit) {
  Ladder l = MakeLadder();
  auto w = Start("m", MakeModelBackend(l.context));
  auto stub = Stub(*w);
  grpc::ClientContext dctx;
  rpc::DescribeResponse d;
  ASSERT_TRUE(stub->Describe(&dctx, rpc::DescribeRequest(), &d).ok());
  EXPECT_EQ(d.protocol_version(), 2);
  EXPECT_EQ(d.evaluation_windows(), 4);

  const Candidate c = Genome(3, 2);
  Evaluator local(l.context);
  rpc::EvaluateRequest req;
  req.set_candidate_id(7);
  *req.mutable_candidate() = c;
  req.set_rung(1);
  req.add_windows(1);
  req.add_windows(3);
  rpc::EvaluateResponse resp;
  ASSERT_TRUE(Call(*stub, req, &resp).ok());
  const std::vector<int> subset = {1, 3};
  ExpectSame(local.Evaluate(c, &subset), resp.result(), "windows 1 and 3");
  EXPECT_EQ(Windows(resp.result()), subset);

  // A protocol-1 request (no windows, no rung) is the whole evaluation, as before.
  rpc::EvaluateRequest whole;
  whole.set_candidate_id(8);
  *whole.mutable_candidate() = c;
  ASSERT_TRUE(Call(*stub, whole, &resp).ok());
  ExpectSame(local.Evaluate(c), resp.result(), "the whole evaluation");
  EXPECT_EQ(w->served(), 2);

  // Bad subsets are refused by name before the evaluator.
  rpc::EvaluateRequest out_of_range = req;
  out_of_range.set_windows(1, 4);
  grpc::Status s = Call(*stub, out_of_range, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("windows[1]: 4 is outside this worker's evaluation windows 0..3"), std::string::npos)
      << s.error_message();
  rpc::EvaluateRequest unordered = req;
  unordered.set_windows(0, 3);
  unordered.set_windows(1, 1);
  s = Call(*stub, unordered, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("strictly increasing"), std::string::npos) << s.error_message();
  rpc::EvaluateRequest negative = req;
  negative.set_windows(0, -1);
  EXPECT_EQ(Call(*stub, negative, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(w->served(), 2) << "refused before the evaluator";

  // A worker that scores whole evaluations only says so.
  auto sim = Start("s", MakeSimulatedBackend(0));
  auto sim_stub = Stub(*sim);
  grpc::ClientContext sctx;
  ASSERT_TRUE(sim_stub->Describe(&sctx, rpc::DescribeRequest(), &d).ok());
  EXPECT_EQ(d.evaluation_windows(), 0);
  s = Call(*sim_stub, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("scores whole evaluations only"), std::string::npos) << s.error_message();
}

// Scores window subsets slowly (a result per window asked, objectives from the windows), so
// that calls overlap; or, `wrong`, answers window 0 whatever was asked (a broken peer).
class SlowWindowBackend : public EvaluationBackend {
 public:
  SlowWindowBackend(double seconds, bool wrong) : seconds_(seconds), wrong_(wrong) {}
  absl::StatusOr<EvaluateResponse> Evaluate(const EvaluateRequest& request) override {
    absl::SleepFor(absl::Seconds(seconds_));
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++calls_;
    }
    EvaluateResponse response;
    response.set_candidate_id(request.candidate_id());
    EvaluationResult* r = response.mutable_result();
    r->mutable_status()->set_code(0);
    double sum = 0;
    if (wrong_) {
      r->add_windows()->set_index(0);
    } else {
      for (int w : request.windows()) {
        r->add_windows()->set_index(w);
        sum += w;
      }
    }
    r->mutable_objectives()->set_mean_nll(sum);
    return response;
  }
  int WindowCount() const override { return 4; }
  std::string mode() const override { return wrong_ ? "test-wrong" : "test-slow"; }
  std::string context_fingerprint() const override { return ""; }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  double seconds_;
  bool wrong_;
  std::mutex mu_;
  int calls_ = 0;
};

TEST(WorkerProtocolTest, RetriesAreIdempotentByCandidateIdAndRung) {
  auto backend = std::make_unique<SlowWindowBackend>(0.6, false);
  SlowWindowBackend* raw = backend.get();
  auto w = Start("slow", std::move(backend), 3);
  auto stub = Stub(*w);
  rpc::EvaluateRequest rung0;
  rung0.set_candidate_id(10);
  *rung0.mutable_candidate() = Genome(3, 2);
  rung0.set_rung(0);
  rung0.add_windows(1);
  rpc::EvaluateRequest rung1 = rung0;
  rung1.set_rung(1);
  rung1.clear_windows();
  rung1.add_windows(3);
  rpc::EvaluateResponse a, b, c;
  auto first = std::async(std::launch::async, [&] { return Call(*stub, rung0, &a); });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto retry = std::async(std::launch::async, [&] { return Call(*stub, rung0, &b); });
  auto other_rung = std::async(std::launch::async, [&] { return Call(*stub, rung1, &c); });
  ASSERT_TRUE(first.get().ok());
  ASSERT_TRUE(retry.get().ok());
  ASSERT_TRUE(other_rung.get().ok());
  EXPECT_EQ(raw->calls(), 2) << "the retry of (10, rung 0) joins the running call; (10, rung 1) is its own";
  EXPECT_EQ(Windows(a.result()), std::vector<int>{1});
  EXPECT_EQ(Windows(b.result()), std::vector<int>{1});
  EXPECT_EQ(Windows(c.result()), std::vector<int>{3});
}

// Waits for one completion of a pool call.
struct Outcome {
  std::promise<std::pair<absl::StatusOr<EvaluationResult>, std::string>> promise;
  EvaluationPool::Done Done() {
    return [this](absl::StatusOr<EvaluationResult> r, const std::string& worker, int) {
      promise.set_value({std::move(r), worker});
    };
  }
  std::pair<absl::StatusOr<EvaluationResult>, std::string> Get() {
    auto f = promise.get_future();
    EXPECT_EQ(f.wait_for(std::chrono::seconds(120)), std::future_status::ready);
    return f.get();
  }
};

std::unique_ptr<GrpcWorkerPool> Pool(const std::vector<std::string>& targets, const Domain* domain,
                                     absl::Duration deadline = absl::Seconds(60)) {
  GrpcPoolOptions o;
  o.targets = targets;
  o.deadline = deadline;
  o.fidelity_domain = domain;
  auto pool = GrpcWorkerPool::Create(o);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return std::move(*pool);
}

TEST(WorkerProtocolTest, ThePoolSendsEachRungOnlyTheWindowsACandidateLacks) {
  Ladder l = MakeLadder();
  const KvDomain& d = *l.domain;
  auto model = Start("model", MakeModelBackend(l.context), 1);
  // A whole-evaluation worker beside it, with more free slots: it must never get a subset.
  auto sim = Start("sim", MakeSimulatedBackend(0), 4);
  auto pool = Pool({model->address(), sim->address()}, &d);
  ASSERT_TRUE(pool->SupportsFidelities());
  const Candidate c = Genome(3, 2);

  Outcome at0;
  pool->SubmitAt(1, c, 0, nullptr, at0.Done());
  auto [r0, w0] = at0.Get();
  ASSERT_TRUE(r0.ok()) << r0.status();
  EXPECT_EQ(w0, "model");
  ExpectSame(*d.EvaluateAt(c, 0), *r0, "rung 0 over the worker");
  const auto lower0 = std::make_shared<const EvaluationResult>(*r0);

  Outcome at1;
  pool->SubmitAt(1, c, 1, lower0, at1.Done());
  auto [r1, w1] = at1.Get();
  ASSERT_TRUE(r1.ok()) << r1.status();
  ExpectSame(*d.EvaluateAt(c, 1), *r1, "rung 1 promoted over the worker");
  const auto lower1 = std::make_shared<const EvaluationResult>(*r1);

  Outcome at2;
  pool->SubmitAt(1, c, 2, lower1, at2.Done());
  auto [r2, w2] = at2.Get();
  ASSERT_TRUE(r2.ok()) << r2.status();
  ExpectSame(*d.Evaluate(c), *r2, "the full evaluation promoted over the worker");
  // The worker scored window 1, then 3, then 0 and 2: 4 windows over three calls, each once.
  EXPECT_EQ(model->served(), 3);
  EXPECT_EQ(sim->served(), 0);

  // A rung whose windows the lower result holds completes without a call.
  Outcome again;
  pool->SubmitAt(1, c, 1, lower1, again.Done());
  auto [same, wsame] = again.Get();
  ASSERT_TRUE(same.ok()) << same.status();
  ExpectSame(*r1, *same, "nothing left to score");
  EXPECT_EQ(model->served(), 3);
  pool->Shutdown();
}

TEST(WorkerProtocolTest, AWrongAnswerRetiresTheWorkerAndTheRungGoesElsewhere) {
  Ladder l = MakeLadder();
  auto model = Start("model", MakeModelBackend(l.context), 1);
  auto wrong = Start("wrong", std::make_unique<SlowWindowBackend>(0, true), 4);  // more free slots: picked first
  auto pool = Pool({model->address(), wrong->address()}, l.domain.get());
  // Wait until both workers described themselves, so that the first pick is the wrong one.
  for (int i = 0; i < 100 && pool->Capacity() < 5; ++i) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_EQ(pool->Capacity(), 5);
  const Candidate c = Genome(4, 2);
  Outcome at1;
  pool->SubmitAt(3, c, 1, nullptr, at1.Done());
  auto [r1, w1] = at1.Get();
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(w1, "model");
  ExpectSame(*l.domain->EvaluateAt(c, 1), *r1, "rung 1 after a wrong answer");
  EXPECT_EQ(wrong->served(), 1);
  EXPECT_EQ(pool->Capacity(), 1) << "the worker that answered other windows is no longer used";
  pool->Shutdown();
}

TEST(WorkerProtocolTest, WithoutAWorkerThatScoresSubsetsARungFailsAndSaysWhy) {
  Ladder l = MakeLadder();
  auto sim = Start("sim", MakeSimulatedBackend(0), 2);
  auto pool = Pool({sim->address()}, l.domain.get());
  Outcome at0;
  pool->SubmitAt(1, Genome(3, 2), 0, nullptr, at0.Done());
  auto [r0, w0] = at0.Get();
  ASSERT_FALSE(r0.ok());
  EXPECT_NE(r0.status().message().find("no worker scores window subsets"), std::string::npos) << r0.status();
  EXPECT_EQ(sim->served(), 0);
  // Whole evaluations still go to it.
  Outcome whole;
  pool->Submit(2, Genome(3, 2), whole.Done());
  auto [rw, ww] = whole.Get();
  EXPECT_TRUE(rw.ok()) << rw.status();
  EXPECT_EQ(sim->served(), 1);
  pool->Shutdown();
}

TEST(WorkerProtocolTest, RungWorkFailsWhenTheOnlyWorkerThatScoresSubsetsIsGone) {
  // A whole-evaluation worker stays up, so the pool is not hopeless as a whole; the rung's
  // work must still fail (after the deadline) rather than wait for ever.
  Ladder l = MakeLadder();
  auto model = Start("model", MakeModelBackend(l.context), 1);
  auto sim = Start("sim", MakeSimulatedBackend(0), 2);
  auto pool = Pool({model->address(), sim->address()}, l.domain.get(), absl::Seconds(2));
  for (int i = 0; i < 100 && pool->Capacity() < 3; ++i) absl::SleepFor(absl::Milliseconds(50));
  model->Shutdown();
  Outcome at0;
  const absl::Time start = absl::Now();
  pool->SubmitAt(1, Genome(3, 2), 0, nullptr, at0.Done());
  auto [r0, w0] = at0.Get();
  EXPECT_FALSE(r0.ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
  EXPECT_EQ(sim->served(), 0);
  pool->Shutdown();
}

}  // namespace
}  // namespace fecsearch
