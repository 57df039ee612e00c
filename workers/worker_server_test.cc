// The worker through the real RPC stack on localhost:0: evaluation, describe, health, bad
// requests, authentication, TLS, capacity, idempotency, shutdown, the command backend.
#include "workers/worker_server.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/evaluator.h"
#include "core/model_test_util.h"
#include "core/text_proto.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "protos/worker.grpc.pb.h"

namespace fecsearch {
namespace {

std::unique_ptr<WorkerServer> StartWorker(WorkerOptions o, std::unique_ptr<EvaluationBackend> backend) {
  o.listen = "127.0.0.1:0";
  auto s = WorkerServer::Start(o, std::move(backend));
  EXPECT_TRUE(s.ok()) << s.status();
  return std::move(*s);
}

std::unique_ptr<rpc::Evaluator::Stub> Stub(const WorkerServer& w, std::shared_ptr<grpc::ChannelCredentials> creds = nullptr,
                                           const std::string& override_name = "") {
  grpc::ChannelArguments args;
  if (!override_name.empty()) args.SetSslTargetNameOverride(override_name);
  return rpc::Evaluator::NewStub(
      grpc::CreateCustomChannel(w.address(), creds ? creds : grpc::InsecureChannelCredentials(), args));
}

rpc::EvaluateRequest Request(int64_t id) {
  rpc::EvaluateRequest r;
  r.set_candidate_id(id);
  r.mutable_candidate()->mutable_genome()->add_layers()->mutable_keys()->set_bits(static_cast<int>(2 + id % 6));
  return r;
}

grpc::Status Evaluate(rpc::Evaluator::Stub& stub, const rpc::EvaluateRequest& req, rpc::EvaluateResponse* resp,
                      const std::string& token = "") {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  return stub.Evaluate(&ctx, req, resp);
}

// grpc.health.v1.Health/Check through a generic call: status 1 = SERVING, 2 = NOT_SERVING.
int HealthStatus(const std::string& address, std::shared_ptr<grpc::ChannelCredentials> creds = nullptr,
                 const std::string& override_name = "") {
  grpc::ChannelArguments args;
  if (!override_name.empty()) args.SetSslTargetNameOverride(override_name);
  auto channel = grpc::CreateCustomChannel(address, creds ? creds : grpc::InsecureChannelCredentials(), args);
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::ByteBuffer request(nullptr, 0), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) { done.set_value(s); });
  grpc::Status s = done.get_future().get();
  if (!s.ok()) return -static_cast<int>(s.error_code());
  std::vector<grpc::Slice> slices;
  response.Dump(&slices);
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  // HealthCheckResponse { status = 1 }: field 1, varint.
  return bytes.size() >= 2 && bytes[0] == 0x08 ? bytes[1] : 0;
}

TEST(WorkerServerTest, EvaluatesDescribesAndReportsHealth) {
  WorkerOptions o;
  o.capacity = 3;
  o.name = "w-test";
  auto w = StartWorker(o, MakeSimulatedBackend(0));
  auto stub = Stub(*w);
  rpc::EvaluateResponse resp;
  ASSERT_TRUE(Evaluate(*stub, Request(7), &resp).ok());
  EXPECT_EQ(resp.candidate_id(), 7);
  EXPECT_EQ(resp.worker(), "w-test");
  EXPECT_EQ(resp.result().status().code(), 0);
  EXPECT_GT(resp.result().objectives().effective_bits(), 0);
  grpc::ClientContext ctx;
  rpc::DescribeResponse d;
  ASSERT_TRUE(stub->Describe(&ctx, rpc::DescribeRequest(), &d).ok());
  EXPECT_EQ(d.capacity(), 3);
  EXPECT_EQ(d.mode(), "simulated");
  EXPECT_EQ(d.evaluations_served(), 1);
  EXPECT_FALSE(d.version().empty());
  EXPECT_EQ(HealthStatus(w->address()), 1);
}

