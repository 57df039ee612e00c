// The gRPC worker pool.
#include "workers/grpc_pool.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "protos/worker.grpc.pb.h"
#include "workers/grpc_status.h"

namespace fecsearch {
namespace {

// Retries of UNAVAILABLE on the same channel, health checking (which needs round_robin), per
// the gRPC service config.
constexpr char kServiceConfig[] = R"json({
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""},
  "methodConfig": [{
    "name": [{"service": "fecsearch.rpc.Evaluator"}],
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
})json";

absl::StatusOr<std::vector<std::string>> ResolveDns(const std::string& target) {
  const std::string spec = target.substr(std::strlen("dns:///"));
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--workers: '", target, "' needs the form dns:///NAME:PORT"));
  }
  const std::string host = spec.substr(0, colon), port = spec.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("--workers: cannot resolve '", host, "': ", gai_strerror(rc)));
  std::set<std::string> addresses;
  for (addrinfo* a = result; a != nullptr; a = a->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, buf, sizeof(buf));
      addresses.insert(absl::StrCat(buf, ":", port));
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, buf, sizeof(buf));
      addresses.insert(absl::StrCat("[", buf, "]:", port));
    }
  }
  freeaddrinfo(result);
  return std::vector<std::string>(addresses.begin(), addresses.end());
}

absl::StatusOr<std::vector<std::string>> ReadTargetFile(const std::string& target) {
  const std::string path = target.substr(std::strlen("file:"));
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("--workers: cannot read '", path, "' (", std::strerror(errno), ")"));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    out.emplace_back(l);
  }
  return out;
}

}  // namespace

// Every worker address the targets name, with the host name the target gave for it (what a
// TLS certificate is checked against: a dns:/// name resolves to addresses, not names).
absl::StatusOr<std::map<std::string, std::string>> ResolveTargetNames(const std::vector<std::string>& targets) {
  std::map<std::string, std::string> all;
  auto host_of = [](absl::string_view hostport) {
    const size_t colon = hostport.rfind(':');
    absl::string_view host = colon == absl::string_view::npos ? hostport : hostport.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    return std::string(host);
  };
  for (const std::string& t : targets) {
    if (absl::StartsWith(t, "dns:///")) {
      auto r = ResolveDns(t);
      if (!r.ok()) return r.status();
      const std::string host = host_of(absl::string_view(t).substr(std::strlen("dns:///")));
      for (const std::string& a : *r) all.emplace(a, host);
    } else if (absl::StartsWith(t, "file:")) {
      auto r = ReadTargetFile(t);
      if (!r.ok()) return r.status();
      for (const std::string& a : *r) all.emplace(a, host_of(a));
    } else {
      if (t.rfind(':') == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("--workers: '", t, "' is not host:port, dns:///NAME:PORT or file:PATH"));
      }
      all.emplace(t, host_of(t));
    }
  }
  return all;
}

absl::StatusOr<std::vector<std::string>> ResolveTargets(const std::vector<std::string>& targets) {
  auto named = ResolveTargetNames(targets);
  if (!named.ok()) return named.status();
  std::vector<std::string> out;
  for (const auto& [address, name] : *named) out.push_back(address);
  return out;
}

class GrpcWorkerPool::Impl {
 public:
  explicit Impl(GrpcPoolOptions options) : options_(std::move(options)) {}
  ~Impl() { Shutdown(); }

  absl::Status Start() {
    auto addresses = ResolveTargetNames(options_.targets);
    if (!addresses.ok()) return addresses.status();
    if (addresses->empty()) return absl::InvalidArgumentError("--workers: the targets name no worker address");
    {
      std::lock_guard<std::mutex> lock(mu_);
      Update(*addresses);
      last_resolve_ = absl::Now();
    }
    manager_ = std::thread([this] { Manage(); });
    return absl::OkStatus();
  }

  void Submit(int64_t id, const Candidate& candidate, Done done) {
    auto job = std::make_shared<Job>();
    job->id = id;
    job->candidate = candidate;
    job->done = std::move(done);
    Enqueue(std::move(job));
  }

  bool SupportsFidelities() const { return options_.fidelity_domain != nullptr; }

