// Worker backends: model, external command, simulated.
#include "workers/evaluation_backend.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/pipeline_graph.h"
#include "google/protobuf/util/json_util.h"
#include "core/subprocess.h"
#include "hashing/functional_hasher.h"

extern char** environ;

namespace fecsearch {
namespace {

class ModelBackend : public EvaluationBackend {
 public:
  explicit ModelBackend(std::shared_ptr<EvaluationContext> context) : evaluator_(std::move(context)) {}
  absl::StatusOr<EvaluateResponse> Evaluate(const EvaluateRequest& request) override {
    EvaluateResponse response;
    response.set_candidate_id(request.candidate_id());
    if (request.windows_size() == 0) {
      *response.mutable_result() = evaluator_.Evaluate(request.candidate());
    } else {
      // The server checked the indices against WindowCount() (increasing, in range).
      const std::vector<int> windows(request.windows().begin(), request.windows().end());
      *response.mutable_result() = evaluator_.Evaluate(request.candidate(), &windows);
    }
    return response;
  }
  int WindowCount() const override { return evaluator_.context().spec().eval_windows_size(); }
  absl::Status Validate(const Candidate& candidate) const override {
    return CompileCandidate(candidate, evaluator_.context().config(), evaluator_.context().window_length()).status();
  }
  std::string mode() const override { return "model"; }
  std::string context_fingerprint() const override { return evaluator_.context().fingerprint(); }

 private:
  Evaluator evaluator_;
};

class CommandBackend : public EvaluationBackend {
 public:
  CommandBackend(std::vector<std::string> argv, absl::Duration timeout) : argv_(std::move(argv)), timeout_(timeout) {}
  std::string mode() const override { return "command"; }
  std::string context_fingerprint() const override { return ""; }

  absl::StatusOr<EvaluateResponse> Evaluate(const EvaluateRequest& request) override {
    std::string input;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = false;
    auto printed = google::protobuf::util::MessageToJsonString(request, &input, options);
    if (!printed.ok()) return absl::InternalError(absl::StrCat("cannot encode the request as JSON: ", printed.ToString()));
    auto run = RunSubprocess(argv_, input, timeout_);
    const std::string command = absl::StrJoin(argv_, " ");
    // ABORTED for a timeout too: the candidate's evaluation failed, not the worker.
    if (!run.ok()) return absl::IsDeadlineExceeded(run.status()) ? absl::AbortedError(run.status().message()) : run.status();
    const std::string& out = run->out;
    const std::string& err = run->err;
    const int exit_code = run->exit_code;
    if (exit_code != 0) {
      // ABORTED: the candidate's evaluation failed, not the worker (the pool retries it once
      // elsewhere and keeps the worker in rotation).
      return absl::AbortedError(absl::StrCat("'", command, "' exited with status ", exit_code, "; stderr: ", Tail(err, 2000)));
    }
    EvaluateResponse response;
    google::protobuf::util::JsonParseOptions parse;
    parse.ignore_unknown_fields = true;
    auto parsed = google::protobuf::util::JsonStringToMessage(out, &response, parse);
    if (!parsed.ok() || !response.has_result()) {
      // Also accept a bare EvaluationResult.
      EvaluationResult result;
      auto as_result = google::protobuf::util::JsonStringToMessage(out, &result, parse);
      if (!as_result.ok() || !result.has_status()) {
        return absl::InvalidArgumentError(absl::StrCat("'", command, "' printed no EvaluateResponse JSON (",
                                                       parsed.ToString(), "): ", Tail(out, 500),
                                                       err.empty() ? "" : absl::StrCat("; stderr: ", Tail(err, 1000))));
      }
      *response.mutable_result() = result;
    }
    response.set_candidate_id(request.candidate_id());
    return response;
  }

 private:
  std::vector<std::string> argv_;
  absl::Duration timeout_;
};

class SimulatedBackend : public EvaluationBackend {
 public:
  explicit SimulatedBackend(double seconds) : seconds_(seconds) {}
  std::string mode() const override { return "simulated"; }
  std::string context_fingerprint() const override { return ""; }
  absl::StatusOr<EvaluateResponse> Evaluate(const EvaluateRequest& request) override {
    if (seconds_ > 0) absl::SleepFor(absl::Seconds(seconds_));
    const Hash128 h = HashBytes(request.candidate().SerializeAsString());
    EvaluateResponse response;
    response.set_candidate_id(request.candidate_id());
    EvaluationResult* r = response.mutable_result();
    r->mutable_status()->set_code(0);
    r->mutable_objectives()->set_effective_bits(2 + (h.lo % 1400) / 100.0);
    r->mutable_objectives()->set_perplexity_increase_percent((h.hi % 5000) / 100.0);
    r->mutable_objectives()->set_mean_nll(1.6 + (h.hi % 5000) / 1e5);
    r->mutable_objectives()->set_perplexity(5.0);
    r->set_cost_seconds(seconds_);
    r->set_evaluator_version("simulated");
    return response;
  }

 private:
  double seconds_;
};

}  // namespace

std::unique_ptr<EvaluationBackend> MakeModelBackend(std::shared_ptr<EvaluationContext> context) {
  return std::make_unique<ModelBackend>(std::move(context));
}

std::unique_ptr<EvaluationBackend> MakeCommandBackend(std::vector<std::string> argv, absl::Duration timeout) {
  return std::make_unique<CommandBackend>(std::move(argv), timeout);
}

std::unique_ptr<EvaluationBackend> MakeSimulatedBackend(double seconds) {
  return std::make_unique<SimulatedBackend>(seconds);
}

}  // namespace fecsearch
