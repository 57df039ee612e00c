// bazel run //workers:worker -- --listen=ADDR [--capacity=N] [--mode=model|command|domain|simulated]
// Serves the Evaluator service for a search's gRPC worker pool (README "Run on a cluster").
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/evaluator.h"
#include "core/paths.h"
#include "core/process_init.h"
#include "core/text_proto.h"
#include "protos/experiment.pb.h"
#include "search/experiment.h"
#include "search/domains/programs/program_domain.h"
#include "search/domains/user_domain.h"
#include "workers/domain_backend.h"
#include "workers/evaluation_backend.h"
#include "workers/worker_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "host:port to serve on (0.0.0.0:PORT for every interface; port 0 = any free port).");
ABSL_FLAG(std::string, name, "", "Name reported with every result (default: the listen address).");
ABSL_FLAG(int, capacity, 1, "Candidates evaluated at a time (each on --eval_threads threads with the model).");
ABSL_FLAG(std::string, mode, "model",
          "model (the built-in evaluator), command (an external program per candidate), domain (a user-defined "
          "domain's evaluator and probe commands, from --experiment; docs/DOMAINS.md) or simulated.");
ABSL_FLAG(std::string, experiment, "",
          "Experiment spec: model mode uses its evaluation section (default: built-in defaults); domain mode its "
          "search_space.user_domain (required).");
