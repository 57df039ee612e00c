// The worker's gRPC server: Evaluator service, health, reflection, auth, shutdown.
#include "workers/worker_server.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "core/version.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/auth_metadata_processor.h"
#include "grpcpp/security/server_credentials.h"
#include "protos/worker.grpc.pb.h"
#include "workers/grpc_status.h"

namespace fecsearch {
namespace {

constexpr char kHealthPrefix[] = "/grpc.health.v1.Health/";

bool TokenMatches(const std::string& expected, grpc::string_ref header) {
  const std::string want = "Bearer " + expected;
  if (header.size() != want.size()) return false;
  unsigned char diff = 0;  // constant time
  for (size_t i = 0; i < want.size(); ++i) diff |= static_cast<unsigned char>(header.data()[i] ^ want[i]);
  return diff == 0;
}

// With TLS, checks the bearer token of every call but the health service's, before the call
// reaches any service (reflection included).
class TokenProcessor : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenProcessor(std::string token) : token_(std::move(token)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext*, OutputMetadata*, OutputMetadata*) override {
    auto path = metadata.find(":path");
    if (path != metadata.end() && absl::StartsWith(absl::string_view(path->second.data(), path->second.size()), kHealthPrefix)) {
      return grpc::Status::OK;
    }
    auto auth = metadata.find("authorization");
    if (auth == metadata.end() || !TokenMatches(token_, auth->second)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token");
    }
    return grpc::Status::OK;
  }

 private:
  std::string token_;
};

}  // namespace

class WorkerServer::Impl final : public rpc::Evaluator::CallbackService {
 public:
  Impl(WorkerOptions options, std::unique_ptr<EvaluationBackend> backend)
      : options_(std::move(options)), backend_(std::move(backend)) {}

  ~Impl() override {
    Shutdown();
    for (std::thread& t : threads_) t.join();
  }