  // A rung's work (protocol 2): the windows the domain says the candidate lacks go to a worker
  // that scores window subsets; a promotion whose windows `lower` already holds completes
  // without a call.
  void SubmitAt(int64_t id, const Candidate& candidate, int fidelity, std::shared_ptr<const EvaluationResult> lower,
                Done done) {
    if (options_.fidelity_domain == nullptr) {
      done(absl::UnimplementedError("this worker pool evaluates at full fidelity only"), "", 0);
      return;
    }
    auto work = options_.fidelity_domain->WorkAt(fidelity, lower.get());
    if (!work.ok()) {
      done(work.status(), "", 0);
      return;
    }
    auto job = std::make_shared<Job>();
    job->id = id;
    job->candidate = candidate;
    job->done = std::move(done);
    job->fidelity = fidelity;
    job->lower = std::move(lower);
    job->windowed = !work->whole;
    job->windows = std::move(work->windows);
    job->no_work = job->windowed && job->windows.empty();
    Enqueue(std::move(job));
  }


  int Capacity() const {
    std::lock_guard<std::mutex> lock(mu_);
    int total = 0;
    for (const auto& [address, b] : backends_)
      if (b->usable()) total += b->capacity;
    return std::max(1, total);
  }

  std::string Describe() const {
    std::lock_guard<std::mutex> lock(mu_);
    int usable = 0, capacity = 0;
    for (const auto& [address, b] : backends_) {
      if (b->usable()) {
        ++usable;
        capacity += b->capacity;
      }
    }
    return absl::StrCat(usable, " of ", backends_.size(), " gRPC workers (", capacity, " candidates at a time; targets ",
                        absl::StrJoin(options_.targets, ","), ")");
  }

