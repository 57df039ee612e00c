// A worker: serves the Evaluator service (gRPC callback API), the standard health service and
// server reflection; evaluates up to `capacity` candidates at a time on its own threads.
#ifndef FECSEARCH_WORKERS_WORKER_SERVER_H_
#define FECSEARCH_WORKERS_WORKER_SERVER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "workers/evaluation_backend.h"

namespace fecsearch {

// What DescribeResponse.protocol_version reports: 2 = window subsets and rungs
// (EvaluateRequest.windows, .rung); protocol-1 peers send and expect whole evaluations.
inline constexpr int kWorkerProtocolVersion = 2;

struct WorkerOptions {
  // host:port to listen on; port 0 picks a free one. Loopback by default.
  std::string listen = "127.0.0.1:50051";
  // Reported in Describe and recorded with every result. Default: the bound address.
  std::string name;
  // Candidates evaluated at a time.
  int capacity = 1;
  // Bearer token required on every call except the health service ("" = none).
  std::string auth_token;
  // TLS: PEM server certificate (chain) and private key. Both or neither.
  std::string tls_cert_pem, tls_key_pem;
  // Larger requests are refused with RESOURCE_EXHAUSTED.
  int max_request_bytes = 4 << 20;
  // How long Shutdown waits for in-flight evaluations before handing them back.
  absl::Duration shutdown_grace = absl::Seconds(30);
  // Optional second listener, always plaintext, serving only grpc.health.v1.Health (same
  // status as the main port): for probes that cannot speak TLS, such as the kubelet's gRPC
  // probes. "" = none.
  std::string health_listen;
};

class WorkerServer {
 public:
  // Binds and starts serving. Errors: a bad address or a port in use (UNAVAILABLE), bad
  // TLS material (INVALID_ARGUMENT).
  static absl::StatusOr<std::unique_ptr<WorkerServer>> Start(WorkerOptions options,
                                                             std::unique_ptr<EvaluationBackend> backend);
  ~WorkerServer();

  // "host:port" actually bound.
  const std::string& address() const;
  int port() const;
  // Port of the health-only listener (0 without one).
  int health_port() const;
  // Stops admitting evaluations (new calls get UNAVAILABLE, health says NOT_SERVING), waits
  // up to the grace period for those in flight, then cancels the rest: their callers
  // dispatch them to another worker. Idempotent; safe from any thread (not a signal handler).
  void Shutdown();
  // Blocks until Shutdown has completed.
  void Wait();

  int64_t served() const;
  int in_flight() const;

  class Impl;

 private:
  explicit WorkerServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_WORKERS_WORKER_SERVER_H_
