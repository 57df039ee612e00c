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
    *response.mutable_result() = evaluator_.Evaluate(request.candidate());
    return response;
  }
  absl::Status Validate(const Candidate& candidate) const override {
    return CompileCandidate(candidate, evaluator_.context().config(), evaluator_.context().window_length()).status();
  }
  std::string mode() const override { return "model"; }
  std::string context_fingerprint() const override { return evaluator_.context().fingerprint(); }

 private:
  Evaluator evaluator_;
};

std::string Tail(const std::string& s, size_t n) { return s.size() <= n ? s : "..." + s.substr(s.size() - n); }

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
    std::string out, err;
    int exit_code = 0;
    absl::Status run = Run(input, &out, &err, &exit_code);
    const std::string command = absl::StrJoin(argv_, " ");
    if (!run.ok()) return run;
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
  // Spawns the command with pipes on stdin/stdout/stderr, feeds `input`, collects output
  // until it exits or the timeout passes (then kills it).
  absl::Status Run(const std::string& input, std::string* out, std::string* err, int* exit_code) {
    int in_pipe[2], out_pipe[2], err_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
      return absl::ResourceExhaustedError(absl::StrCat("pipe: ", std::strerror(errno)));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    // Its own process group, so that a timeout also kills what it started.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    std::vector<char*> args;
    for (std::string& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid;
    const int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(in_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (rc != 0) {
      close(in_pipe[1]);
      close(out_pipe[0]);
      close(err_pipe[0]);
      return absl::NotFoundError(absl::StrCat("cannot start '", argv_[0], "': ", std::strerror(rc)));
    }
    // Write stdin from a thread so that a command that writes before reading cannot deadlock.
    std::thread writer([fd = in_pipe[1], &input] {
      signal(SIGPIPE, SIG_IGN);
      size_t done = 0;
      while (done < input.size()) {
        const ssize_t n = write(fd, input.data() + done, input.size() - done);
        if (n <= 0) break;
        done += n;
      }
      close(fd);
    });
    const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(timeout_);
    bool timed_out = false;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[65536];
    while (open_fds > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      if (poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000))) < 0 && errno != EINTR) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
        if (n > 0) {
          (i == 0 ? out : err)->append(buf, n);
        } else {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
    // Output closed: the command still has until the deadline to exit (it may have closed
    // its output and gone on running).
    int status = 0;
    bool exited = false;
    while (!timed_out) {
      const pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid || (w < 0 && errno != EINTR)) {
        exited = true;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        timed_out = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (timed_out) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
    }
    for (pollfd& f : fds)
      if (f.fd >= 0) close(f.fd);
    if (!exited) waitpid(pid, &status, 0);
    writer.join();
    if (timed_out) {
      return absl::AbortedError(absl::StrCat("'", argv_[0], "' took longer than ", absl::FormatDuration(timeout_),
                                                      " and was killed; stderr: ", Tail(*err, 2000)));
    }
    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return absl::OkStatus();
  }

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
