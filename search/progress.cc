// Progress bar and log lines.
#include "search/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fecsearch {

TerminalProgress::TerminalProgress(FILE* out, Mode mode, double log_every_seconds)
    : out_(out), mode_(mode), every_(log_every_seconds) {}

TerminalProgress::Mode TerminalProgress::AutoMode(FILE* out) {
  const char* term = std::getenv("TERM");
  if (isatty(fileno(out)) && !(term && std::string(term) == "dumb")) return Mode::kBar;
  return Mode::kLog;
}

std::string TerminalProgress::Duration(double s) {
  if (s < 60) return absl::StrFormat("%.1fs", s);
  const long t = std::lround(s);
  if (t < 3600) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%dh%02dm%02ds", t / 3600, (t / 60) % 60, t % 60);
}

namespace {

// Fraction of the budget used (the tightest of the three budgets), or -1 if none is set.
double Fraction(const Progress& p) {
  double f = -1;
  if (p.max_evaluations > 0) {
    f = std::max(f, (p.multi_fidelity ? p.compute : static_cast<double>(p.evaluations)) / p.max_evaluations);
  }
  if (p.max_candidates > 0) f = std::max(f, static_cast<double>(p.candidates) / p.max_candidates);
  if (p.max_wall_seconds > 0) f = std::max(f, p.elapsed_seconds / p.max_wall_seconds);
  return std::min(f, 1.0);
}

}  // namespace

std::string TerminalProgress::Line(const Progress& p) {
  std::string evals = p.max_evaluations > 0 ? absl::StrFormat("%d/%d evals", p.evaluations, p.max_evaluations)
                                            : absl::StrFormat("%d evals", p.evaluations);
  if (p.multi_fidelity) {
    // Compute in full-evaluation equivalents is what the budget counts.
    evals = p.max_evaluations > 0
                ? absl::StrFormat("compute %.2f/%d full evals (%d evaluations, %d promotions)", p.compute, p.max_evaluations,
                                  p.evaluations, p.promotions)
                : absl::StrFormat("compute %.2f full evals (%d evaluations, %d promotions)", p.compute, p.evaluations,
                                  p.promotions);
  }
  if (p.screening) absl::StrAppend(&evals, absl::StrFormat(", %d screened out", p.screened));
  std::string s = absl::StrFormat("%s, %d candidates, hit rate %.1f%%, front %d, %s elapsed", evals, p.candidates,
                                  100 * p.hit_rate(), p.front_size, Duration(p.elapsed_seconds));
  const double f = Fraction(p);
  if (!p.finished && f > 0.02) absl::StrAppend(&s, ", ETA ", Duration(p.elapsed_seconds * (1 - f) / f));
  return s;
}

void TerminalProgress::Update(const Progress& p) {
  if (mode_ == Mode::kNone) return;
  if (mode_ == Mode::kBar) {
    if (!p.finished && p.elapsed_seconds - last_ < 0.1) return;
    last_ = p.elapsed_seconds;
    const double f = std::max(0.0, Fraction(p));
    const int width = 24, filled = static_cast<int>(f * width);
    std::string bar(filled, '=');
    if (filled < width) bar += '>';
    bar.resize(width, ' ');
    std::fprintf(out_, "\r[%s] %s\033[K", bar.c_str(), Line(p).c_str());
    if (p.finished) std::fprintf(out_, "\n");
    std::fflush(out_);
    drawn_ = true;
    return;
  }
  if (!p.finished && p.elapsed_seconds - last_ < every_) return;
  last_ = p.elapsed_seconds;
  std::fprintf(out_, "search: %s\n", Line(p).c_str());
  std::fflush(out_);
}

}  // namespace fecsearch
