// HTML report with inline SVG.
#include "search/report.h"

#include <algorithm>
#include <map>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "core/text_proto.h"
#include "hashing/metrics.h"

namespace fecsearch {
namespace {

std::string Escape(const std::string& s) {
  return absl::StrReplaceAll(s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

// Round tick steps (1, 2, 5 x 10^k).
std::vector<double> Ticks(double lo, double hi, int target = 6) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) t.push_back(std::fabs(v) < 1e-12 ? 0 : v);
  return t;
}

// A linear x/y plot area.
class Plot {
 public:
  Plot(std::string title, std::string xlabel, std::string ylabel, double x0, double x1, double y0, double y1)
      : title_(std::move(title)), xlabel_(std::move(xlabel)), ylabel_(std::move(ylabel)) {
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) y1 = y0 + 1;
    const double px = 0.04 * (x1 - x0), py = 0.06 * (y1 - y0);
    x0_ = x0 - px;
    x1_ = x1 + px;
    y0_ = y0 - py;
    y1_ = y1 + py;
  }
  double X(double v) const { return kLeft + (v - x0_) / (x1_ - x0_) * (kWidth - kLeft - kRight); }
  double Y(double v) const { return kHeight - kBottom - (v - y0_) / (y1_ - y0_) * (kHeight - kTop - kBottom); }
  void Add(const std::string& svg) { body_ += svg; }
  void Circle(double x, double y, double r, const std::string& cls, const std::string& tip) {
    absl::StrAppendFormat(&body_, "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"><title>%s</title></circle>\n",
                          cls, X(x), Y(y), r, Escape(tip));
  }
  void Line(const std::vector<std::pair<double, double>>& pts, const std::string& cls, bool step = false) {
    if (pts.empty()) return;
    std::string d;
    for (size_t i = 0; i < pts.size(); ++i) {
      if (i > 0 && step) absl::StrAppendFormat(&d, " L%.1f,%.1f", X(pts[i].first), Y(pts[i - 1].second));
      absl::StrAppendFormat(&d, "%s%.1f,%.1f", i == 0 ? "M" : " L", X(pts[i].first), Y(pts[i].second));
    }
    absl::StrAppendFormat(&body_, "<path class=\"%s\" d=\"%s\"/>\n", cls, d);
  }
  std::string Render(const std::string& id) const {
    std::string s = absl::StrFormat(
        "<figure><svg id=\"%s\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\">"
        "<text class=\"title\" x=\"%d\" y=\"18\">%s</text>\n",
        id, kWidth, kHeight, kWidth, kHeight, kLeft, Escape(title_));
    absl::StrAppendFormat(&s, "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n", kLeft, kTop,
                          kWidth - kLeft - kRight, kHeight - kTop - kBottom);
    for (double t : Ticks(x0_, x1_)) {
      absl::StrAppendFormat(&s, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\"/>", X(t), X(t), kTop,
                            kHeight - kBottom);
      absl::StrAppendFormat(&s, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", X(t),
                            kHeight - kBottom + 14, t);
    }
    for (double t : Ticks(y0_, y1_)) {
      absl::StrAppendFormat(&s, "<line class=\"grid\" y1=\"%.1f\" y2=\"%.1f\" x1=\"%d\" x2=\"%d\"/>", Y(t), Y(t), kLeft,
                            kWidth - kRight);
      absl::StrAppendFormat(&s, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", kLeft - 4,
                            Y(t) + 4, t);
    }
    absl::StrAppendFormat(&s, "<text class=\"label\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                          (kLeft + kWidth - kRight) / 2, kHeight - 6, Escape(xlabel_));
    absl::StrAppendFormat(&s,
                          "<text class=\"label\" transform=\"translate(14,%d) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
                          (kTop + kHeight - kBottom) / 2, Escape(ylabel_));
    return s + body_ + "</svg></figure>\n";
  }

 private:
  static constexpr int kWidth = 560, kHeight = 360, kLeft = 64, kRight = 16, kTop = 28, kBottom = 44;
  std::string title_, xlabel_, ylabel_, body_;
  double x0_, x1_, y0_, y1_;
};

constexpr char kStyle[] = R"css(
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1180px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; }
svg text { font-size: 11px; fill: #333; } svg .title { font-size: 13px; font-weight: 600; }
.frame { fill: #fbfbfb; stroke: #999; } .grid { stroke: #e4e4e4; }
.candidate-point { fill: #9aa5b1; opacity: 0.55; }
.pareto-point { fill: #d1495b; stroke: #7a1020; }
.chosen-point { fill: none; stroke: #1b5e20; stroke-width: 2.5; }
.front-line { fill: none; stroke: #d1495b; stroke-width: 1.5; }
.series { fill: none; stroke: #2e6fba; stroke-width: 1.8; }
.series2 { fill: none; stroke: #e07b00; stroke-width: 1.8; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
td.text, th.text { text-align: left; }
.summary td { text-align: left; }
code { font-size: 0.85em; }
)css";

// "0.123 bits" / "+1.50 %" / "5.0294".
std::string Format(double v, const MetricInfo& m) {
  const std::string number = std::fabs(v) >= 1e5 || (v != 0 && std::fabs(v) < 1e-3) ? absl::StrFormat("%.4g", v)
                                                                                      : absl::StrFormat("%.4f", v);
  return m.unit.empty() ? number : absl::StrCat(number, " ", m.unit);
}

}  // namespace

int ChosenConfiguration(const ObjectiveSet& objectives, const SearchResult& result) {
  int best = -1;
  double best_value = 0;
  for (int i : result.front) {
    Individual ind;
    objectives.Score(result.records[i].objectives, &ind);
    const double v = objectives.Scalarize(ind);
    if (best < 0 || v < best_value) {
      best = i;
      best_value = v;
    }
  }
  return best;
}

std::string RenderReport(const ReportInput& in) {
  const SearchResult& r = in.result;
  const Progress& p = r.progress;
  const ObjectiveSet& objectives = *in.objectives;
  const std::vector<ObjectiveSet::Entry>& entries = objectives.entries();
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>fecsearch report: ",
      Escape(in.spec.name()), "</title><style>", kStyle, "</style></head><body>\n");
  absl::StrAppend(&html, "<h1>fecsearch — ", Escape(in.spec.name()), " (experiment ", r.experiment_id, ")</h1>\n");
  // Summary.
  absl::StrAppend(&html, "<table class=\"summary\">");
  auto row = [&](const std::string& k, const std::string& v) {
    absl::StrAppend(&html, "<tr><th class=\"text\">", Escape(k), "</th><td>", Escape(v), "</td></tr>");
  };
  row("domain", in.domain->name());
  row("algorithm", SearchSpec::Algorithm_Name(in.spec.search().algorithm()));
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(absl::StrCat(e.metric.maximize ? "maximise " : "minimise ", ObjectiveSet::Axis(e.metric)));
  row("objectives", absl::StrJoin(names, "; "));
  row("deduplication", in.dedup);
  row("evaluations", absl::StrFormat("%d completed (%d dispatched), %s", p.evaluations, p.dispatched, in.pool));
  row("candidates", absl::StrFormat("%d: %d cache hits, %d merged with a running evaluation, %d partial hits, %d misses, %d invalid, %d failed",
                                    p.candidates, p.hits, p.merges, p.partial_hits, p.misses, p.invalid, p.failed));
  row("cache hit rate", absl::StrFormat("%.1f %%", 100 * p.hit_rate()));
  if (p.multi_fidelity) {
    std::vector<std::string> names;
    for (const Fidelity& f : in.domain->Fidelities()) names.push_back(f.name);
    row("fidelities", absl::StrFormat("%s; compute %.2f full-evaluation equivalents, %d promotions, %d candidates stopped "
                                      "below the full evaluation (not plotted, not on the front)",
                                      absl::StrJoin(names, " / "), p.compute, p.promotions, p.below_full));
  }
  if (p.screening) {
    const std::string pool =
        p.initial_pool > 0 ? absl::StrFormat("initial population chosen from %d random candidates by prediction (%d not chosen, recorded SCREENED); ", p.initial_pool, p.pool_rejected) : "";
    const std::string skipped =
        !p.screen_skips
            ? ""
            : absl::StrFormat("%d candidates skipped as predicted dominated (recorded SCREENED, not evaluated); ", p.screened);
    row("probe screen", absl::StrFormat("%s%spredictions %.1f s", pool, skipped, p.screen_seconds));
  }
  row("wall time", absl::StrFormat("%.1f s", p.elapsed_seconds));
  // The hypervolume's unit is the product of the first two objectives' units.
  std::string hv_unit;
  if (entries.size() >= 2) {
    auto u = [](const MetricInfo& m) { return m.unit.empty() ? m.name : m.unit; };
    hv_unit = absl::StrCat(" ", u(entries[0].metric), " x ", u(entries[1].metric));
  }
  std::vector<std::string> reference;
  for (size_t i = 0; i < r.hypervolume_reference.size(); ++i) {
    reference.push_back(absl::StrCat(objectives.Display(i, r.hypervolume_reference[i])));
  }
  row("Pareto front", absl::StrFormat("%d candidates (hypervolume %.3f%s against reference (%s))", r.front.size(),
                                      p.hypervolume, hv_unit, absl::StrJoin(reference, ", ")));
  row("stopped because", p.stop_reason);
  for (const auto& [k, v] : in.domain->Facts()) row(k, v);
  row("database", in.database);
  absl::StrAppend(&html, "</table>\n<div class=\"plots\">\n");

  // Pareto plot of the first two objectives (or the first against itself).
  const size_t ix = 0, iy = entries.size() >= 2 ? 1 : 0;
  auto X = [&](const CandidateRecord& c) { return MetricValue(c.objectives, entries[ix].metric.name); };
  auto Y = [&](const CandidateRecord& c) { return MetricValue(c.objectives, entries[iy].metric.name); };
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  std::set<std::string> plotted;
  std::vector<int> points;
  for (size_t i = 0; i < r.records.size(); ++i) {
    const CandidateRecord& c = r.records[i];
    if (!c.has_objectives) continue;
    // Results below the full evaluation (multi-fidelity) measure other windows: not compared.
    if (c.rung >= 0 && c.rung < in.spec.search().fidelity().rungs_size()) continue;
    const std::string key = c.cache_key.empty() ? c.exact_hash : c.cache_key;
    if (!plotted.insert(key).second) continue;
    if (c.violation > 0) continue;
    if (!std::isfinite(X(c)) || !std::isfinite(Y(c))) continue;
    points.push_back(static_cast<int>(i));
    xmin = std::min(xmin, X(c));
    xmax = std::max(xmax, X(c));
    ymin = std::min(ymin, Y(c));
    ymax = std::max(ymax, Y(c));
  }
  if (points.empty()) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  Plot pareto(absl::StrCat("Pareto front: ", entries[ix].metric.name, " vs ", entries[iy].metric.name),
              ObjectiveSet::Axis(entries[ix].metric), ObjectiveSet::Axis(entries[iy].metric), xmin, xmax, ymin, ymax);
  std::set<int> front(r.front.begin(), r.front.end());
  const int chosen = ChosenConfiguration(objectives, r);
  auto tip = [&](const CandidateRecord& c) {
    std::vector<std::string> parts;
    for (const auto& e : entries) parts.push_back(Format(MetricValue(c.objectives, e.metric.name), e.metric));
    return absl::StrJoin(parts, ", ");
  };
  for (int i : points) {
    if (front.count(i)) continue;
    const CandidateRecord& c = r.records[i];
    pareto.Circle(X(c), Y(c), 3, "candidate-point", absl::StrFormat("#%d: %s", c.id, tip(c)));
  }
  std::vector<std::pair<double, double>> line;
  for (int i : r.front) line.emplace_back(X(r.records[i]), Y(r.records[i]));
  pareto.Line(line, "front-line", /*step=*/true);
  for (int i : r.front) {
    const CandidateRecord& c = r.records[i];
    pareto.Circle(X(c), Y(c), 4.5, "pareto-point", absl::StrFormat("#%d on the front: %s", c.id, tip(c)));
  }
  if (chosen >= 0) {
    const CandidateRecord& c = r.records[chosen];
    pareto.Circle(X(c), Y(c), 8, "chosen-point", absl::StrFormat("chosen: #%d", c.id));
  }
  absl::StrAppend(&html, pareto.Render("pareto-plot"));

  // Best so far.
  const bool multi = entries.size() >= 2 && in.spec.search().algorithm() != SearchSpec::REGULARIZED_EVOLUTION;
  const std::string quality = multi ? "hypervolume" : "best scalarised objective (lower is better)";
  auto best = [&](const TracePoint& t) { return multi ? t.hypervolume : t.best_scalar; };
  double bmin = 1e18, bmax = -1e18, emax = 1, smax = 1;
  for (const TracePoint& t : r.trace) {
    bmin = std::min(bmin, best(t));
    bmax = std::max(bmax, best(t));
    emax = std::max<double>(emax, p.multi_fidelity ? t.compute : t.evaluations);
    smax = std::max(smax, t.seconds);
  }
  if (r.trace.empty()) bmin = 0, bmax = 1;
  Plot by_evals(p.multi_fidelity ? "Best so far vs compute" : "Best so far vs evaluations",
                p.multi_fidelity ? "compute (full-evaluation equivalents)" : "evaluations", quality, 0, emax, bmin, bmax);
  Plot by_time("Best so far vs wall time", "wall time (s)", quality, 0, smax, bmin, bmax);
  Plot hits("Cache hit rate over time", "wall time (s)", "hit rate so far (%)", 0, smax, 0, 100);
  std::vector<std::pair<double, double>> e_line, t_line, h_line;
  for (const TracePoint& t : r.trace) {
    e_line.emplace_back(p.multi_fidelity ? t.compute : t.evaluations, best(t));
    t_line.emplace_back(t.seconds, best(t));
    h_line.emplace_back(t.seconds, 100 * t.hit_rate);
  }
  by_evals.Line(e_line, "series", true);
  by_time.Line(t_line, "series", true);
  hits.Line(h_line, "series2");
  absl::StrAppend(&html, by_evals.Render("best-vs-evaluations"), by_time.Render("best-vs-time"), hits.Render("hit-rate"),
                  "</div>\n");

  // Front table: every objective, then the candidate.
  absl::StrAppend(&html, "<h2>Pareto front (", r.front.size(), " candidates)</h2>\n<table id=\"front-table\"><tr><th>#</th>");
  for (const auto& e : entries) absl::StrAppend(&html, "<th>", Escape(ObjectiveSet::Axis(e.metric)), "</th>");
  absl::StrAppend(&html, "<th class=\"text\">candidate</th></tr>\n");
  for (int i : r.front) {
    const CandidateRecord& c = r.records[i];
    absl::StrAppendFormat(&html, "<tr class=\"front-row\"><td>%d</td>", c.id);
    for (const auto& e : entries) absl::StrAppend(&html, "<td>", Escape(Format(MetricValue(c.objectives, e.metric.name), e.metric)), "</td>");
    const std::string remark = in.domain->Remark(c.candidate);
    absl::StrAppend(&html, "<td class=\"text\"><code>",
                    Escape(in.domain->Describe(c.candidate) + (remark.empty() ? "" : "  [" + remark + "]")),
                    "</code></td></tr>\n");
  }
  absl::StrAppend(&html, "</table>\n");

  // Multi-fidelity: every candidate with the rung it reached; below the full evaluation its
  // objectives are that rung's (other windows than the front's), labelled so.
  if (p.multi_fidelity) {
    const std::vector<Fidelity> fidelities = in.domain->Fidelities();
    const int top = static_cast<int>(fidelities.size()) - 1;
    std::map<int, int> at_rung;
    for (const CandidateRecord& c : r.records) {
      if (c.has_objectives && c.rung >= 0) ++at_rung[c.rung];
    }
    std::vector<std::string> counts;
    for (const auto& [rung, n] : at_rung) {
      counts.push_back(absl::StrCat(n, " at rung ", rung,
                                    rung <= top && rung >= 0 ? absl::StrCat(" (", fidelities[rung].name, ")") : ""));
    }
    absl::StrAppend(&html, "<h2>Candidates by rung</h2>\n<p id=\"rung-summary\">", Escape(absl::StrJoin(counts, ", ")),
                    ". Only rung ", top, " (the full evaluation) reaches the front and the plots.</p>\n"
                    "<details><summary>every candidate</summary>\n<table id=\"rung-table\"><tr><th>#</th>"
                    "<th class=\"text\">rung</th>");
    for (const auto& e : entries) absl::StrAppend(&html, "<th>", Escape(ObjectiveSet::Axis(e.metric)), "</th>");
    absl::StrAppend(&html, "<th class=\"text\">candidate</th></tr>\n");
    for (const CandidateRecord& c : r.records) {
      if (!c.has_objectives || c.rung < 0) continue;
      const bool full = c.rung >= top;
      absl::StrAppendFormat(&html, "<tr class=\"rung-row\"><td>%d</td><td class=\"text\">%s</td>", c.id,
                            Escape(absl::StrCat(c.rung, c.rung <= top ? absl::StrCat(" (", fidelities[c.rung].name, ")") : "",
                                                full ? "" : ": objectives of its windows only")));
      for (const auto& e : entries) {
        absl::StrAppend(&html, "<td>", Escape(Format(MetricValue(c.objectives, e.metric.name), e.metric)), "</td>");
      }
      // Dominated full evaluations do not keep their candidate in memory (the database does).
      const bool kept = c.candidate.representation_case() != Candidate::REPRESENTATION_NOT_SET;
      absl::StrAppend(&html, "<td class=\"text\">",
                      kept ? absl::StrCat("<code>", Escape(in.domain->Describe(c.candidate)), "</code>")
                           : "(dominated; see inspect show)",
                      "</td></tr>\n");
    }
    absl::StrAppend(&html, "</table></details>\n");
  }

  // What the cache's hits were, and the checks of the equivalents (search --verify_hits).
  if (in.hits != nullptr && !in.hits->hits.empty()) {
    const HitAudit& a = *in.hits;
    absl::StrAppend(&html, "<h2>Cache hits</h2>\n<p id=\"hit-summary\">", Escape(a.Summary()), ".</p>\n");
    std::map<int64_t, const CandidateRecord*> by_id;
    for (const CandidateRecord& c : r.records) by_id[c.id] = &c;
    bool any = false;
    for (const HitAudit::Hit& h : a.hits) any |= h.checked && !h.exact_copy;
    if (any) {
      absl::StrAppend(&html, "<table id=\"hit-checks\"><tr><th>#</th><th class=\"text\">verdict</th><th>largest relative difference</th>"
                             "<th class=\"text\">cached</th><th class=\"text\">evaluated again</th><th class=\"text\">candidate</th></tr>\n");
      for (const HitAudit::Hit& h : a.hits) {
        if (!h.checked || h.exact_copy || by_id.count(h.id) == 0) continue;
        const CandidateRecord& c = *by_id[h.id];
        auto show = [&](const Objectives& o) {
          std::vector<std::string> parts;
          for (const auto& e : entries) parts.push_back(absl::StrCat(e.metric.name, " ", Format(MetricValue(o, e.metric.name), e.metric)));
          return absl::StrJoin(parts, ", ");
        };
        const std::string verdict = !h.check.error.empty() ? "evaluation failed" : h.check.matched ? "confirmed" : "FALSE HIT";
        absl::StrAppendFormat(&html, "<tr class=\"%s\"><td>%d</td><td class=\"text\">%s</td><td>%.3g</td>",
                              h.check.matched ? "hit-ok" : "hit-false", h.id, verdict, h.check.max_relative_difference);
        absl::StrAppend(&html, "<td class=\"text\">", Escape(show(c.objectives)), "</td><td class=\"text\">",
                        Escape(h.check.error.empty() ? show(h.check.evaluated) : h.check.error), "</td><td class=\"text\"><code>",
                        Escape(in.domain->Describe(c.candidate)), "</code></td></tr>\n");
      }
      absl::StrAppend(&html, "</table>\n");
    }
  }

  // The chosen configuration and what its domain says about it.
  if (chosen >= 0) {
    const CandidateRecord& c = r.records[chosen];
    absl::StrAppendFormat(&html, "<h2>Chosen: #%d (lowest weighted sum of the objectives on the front)</h2>\n<p>%s.</p>\n",
                          c.id, Escape(tip(c)));
    for (const DetailsTable& t : in.domain->ResultDetails(c.candidate, c.result)) {
      absl::StrAppend(&html, "<h3>", Escape(t.title), "</h3>\n<table id=\"", Escape(t.id), "\"><tr>");
      for (size_t k = 0; k < t.header.size(); ++k) {
        absl::StrAppend(&html, k == 0 ? "<th>" : "<th class=\"text\">", Escape(t.header[k]), "</th>");
      }
      absl::StrAppend(&html, "</tr>\n");
      for (const auto& cells : t.rows) {
        absl::StrAppend(&html, "<tr>");
        for (size_t k = 0; k < cells.size(); ++k) {
          absl::StrAppend(&html, k == 0 ? "<td>" : "<td class=\"text\">", Escape(cells[k]), "</td>");
        }
        absl::StrAppend(&html, "</tr>\n");
      }
      absl::StrAppend(&html, "</table>\n");
    }
    absl::StrAppend(&html, "<h2>Candidate as a text proto</h2>\n<pre>", Escape(c.candidate.DebugString()), "</pre>\n");
  }
  absl::StrAppend(&html, "</body></html>\n");
  return html;
}

absl::Status WriteReport(const std::string& path, const ReportInput& in) {
  return WriteFileAtomically(path, RenderReport(in));
}

}  // namespace fecsearch
