// Runs a program (no shell) with input on its stdin, collecting stdout and stderr, killing it
// and its process group after a timeout. Used for user commands: external evaluators, probes.
#ifndef FECSEARCH_CORE_SUBPROCESS_H_
#define FECSEARCH_CORE_SUBPROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fecsearch {

struct SubprocessResult {
  int exit_code = 0;  // 128 + signal if it was killed by one
  std::string out, err;
};

// argv[0] is looked up on PATH. NOT_FOUND if it cannot start; DEADLINE_EXCEEDED (quoting the
// tail of stderr) if it runs longer than `timeout`, also after closing its output. Stdin is
// written from a thread, so a program that writes before it reads cannot deadlock.
// It runs in `cwd` ("" = this process's working directory).
absl::StatusOr<SubprocessResult> RunSubprocess(std::vector<std::string> argv, const std::string& input,
                                               absl::Duration timeout, const std::string& cwd = "");

// The last `n` bytes of `s` (with "..." before when cut), for quoting output in errors.
std::string Tail(const std::string& s, size_t n);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_SUBPROCESS_H_
