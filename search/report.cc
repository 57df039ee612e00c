// HTML report with inline SVG.
#include "search/report.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "core/pipeline_graph.h"
#include "core/text_proto.h"
#include "search/experiment.h"

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

double Value(const Objectives& o, Metric m) {
  switch (m) {
    case MEAN_NLL: return o.mean_nll();
    case PERPLEXITY: return o.perplexity();
    case PERPLEXITY_INCREASE_PERCENT: return o.perplexity_increase_percent();
    case EFFECTIVE_BITS: return o.effective_bits();
    default: return 0;
  }
}

}  // namespace

int ChosenConfiguration(const ExperimentSpec& spec, const SearchResult& result) {
  int best = -1;
  double best_value = 0;
  for (int i : result.front) {
    double v = 0;
    for (const Objective& o : EffectiveObjectives(spec.search())) v += o.weight() * Value(result.records[i].objectives, o.metric());
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
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>fecsearch report: ",
      Escape(in.spec.name()), "</title><style>", kStyle, "</style></head><body>\n");
  absl::StrAppend(&html, "<h1>fecsearch — ", Escape(in.spec.name()), " (experiment ", r.experiment_id, ")</h1>\n");
  // Summary.
  absl::StrAppend(&html, "<table class=\"summary\">");
  auto row = [&](const std::string& k, const std::string& v) {
    absl::StrAppend(&html, "<tr><th class=\"text\">", Escape(k), "</th><td>", Escape(v), "</td></tr>");
  };
  row("algorithm", SearchSpec::Algorithm_Name(in.spec.search().algorithm()));
  row("deduplication", in.dedup);
  row("evaluations", absl::StrFormat("%d completed (%d dispatched), %s", p.evaluations, p.dispatched, in.pool));
  row("candidates", absl::StrFormat("%d: %d cache hits, %d merged with a running evaluation, %d partial hits, %d misses, %d invalid, %d failed",
                                    p.candidates, p.hits, p.merges, p.partial_hits, p.misses, p.invalid, p.failed));
  row("cache hit rate", absl::StrFormat("%.1f %%", 100 * p.hit_rate()));
  row("wall time", absl::StrFormat("%.1f s", p.elapsed_seconds));
  // The hypervolume's unit is the product of the first two objectives' units.
  auto unit = [](Metric m) -> std::string {
    switch (m) {
      case MEAN_NLL: return "nats/token";
      case PERPLEXITY: return "perplexity";
      case PERPLEXITY_INCREASE_PERCENT: return "%";
      case EFFECTIVE_BITS: return "bits";
      default: return "?";
    }
  };
  const std::vector<Objective> objectives = EffectiveObjectives(in.spec.search());
  std::string hv_unit;
  if (objectives.size() >= 2) hv_unit = absl::StrCat(" ", unit(objectives[0].metric()), " x ", unit(objectives[1].metric()));
  row("Pareto front", absl::StrFormat("%d configurations (hypervolume %.3f%s against reference (%s))", r.front.size(),
                                      p.hypervolume, hv_unit, absl::StrJoin(r.hypervolume_reference, ", ")));
  row("stopped because", p.stop_reason);
  row("uncompressed perplexity", absl::StrFormat("%.4f", in.baseline_perplexity));
  row("database", in.database);
  absl::StrAppend(&html, "</table>\n<div class=\"plots\">\n");

  // Pareto plot: effective bits vs perplexity.
  double xmin = 1e9, xmax = -1e9, ymin = 1e9, ymax = -1e9;
  std::set<std::string> plotted;
  std::vector<int> points;
  for (size_t i = 0; i < r.records.size(); ++i) {
    const CandidateRecord& c = r.records[i];
    if (!c.has_objectives) continue;
    const std::string key = c.cache_key.empty() ? c.exact_hash : c.cache_key;
    if (!plotted.insert(key).second) continue;
    if (c.violation > 0) continue;
    points.push_back(static_cast<int>(i));
    xmin = std::min(xmin, c.objectives.effective_bits());
    xmax = std::max(xmax, c.objectives.effective_bits());
    ymin = std::min(ymin, c.objectives.perplexity());
    ymax = std::max(ymax, c.objectives.perplexity());
  }
  if (points.empty()) xmin = 0, xmax = 16, ymin = 0, ymax = 1;
  Plot pareto("Pareto front: memory vs quality", "effective bits per cached element (bits)", "perplexity",
              xmin, xmax, ymin, ymax);
  std::set<int> front(r.front.begin(), r.front.end());
  const int chosen = ChosenConfiguration(in.spec, r);
  for (int i : points) {
    if (front.count(i)) continue;
    const CandidateRecord& c = r.records[i];
    pareto.Circle(c.objectives.effective_bits(), c.objectives.perplexity(), 3, "candidate-point",
                  absl::StrFormat("#%d: %.3f bits, perplexity %.4f", c.id, c.objectives.effective_bits(), c.objectives.perplexity()));
  }
  std::vector<std::pair<double, double>> line;
  for (int i : r.front) {
    const CandidateRecord& c = r.records[i];
    line.emplace_back(c.objectives.effective_bits(), c.objectives.perplexity());
  }
  pareto.Line(line, "front-line", /*step=*/true);
  for (int i : r.front) {
    const CandidateRecord& c = r.records[i];
    pareto.Circle(c.objectives.effective_bits(), c.objectives.perplexity(), 4.5, "pareto-point",
                  absl::StrFormat("#%d on the front: %.3f bits (%.2fx), perplexity %.4f (%+.2f %%)", c.id,
                                  c.objectives.effective_bits(), 16 / c.objectives.effective_bits(),
                                  c.objectives.perplexity(), c.objectives.perplexity_increase_percent()));
  }
  if (chosen >= 0) {
    const CandidateRecord& c = r.records[chosen];
    pareto.Circle(c.objectives.effective_bits(), c.objectives.perplexity(), 8, "chosen-point",
                  absl::StrFormat("chosen: #%d", c.id));
  }
  absl::StrAppend(&html, pareto.Render("pareto-plot"));

  // Best so far.
  const bool multi = EffectiveObjectives(in.spec.search()).size() >= 2 && in.spec.search().algorithm() != SearchSpec::REGULARIZED_EVOLUTION;
  const std::string quality = multi ? "hypervolume" : "best scalarised objective (lower is better)";
  auto best = [&](const TracePoint& t) { return multi ? t.hypervolume : t.best_scalar; };
  double bmin = 1e18, bmax = -1e18, emax = 1, smax = 1;
  for (const TracePoint& t : r.trace) {
    bmin = std::min(bmin, best(t));
    bmax = std::max(bmax, best(t));
    emax = std::max<double>(emax, t.evaluations);
    smax = std::max(smax, t.seconds);
  }
  if (r.trace.empty()) bmin = 0, bmax = 1;
  Plot by_evals("Best so far vs evaluations", "evaluations", quality, 0, emax, bmin, bmax);
  Plot by_time("Best so far vs wall time", "wall time (s)", quality, 0, smax, bmin, bmax);
  Plot hits("Cache hit rate over time", "wall time (s)", "hit rate so far (%)", 0, smax, 0, 100);
  std::vector<std::pair<double, double>> e_line, t_line, h_line;
  for (const TracePoint& t : r.trace) {
    e_line.emplace_back(t.evaluations, best(t));
    t_line.emplace_back(t.seconds, best(t));
    h_line.emplace_back(t.seconds, 100 * t.hit_rate);
  }
  by_evals.Line(e_line, "series", true);
  by_time.Line(t_line, "series", true);
  hits.Line(h_line, "series2");
  absl::StrAppend(&html, by_evals.Render("best-vs-evaluations"), by_time.Render("best-vs-time"), hits.Render("hit-rate"),
                  "</div>\n");

  // Front table.
  absl::StrAppend(&html, "<h2>Pareto front (", r.front.size(), " configurations)</h2>\n<table id=\"front-table\">",
                  "<tr><th>#</th><th>effective bits</th><th>compression vs fp16</th><th>perplexity</th>"
                  "<th>increase</th><th class=\"text\">configuration</th></tr>\n");
  for (int i : r.front) {
    const CandidateRecord& c = r.records[i];
    absl::StrAppendFormat(&html,
                          "<tr class=\"front-row\"><td>%d</td><td>%.3f bits</td><td>%.2fx</td><td>%.4f</td><td>%+.2f %%</td>"
                          "<td class=\"text\"><code>%s</code></td></tr>\n",
                          c.id, c.objectives.effective_bits(), 16 / c.objectives.effective_bits(), c.objectives.perplexity(),
                          c.objectives.perplexity_increase_percent(),
                          Escape(CandidateSummary(c.candidate, in.model) +
                                 (GraphOnlyFeatures(c.candidate, in.model).empty()
                                      ? ""
                                      : "  [graph only: " + GraphOnlyFeatures(c.candidate, in.model) + "]")));
  }
  absl::StrAppend(&html, "</table>\n");

  // Chosen configuration, per layer.
  if (chosen >= 0) {
    const CandidateRecord& c = r.records[chosen];
    absl::StrAppendFormat(&html,
                          "<h2>Chosen configuration: #%d (lowest weighted sum of the objectives on the front)</h2>\n"
                          "<p>%.3f bits per element (%.2fx smaller than fp16), perplexity %.4f (%+.2f %%).</p>\n",
                          c.id, c.objectives.effective_bits(), 16 / c.objectives.effective_bits(), c.objectives.perplexity(),
                          c.objectives.perplexity_increase_percent());
    absl::StrAppend(&html, "<table id=\"chosen-layers\"><tr><th>layer</th><th class=\"text\">keys</th><th class=\"text\">values</th>"
                           "<th class=\"text\">eviction</th><th>CHAI clusters</th><th>bits/element</th><th>attention error (probe)</th></tr>\n");
    auto graphs = CandidateToGraphs(c.candidate, in.model);
    if (graphs.ok()) {
      for (size_t l = 0; l < graphs->size(); ++l) {
        const LayerPlan plan = (*graphs)[l].Compile();
        auto stream = [](const StreamPlan& sp) {
          std::vector<std::string> parts;
          for (const Stage& s : sp.stages) {
            parts.push_back(s.kind == StageKind::kSplitOutliers ? absl::StrFormat("%.2g%% outliers", 100 * s.outlier_fraction)
                                                                : QuantizerSummary(s.quantizer));
          }
          std::string out = parts.empty() ? "fp16" : absl::StrJoin(parts, " + ");
          if (sp.quantize_before_rope) absl::StrAppend(&out, ", pre-RoPE");
          if (sp.sink_tokens) absl::StrAppend(&out, ", ", sp.sink_tokens, " fp16 sinks");
          if (sp.recent_window) absl::StrAppend(&out, ", ", sp.recent_window, " fp16 recent");
          return out;
        };
        std::string eviction = plan.eviction.policy == NO_EVICTION
                                   ? "none"
                                   : absl::StrFormat("%s, keep %.0f %%", EvictionPolicy_Name(plan.eviction.policy),
                                                     100 * plan.eviction.keep_ratio);
        std::string bits = "", error = "";
        if (static_cast<int>(l) < c.result.layers_size()) {
          bits = absl::StrFormat("%.3f", c.result.layers(l).effective_bits());
          error = absl::StrFormat("%.4f", c.result.layers(l).attention_relative_error());
        }
        absl::StrAppendFormat(&html, "<tr><td>%d</td><td class=\"text\">%s</td><td class=\"text\">%s</td><td class=\"text\">%s</td>"
                                     "<td>%s</td><td>%s</td><td>%s</td></tr>\n",
                              l, Escape(stream(plan.keys)), Escape(stream(plan.values)), Escape(eviction),
                              plan.head_clusters ? absl::StrCat(plan.head_clusters) : "off", bits, error);
      }
    }
    absl::StrAppend(&html, "</table>\n<h2>Candidate as a text proto</h2>\n<pre>", Escape(c.candidate.DebugString()), "</pre>\n");
  }
  absl::StrAppend(&html, "</body></html>\n");
  return html;
}

absl::Status WriteReport(const std::string& path, const ReportInput& in) {
  return WriteFileAtomically(path, RenderReport(in));
}

}  // namespace fecsearch