ABSL_FLAG(std::string, model, "", "Hugging Face model directory (overrides the experiment; docs/MODELS.md).");
ABSL_FLAG(std::string, text, "", "Evaluation text (overrides the experiment; default: the model directory's eval.txt).");
ABSL_FLAG(int, eval_threads, 0, "Threads of one evaluation (windows, matrix products, heads; default 0: the experiment's evaluation.threads, 1); --capacity x --eval_threads should not exceed the cores.");
ABSL_FLAG(std::string, command, "", "command mode: the program and its arguments, space-separated (no shell).");
ABSL_FLAG(double, command_timeout_seconds, 600, "command mode: kill the program after this long.");
ABSL_FLAG(double, simulate_seconds, 1.0, "simulated mode: seconds each evaluation sleeps.");
ABSL_FLAG(std::string, auth_token_file, "", "File with the bearer token every call must carry (except health checks).");
ABSL_FLAG(std::string, tls_cert, "", "PEM server certificate (chain); with --tls_key enables TLS.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(int, max_request_bytes, 4 << 20, "Larger requests get RESOURCE_EXHAUSTED.");
ABSL_FLAG(double, shutdown_grace_seconds, 30, "On SIGTERM, wait this long for evaluations in flight before handing them back.");
ABSL_FLAG(std::string, health_listen, "",
          "Also serve grpc.health.v1.Health alone, in plaintext, on this host:port (for probes that cannot "
          "speak TLS, e.g. the kubelet's gRPC probes). Default: none.");
ABSL_FLAG(std::string, port_file, "", "Write the bound port to this file once serving (for scripts using port 0).");

namespace fecsearch {
namespace {

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "worker: %s\n", message.c_str());
  return code;
}

absl::StatusOr<std::string> ReadSecret(const std::string& path, const char* what) {
  std::string text;
  absl::Status s = ReadFile(ResolveInputPath(path), &text);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
  return text;
}

int Main() {
  // Signals are taken by one thread (sigwait), never in a handler: Shutdown takes locks.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  WorkerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.name = absl::GetFlag(FLAGS_name);
  options.capacity = absl::GetFlag(FLAGS_capacity);
  options.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  options.shutdown_grace = absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds));
  options.health_listen = absl::GetFlag(FLAGS_health_listen);
  if (options.capacity < 1) return Fail("--capacity must be at least 1", 2);
  if (!absl::GetFlag(FLAGS_auth_token_file).empty()) {
    auto token = ReadSecret(absl::GetFlag(FLAGS_auth_token_file), "--auth_token_file");
    if (!token.ok()) return Fail(std::string(token.status().message()), 2);
    options.auth_token = std::string(absl::StripAsciiWhitespace(*token));
    if (options.auth_token.empty()) return Fail("--auth_token_file: the file is empty", 2);
  }
  if (absl::GetFlag(FLAGS_tls_cert).empty() != absl::GetFlag(FLAGS_tls_key).empty()) {
    return Fail("--tls_cert and --tls_key go together", 2);
  }
  if (!absl::GetFlag(FLAGS_tls_cert).empty()) {
    auto cert = ReadSecret(absl::GetFlag(FLAGS_tls_cert), "--tls_cert");
    auto key = ReadSecret(absl::GetFlag(FLAGS_tls_key), "--tls_key");
    if (!cert.ok()) return Fail(std::string(cert.status().message()), 2);
    if (!key.ok()) return Fail(std::string(key.status().message()), 2);
    options.tls_cert_pem = *cert;
    options.tls_key_pem = *key;
  }

  std::unique_ptr<EvaluationBackend> backend;
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "model") {
    EvaluationSpec spec;
    if (!absl::GetFlag(FLAGS_experiment).empty()) {
      auto e = LoadExperiment(absl::GetFlag(FLAGS_experiment));
      if (!e.ok()) return Fail(std::string(e.status().message()), 2);
      spec = e->spec.evaluation();
    }
    if (!absl::GetFlag(FLAGS_model).empty()) {
      spec.set_model_path(absl::GetFlag(FLAGS_model));
      spec.clear_text_path();
    }
    if (!absl::GetFlag(FLAGS_text).empty()) spec.set_text_path(absl::GetFlag(FLAGS_text));
    if (absl::GetFlag(FLAGS_eval_threads) < 0 || absl::GetFlag(FLAGS_eval_threads) > 256) {
      return Fail(absl::StrCat("--eval_threads: ", absl::GetFlag(FLAGS_eval_threads), " is outside 0..256 (0 = the experiment's)"), 2);
    }
    if (absl::GetFlag(FLAGS_eval_threads) > 0) spec.set_threads(absl::GetFlag(FLAGS_eval_threads));
    std::fprintf(stderr, "worker: loading %s ...\n", spec.model_path().c_str());
    auto ctx = EvaluationContext::Create(spec);
    if (!ctx.ok()) return Fail(std::string(ctx.status().message()), 2);
    std::fprintf(stderr, "worker: %s, %lld parameters; text: %s\n", (*ctx)->config().model_type.c_str(),
                 static_cast<long long>((*ctx)->model().parameter_count()), (*ctx)->text_description().c_str());
    (*ctx)->baseline();  // computed once, before serving
    backend = MakeModelBackend(*ctx);
  } else if (mode == "command") {
    std::vector<std::string> argv = absl::StrSplit(absl::GetFlag(FLAGS_command), ' ', absl::SkipEmpty());
    if (argv.empty()) return Fail("--mode=command needs --command='PROGRAM ARGS...'", 2);
    backend = MakeCommandBackend(argv, absl::Seconds(absl::GetFlag(FLAGS_command_timeout_seconds)));
  } else if (mode == "domain") {
    if (absl::GetFlag(FLAGS_experiment).empty()) return Fail("--mode=domain needs --experiment=SPEC with a search_space.user_domain", 2);
    auto e = LoadExperiment(absl::GetFlag(FLAGS_experiment));
    if (!e.ok()) return Fail(std::string(e.status().message()), 2);
    if (e->spec.search_space().representation() == SearchSpaceSpec::PROGRAM) {
      auto domain = programs::ProgramDomain::Create(e->spec, e->spec.fec());
      if (!domain.ok()) return Fail(absl::StrCat(e->source, ": ", domain.status().message()), 2);
      std::fprintf(stderr, "worker: domain %s; context %s\n", (*domain)->name().c_str(), (*domain)->context_fingerprint().c_str());
      backend = MakeDomainBackend(std::move(*domain));
    } else {
      if (!e->spec.search_space().has_user_domain()) {
        return Fail(absl::StrCat(e->source, ": --mode=domain needs search_space.user_domain (docs/DOMAINS.md) or representation PROGRAM"), 2);
      }
      if (!e->spec.search_space().user_domain().has_evaluator()) {
        return Fail(absl::StrCat(e->source, ": search_space.user_domain.evaluator: a domain worker runs the evaluator command; set it"), 2);
      }
      auto domain = UserDomain::Create(e->spec);
      if (!domain.ok()) return Fail(absl::StrCat(e->source, ": ", domain.status().message()), 2);
      std::fprintf(stderr, "worker: domain %s; evaluator %s; probe %s; context %s\n", (*domain)->name().c_str(),
                   absl::StrJoin((*domain)->spec().evaluator().argv(), " ").c_str(),
                   (*domain)->spec().has_probe() ? absl::StrJoin((*domain)->spec().probe().argv(), " ").c_str() : "(none)",
                   (*domain)->context_fingerprint().c_str());
      backend = MakeUserDomainBackend(std::move(*domain));
    }
  } else if (mode == "simulated") {
    backend = MakeSimulatedBackend(absl::GetFlag(FLAGS_simulate_seconds));
  } else {
    return Fail(absl::StrCat("--mode: '", mode, "' is not model, command, domain or simulated"), 2);
  }

  auto server = WorkerServer::Start(options, std::move(backend));
  if (!server.ok()) return Fail(std::string(server.status().message()), 2);
  std::fprintf(stderr, "worker: serving %s on %s (capacity %d, mode %s%s%s)\n", options.name.empty() ? (*server)->address().c_str() : options.name.c_str(),
               (*server)->address().c_str(), options.capacity, mode.c_str(), options.tls_cert_pem.empty() ? "" : ", TLS",
               options.auth_token.empty() ? "" : ", token required");
  if ((*server)->health_port() != 0) {
    std::fprintf(stderr, "worker: health checks (plaintext, grpc.health.v1 only) on port %d\n", (*server)->health_port());
  }
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    const std::string path = ResolveOutputPath(absl::GetFlag(FLAGS_port_file));
    absl::Status s = WriteFileAtomically(path, absl::StrCat((*server)->port(), "\n"));
    if (!s.ok()) return Fail(std::string(s.message()), 1);
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr, "worker: signal %d: finishing %d evaluation(s) in flight (up to %.0f s), then exiting\n", sig,
                 (*server)->in_flight(), absl::GetFlag(FLAGS_shutdown_grace_seconds));
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.join();
  std::fprintf(stderr, "worker: stopped after %lld evaluations\n", static_cast<long long>((*server)->served()));
  return 0;
}

}  // namespace
}  // namespace fecsearch

int main(int argc, char** argv) {
  fecsearch::InitProcess();
  absl::SetProgramUsageMessage(
      "Serves KV-cache compression evaluations to fecsearch searches over gRPC.\n"
      "  bazel run //workers:worker -- --listen=0.0.0.0:50051 --capacity=2\n"
      "  bazel run //search -- --workers=host1:50051,host2:50051");
  absl::ParseCommandLine(argc, argv);
  return fecsearch::Main();
}
