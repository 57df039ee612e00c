// Experiment spec parsing, validation and error location.
#include "search/experiment.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/evaluator.h"
#include "core/paths.h"
#include "core/quantizer.h"
#include "core/text_proto.h"

namespace fecsearch {
namespace {

// Line (1-based) of the field path "a.b[2].c" in the parse tree, or of its deepest located
// prefix; 0 when nothing is located.
int LineOf(const LoadedExperiment& e, const std::string& path) {
  if (!e.locations) return 0;
  const google::protobuf::Descriptor* desc = ExperimentSpec::descriptor();
  const google::protobuf::TextFormat::ParseInfoTree* tree = e.locations.get();
  int line = 0;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    std::string name(part);
    int index = -1;
    const size_t bracket = name.find('[');
    if (bracket != std::string::npos) {
      absl::SimpleAtoi(name.substr(bracket + 1, name.size() - bracket - 2), &index);
      name = name.substr(0, bracket);
    }
    if (desc == nullptr || tree == nullptr) break;
    const google::protobuf::FieldDescriptor* field = desc->FindFieldByName(name);
    if (field == nullptr) break;
    const int lookup = field->is_repeated() ? std::max(index, 0) : -1;
    auto loc = tree->GetLocation(field, lookup);
    // Elements of a list written as [a, b] may have no location of their own: use the list's.
    if (loc.line < 0 && lookup > 0) loc = tree->GetLocation(field, 0);
    if (loc.line >= 0) line = loc.line + 1;
    if (field->type() != google::protobuf::FieldDescriptor::TYPE_MESSAGE) break;
    tree = tree->GetTreeForNested(field, lookup);
    desc = field->message_type();
  }
  return line;
}

// Collects the first validation error.
class Checker {
 public:
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& field() const { return field_; }
  void Fail(const std::string& field, const std::string& message) {
    if (error_.empty()) {
      field_ = field;
      error_ = absl::StrCat(field, ": ", message);
    }
  }
  template <typename T>
  void Range(const std::string& field, T value, T lo, T hi, const std::string& unit = "") {
    if (!(value >= lo && value <= hi)) {
      Fail(field, absl::StrCat(value, " is outside ", lo, "..", hi, unit.empty() ? "" : " ", unit));
    }
  }