  std::vector<std::string> Backends() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [address, b] : backends_) {
      out.push_back(absl::StrCat(address, " (", b->name.empty() ? "?" : b->name, ", capacity ", b->capacity,
                                 b->usable() ? ", healthy" : ", unavailable", ")"));
    }
    return out;
  }

  void CancelQueued() {
    std::deque<std::shared_ptr<Job>> cancelled;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled.swap(queue_);
    }
    for (auto& job : cancelled) {
      if (job->done) job->done(absl::CancelledError("the search is stopping: not dispatched"), "", job->attempts);
    }
  }

  void Shutdown() {
    std::vector<std::shared_ptr<Call>> calls;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      for (auto& [ptr, call] : calls_) calls.push_back(call);
    }
    cv_.notify_all();
    for (auto& c : calls) c->context.TryCancel();
    if (manager_.joinable()) manager_.join();
    std::unique_lock<std::mutex> lock(mu_);
    idle_cv_.wait(lock, [&] { return calls_.empty() && describing_ == 0 && callbacks_running_ == 0; });
  }

 private:
  struct Job {
    int64_t id = -1;
    Candidate candidate;
    Done done;
    int attempts = 0;
    std::string last_error;
    // SubmitAt: the rung, the candidate's lower result, and the windows to score (windowed:
    // a protocol-2 request naming them; else a whole evaluation).
    int fidelity = -1;
    std::shared_ptr<const EvaluationResult> lower;
    bool windowed = false;
    std::vector<int> windows;
    bool no_work = false;  // `lower` already answers: completed without a call
  };
  void Enqueue(std::shared_ptr<Job> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(job));
    }
    cv_.notify_all();
  }

  struct Backend {
    std::string address, name;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<rpc::Evaluator::Stub> stub;
    int capacity = 0;  // 0 until described
    int in_flight = 0;
    int protocol = 1;  // DescribeResponse.protocol_version
    int windows = 0;   // evaluation windows it scores subsets of (0: whole evaluations only)
    bool healthy = false, incompatible = false, removed = false, describing = false;
    std::string refused;  // why the worker refused our credentials, if it did
    std::string last_error;  // why the last Describe failed, if it did
    bool announced = false;  // its joining was logged
    int failures = 0;
    absl::Time retry_after = absl::InfinitePast();  // next Describe of an unhealthy worker
    absl::Time paused_until = absl::InfinitePast();  // no dispatch before (it said it was full)
    bool usable() const { return healthy && !incompatible && !removed && capacity > 0; }
  };
  // A domain-free response as the result the controller records.
  static EvaluationResult GenesResult(const rpc::GenesResponse& response) {
    EvaluationResult r;
    if (response.has_error()) {
      r.mutable_status()->set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
      r.mutable_status()->set_message(response.error());
      return r;
    }
    r.mutable_status()->set_code(0);
    for (const auto& [name, value] : response.objectives()) (*r.mutable_objectives()->mutable_metrics())[name] = value;
    r.set_cost_seconds(response.cost_seconds());
    return r;
  }

  // The state of one Evaluate RPC. Its callback holds only raw pointers: every object that
  // owns gRPC resources (contexts, channels) is released on a thread of ours or inside the
  // callback while the pool is still alive, never by a closure that gRPC destroys after the
  // pool is gone.
  struct Call {
    grpc::ClientContext context;
    rpc::EvaluateRequest request;
    rpc::EvaluateResponse response;
    // A user-defined domain's candidate goes through the domain-free EvaluateGenes instead.
    rpc::GenesRequest genes_request;
    rpc::GenesResponse genes_response;
    std::shared_ptr<Job> job;
    Backend* backend = nullptr;  // owned by backends_, which outlive every call
  };
  struct DescribeCall {
    grpc::ClientContext context;
    rpc::DescribeRequest request;
    rpc::DescribeResponse response;
    Backend* backend = nullptr;
  };

  std::shared_ptr<grpc::ChannelCredentials> Credentials() const {
    if (options_.ca_cert_pem.empty()) return grpc::InsecureChannelCredentials();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options_.ca_cert_pem;
    return grpc::SslCredentials(ssl);
  }

  // Adds backends for new addresses, retires those that disappeared (their calls finish).
  void Update(const std::map<std::string, std::string>& addresses) {
    for (auto& [address, b] : backends_) {
      const bool removed = !addresses.count(address);
      if (removed && !b->removed) std::fprintf(stderr, "search: worker %s left the target list\n", address.c_str());
      b->removed = removed;
    }
    for (const auto& [address, host] : addresses) {
      if (backends_.count(address)) continue;
      auto b = std::make_shared<Backend>();
      b->address = address;
      grpc::ChannelArguments args;
      args.SetServiceConfigJSON(kServiceConfig);
      args.SetInt(GRPC_ARG_ENABLE_RETRIES, 1);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
      args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
      args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
      // The certificate is checked against server_name, else the name the target gave (a
      // dns:/// target's backends are addresses).
      const std::string tls_name = options_.server_name.empty() ? host : options_.server_name;
      if (!options_.ca_cert_pem.empty() && !tls_name.empty()) args.SetSslTargetNameOverride(tls_name);
      b->channel = grpc::CreateCustomChannel(address, Credentials(), args);
      b->stub = rpc::Evaluator::NewStub(b->channel);
      backends_[address] = b;
    }
  }

  void AddAuth(grpc::ClientContext* ctx) const {
    if (!options_.auth_token.empty()) ctx->AddMetadata("authorization", "Bearer " + options_.auth_token);
  }

  // Asks a backend for its capacity and context; a backend is used once it answers.
  void DescribeBackend(const std::shared_ptr<Backend>& backend) {
    backend->describing = true;
    ++describing_;
    auto* call = new DescribeCall;
    call->backend = backend.get();
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    AddAuth(&call->context);
    backend->stub->async()->Describe(&call->context, &call->request, &call->response, [this, call](grpc::Status s) {
      {
        std::unique_ptr<DescribeCall> owned(call);  // released here, while the pool is alive
        DescribeCompleted(*call, s);
      }
      std::lock_guard<std::mutex> lock(mu_);
      --describing_;  // last: Shutdown waits for this
      idle_cv_.notify_all();
    });
  }

  void DescribeCompleted(const DescribeCall& call, const grpc::Status& s) {
    {
      Backend* b = call.backend;
      const rpc::DescribeResponse* response = &call.response;
      std::lock_guard<std::mutex> lock(mu_);
      b->describing = false;
      if (s.ok()) {
        b->name = response->worker();
        b->capacity = options_.per_worker_concurrency > 0 ? options_.per_worker_concurrency : std::max(1, response->capacity());
        b->protocol = response->protocol_version();
        b->windows = b->protocol >= 2 ? std::max(0, response->evaluation_windows()) : 0;
        if (!b->healthy && !b->removed) {
          const std::string fidelity_note =
              options_.fidelity_domain == nullptr ? ""
              : b->windows > 0
                  ? absl::StrCat("; scores window subsets (protocol ", b->protocol, ")")
                  : absl::StrCat("; whole evaluations only (protocol ", b->protocol, ", mode ",
                                 response->mode().empty() ? "?" : response->mode(), "): it gets no rung's window subsets");
          std::fprintf(stderr, "search: worker %s (%s) %s: %d evaluation(s) at a time%s\n", b->address.c_str(), b->name.c_str(),
                       b->announced ? "is back" : "ready", b->capacity, fidelity_note.c_str());
          b->announced = true;
        }
        b->healthy = true;
        b->failures = 0;
        b->refused.clear();
        b->last_error.clear();
        if (!options_.context_fingerprint.empty() && !response->context_fingerprint().empty() &&
            response->context_fingerprint() != options_.context_fingerprint) {
          if (!b->incompatible) {
            std::fprintf(stderr, "search: worker %s evaluates under another context (%s, expected %s): not used\n",
                         b->address.c_str(), response->context_fingerprint().c_str(), options_.context_fingerprint.c_str());
          }
          b->incompatible = true;
        }
      } else {
        b->healthy = false;
        ++b->failures;
        b->last_error = absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())), ": ", s.error_message());
        b->retry_after = absl::Now() + absl::Milliseconds(std::min(10000, 250 << std::min(b->failures, 6)));
        if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED || s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
          if (b->refused.empty()) {
            std::fprintf(stderr, "search: worker %s refused the credentials: %s\n", b->address.c_str(), s.error_message().c_str());
          }
          b->refused = s.error_message();
        }
      }
    }
    cv_.notify_all();
  }

  // The least loaded usable worker with a free slot; `windowed`: among those that score window
  // subsets.
  std::shared_ptr<Backend> PickBackend(absl::Time now, bool windowed) {
    std::shared_ptr<Backend> best;
    for (auto& [address, b] : backends_) {
      if (!b->usable() || b->in_flight >= b->capacity || now < b->paused_until) continue;
      if (windowed && b->windows == 0) continue;
      if (!best || b->capacity - b->in_flight > best->capacity - best->in_flight) best = b;
    }
    return best;
  }

  void Dispatch(const std::shared_ptr<Job>& job, const std::shared_ptr<Backend>& b) {
    auto call = std::make_shared<Call>();
    call->job = job;
    call->backend = b.get();
    ++job->attempts;
    if (options_.genes_domain.empty()) {
      call->request.set_candidate_id(job->id);
      *call->request.mutable_candidate() = job->candidate;
      call->request.set_context_fingerprint(options_.context_fingerprint);
      call->request.set_attempt(job->attempts);
      if (job->fidelity >= 0) call->request.set_rung(job->fidelity);
      for (int w : job->windows) call->request.add_windows(w);
    } else {
      call->genes_request.set_candidate_id(job->id);
      call->genes_request.set_domain(options_.genes_domain);
      *call->genes_request.mutable_genes() = job->candidate.genes().genes();
      call->genes_request.set_context_fingerprint(options_.context_fingerprint);
      call->genes_request.set_attempt(job->attempts);
    }
    call->context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(options_.deadline));
    call->context.set_wait_for_ready(false);
    AddAuth(&call->context);
    ++b->in_flight;
    Call* raw = call.get();
    calls_[raw] = std::move(call);
    ++callbacks_running_;
    auto on_done = [this, raw](grpc::Status s) {
      Completed(raw, s);
      std::lock_guard<std::mutex> lock(mu_);
      --callbacks_running_;  // last: Shutdown waits for this
      idle_cv_.notify_all();
    };
    if (options_.genes_domain.empty()) {
      b->stub->async()->Evaluate(&raw->context, &raw->request, &raw->response, on_done);
    } else {
      b->stub->async()->EvaluateGenes(&raw->context, &raw->genes_request, &raw->genes_response, on_done);
    }
  }

  void Completed(Call* raw, const grpc::Status& s) {
    std::shared_ptr<Call> call;  // released when this returns, while the pool is alive
    std::shared_ptr<Job> job;
    Done done;
    absl::StatusOr<EvaluationResult> result = absl::UnknownError("unset");
    std::string worker;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = calls_.find(raw);
      call = std::move(it->second);
      calls_.erase(it);
      job = call->job;
      Backend& b = *call->backend;
      --b.in_flight;
      // A rung's answer must hold the windows asked for; one that does not is the worker's
      // fault (a hostile or broken peer): it is not used again and the job goes elsewhere.
      absl::StatusOr<EvaluationResult> completed = absl::UnknownError("unset");
      grpc::Status status = s;
      if (s.ok() && job->fidelity >= 0 && options_.genes_domain.empty()) {
        completed = options_.fidelity_domain->CompleteAt(job->fidelity, job->lower.get(), call->response.result());
        if (!completed.ok()) {
          std::fprintf(stderr, "search: worker %s (%s) answered rung %d of candidate %lld wrongly (%s): not used again\n",
                       b.address.c_str(), b.name.c_str(), job->fidelity, static_cast<long long>(job->id),
                       std::string(completed.status().message()).c_str());
          b.incompatible = true;
          status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                absl::StrCat("wrong answer for rung ", job->fidelity, ": ", completed.status().message()));
        }
      }
      if (status.ok()) {
        b.failures = 0;
        if (options_.genes_domain.empty()) {
          result = job->fidelity >= 0 ? std::move(completed) : absl::StatusOr<EvaluationResult>(call->response.result());
          worker = call->response.worker().empty() ? b.address : call->response.worker();
        } else {
          result = GenesResult(call->genes_response);
          worker = call->genes_response.worker().empty() ? b.address : call->genes_response.worker();
        }
        done = std::move(job->done);
      } else {
        const grpc::Status& s = status;
        const grpc::StatusCode code = s.error_code();
        job->last_error = absl::StrCat(b.address, ": ", code, " ", s.error_message());
        // ABORTED: the worker ran the candidate and its evaluation failed (e.g. a command that
        // exited non-zero): not the worker's fault; retried once elsewhere in case it was
        // transient. RESOURCE_EXHAUSTED: the worker is full (our view of its load was stale):
        // requeued without using up an attempt.
        const bool backend_fault = code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::CANCELLED ||
                                   code == grpc::StatusCode::DEADLINE_EXCEEDED || code == grpc::StatusCode::UNKNOWN ||
                                   code == grpc::StatusCode::INTERNAL;
        const bool full = code == grpc::StatusCode::RESOURCE_EXHAUSTED;
        if (full) {
          --job->attempts;
          b.paused_until = absl::Now() + absl::Milliseconds(200);  // let the worker drain first
        }
        if (backend_fault) {
          // Probably dead or overloaded: stop using it until it answers Describe again.
          if (b.healthy && !stopping_) {
            std::fprintf(stderr, "search: worker %s (%s) lost (%s: %s); its candidates go to other workers\n",
                         b.address.c_str(), b.name.c_str(), absl::StatusCodeToString(static_cast<absl::StatusCode>(code)).c_str(),
                         s.error_message().c_str());
          }
          b.healthy = false;
          ++b.failures;
          b.retry_after = absl::Now() + absl::Milliseconds(std::min(10000, 250 << std::min(b.failures, 6)));
        }
        if (code == grpc::StatusCode::FAILED_PRECONDITION) b.incompatible = true;
        const bool retry = !stopping_ &&
                           (full ||
                            (job->attempts < options_.max_attempts &&
                             (backend_fault || code == grpc::StatusCode::FAILED_PRECONDITION ||
                              (code == grpc::StatusCode::ABORTED && job->attempts < 2))));
        if (retry) {
          queue_.push_front(job);  // another worker, as soon as one is free
        } else {
          result = absl::Status(static_cast<absl::StatusCode>(code),
                                absl::StrCat("evaluation failed after ", job->attempts, " attempt(s); last: ", job->last_error));
          done = std::move(job->done);
        }
      }
    }
    cv_.notify_all();
    idle_cv_.notify_all();
    if (done) done(std::move(result), worker, job->attempts);
  }

  // Queued work cannot wait for ever: if every worker refuses our credentials or evaluates
  // under another context, or none has been usable for a whole deadline, queued candidates
  // fail with the reason. Called with mu_ held; releases it to call the callbacks.
  void FailHopelessJobs(absl::Time now) {
    for (const auto& [address, b] : backends_) {
      if (b->usable()) last_usable_ = now;
    }
    if (queue_.empty()) return;
    std::vector<std::string> reasons;
    bool any_usable_or_possible = false;
    for (const auto& [address, b] : backends_) {
      if (b->removed) continue;
      if (!b->refused.empty()) {
        reasons.push_back(absl::StrCat(address, " refused the credentials (", b->refused, ")"));
      } else if (b->incompatible) {
        reasons.push_back(absl::StrCat(address, " evaluates under another context"));
      } else {
        any_usable_or_possible = true;
      }
    }
    const bool timed_out = now - last_usable_ > options_.deadline;
    // Waiting on workers that cannot be reached is said, not silent: every 30 s (a quarter
    // of the deadline if that is shorter), with each worker's last error and when the queued
    // candidates will fail.
    const absl::Duration warn_every = std::min(absl::Seconds(30), options_.deadline / 4);
    if (any_usable_or_possible && !timed_out && now - last_usable_ >= warn_every &&
        now - last_waiting_warning_ >= warn_every) {
      last_waiting_warning_ = now;
      std::vector<std::string> states;
      for (const auto& [address, b] : backends_) {
        if (b->removed) continue;
        states.push_back(absl::StrCat(address, " (", b->last_error.empty() ? "no answer yet" : b->last_error, ")"));
      }
      std::fprintf(stderr,
                   "search: no worker usable for %.0f s; %zu candidate(s) waiting, failing after %.0f s: %s\n",
                   absl::ToDoubleSeconds(now - last_usable_), queue_.size(), absl::ToDoubleSeconds(options_.deadline),
                   states.empty() ? "no worker address" : absl::StrJoin(states, ", ").c_str());
    }
    if (any_usable_or_possible && !timed_out) {
      FailWindowedJobsWithoutWorker(now);
      return;
    }
    if (timed_out) reasons.push_back(absl::StrCat("no worker was usable for ", absl::FormatDuration(options_.deadline)));
    const std::string why = absl::StrCat("no worker can evaluate: ", absl::StrJoin(reasons, "; "));
    std::deque<std::shared_ptr<Job>> failed;
    failed.swap(queue_);
    mu_.unlock();
    for (auto& job : failed) {
      if (job->done) job->done(absl::FailedPreconditionError(why), "", job->attempts);
    }
    mu_.lock();
  }

  // A rung's window subset needs a worker that scores them: once every worker has described
  // itself and none does (protocol 1, or a command, simulated or domain worker), queued
  // subsets fail with the reason instead of waiting for ever. Called with mu_ held; releases it
  // to call the callbacks.
  void FailWindowedJobsWithoutWorker(absl::Time now) {
    std::vector<std::string> whole_only;
    bool waiting = false;  // a worker that scores subsets may (again) be usable
    for (const auto& [address, b] : backends_) {
      if (b->removed || !b->refused.empty() || b->incompatible) continue;
      if (b->usable() && b->windows > 0) {
        last_windowed_usable_ = now;
        return;
      }
      if (b->capacity == 0 || b->windows > 0) {
        waiting = true;  // not described yet, or one that can but is unreachable now
        continue;
      }
      whole_only.push_back(absl::StrCat(address, " (protocol ", b->protocol, ")"));
    }
    // Waited for one a whole deadline: fail rather than wait for ever (whole evaluations may
    // still be going to the others).
    if (waiting && now - last_windowed_usable_ <= options_.deadline) return;
    if (waiting) whole_only.push_back(absl::StrCat("none that does usable for ", absl::FormatDuration(options_.deadline)));
    std::deque<std::shared_ptr<Job>> failed, kept;
    for (auto& job : queue_) (job->windowed && !job->no_work ? failed : kept).push_back(job);
    if (failed.empty()) return;
    queue_.swap(kept);
    const std::string why = absl::StrCat(
        "search.fidelity: no worker scores window subsets (", whole_only.empty() ? "none usable" : absl::StrJoin(whole_only, ", "),
        "); a multi-fidelity search needs workers of protocol 2 evaluating with the model (worker --mode=model), or "
        "leave out search.fidelity");
    mu_.unlock();
    for (auto& job : failed) {
      if (job->done) job->done(absl::FailedPreconditionError(why), "", job->attempts);
    }
    mu_.lock();
  }

  // Whether a file: target's modification time or size changed since the last check.
  bool TargetFilesChanged() {
    bool changed = false;
    for (const std::string& t : options_.targets) {
      if (!absl::StartsWith(t, "file:")) continue;
      struct stat st {};
      const std::string path = t.substr(std::strlen("file:"));
      const int64_t stamp = stat(path.c_str(), &st) == 0
                                ? static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec + st.st_size
                                : -1;
      auto [it, inserted] = file_stamps_.emplace(path, stamp);
      if (!inserted && it->second != stamp) changed = true;
      it->second = stamp;
    }
    return changed;
  }

  void Manage() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      const absl::Time now = absl::Now();
      // Target files are re-read as soon as they change; DNS names every resolve interval.
      const bool file_changed = TargetFilesChanged();
      if (file_changed || now - last_resolve_ >= options_.resolve_interval) {
        last_resolve_ = now;
        lock.unlock();
        auto addresses = ResolveTargetNames(options_.targets);  // DNS may block: not under the lock
        lock.lock();
        if (addresses.ok()) {
          Update(*addresses);
        } else {
          std::fprintf(stderr, "search: re-resolving workers: %s\n", std::string(addresses.status().message()).c_str());
        }
      }
      for (auto& [address, b] : backends_) {
        if (!b->removed && !b->describing && (!b->healthy || b->capacity == 0) && now >= b->retry_after) DescribeBackend(b);
      }
      // In order, each job to a worker that can take it (a window subset only to one that
      // scores them); promotions with nothing left to score complete here.
      std::vector<std::shared_ptr<Job>> ready;
      for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->no_work) {
          ready.push_back(*it);
          it = queue_.erase(it);
          continue;
        }
        std::shared_ptr<Backend> b = PickBackend(now, (*it)->windowed);
        if (!b) {
          ++it;
          continue;
        }
        std::shared_ptr<Job> job = *it;
        it = queue_.erase(it);
        Dispatch(job, b);
      }
      if (!ready.empty()) {
        lock.unlock();
        for (auto& job : ready) job->done(*job->lower, "", 0);
        lock.lock();
      }
      FailHopelessJobs(now);
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    // Shutting down: what never left the queue fails now.
    std::deque<std::shared_ptr<Job>> left;
    left.swap(queue_);
    lock.unlock();
    for (auto& job : left) {
      if (job->done) job->done(absl::CancelledError("the worker pool shut down"), "", job->attempts);
    }
  }

  GrpcPoolOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::map<std::string, std::shared_ptr<Backend>> backends_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<Call*, std::shared_ptr<Call>> calls_;
  int describing_ = 0;
  int callbacks_running_ = 0;  // Evaluate callbacks not yet returned
  bool stopping_ = false;
  absl::Time last_resolve_;
  absl::Time last_usable_ = absl::Now();
  absl::Time last_windowed_usable_ = absl::Now();
  absl::Time last_waiting_warning_ = absl::InfinitePast();
  std::map<std::string, int64_t> file_stamps_;
  std::thread manager_;
};