TEST(WorkerServerTest, MalformedAndOversizedRequestsNeverReachTheEvaluator) {
  WorkerOptions o;
  o.max_request_bytes = 2000;
  auto w = StartWorker(o, MakeSimulatedBackend(0));
  auto stub = Stub(*w);
  rpc::EvaluateResponse resp;
  rpc::EvaluateRequest no_candidate;
  no_candidate.set_candidate_id(1);
  EXPECT_EQ(Evaluate(*stub, no_candidate, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  rpc::EvaluateRequest no_id = Request(1);
  no_id.clear_candidate_id();
  EXPECT_EQ(Evaluate(*stub, no_id, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  rpc::EvaluateRequest big = Request(2);
  for (int i = 0; i < 2000; ++i) big.mutable_candidate()->mutable_genome()->add_layers()->mutable_keys()->set_bits(3);
  EXPECT_EQ(Evaluate(*stub, big, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  rpc::EvaluateRequest other_context = Request(3);
  other_context.set_context_fingerprint("not-this-worker");
  // The simulated backend has no context; a model backend would refuse (see the cluster test).
  EXPECT_TRUE(Evaluate(*stub, other_context, &resp).ok());
  EXPECT_EQ(w->served(), 1);
}

TEST(WorkerServerTest, InvalidCandidatesAreRefusedBeforeTheEvaluator) {
  auto context = EvaluationContext::Create(EvaluationSpec());
  ASSERT_TRUE(context.ok()) << context.status();
  auto w = StartWorker(WorkerOptions(), MakeModelBackend(*context));
  auto stub = Stub(*w);
  rpc::EvaluateResponse resp;
  rpc::EvaluateRequest bad = Request(1);
  bad.mutable_candidate()->mutable_genome()->mutable_layers(0)->mutable_keys()->set_format(INT);
  bad.mutable_candidate()->mutable_genome()->mutable_layers(0)->mutable_keys()->set_bits(99);
  grpc::Status s = Evaluate(*stub, bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("bits"), std::string::npos) << s.error_message();
  rpc::EvaluateRequest cycle;
  cycle.set_candidate_id(2);
  auto* layer = cycle.mutable_candidate()->mutable_pipeline()->add_layers();
  auto* op = layer->add_ops();
  op->set_name("keys");
  op->set_type(PipelineOp::KEYS_INPUT);
  auto* edge = layer->add_edges();
  edge->set_from("keys");
  edge->set_to("nowhere");
  s = Evaluate(*stub, cycle, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("nowhere"), std::string::npos) << s.error_message();
  EXPECT_EQ(w->served(), 0);
}

TEST(WorkerServerTest, TokenIsRequiredExceptForHealth) {
  WorkerOptions o;
  o.auth_token = "s3cret";
  auto w = StartWorker(o, MakeSimulatedBackend(0));
  auto stub = Stub(*w);
  rpc::EvaluateResponse resp;
  EXPECT_EQ(Evaluate(*stub, Request(1), &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Evaluate(*stub, Request(1), &resp, "wrong").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ctx;
  rpc::DescribeResponse d;
  EXPECT_EQ(stub->Describe(&ctx, rpc::DescribeRequest(), &d).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(w->served(), 0) << "rejected before the evaluator";
  EXPECT_TRUE(Evaluate(*stub, Request(1), &resp, "s3cret").ok());
  EXPECT_EQ(HealthStatus(w->address()), 1) << "orchestrator probes carry no token";
}

TEST(WorkerServerTest, CapacityIsEnforcedAndRetriesJoinTheRunningEvaluation) {
  WorkerOptions o;
  o.capacity = 1;
  auto w = StartWorker(o, MakeSimulatedBackend(0.5));
  auto stub = Stub(*w);
  rpc::EvaluateResponse a, b, c;
  auto first = std::async(std::launch::async, [&] { return Evaluate(*stub, Request(10), &a); });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto same = std::async(std::launch::async, [&] { return Evaluate(*stub, Request(10), &b); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Evaluate(*stub, Request(11), &c).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_TRUE(first.get().ok());
  ASSERT_TRUE(same.get().ok());
  EXPECT_EQ(a.result().objectives().effective_bits(), b.result().objectives().effective_bits());
  EXPECT_EQ(w->served(), 1) << "a retried candidate id is evaluated once";
}

TEST(WorkerServerTest, TheSameIdFromAnotherSearchIsNotARetry) {
  // Ids restart at 1 in every database: two searches sharing a worker send the same id for
  // different candidates, and each must get its own candidate's result.
  WorkerOptions o;
  o.capacity = 2;
  auto w = StartWorker(o, MakeSimulatedBackend(0.4));
  auto stub = Stub(*w);
  rpc::EvaluateRequest other = Request(10);
  other.mutable_candidate()->mutable_genome()->mutable_layers(0)->mutable_keys()->set_bits(7);
  ASSERT_NE(Request(10).candidate().SerializeAsString(), other.candidate().SerializeAsString());
  rpc::EvaluateResponse a, b;
  auto first = std::async(std::launch::async, [&] { return Evaluate(*stub, Request(10), &a); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(Evaluate(*stub, other, &b).ok());
  ASSERT_TRUE(first.get().ok());
  EXPECT_EQ(w->served(), 2);
  EXPECT_NE(a.result().objectives().effective_bits(), b.result().objectives().effective_bits());
}

TEST(WorkerServerTest, ShutdownFinishesInFlightWorkAndRefusesNew) {
  WorkerOptions o;
  o.capacity = 2;
  o.shutdown_grace = absl::Seconds(5);
  auto w = StartWorker(o, MakeSimulatedBackend(0.6));
  auto stub = Stub(*w);
  rpc::EvaluateResponse a;
  auto running = std::async(std::launch::async, [&] { return Evaluate(*stub, Request(1), &a); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::thread stopper([&] { w->Shutdown(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  rpc::EvaluateResponse b;
  const grpc::Status refused = Evaluate(*stub, Request(2), &b);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_TRUE(running.get().ok()) << "the evaluation in flight finished within the grace period";
  stopper.join();
  EXPECT_EQ(w->served(), 1);
}

TEST(WorkerServerTest, ShutdownAfterGraceHandsWorkBack) {
  WorkerOptions o;
  o.shutdown_grace = absl::Milliseconds(100);
  auto w = StartWorker(o, MakeSimulatedBackend(2.0));
  auto stub = Stub(*w);
  rpc::EvaluateResponse a;
  auto running = std::async(std::launch::async, [&] { return Evaluate(*stub, Request(1), &a); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  w->Shutdown();
  const grpc::Status s = running.get();
  EXPECT_FALSE(s.ok()) << "cancelled: the caller dispatches it elsewhere";
}

std::string RunShell(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  char buf[4096];
  while (p && fgets(buf, sizeof(buf), p)) out += buf;
  if (p) pclose(p);
  return out;
}

TEST(WorkerServerTest, TlsWithTokenRejectsUnauthenticatedCallsBeforeAnyService) {
  const std::string dir = TestTempDir("tls");
  // A CA and a server certificate for "worker.test", as the README (Run on a cluster) shows.
  const std::string script = absl::StrCat(
      "cd ", dir, " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null",
      " && openssl req -newkey rsa:2048 -nodes -subj /CN=worker.test -keyout server.key -out server.csr 2>/dev/null",
      " && printf 'subjectAltName=DNS:worker.test\\n' > ext.cnf",
      " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem 2>/dev/null",
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other.pem 2>/dev/null",
      " && echo ok");
  ASSERT_EQ(RunShell(script), "ok\n") << "openssl failed";
  std::string ca, cert, key, other_ca;
  ASSERT_TRUE(ReadFile(dir + "/ca.pem", &ca).ok());
  ASSERT_TRUE(ReadFile(dir + "/other.pem", &other_ca).ok());
  ASSERT_TRUE(ReadFile(dir + "/server.pem", &cert).ok());
  ASSERT_TRUE(ReadFile(dir + "/server.key", &key).ok());
  WorkerOptions o;
  o.tls_cert_pem = cert;
  o.tls_key_pem = key;
  o.auth_token = "tok";
  auto w = StartWorker(o, MakeSimulatedBackend(0));
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca;
  auto creds = grpc::SslCredentials(ssl);
  auto stub = Stub(*w, creds, "worker.test");
  rpc::EvaluateResponse resp;
  EXPECT_EQ(Evaluate(*stub, Request(1), &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Evaluate(*stub, Request(1), &resp, "tok").ok());
  EXPECT_EQ(HealthStatus(w->address(), creds, "worker.test"), 1);
  EXPECT_EQ(w->health_port(), 0) << "no health-only listener unless asked for";
  // A plaintext client cannot talk to the TLS worker at all.
  auto plain = Stub(*w);
  EXPECT_FALSE(Evaluate(*plain, Request(2), &resp, "tok").ok());
  // A client that trusts another CA neither.
  grpc::SslCredentialsOptions other;
  other.pem_root_certs = other_ca;
  auto untrusted = Stub(*w, grpc::SslCredentials(other), "worker.test");
  EXPECT_FALSE(Evaluate(*untrusted, Request(3), &resp, "tok").ok());
  EXPECT_EQ(w->served(), 1);
}

TEST(WorkerServerTest, PlaintextHealthListenerForProbesThatCannotSpeakTls) {
  const std::string dir = TestTempDir("tls_health");
  const std::string script = absl::StrCat(
      "cd ", dir, " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=worker.test",
      " -addext subjectAltName=DNS:worker.test -keyout server.key -out server.pem 2>/dev/null && echo ok");
  ASSERT_EQ(RunShell(script), "ok\n") << "openssl failed";
  WorkerOptions o;
  ASSERT_TRUE(ReadFile(dir + "/server.pem", &o.tls_cert_pem).ok());
  ASSERT_TRUE(ReadFile(dir + "/server.key", &o.tls_key_pem).ok());
  o.auth_token = "tok";
  o.health_listen = "127.0.0.1:0";
  o.shutdown_grace = absl::Milliseconds(50);
  auto w = StartWorker(o, MakeSimulatedBackend(0));
  ASSERT_GT(w->health_port(), 0);
  const std::string health = absl::StrCat("127.0.0.1:", w->health_port());
  EXPECT_EQ(HealthStatus(health), 1) << "plaintext, no token: what a kubelet gRPC probe sends";
  EXPECT_LT(HealthStatus(w->address()), 0) << "the main port stays TLS-only";
  // The health port accepts no work.
  auto channel = grpc::CreateChannel(health, grpc::InsecureChannelCredentials());
  auto stub = rpc::Evaluator::NewStub(channel);
  rpc::EvaluateResponse resp;
  EXPECT_EQ(Evaluate(*stub, Request(1), &resp, "tok").error_code(), grpc::StatusCode::UNIMPLEMENTED);
  w->Shutdown();
  EXPECT_EQ(w->served(), 0);
}

TEST(CommandBackendTest, RunsTheProgramWithJsonAndReportsFailures) {
  const std::string dir = TestTempDir("command");
  {
    std::ofstream(dir + "/ok.py") << "import json, sys\n"
                                     "req = json.load(sys.stdin)\n"
                                     "bits = req['candidate']['genome']['layers'][0]['keys']['bits']\n"
                                     "print(json.dumps({'result': {'status': {'code': 0}, 'objectives': {'effectiveBits': bits * 1.5}}}))\n";
    std::ofstream(dir + "/fail.py") << "import sys\nsys.stderr.write('broken on purpose\\n')\nsys.exit(3)\n";
    std::ofstream(dir + "/slow.py") << "import time\ntime.sleep(30)\n";
    // Closes its output, then goes on running: the timeout must still apply.
    std::ofstream(dir + "/hang.py") << "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(30)\n";
    // Leaves a grandchild holding the output open: killed with its process group.
    std::ofstream(dir + "/fork.py") << "import subprocess, time\nsubprocess.Popen(['sleep', '30'])\ntime.sleep(30)\n";
  }
  auto ok = MakeCommandBackend({"/usr/bin/python3", dir + "/ok.py"}, absl::Seconds(20));
  auto r = ok->Evaluate(Request(4));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->candidate_id(), 4);
  EXPECT_DOUBLE_EQ(r->result().objectives().effective_bits(), 6 * 1.5);
  auto fail = MakeCommandBackend({"/usr/bin/python3", dir + "/fail.py"}, absl::Seconds(20));
  r = fail->Evaluate(Request(1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_NE(r.status().message().find("exited with status 3"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("broken on purpose"), std::string::npos) << r.status();
  auto slow = MakeCommandBackend({"/usr/bin/python3", dir + "/slow.py"}, absl::Milliseconds(500));
  const auto t0 = std::chrono::steady_clock::now();
  r = slow->Evaluate(Request(1));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << "the candidate's evaluation failed, not the worker: " << r.status();
  EXPECT_NE(r.status().message().find("was killed"), std::string::npos) << r.status();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  for (const char* program : {"/hang.py", "/fork.py"}) {
    auto hang = MakeCommandBackend({"/usr/bin/python3", dir + program}, absl::Milliseconds(500));
    const auto t1 = std::chrono::steady_clock::now();
    r = hang->Evaluate(Request(1));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << program << ": " << r.status();
    EXPECT_NE(r.status().message().find("was killed"), std::string::npos) << program << ": " << r.status();
    EXPECT_LT(std::chrono::steady_clock::now() - t1, std::chrono::seconds(5)) << program;
  }
  auto missing = MakeCommandBackend({"/no/such/program"}, absl::Seconds(5));
  r = missing->Evaluate(Request(1));
  EXPECT_FALSE(r.ok());
}

// A user-domain backend stand-in: one integer gene "x" in 0..9, objective y = 2x, probe
// outputs {x mod 3} (so x and x+3 are "equivalent").
class ToyDomainBackend : public EvaluationBackend {
 public:
  absl::StatusOr<EvaluateResponse> Evaluate(const EvaluateRequest& request) override {
    ++evaluations;
    EvaluateResponse r;
    r.set_candidate_id(request.candidate_id());
    r.mutable_result()->mutable_status()->set_code(0);
    (*r.mutable_result()->mutable_objectives()->mutable_metrics())["y"] = 2.0 * X(request.candidate());
    r.mutable_result()->set_cost_seconds(0.25);
    return r;
  }
  absl::Status Validate(const Candidate& c) const override {
    if (c.genes().genes_size() != 1 || c.genes().genes(0).name() != "x") return absl::InvalidArgumentError("genes: want exactly x");
    if (c.genes().genes(0).int_value() < 0 || c.genes().genes(0).int_value() > 9) {
      return absl::InvalidArgumentError("genes.x: outside 0..9");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<double>> Probe(const Candidate& c) override { return std::vector<double>{double(X(c) % 3)}; }
  std::string domain() const override { return "toy"; }
  std::string mode() const override { return "domain"; }
  std::string context_fingerprint() const override { return "toy-context"; }
  std::atomic<int> evaluations{0};

 private:
  static int64_t X(const Candidate& c) { return c.genes().genes(0).int_value(); }
};

rpc::GenesRequest Genes(int64_t id, int64_t x, const std::string& domain = "toy") {
  rpc::GenesRequest r;
  r.set_candidate_id(id);
  r.set_domain(domain);
  GeneValue* g = r.add_genes();
  g->set_name("x");
  g->set_int_value(x);
  return r;
}

grpc::Status EvaluateGenes(rpc::Evaluator::Stub& stub, const rpc::GenesRequest& req, rpc::GenesResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return stub.EvaluateGenes(&ctx, req, resp);
}

TEST(DomainRpcTest, EvaluatesAndProbesGenesInTheDomainFreeMessages) {
  auto backend = std::make_unique<ToyDomainBackend>();
  ToyDomainBackend* toy = backend.get();
  WorkerOptions o;
  o.name = "toy-worker";
  auto w = StartWorker(o, std::move(backend));
  auto stub = Stub(*w);
  rpc::GenesResponse resp;
  ASSERT_TRUE(EvaluateGenes(*stub, Genes(5, 4), &resp).ok());
  EXPECT_EQ(resp.candidate_id(), 5);
  EXPECT_EQ(resp.worker(), "toy-worker");
  EXPECT_FALSE(resp.has_error());
  ASSERT_EQ(resp.objectives().count("y"), 1u);
  EXPECT_EQ(resp.objectives().at("y"), 8.0);
  EXPECT_EQ(resp.cost_seconds(), 0.25);
  rpc::ProbeRequest probe;
  probe.set_domain("toy");
  *probe.mutable_genes() = Genes(0, 7).genes();
  rpc::ProbeResponse out;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->ProbeGenes(&ctx, probe, &out).ok());
  ASSERT_EQ(out.outputs_size(), 1);
  EXPECT_EQ(out.outputs(0), 1.0);
  EXPECT_EQ(toy->evaluations.load(), 1) << "a probe is not an evaluation";
}

TEST(DomainRpcTest, HostileGenesRequestsAreRefusedByName) {
  auto backend = std::make_unique<ToyDomainBackend>();
  ToyDomainBackend* toy = backend.get();
  auto w = StartWorker(WorkerOptions(), std::move(backend));
  auto stub = Stub(*w);
  rpc::GenesResponse resp;
  rpc::GenesRequest no_id = Genes(1, 2);
  no_id.clear_candidate_id();
  grpc::Status s = EvaluateGenes(*stub, no_id, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  s = EvaluateGenes(*stub, Genes(1, 42), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("genes.x: outside 0..9"), std::string::npos) << s.error_message();
  rpc::GenesRequest none = Genes(1, 2);
  none.clear_genes();
  s = EvaluateGenes(*stub, none, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = EvaluateGenes(*stub, Genes(1, 2, "other"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("serves domain 'toy', the request is for 'other'"), std::string::npos);
  rpc::GenesRequest wrong_context = Genes(1, 2);
  wrong_context.set_context_fingerprint("elsewhere");
  s = EvaluateGenes(*stub, wrong_context, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // A KV-cache request on a domain worker.
  rpc::EvaluateResponse kv;
  s = Evaluate(*stub, Request(3), &kv);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("user domain 'toy'"), std::string::npos) << s.error_message();
  EXPECT_EQ(toy->evaluations.load(), 0);
}

TEST(DomainRpcTest, AKvWorkerRefusesGenes) {
  auto w = StartWorker(WorkerOptions(), MakeSimulatedBackend(0));
  auto stub = Stub(*w);
  rpc::GenesResponse resp;
  grpc::Status s = EvaluateGenes(*stub, Genes(1, 2), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("start it with --mode=domain"), std::string::npos) << s.error_message();
  rpc::ProbeRequest probe;
  probe.set_domain("toy");
  rpc::ProbeResponse out;
  grpc::ClientContext ctx;
  s = stub->ProbeGenes(&ctx, probe, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace fecsearch