 private:
  std::string error_, field_;
};

// The fidelity ladder: nested subsets of the evaluation windows, each smaller than the next
// and than the full evaluation.
void CheckFidelity(const ExperimentSpec& spec, Checker* c) {
  const FidelitySpec& f = spec.search().fidelity();
  const SearchSpaceSpec::Representation rep = spec.search_space().representation();
  if (rep == SearchSpaceSpec::USER_DEFINED || rep == SearchSpaceSpec::PROGRAM) {
    c->Fail("search.fidelity", "needs a domain with fidelities: only the KV-cache domains (GENOME, PIPELINE_GRAPH) have them");
    return;
  }
  const int n = EvalWindowCount(spec.evaluation());
  c->Range("search.fidelity.eta", f.eta(), 2.0, 1000.0);
  if (!(f.min_gain() >= 0 && f.min_gain() < 1)) {
    c->Fail("search.fidelity.min_gain", absl::StrCat(f.min_gain(), " is outside 0 <= min_gain < 1 (a fraction of the rung's hypervolume)"));
  }
  if (f.rungs_size() == 0) {
    c->Fail("search.fidelity.rungs", absl::StrCat("needs at least one rung below the full evaluation (e.g. rungs { windows: [0] } of the ", n,
                                                  " evaluation windows)"));
    return;
  }
  if (f.rungs_size() > 15) c->Fail("search.fidelity.rungs", absl::StrCat(f.rungs_size(), " rungs are more than 15"));
  std::set<int> below;
  for (int r = 0; r < f.rungs_size(); ++r) {
    const std::string field = absl::StrCat("search.fidelity.rungs[", r, "].windows");
    const auto& w = f.rungs(r).windows();
    if (w.empty()) {
      c->Fail(field, "is empty: a rung scores at least one evaluation window");
      return;
    }
    std::set<int> mine;
    for (int k = 0; k < w.size(); ++k) {
      if (w[k] < 0 || w[k] >= n) {
        c->Fail(absl::StrCat(field, "[", k, "]"),
                absl::StrCat(w[k], " is outside 0..", n - 1, ": rungs name indices into evaluation.eval_windows (", n,
                             " windows), not window numbers"));
        return;
      }
      if (k > 0 && w[k] <= w[k - 1]) {
        c->Fail(absl::StrCat(field, "[", k, "]"), absl::StrCat("indices must increase: ", w[k - 1], " then ", w[k]));
        return;
      }
      mine.insert(w[k]);
    }
    for (int i : below) {
      if (!mine.count(i)) {
        c->Fail(field, absl::StrCat("does not contain window ", i, " of rung ", r - 1,
                                    ": the ladder must be nested (a promotion scores only the windows a candidate lacks)"));
        return;
      }
    }
    if (r > 0 && mine.size() == below.size()) {
      c->Fail(field, absl::StrCat("scores the same windows as rung ", r - 1, ": each rung needs more windows than the one below"));
      return;
    }
    if (static_cast<int>(mine.size()) == n) {
      c->Fail(field, absl::StrCat("scores all ", n,
                                  " evaluation windows: that is the full evaluation, the implicit last rung; list only the cheaper rungs"));
      return;
    }
    below = std::move(mine);
  }
}

void CheckStreamSpace(const StreamSpace& s, const std::string& f, bool keys, const ModelConfig* model,
                      Checker* c) {
  for (int i = 0; i < s.formats_size(); ++i) {
    const FormatChoice& fc = s.formats(i);
    const std::string ff = absl::StrCat(f, ".formats[", i, "]");
    if (!fc.has_format() || fc.format() == FORMAT_UNSPECIFIED) {
      c->Fail(ff + ".format", "is required");
      return;
    }
    QuantizerParams p;
    p.set_format(fc.format());
    p.set_bits(fc.bits());
    p.set_posit_es(fc.posit_es());
    auto r = ResolveQuantizerConfig(p, model ? model->head_dim : 64, ff);
    if (!r.ok()) {
      const std::string msg(r.status().message());
      const size_t colon = msg.find(": ");
      c->Fail(msg.substr(0, colon), colon == std::string::npos ? msg : msg.substr(colon + 2));
      return;
    }
  }
  for (int i = 0; i < s.axes_size(); ++i) {
    if (s.axes(i) == AXIS_UNSPECIFIED) c->Fail(absl::StrCat(f, ".axes[", i, "]"), "must be PER_TOKEN or PER_CHANNEL");
  }
  const int head_dim = model ? model->head_dim : 0;
  for (int i = 0; i < s.token_group_sizes_size(); ++i) {
    const int g = s.token_group_sizes(i);
    const std::string ff = absl::StrCat(f, ".token_group_sizes[", i, "]");
    if (g < 0) c->Fail(ff, absl::StrCat(g, " is negative"));
    if (head_dim > 0 && g > 0 && (g > head_dim || head_dim % g != 0)) {
      c->Fail(ff, absl::StrCat(g, " does not divide head_dim ", head_dim, " (0 = whole vector)"));
    }
  }
  for (int i = 0; i < s.channel_group_sizes_size(); ++i) {
    c->Range(absl::StrCat(f, ".channel_group_sizes[", i, "]"), s.channel_group_sizes(i), 1, 1024, "tokens");
  }
  if (!keys && s.pre_rope_size() > 0) {
    for (int i = 0; i < s.pre_rope_size(); ++i)
      if (s.pre_rope(i)) c->Fail(absl::StrCat(f, ".pre_rope[", i, "]"), "applies to keys only");
  }
  for (int i = 0; i < s.outlier_fractions_size(); ++i) {
    c->Range(absl::StrCat(f, ".outlier_fractions[", i, "]"), s.outlier_fractions(i), 0.0, 0.5);
  }
  for (int i = 0; i < s.sink_tokens_size(); ++i) {
    c->Range(absl::StrCat(f, ".sink_tokens[", i, "]"), s.sink_tokens(i), 0, 1 << 20, "tokens");
  }
  for (int i = 0; i < s.recent_windows_size(); ++i) {
    c->Range(absl::StrCat(f, ".recent_windows[", i, "]"), s.recent_windows(i), 0, 1 << 20, "tokens");
  }
}

int MaxOf(const google::protobuf::RepeatedField<int32_t>& r) {
  int m = 0;
  for (int v : r) m = std::max(m, v);
  return m;
}

}  // namespace

