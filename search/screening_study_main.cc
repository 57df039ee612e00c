// screening_study: how well the probe's nearly free numbers rank KV-cache candidates against
// their full evaluations (issue "multi-fidelity, probe-screened search", item 3; results in
// docs/BENCHMARKS.md):
//   bazel run //search:screening_study -- DB...
// For every evaluated candidate of the databases' KV-cache experiments it reads the stored
// result: the per-layer attention errors on the probe window (LayerMetrics.
// attention_relative_error: compressed against exact attention on uncompressed inputs, the
// computation the functional hash runs) and the analytic bits (the plan's exact bits at the
// deployment context), against the measured objectives (perplexity increase, effective bits).
// It prints Spearman rank correlations, and what a screen that skips every candidate whose
// predicted point (analytic bits, probe error) another candidate dominates would have done:
// how many evaluations it saves and how many members of the true front it discards. From the
// per-window shares of results (evaluator version with WindowResult) it also ranks the
// candidates by their objectives on the first k evaluation windows — what a fidelity of k
// windows would have measured (core/evaluator.h, ResultOnWindows) — against all windows.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/evaluator.h"
#include "core/process_init.h"
#include "hashing/sqlite_db.h"
#include "protos/evaluation.pb.h"

namespace fecsearch {
namespace {

int Fail(const std::string& m) {
  std::fprintf(stderr, "screening_study: %s\n", m.c_str());
  return 2;
}

// Ranks from 1, ties sharing their mean rank.
std::vector<double> Ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> r(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double mean = (i + j) / 2.0 + 1;
    for (size_t k = i; k <= j; ++k) r[order[k]] = mean;
    i = j + 1;
  }
  return r;
}

// Pearson correlation of the ranks.
double Spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const std::vector<double> ra = Ranks(a), rb = Ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0;
}

struct Point {
  double bits, increase;            // measured
  double analytic_bits;             // predicted bits
  double mean_error, max_error;     // probe
  bool feasible;                    // recorded violation == 0
  std::vector<double> prefix_increase;  // perplexity increase on the first k windows, k = 1..
  std::vector<double> prefix_bits;
};

bool Dominates(double a0, double a1, double b0, double b1) { return a0 <= b0 && a1 <= b1 && (a0 < b0 || a1 < b1); }