GrpcWorkerPool::GrpcWorkerPool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcWorkerPool::~GrpcWorkerPool() = default;

absl::StatusOr<std::unique_ptr<GrpcWorkerPool>> GrpcWorkerPool::Create(GrpcPoolOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  absl::Status s = impl->Start();
  if (!s.ok()) return s;
  return std::unique_ptr<GrpcWorkerPool>(new GrpcWorkerPool(std::move(impl)));
}

void GrpcWorkerPool::Submit(int64_t id, const Candidate& candidate, Done done) { impl_->Submit(id, candidate, std::move(done)); }
bool GrpcWorkerPool::SupportsFidelities() const { return impl_->SupportsFidelities(); }
void GrpcWorkerPool::SubmitAt(int64_t id, const Candidate& candidate, int fidelity, std::shared_ptr<const EvaluationResult> lower,
                              Done done) {
  impl_->SubmitAt(id, candidate, fidelity, std::move(lower), std::move(done));
}
int GrpcWorkerPool::Capacity() const { return impl_->Capacity(); }
std::string GrpcWorkerPool::Describe() const { return impl_->Describe(); }
void GrpcWorkerPool::Shutdown() { impl_->Shutdown(); }
void GrpcWorkerPool::CancelQueued() { impl_->CancelQueued(); }
std::vector<std::string> GrpcWorkerPool::Backends() const { return impl_->Backends(); }

}  // namespace fecsearch