absl::StatusOr<LoadedExperiment> ParseExperiment(const std::string& text, const std::string& source) {
  LoadedExperiment e;
  e.source = source;
  e.locations = std::make_shared<google::protobuf::TextFormat::ParseInfoTree>();
  absl::Status s = ParseTextProto(text, source, &e.spec, e.locations.get());
  if (!s.ok()) return s;
  return e;
}

absl::StatusOr<LoadedExperiment> LoadExperiment(const std::string& path) {
  if (path.empty()) return ParseExperiment(kDefaultExperiment, "<embedded default>");
  const std::string resolved = ResolveInputPath(path);
  std::string text;
  absl::Status s = ReadFile(resolved, &text);
  if (!s.ok()) return absl::NotFoundError(absl::StrCat("--experiment: ", s.message()));
  return ParseExperiment(text, path);
}

namespace {

// Keeps the values `keep` accepts; notes the others. Never empties a list that had values.
template <typename T, typename Keep>
void Filter(google::protobuf::RepeatedField<T>* values, const std::string& field, Keep keep, const std::string& why,
            std::vector<std::string>* notes) {
  google::protobuf::RepeatedField<T> kept;
  for (int i = 0; i < values->size(); ++i) {
    if (keep(values->Get(i))) {
      kept.Add(values->Get(i));
    } else {
      notes->push_back(absl::StrCat(field, ": ", values->Get(i), " dropped (", why, ")"));
    }
  }
  if (kept.empty() && !values->empty()) return;  // nothing legal: the validation names it
  values->Swap(&kept);
}

}  // namespace

ExperimentSpec AdaptToModel(const ExperimentSpec& spec, const ModelConfig& model, std::vector<std::string>* notes) {
  ExperimentSpec out = spec;
  SearchSpaceSpec* ss = out.mutable_search_space();
  if (ss->layer_groups() > model.num_layers) {
    notes->push_back(absl::StrCat("search_space.layer_groups: ", ss->layer_groups(), " capped at the model's ",
                                  model.num_layers, " layers"));
    ss->set_layer_groups(model.num_layers);
  }
  Filter(ss->mutable_head_clusters(), "search_space.head_clusters", [&](int k) { return k <= model.num_kv_heads; },
         absl::StrCat("the model has ", model.num_kv_heads, " KV heads"), notes);
  for (auto [stream, name] : {std::make_pair(ss->mutable_keys(), "keys"), std::make_pair(ss->mutable_values(), "values")}) {
    if ((name == std::string("keys") && !ss->has_keys()) || (name == std::string("values") && !ss->has_values())) continue;
    Filter(stream->mutable_token_group_sizes(), absl::StrCat("search_space.", name, ".token_group_sizes"),
           [&](int g) { return g == 0 || (g <= model.head_dim && model.head_dim % g == 0); },
           absl::StrCat("it does not divide the model's head_dim ", model.head_dim), notes);
  }
  return out;
}

absl::Status LocateError(const LoadedExperiment& e, const absl::Status& status) {
  if (status.ok()) return status;
  const std::string msg(status.message());
  const size_t colon = msg.find(": ");
  int line = 0;
  if (colon != std::string::npos && msg.find(' ') >= colon) line = LineOf(e, msg.substr(0, colon));
  return absl::Status(status.code(), line > 0 ? absl::StrCat(e.source, ":", line, ": ", msg)
                                              : absl::StrCat(e.source, ": ", msg));
}