  absl::Status Start() {
    if (options_.capacity < 1) return absl::InvalidArgumentError("--capacity must be at least 1");
    if (options_.tls_cert_pem.empty() != options_.tls_key_pem.empty()) {
      return absl::InvalidArgumentError("TLS needs both a certificate and a key");
    }
    grpc::EnableDefaultHealthCheckService(true);
    std::shared_ptr<grpc::ServerCredentials> creds;
    const bool tls = !options_.tls_cert_pem.empty();
    if (tls) {
      grpc::SslServerCredentialsOptions ssl;
      ssl.pem_key_cert_pairs.push_back({options_.tls_key_pem, options_.tls_cert_pem});
      creds = grpc::SslServerCredentials(ssl);
      if (!options_.auth_token.empty()) creds->SetAuthMetadataProcessor(std::make_shared<TokenProcessor>(options_.auth_token));
    } else {
      creds = grpc::InsecureServerCredentials();
    }
    // Reflection describes the services to tools such as grpcurl (linking gRPC's reflection
    // library registers it for every server anyway). With TLS and a token it is behind the
    // token like everything but health; a plaintext worker answers it to anyone: it reveals
    // only the schema, which protos/worker.proto publishes.
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(options_.listen, creds, &port);
    builder.RegisterService(this);
    builder.SetMaxReceiveMessageSize(options_.max_request_bytes);
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on '", options_.listen,
                                                 "' (address in use, or not host:port?)"));
    }
    const size_t colon = options_.listen.rfind(':');
    address_ = absl::StrCat(options_.listen.substr(0, colon), ":", port);
    port_ = port;
    if (options_.name.empty()) options_.name = address_;
    if (!options_.health_listen.empty()) {
      // Health only, plaintext: it reveals nothing but "serving" and accepts no work.
      grpc::ServerBuilder health;
      health.AddListeningPort(options_.health_listen, grpc::InsecureServerCredentials(), &health_port_);
      health_server_ = health.BuildAndStart();
      if (!health_server_ || health_port_ == 0) {
        server_->Shutdown();
        return absl::UnavailableError(absl::StrCat("cannot listen on '", options_.health_listen,
                                                   "' for health checks (address in use, or not host:port?)"));
      }
      health_server_->GetHealthCheckService()->SetServingStatus(true);
    }
    server_->GetHealthCheckService()->SetServingStatus(true);
    for (int i = 0; i < options_.capacity; ++i) threads_.emplace_back([this] { Loop(); });
    if (!backend_->domain().empty()) {
      for (int i = 0; i < options_.capacity; ++i) threads_.emplace_back([this] { ProbeLoop(); });
    }
    return absl::OkStatus();
  }

  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* ctx, const rpc::EvaluateRequest* request,
                                     rpc::EvaluateResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!backend_->domain().empty()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                   absl::StrCat("worker ", options_.name, " evaluates user domain '", backend_->domain(),
                                                "' (EvaluateGenes), not whole candidates (Evaluate)")));
      return reactor;
    }
    grpc::Status check = Admit(ctx, *request);
    if (!check.ok()) {
      reactor->Finish(check);
      return reactor;
    }
    Enqueue(*request, {reactor, response, nullptr});
    return reactor;
  }

  // A user-defined domain's candidate: the same queue, capacity and retry joining as
  // Evaluate, answered in the domain-free message.
  grpc::ServerUnaryReactor* EvaluateGenes(grpc::CallbackServerContext* ctx, const rpc::GenesRequest* request,
                                          rpc::GenesResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    grpc::Status check = AdmitGenes(ctx, request->domain(), request->has_candidate_id());
    if (check.ok()) {
      rpc::EvaluateRequest as_request;
      as_request.set_candidate_id(request->candidate_id());
      *as_request.mutable_candidate()->mutable_genes()->mutable_genes() = request->genes();
      as_request.set_context_fingerprint(request->context_fingerprint());
      as_request.set_attempt(request->attempt());
      check = Admit(ctx, as_request);
      if (check.ok()) {
        Enqueue(as_request, {reactor, nullptr, response});
        return reactor;
      }
    }
    reactor->Finish(check);
    return reactor;
  }

  // Probes run on their own threads (one per unit of capacity) beside evaluations: they are
  // short, and a search waits on them before it can dispatch.
  grpc::ServerUnaryReactor* ProbeGenes(grpc::CallbackServerContext* ctx, const rpc::ProbeRequest* request,
                                       rpc::ProbeResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    grpc::Status check = AdmitGenes(ctx, request->domain(), true);
    if (check.ok()) {
      rpc::EvaluateRequest as_request;
      as_request.set_candidate_id(0);
      *as_request.mutable_candidate()->mutable_genes()->mutable_genes() = request->genes();
      as_request.set_context_fingerprint(request->context_fingerprint());
      check = Admit(ctx, as_request);
      if (check.ok()) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          probes_.push_back({std::move(*as_request.mutable_candidate()), reactor, response});
        }
        probe_cv_.notify_one();
        return reactor;
      }
    }
    reactor->Finish(check);
    return reactor;
  }

  grpc::Status AdmitGenes(grpc::CallbackServerContext* ctx, const std::string& domain, bool has_id) const {
    grpc::Status auth = Authenticate(ctx);
    if (!auth.ok()) return auth;
    if (backend_->domain().empty()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("worker ", options_.name, " evaluates KV-cache candidates (mode ", backend_->mode(),
                                       "), not user-defined domains; start it with --mode=domain"));
    }
    if (!has_id) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "candidate_id is required");
    if (domain != backend_->domain()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("worker ", options_.name, " serves domain '", backend_->domain(), "', the request is for '",
                                       domain, "'"));
    }
    return grpc::Status::OK;
  }

  struct Waiting {
    grpc::ServerUnaryReactor* reactor;
    rpc::EvaluateResponse* response;  // Evaluate
    rpc::GenesResponse* genes;        // EvaluateGenes
  };

  void Enqueue(const rpc::EvaluateRequest& request, Waiting waiting) {
    grpc::ServerUnaryReactor* reactor = waiting.reactor;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Idempotent: a retried call (same candidate id, candidate and context) joins the
      // evaluation already running. The candidate's bytes are part of the key: ids restart at
      // 1 in every experiment database, and several searches may share one worker.
      const std::string key = RetryKey(request);
      auto it = running_.find(key);
      if (it != running_.end()) {
        it->second.push_back(waiting);
        return;
      }
      if (in_flight_ >= options_.capacity) {
        reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                     absl::StrCat("worker ", options_.name, " is full (capacity ", options_.capacity, ")")));
        return;
      }
      ++in_flight_;
      running_[key].push_back(waiting);
      queue_.push_back(request);
    }
    cv_.notify_one();
  }

  grpc::ServerUnaryReactor* Describe(grpc::CallbackServerContext* ctx, const rpc::DescribeRequest*,
                                     rpc::DescribeResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    grpc::Status auth = Authenticate(ctx);
    if (!auth.ok()) {
      reactor->Finish(auth);
      return reactor;
    }
    response->set_worker(options_.name);
    response->set_version(kVersion);
    response->set_capacity(options_.capacity);
    response->set_context_fingerprint(backend_->context_fingerprint());
    response->set_mode(backend_->mode());
    response->set_protocol_version(kWorkerProtocolVersion);
    response->set_evaluation_windows(backend_->WindowCount());
    {
      std::lock_guard<std::mutex> lock(mu_);
      response->set_in_flight(in_flight_);
      response->set_evaluations_served(served_);
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  void Shutdown() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (shutdown_started_) {
        done_cv_.wait(lock, [&] { return shutdown_done_; });
        return;
      }
      shutdown_started_ = true;
    }
    if (server_) server_->GetHealthCheckService()->SetServingStatus(false);
    if (health_server_) health_server_->GetHealthCheckService()->SetServingStatus(false);
    {
      // Finish what is running, within the grace period.
      std::unique_lock<std::mutex> lock(mu_);
      idle_cv_.wait_for(lock, absl::ToChronoMilliseconds(options_.shutdown_grace), [&] { return in_flight_ == 0; });
      stop_ = true;
    }
    cv_.notify_all();
    probe_cv_.notify_all();
    // Anything still running is cancelled: its callers get an error and dispatch it again.
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    if (health_server_) health_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_done_ = true;
    }
    done_cv_.notify_all();
  }

  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return shutdown_done_; });
  }

  const std::string& address() const { return address_; }
  int port() const { return port_; }
  int health_port() const { return health_port_; }
  int64_t served() const {
    std::lock_guard<std::mutex> lock(mu_);
    return served_;
  }
  int in_flight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_;
  }

 private:
  grpc::Status Authenticate(grpc::CallbackServerContext* ctx) const {
    if (options_.auth_token.empty()) return grpc::Status::OK;
    const auto& md = ctx->client_metadata();
    auto it = md.find("authorization");
    if (it == md.end() || !TokenMatches(options_.auth_token, it->second)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token");
    }
    return grpc::Status::OK;
  }

  // Checks that never touch the evaluator.
  grpc::Status Admit(grpc::CallbackServerContext* ctx, const rpc::EvaluateRequest& request) {
    grpc::Status auth = Authenticate(ctx);
    if (!auth.ok()) return auth;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shutdown_started_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, absl::StrCat("worker ", options_.name, " is shutting down"));
    }
    if (!request.has_candidate_id()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "candidate_id is required");
    if (!request.has_candidate() ||
        request.candidate().representation_case() == Candidate::REPRESENTATION_NOT_SET) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "candidate is required (genes, a genome, a pipeline or a program)");
    }
    grpc::Status windows = CheckWindows(request);
    if (!windows.ok()) return windows;
    // An invalid candidate (a gene out of range, a malformed graph) is refused here, before
    // it reaches the evaluator.
    absl::Status valid = backend_->Validate(request.candidate());
    if (!valid.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("candidate: ", valid.message()));
    }
    const std::string mine = backend_->context_fingerprint();
    if (!request.context_fingerprint().empty() && !mine.empty() && request.context_fingerprint() != mine) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("worker ", options_.name, " evaluates under context ", mine,
                                       ", the request expects ", request.context_fingerprint(),
                                       " (different model, text or protocol)"));
    }
    return grpc::Status::OK;
  }

  // A window subset (protocol 2) must index this worker's evaluation windows, increasing.
  grpc::Status CheckWindows(const rpc::EvaluateRequest& request) const {
    if (request.windows_size() == 0) return grpc::Status::OK;
    const int n = backend_->WindowCount();
    if (n == 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("windows: worker ", options_.name, " (mode ", backend_->mode(),
                                       ") scores whole evaluations only; send no windows"));
    }
    for (int i = 0; i < request.windows_size(); ++i) {
      const int w = request.windows(i);
      if (w < 0 || w >= n) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("windows[", i, "]: ", w, " is outside this worker's evaluation windows 0..", n - 1));
      }
      if (i > 0 && w <= request.windows(i - 1)) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("windows[", i, "]: ", w, " after ", request.windows(i - 1),
                                         ": window indices must be strictly increasing"));
      }
    }
    return grpc::Status::OK;
  }

  void ToGenesResponse(const rpc::EvaluateResponse& from, rpc::GenesResponse* to) const {
    to->set_candidate_id(from.candidate_id());
    to->set_worker(options_.name);
    const EvaluationResult& r = from.result();
    if (r.status().code() != 0) {
      to->set_error(r.status().message().empty() ? absl::StrCat("status ", r.status().code()) : r.status().message());
      return;
    }
    for (const auto& [name, value] : r.objectives().metrics()) (*to->mutable_objectives())[name] = value;
    to->set_cost_seconds(r.cost_seconds());
  }

  static std::string RetryKey(const rpc::EvaluateRequest& request) {
    std::string candidate;
    google::protobuf::io::StringOutputStream stream(&candidate);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    request.candidate().SerializeToCodedStream(&coded);
    coded.Trim();
    // The rung and its windows too: (candidate id, rung) is one evaluation; the same candidate
    // at another rung is another.
    return absl::StrCat(request.candidate_id(), "/", request.rung(), "/", absl::StrJoin(request.windows(), ","), "/",
                        request.context_fingerprint(), "/", candidate);
  }

  void Loop() {
    while (true) {
      rpc::EvaluateRequest request;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        request = std::move(queue_.front());
        queue_.pop_front();
      }
      absl::StatusOr<rpc::EvaluateResponse> response = backend_->Evaluate(request);
      std::vector<Waiting> waiting;
      {
        std::lock_guard<std::mutex> lock(mu_);
        const std::string key = RetryKey(request);
        waiting = std::move(running_[key]);
        running_.erase(key);
        --in_flight_;
        if (response.ok()) ++served_;
      }
      idle_cv_.notify_all();
      for (Waiting& w : waiting) {
        if (response.ok() && w.genes != nullptr) {
          ToGenesResponse(*response, w.genes);
          w.reactor->Finish(grpc::Status::OK);
        } else if (response.ok()) {
          *w.response = *response;
          w.response->set_worker(options_.name);
          w.reactor->Finish(grpc::Status::OK);
        } else {
          w.reactor->Finish(ToGrpc(response.status()));
        }
      }
    }
  }

  struct Probe {
    Candidate candidate;
    grpc::ServerUnaryReactor* reactor;
    rpc::ProbeResponse* response;
  };

  void ProbeLoop() {
    while (true) {
      Probe p;
      {
        std::unique_lock<std::mutex> lock(mu_);
        probe_cv_.wait(lock, [&] { return stop_ || !probes_.empty(); });
        if (probes_.empty()) return;
        p = std::move(probes_.front());
        probes_.pop_front();
      }
      absl::StatusOr<std::vector<double>> outputs = backend_->Probe(p.candidate);
      if (outputs.ok()) {
        for (double v : *outputs) p.response->add_outputs(v);
        p.reactor->Finish(grpc::Status::OK);
      } else if (absl::IsInvalidArgument(outputs.status())) {
        p.response->set_error(std::string(outputs.status().message()));
        p.reactor->Finish(grpc::Status::OK);
      } else {
        p.reactor->Finish(ToGrpc(outputs.status()));
      }
    }
  }

  WorkerOptions options_;
  std::unique_ptr<EvaluationBackend> backend_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;
  int health_port_ = 0;
  std::string address_;
  int port_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_, done_cv_;
  std::deque<rpc::EvaluateRequest> queue_;
  std::deque<Probe> probes_;
  std::condition_variable probe_cv_;
  std::map<std::string, std::vector<Waiting>> running_;
  int in_flight_ = 0;
  int64_t served_ = 0;
  bool stop_ = false, shutdown_started_ = false, shutdown_done_ = false;
  std::vector<std::thread> threads_;
};

WorkerServer::WorkerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WorkerServer::~WorkerServer() = default;

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::Start(WorkerOptions options,
                                                                  std::unique_ptr<EvaluationBackend> backend) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(backend));
  absl::Status s = impl->Start();
  if (!s.ok()) return s;
  return std::unique_ptr<WorkerServer>(new WorkerServer(std::move(impl)));
}

const std::string& WorkerServer::address() const { return impl_->address(); }
int WorkerServer::port() const { return impl_->port(); }
int WorkerServer::health_port() const { return impl_->health_port(); }
void WorkerServer::Shutdown() { impl_->Shutdown(); }
void WorkerServer::Wait() { impl_->Wait(); }
int64_t WorkerServer::served() const { return impl_->served(); }
int WorkerServer::in_flight() const { return impl_->in_flight(); }

}  // namespace fecsearch
