// Progress display of a running search: a live bar on a terminal, plain log lines otherwise.
#ifndef FECSEARCH_SEARCH_PROGRESS_H_
#define FECSEARCH_SEARCH_PROGRESS_H_

#include <cstdio>
#include <string>

#include "search/controller.h"

namespace fecsearch {

class TerminalProgress : public ProgressSink {
 public:
  enum class Mode { kBar, kLog, kNone };
  // kBar redraws one line of `out` at most 10 times a second; kLog prints a line every
  // `log_every_seconds` and at the end.
  TerminalProgress(FILE* out, Mode mode, double log_every_seconds = 10);
  // Bar on a terminal, log lines otherwise.
  static Mode AutoMode(FILE* out);
  void Update(const Progress& p) override;

  // "87/160 evals, 214 candidates, hit rate 59.3%, front 12, 1m02s elapsed, ETA 40s".
  static std::string Line(const Progress& p);
  // "1h02m03s", "4m05s", "12.3s".
  static std::string Duration(double seconds);

 private:
  FILE* out_;
  Mode mode_;
  double every_;
  double last_ = -1e9;
  bool drawn_ = false;
};

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_PROGRESS_H_