int Main(int argc, char** argv) {
  if (argc < 2) return Fail("usage: screening_study DB... (KV-cache search databases)");
  std::vector<Point> pts;
  for (int i = 1; i < argc; ++i) {
    auto db = SqliteDb::Open(argv[i], true);
    if (!db.ok()) return Fail(std::string(db.status().message()));
    auto st = (*db)->Prepare("SELECT result, violation FROM candidates WHERE outcome = 'MISS' AND result IS NOT NULL ORDER BY id");
    if (!st.ok()) return Fail(std::string(st.status().message()));
    int64_t row_number = 0;
    while (true) {
      auto row = st->Step();
      if (!row.ok()) return Fail(std::string(row.status().message()));
      if (!*row) break;
      ++row_number;
      EvaluationResult r;
      if (!r.ParseFromString(st->Blob(0))) return Fail(absl::StrCat(argv[i], ": evaluated row ", row_number, ": unreadable result"));
      if (r.status().code() != 0 || r.layers_size() == 0) continue;
      Point p;
      p.bits = r.objectives().effective_bits();
      p.increase = r.objectives().perplexity_increase_percent();
      p.analytic_bits = r.analytic_effective_bits();
      p.mean_error = 0;
      p.max_error = 0;
      for (const LayerMetrics& l : r.layers()) {
        p.mean_error += l.attention_relative_error() / r.layers_size();
        p.max_error = std::max(p.max_error, l.attention_relative_error());
      }
      p.feasible = st->IsNull(1) || st->Double(1) == 0;
      std::vector<int> prefix;
      for (int k = 0; k < r.windows_size(); ++k) {
        prefix.push_back(r.windows(k).index());
        auto lower = ResultOnWindows(r, prefix);
        if (!lower.ok()) return Fail(absl::StrCat(argv[i], ": evaluated row ", row_number, ": ", lower.status().message()));
        p.prefix_increase.push_back(lower->objectives().perplexity_increase_percent());
        p.prefix_bits.push_back(lower->objectives().effective_bits());
      }
      pts.push_back(p);
    }
  }
  if (pts.size() < 10) return Fail(absl::StrCat("only ", pts.size(), " evaluated KV-cache candidates; need at least 10"));
  auto col = [&](double Point::*f) {
    std::vector<double> v;
    for (const Point& p : pts) v.push_back(p.*f);
    return v;
  };
  std::printf("%zu evaluated candidates\n\n", pts.size());
  std::printf("| predictor | measured | Spearman |\n| --- | --- | --- |\n");
  std::printf("| mean probe attention error over layers | perplexity increase (%%) | %.3f |\n",
              Spearman(col(&Point::mean_error), col(&Point::increase)));
  std::printf("| max probe attention error over layers | perplexity increase (%%) | %.3f |\n",
              Spearman(col(&Point::max_error), col(&Point::increase)));
  std::printf("| analytic bits (deployment context) | effective bits (measured) | %.3f |\n",
              Spearman(col(&Point::analytic_bits), col(&Point::bits)));
  // Fidelities: the first k windows against all of them, over the results that keep them.
  size_t windows = 0;
  for (const Point& p : pts) windows = std::max(windows, p.prefix_increase.size());
  if (windows > 1) {
    std::printf("\nFidelities: objectives on the first k evaluation windows against all %zu\n", windows);
    std::printf("| windows (k) | compute (share of a full evaluation) | candidates | Spearman, perplexity increase | Spearman, effective bits |\n");
    std::printf("| --- | --- | --- | --- | --- |\n");
    for (size_t k = 1; k < windows; ++k) {
      std::vector<double> low, full, low_bits, full_bits;
      for (const Point& p : pts) {
        if (p.prefix_increase.size() != windows) continue;
        low.push_back(p.prefix_increase[k - 1]);
        full.push_back(p.prefix_increase.back());
        low_bits.push_back(p.prefix_bits[k - 1]);
        full_bits.push_back(p.prefix_bits.back());
      }
      std::printf("| %zu | %.2f | %zu | %.3f | %.3f |\n", k, static_cast<double>(k) / windows, low.size(), Spearman(low, full),
                  Spearman(low_bits, full_bits));
    }
  }
  // The screens, and the truth: the feasible front on the measured objectives.
  // (A static screen over the whole sample: a search knows only the candidates before, so it
  // screens out fewer — this bounds both its savings and its losses from above.)
  const size_t n = pts.size();
  std::vector<bool> front(n, false);
  for (size_t i = 0; i < n; ++i) {
    bool dominated = false;
    for (size_t j = 0; j < n; ++j) {
      if (j != i && pts[j].feasible && Dominates(pts[j].bits, pts[j].increase, pts[i].bits, pts[i].increase)) dominated = true;
    }
    front[i] = pts[i].feasible && !dominated;
  }
  std::printf("\nStatic screens over the sample: skip a candidate whose predicted point another candidate's dominates.\n");
  std::printf("| predicted point | candidates | screened out | on the true front (feasible, measured) | front members screened out |\n");
  std::printf("| --- | --- | --- | --- | --- |\n");
  auto screen = [&](const char* name, double Point::*bits) {
    size_t on_front = 0, skip = 0, lost = 0;
    for (size_t i = 0; i < n; ++i) {
      bool predicted_dominated = false;
      for (size_t j = 0; j < n && !predicted_dominated; ++j) {
        predicted_dominated = j != i && Dominates(pts[j].*bits, pts[j].mean_error, pts[i].*bits, pts[i].mean_error);
      }
      on_front += front[i];
      skip += predicted_dominated;
      lost += front[i] && predicted_dominated;
    }
    std::printf("| %s | %zu | %zu (%.1f %%) | %zu | %zu (%.1f %%) |\n", name, n, skip, 100.0 * skip / n, on_front, lost,
                on_front ? 100.0 * lost / on_front : 0.0);
  };
  screen("(analytic bits, mean probe error)", &Point::analytic_bits);
  screen("(measured bits, mean probe error): the error predictor alone", &Point::bits);
  return 0;
}

}  // namespace
}  // namespace fecsearch

int main(int argc, char** argv) {
  fecsearch::InitProcess();
  return fecsearch::Main(argc, argv);
}