absl::Status ValidateExperiment(const LoadedExperiment& e, const ModelConfig* model) {
  const ExperimentSpec& spec = e.spec;
  Checker c;
  // search
  const SearchSpec& s = spec.search();
  if (s.algorithm() == SearchSpec::ALGORITHM_UNSPECIFIED) {
    c.Fail("search.algorithm", "must be REGULARIZED_EVOLUTION, NSGA2 or RANDOM_SEARCH");
  }
  c.Range("search.population_size", s.population_size(), 2, 100000);
  c.Range("search.tournament_size", s.tournament_size(), 1, std::max(1, s.population_size()));
  c.Range("search.mutation_probability", s.mutation_probability(), 0.0, 1.0);
  c.Range("search.crossover_probability", s.crossover_probability(), 0.0, 1.0);
  c.Range<int64_t>("search.max_candidates", s.max_candidates(), 0, int64_t{1} << 40);
  c.Range<int64_t>("search.max_evaluations", s.max_evaluations(), 0, int64_t{1} << 40);
  c.Range("search.max_wall_seconds", s.max_wall_seconds(), 0.0, 1e9, "seconds");
  if (s.max_candidates() == 0 && s.max_evaluations() == 0 && s.max_wall_seconds() == 0) {
    c.Fail("search.max_evaluations", "is 0 and no other budget is set: the search would never stop");
  }
  if (s.has_fidelity()) CheckFidelity(spec, &c);
  if (s.has_screen()) {
    const SearchSpaceSpec::Representation rep = spec.search_space().representation();
    if (rep == SearchSpaceSpec::USER_DEFINED || rep == SearchSpaceSpec::PROGRAM) {
      c.Fail("search.screen", "needs a domain with a predictor: only the KV-cache domains (GENOME, PIPELINE_GRAPH) have one");
    }
    if (!(s.screen().margin() >= 0 && s.screen().margin() < 1)) {
      c.Fail("search.screen.margin", absl::StrCat(s.screen().margin(), " is outside 0 <= margin < 1"));
    }
    c.Range("search.screen.warmup", s.screen().warmup(), 0, 1000000);
    const int pool = s.screen().initial_pool();
    if (pool != 0 && (pool < s.population_size() || pool > 100000)) {
      c.Fail("search.screen.initial_pool", absl::StrCat(pool, " is outside 0 or population_size (", s.population_size(), ")..100000"));
    }
    if (!s.screen().skip() && pool == 0) {
      c.Fail("search.screen.skip", "is false and initial_pool is 0: the screen would do nothing");
    }
  }
  // Objectives and constraints name what the domain measures (checked against it once the
  // domain exists: search/objectives.h).
  std::set<std::string> metrics;
  for (int i = 0; i < s.objectives_size(); ++i) {
    const std::string f = absl::StrCat("search.objectives[", i, "]");
    const Objective& o = s.objectives(i);
    if (!o.has_name() && o.metric() == METRIC_UNSPECIFIED) c.Fail(f + ".metric", "is required (or give a name)");
    if (!metrics.insert(o.has_name() ? o.name() : absl::StrCat("#", o.metric())).second) c.Fail(f + ".metric", "is listed twice");
    if (!std::isfinite(o.weight())) c.Fail(f + ".weight", "must be finite");
    if (o.hypervolume_reference() < 0) c.Fail(f + ".hypervolume_reference", "must be >= 0");
  }
  for (int i = 0; i < s.constraints_size(); ++i) {
    const std::string f = absl::StrCat("search.constraints[", i, "]");
    const Constraint& k = s.constraints(i);
    if (!k.has_name() && k.metric() == METRIC_UNSPECIFIED) c.Fail(f + ".metric", "is required (or give a name)");
    if (!k.has_max_value() && !k.has_min_value()) c.Fail(f + ".max_value", "is required (or min_value)");
  }
  const bool program = spec.search_space().representation() == SearchSpaceSpec::PROGRAM;
  const bool user = spec.search_space().representation() == SearchSpaceSpec::USER_DEFINED || program;
  if (user) {
    // The genes, objectives and commands (or the programs) are checked by the domain itself
    // (search/domains/user_domain.h, search/domains/programs/); the KV-cache fields below do
    // not apply.
    if (!program && !spec.search_space().has_user_domain()) {
      c.Fail("search_space.user_domain", "is required with representation USER_DEFINED");
    }
    if (spec.has_fec()) {
      c.Range("fec.mantissa_bits", spec.fec().mantissa_bits(), 0, 23);
      c.Range<int64_t>("fec.capacity", spec.fec().capacity(), 1, int64_t{1} << 32);
      c.Range("fec.max_num_evals", spec.fec().max_num_evals(), 1, 1 << 20);
      c.Range("fec.remove_probability", spec.fec().remove_probability(), 0.0, 1.0);
      c.Range<int64_t>("fec.forget_every", spec.fec().forget_every(), 0, int64_t{1} << 40);
    }
  }
  if (!user) {
  // search space
  if (!spec.has_search_space()) c.Fail("search_space", "is required: say which genes are searched");
  const SearchSpaceSpec& ss = spec.search_space();
  c.Range("search_space.layer_groups", ss.layer_groups(), 1, 4096);
  if (model && ss.layer_groups() > model->num_layers) {
    c.Fail("search_space.layer_groups", absl::StrCat(ss.layer_groups(), " exceeds the model's ", model->num_layers,
                                                     " layers (groups are consecutive layers, as equal as possible)"));
  }
  if (ss.has_keys()) CheckStreamSpace(ss.keys(), "search_space.keys", true, model, &c);
  if (ss.has_values()) CheckStreamSpace(ss.values(), "search_space.values", false, model, &c);
  if (ss.has_eviction()) {
    const EvictionSpace& ev = ss.eviction();
    if (ev.policies_size() == 0) c.Fail("search_space.eviction.policies", "needs at least one policy");
    for (int i = 0; i < ev.keep_ratios_size(); ++i) {
      const double r = ev.keep_ratios(i);
      if (!(r > 0 && r <= 1)) c.Fail(absl::StrCat("search_space.eviction.keep_ratios[", i, "]"), absl::StrCat(r, " is outside (0, 1]"));
    }
    for (int i = 0; i < ev.observation_windows_size(); ++i) {
      c.Range(absl::StrCat("search_space.eviction.observation_windows[", i, "]"), ev.observation_windows(i), 1, 4096, "tokens");
    }
    for (int i = 0; i < ev.pooling_kernels_size(); ++i) {
      const int k = ev.pooling_kernels(i);
      if (k < 1 || k > 63 || k % 2 == 0) c.Fail(absl::StrCat("search_space.eviction.pooling_kernels[", i, "]"), absl::StrCat(k, " must be odd, 1..63"));
    }
  }
  for (int i = 0; i < ss.head_clusters_size(); ++i) {
    c.Range(absl::StrCat("search_space.head_clusters[", i, "]"), ss.head_clusters(i), 0,
            model ? model->num_kv_heads : 1 << 16);
  }
  if (ss.representation() == SearchSpaceSpec::REPRESENTATION_UNSPECIFIED) {
    c.Fail("search_space.representation", "must be GENOME, PIPELINE_GRAPH, USER_DEFINED or PROGRAM");
  }
  if (ss.has_graph_mutations()) {
    const GraphMutationSpec& g = ss.graph_mutations();
    for (double w : {g.insert_op(), g.delete_op(), g.replace_op(), g.change_parameter(), g.swap_adjacent(), g.copy_to_neighbour()}) {
      if (!(w >= 0 && std::isfinite(w))) c.Fail("search_space.graph_mutations", "weights must be finite and >= 0");
    }
    if (g.insert_op() + g.delete_op() + g.replace_op() + g.change_parameter() + g.swap_adjacent() <= 0) {
      c.Fail("search_space.graph_mutations",
             "insert_op, delete_op, replace_op, change_parameter and swap_adjacent are all 0: no mutation could change a graph");
    }
    c.Range("search_space.graph_mutations.max_ops_per_path", g.max_ops_per_path(), 1, 64);
  }
  // evaluation (paths and windows are checked when the model loads)
  const EvaluationSpec& ev = spec.evaluation();
  c.Range("evaluation.window_length", ev.window_length(), 2, 1 << 20, "tokens");
  c.Range("evaluation.chunk_length", ev.chunk_length(), 1, std::max(1, ev.window_length()), "tokens");
  c.Range("evaluation.threads", ev.threads(), 1, 256);
  // Windows, sink counts and per-channel groups must fit in an evaluation window, whatever
  // the deduplication mode (a genome that does not fit is invalid).
  for (const auto& [st, name] : {std::make_pair(&ss.keys(), "search_space.keys"), std::make_pair(&ss.values(), "search_space.values")}) {
    auto fits = [&](const google::protobuf::RepeatedField<int32_t>& r, const char* field) {
      for (int i = 0; i < r.size(); ++i) {
        if (r.Get(i) >= ev.window_length()) {
          c.Fail(absl::StrCat(name, ".", field, "[", i, "]"),
                 absl::StrCat(r.Get(i), " tokens do not fit in evaluation.window_length (", ev.window_length(), " tokens)"));
        }
      }
    };
    fits(st->recent_windows(), "recent_windows");
    fits(st->sink_tokens(), "sink_tokens");
    fits(st->channel_group_sizes(), "channel_group_sizes");
  }
  // fec
  if (spec.has_fec()) {
    const FecSpec& f = spec.fec();
    c.Range("fec.probe_tokens", f.probe_tokens(), 2, ev.window_length(), "tokens");
    c.Range("fec.mantissa_bits", f.mantissa_bits(), 0, 23);
    c.Range<int64_t>("fec.capacity", f.capacity(), 1, int64_t{1} << 32);
    c.Range("fec.max_num_evals", f.max_num_evals(), 1, 1 << 20);
    c.Range("fec.remove_probability", f.remove_probability(), 0.0, 1.0);
    c.Range<int64_t>("fec.forget_every", f.forget_every(), 0, int64_t{1} << 40);
    // The probe must exercise every quantizer of the search space: a token is quantized once
    // it has passed the sinks and the recent window and its per-channel group is complete, at
    // the end of a chunk, and only later queries see it. So the probe must be longer than the
    // largest sink count + recent window + per-channel group + chunk; shorter, candidates
    // differing only in what never gets quantized on the probe would collide.
    int sinks = 0, recent = 0, group = 0;
    for (const StreamSpace* st : {&ss.keys(), &ss.values()}) {
      sinks = std::max(sinks, MaxOf(st->sink_tokens()));
      recent = std::max(recent, MaxOf(st->recent_windows()));
      bool per_channel = false;
      for (int a : st->axes()) per_channel |= a == PER_CHANNEL;
      if (per_channel) {
        for (int g : st->channel_group_sizes()) group = std::max(group, g == 0 ? 128 : g);
        if (st->channel_group_sizes_size() == 0) group = std::max(group, 128);
      }
    }
    const int needed = sinks + recent + group + ev.chunk_length();
    if (f.dedup() == FecSpec::FUNCTIONAL && f.probe_tokens() <= needed) {
      c.Fail("fec.probe_tokens",
             absl::StrCat(f.probe_tokens(), " tokens are too few for this search space: the largest sink count (", sinks,
                          ") + recent window (", recent, ") + per-channel group (", group, ") + evaluation.chunk_length (",
                          ev.chunk_length(), ") is ", needed,
                          " tokens, and a quantizer only the tokens beyond that reach would not show in the hash; use more than ",
                          needed));
    }
  }
  }  // KV-cache domains
  // workers
  if (spec.has_workers()) {
    const WorkerSpec& w = spec.workers();
    if (w.targets_size() == 0) c.Fail("workers.targets", "needs at least one address (or leave out `workers` for in-process threads)");
    c.Range("workers.per_worker_concurrency", w.per_worker_concurrency(), 0, 4096);
    c.Range("workers.deadline_seconds", w.deadline_seconds(), 0.001, 1e7, "seconds");
    c.Range("workers.max_attempts", w.max_attempts(), 1, 1000);
    c.Range("workers.resolve_interval_seconds", w.resolve_interval_seconds(), 0.01, 1e6, "seconds");
  }
  if (spec.output().database_path().empty()) c.Fail("output.database_path", "must not be empty");
  if (c.ok()) return absl::OkStatus();
  const int line = LineOf(e, c.field());
  return absl::InvalidArgumentError(line > 0 ? absl::StrCat(e.source, ":", line, ": ", c.error())
                                             : absl::StrCat(e.source, ": ", c.error()));
}

}  // namespace fecsearch
