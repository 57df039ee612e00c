// bazel run //search [-- flags]: runs an experiment (by default the embedded one) to its
// Pareto front, with the functional equivalence cache, in-process or on gRPC workers.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/evaluator.h"
#include "core/paths.h"
#include "core/process_init.h"
#include "core/pipeline_graph.h"
#include "core/text_proto.h"
#include "hashing/cache_store.h"
#include "hashing/candidate_hasher.h"
#include "hashing/metrics.h"
#include "hashing/fec_cache.h"
#include "search/controller.h"
#include "search/evaluation_pool.h"
#include "search/experiment.h"
#include "search/hit_audit.h"
#include "search/experiment_db.h"
#include "search/progress.h"
#include "search/report.h"
#include "search/domains/kv_domain.h"
#include "search/domains/programs/program_domain.h"
#include "search/domains/user_domain.h"
#include "search/objectives.h"
#include "search/worker_pool_factory.h"

ABSL_FLAG(std::string, experiment, "", "Experiment spec (text proto). Default: the embedded default experiment.");
ABSL_FLAG(std::string, db, "", "SQLite database for candidates and the cache (default: the spec's, fecsearch.db).");
ABSL_FLAG(bool, resume, false, "Continue the latest experiment in --db (after a crash or Ctrl-C).");
ABSL_FLAG(int64_t, resume_experiment, 0, "Continue this experiment id instead of the latest.");
ABSL_FLAG(int, threads, 0, "Candidates evaluated at a time in-process (default: the machine's cores / --eval_threads).");
ABSL_FLAG(int, eval_threads, 0, "Threads inside one evaluation (windows, matrix products, heads; default: the spec's evaluation.threads, 1). Results do not depend on it.");
ABSL_FLAG(std::string, model, "", "Hugging Face model directory to search for (overrides evaluation.model_path; docs/MODELS.md).");
ABSL_FLAG(std::string, text, "", "Evaluation text, plain UTF-8 for a model with tokenizer.json (overrides evaluation.text_path; default: the model directory's eval.txt).");
ABSL_FLAG(std::string, workers, "", "Evaluate on gRPC workers instead: comma-separated host:port, dns:///name:port or file:PATH.");
ABSL_FLAG(int64_t, max_evaluations, -1, "Evaluation budget (overrides the spec; 0 = unlimited).");
ABSL_FLAG(int64_t, max_candidates, -1, "Candidate budget (overrides the spec; 0 = unlimited).");
ABSL_FLAG(double, max_wall_seconds, -1, "Wall-time budget in seconds (overrides the spec; 0 = unlimited).");
ABSL_FLAG(int64_t, seed, -1, "Search seed (overrides the spec).");
ABSL_FLAG(std::string, report, "", "HTML report path (default: the spec's, fecsearch_report.html).");
ABSL_FLAG(std::string, trace_csv, "",
          "Also write the search's history as CSV: one row per finished candidate (seconds, evaluations, compute in "
          "full-evaluation equivalents, candidates, hypervolume, best scalarised objective, hit rate).");
ABSL_FLAG(std::string, dedup, "", "functional | exact | none: functional hashing (default when the spec has `fec`), exact-genome hashing only, or no cache.");
ABSL_FLAG(std::string, progress, "auto", "auto | bar | log | none.");
ABSL_FLAG(bool, verify_hits, false,
          "After the search, evaluate every functional-equivalent cache hit (not exact copies) once more and report "
          "whether its fitness matches what the cache returned (false hits); checks are kept in --db.");
ABSL_FLAG(double, verify_tolerance, 1e-6, "--verify_hits: largest relative difference of any objective still counted as a match.");
ABSL_FLAG(bool, validate_only, false, "Check the experiment (fields, model, search space) and exit: 0 if valid, 2 if not.");

namespace fecsearch {
namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // second Ctrl-C: leave now
  const char msg[] = "\nsearch: stopping after the evaluations in flight (Ctrl-C again to quit now; --resume continues)\n";
  (void)!write(2, msg, sizeof(msg) - 1);
}

// The search space's size for logs: GenomeSpace::Size() saturates at 2^62.
std::string SpaceSize(double size) {
  return size >= std::ldexp(1.0, 62) ? "more than 4.6e+18" : absl::StrFormat("about %.3g", size);
}

int Fail(const absl::Status& s, int code) {
  std::fprintf(stderr, "search: %s\n", std::string(s.message()).c_str());
  return code;
}

void Log(const std::string& line) {
  std::fprintf(stderr, "search: %s\n", line.c_str());
  std::fflush(stderr);
}

// The directory `path` would be created in exists and is writable (so that a search does
// not run for minutes and then fail to write its report).
absl::Status CheckWritable(const std::string& flag, const std::string& path) {
  // A device or FIFO (e.g. /dev/null) is written in place: checked itself. Files are written
  // next to their final name and renamed (SQLite adds -wal and -shm files): their directory.
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot write ", path, ": it is a directory"));
  }
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (access(path.c_str(), W_OK) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot write ", path, ": ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (access(dir.c_str(), W_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot write ", path, ": directory ", dir, " ",
                                                   errno == ENOENT ? "does not exist" : std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Flags whose values are checked before anything runs.
absl::Status CheckFlags() {
  const std::string progress = absl::GetFlag(FLAGS_progress);
  if (progress != "auto" && progress != "bar" && progress != "log" && progress != "none") {
    return absl::InvalidArgumentError(absl::StrCat("--progress: '", progress, "' is not auto, bar, log or none"));
  }
  if (absl::GetFlag(FLAGS_threads) < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--threads: ", absl::GetFlag(FLAGS_threads), " is negative (0 = the machine's cores)"));
  }
  if (absl::GetFlag(FLAGS_eval_threads) < 0 || absl::GetFlag(FLAGS_eval_threads) > 256) {
    return absl::InvalidArgumentError(absl::StrCat("--eval_threads: ", absl::GetFlag(FLAGS_eval_threads), " is outside 0..256 (0 = the spec's)"));
  }
  if (absl::GetFlag(FLAGS_seed) < -1) {
    return absl::InvalidArgumentError(absl::StrCat("--seed: ", absl::GetFlag(FLAGS_seed), " is negative"));
  }
  for (const auto& [value, flag] : {std::make_pair(static_cast<double>(absl::GetFlag(FLAGS_max_evaluations)), "--max_evaluations"),
                                    std::make_pair(static_cast<double>(absl::GetFlag(FLAGS_max_candidates)), "--max_candidates"),
                                    std::make_pair(absl::GetFlag(FLAGS_max_wall_seconds), "--max_wall_seconds")}) {
    if (value < 0 && value != -1) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", value, " is negative (0 = unlimited)"));
  }
  return absl::OkStatus();
}

int Main() {
  absl::Status flags_ok = CheckFlags();
  if (!flags_ok.ok()) return Fail(flags_ok, 2);
  // 1. The spec (a resumed experiment brings its own, from the database).
  const std::string db_flag = absl::GetFlag(FLAGS_db);
  auto loaded = LoadExperiment(absl::GetFlag(FLAGS_experiment));
  if (!loaded.ok()) return Fail(loaded.status(), 2);
  std::string db_path = ResolveOutputPath(db_flag.empty() ? loaded->spec.output().database_path() : db_flag);
  const bool resume = absl::GetFlag(FLAGS_resume) || absl::GetFlag(FLAGS_resume_experiment) > 0;

  // --validate_only writes nothing (unless it must read a resumed experiment's spec). An
  // existing database is opened now (a corrupt one fails before the model loads); a new one is
  // created only once the spec, the model and the domain have passed (open_db below), so that
  // a bad spec leaves no empty database behind.
  absl::StatusOr<std::unique_ptr<ExperimentDb>> db = absl::FailedPreconditionError("not opened");
  auto open_db = [&]() -> bool {
    db = ExperimentDb::Open(db_path, false);
    return db.ok();
  };
  auto db_failed = [&] { return Fail(absl::Status(db.status().code(), absl::StrCat("--db: ", db.status().message())), 2); };
  if (!absl::GetFlag(FLAGS_validate_only) || resume) {
    absl::Status writable = CheckWritable("--db", db_path);
    if (!writable.ok()) return Fail(writable, 2);
    struct stat st {};
    if ((resume || stat(db_path.c_str(), &st) == 0) && !open_db()) return db_failed();
  }
  ExperimentRecord previous;
  if (resume) {
    auto e = absl::GetFlag(FLAGS_resume_experiment) > 0 ? (*db)->GetExperiment(absl::GetFlag(FLAGS_resume_experiment))
                                                         : (*db)->LatestExperiment();
    if (!e.ok()) return Fail(e.status(), 2);
    previous = *e;
    auto spec = ParseExperiment(previous.spec_text, absl::StrCat(db_path, " (experiment ", previous.id, ")"));
    if (!spec.ok()) return Fail(spec.status(), 2);
    loaded = std::move(spec);
    Log(absl::StrFormat("resuming experiment %d '%s' (%s)", previous.id, previous.name, previous.status));
  }
  ExperimentSpec& spec = loaded->spec;
  // Budgets and workers may change on --resume (run longer; the workers moved); what the
  // search computes may not.
  if (absl::GetFlag(FLAGS_max_evaluations) >= 0) spec.mutable_search()->set_max_evaluations(absl::GetFlag(FLAGS_max_evaluations));
  if (absl::GetFlag(FLAGS_max_candidates) >= 0) spec.mutable_search()->set_max_candidates(absl::GetFlag(FLAGS_max_candidates));
  if (absl::GetFlag(FLAGS_max_wall_seconds) >= 0) spec.mutable_search()->set_max_wall_seconds(absl::GetFlag(FLAGS_max_wall_seconds));
  const bool budget_flag = absl::GetFlag(FLAGS_max_evaluations) >= 0 || absl::GetFlag(FLAGS_max_candidates) >= 0 ||
                           absl::GetFlag(FLAGS_max_wall_seconds) >= 0;
  if (budget_flag && spec.search().max_evaluations() == 0 && spec.search().max_candidates() == 0 &&
      spec.search().max_wall_seconds() == 0) {
    return Fail(absl::InvalidArgumentError(
                    "--max_evaluations, --max_candidates and --max_wall_seconds: with these flags no budget is left "
                    "(0 = unlimited), so the search would never stop; give one of them a positive value"),
                2);
  }
  if (!absl::GetFlag(FLAGS_workers).empty()) {
    spec.mutable_workers()->clear_targets();
    for (absl::string_view t : absl::StrSplit(absl::GetFlag(FLAGS_workers), ',', absl::SkipEmpty()))
      spec.mutable_workers()->add_targets(std::string(t));
  }
  if (resume) {
    for (const auto& [given, flag] : {std::make_pair(absl::GetFlag(FLAGS_seed) >= 0, "--seed"),
                                      std::make_pair(!absl::GetFlag(FLAGS_dedup).empty(), "--dedup"),
                                      std::make_pair(!absl::GetFlag(FLAGS_experiment).empty(), "--experiment")}) {
      if (given) {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
                        flag, " cannot change a resumed experiment (it continues with the spec stored in ", db_path,
                        "); leave it out, or start a new experiment without --resume")),
                    2);
      }
    }
  } else {
    if (absl::GetFlag(FLAGS_seed) >= 0) spec.mutable_search()->set_seed(absl::GetFlag(FLAGS_seed));
    const std::string dedup = absl::GetFlag(FLAGS_dedup);
    if (dedup == "functional" || dedup == "exact") {
      spec.mutable_fec()->set_dedup(dedup == "functional" ? FecSpec::FUNCTIONAL : FecSpec::EXACT);
    } else if (dedup == "none") {
      spec.clear_fec();
    } else if (!dedup.empty()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat("--dedup: '", dedup, "' is not functional, exact or none")), 2);
    }
  }
  if (!absl::GetFlag(FLAGS_report).empty()) spec.mutable_output()->set_report_path(absl::GetFlag(FLAGS_report));
  // A model or text given anew (also on --resume, when the files moved: the context
  // fingerprint below must still match).
  if (!absl::GetFlag(FLAGS_model).empty()) {
    spec.mutable_evaluation()->set_model_path(absl::GetFlag(FLAGS_model));
    if (absl::GetFlag(FLAGS_text).empty()) spec.mutable_evaluation()->clear_text_path();
  }
  if (!absl::GetFlag(FLAGS_text).empty()) spec.mutable_evaluation()->set_text_path(absl::GetFlag(FLAGS_text));
  if (absl::GetFlag(FLAGS_eval_threads) > 0) spec.mutable_evaluation()->set_threads(absl::GetFlag(FLAGS_eval_threads));
  absl::Status valid = ValidateExperiment(*loaded, nullptr);
  if (!valid.ok()) return Fail(valid, 2);
  const std::string report_path = ResolveOutputPath(spec.output().report_path());
  if (!absl::GetFlag(FLAGS_validate_only)) {
    absl::Status writable = CheckWritable("--report", report_path);
    if (!writable.ok()) return Fail(writable, 2);
    if (!absl::GetFlag(FLAGS_trace_csv).empty()) {
      writable = CheckWritable("--trace_csv", ResolveOutputPath(absl::GetFlag(FLAGS_trace_csv)));
      if (!writable.ok()) return Fail(writable, 2);
    }
  }

  // 2. The domain: what is searched, how a candidate is hashed and evaluated. For KV-cache
  // compression the search host loads the model too: it captures the probe for the
  // functional hash (and evaluates locally unless workers are given).
  const bool use_cache = spec.has_fec();
  const std::string dedup_name = !use_cache ? "none" : spec.fec().dedup() == FecSpec::EXACT ? "exact" : "functional";
  FecSpec fec = spec.fec();
  if (!use_cache) fec.set_dedup(FecSpec::EXACT);  // hashes are still recorded
  std::unique_ptr<Domain> domain;
  if (spec.search_space().representation() == SearchSpaceSpec::PROGRAM) {
    Log(absl::StrCat("experiment '", spec.name(), "' from ", loaded->source, "; programs domain (AutoML-Zero, docs/PROGRAMS.md)"));
    auto d = programs::ProgramDomain::Create(spec, fec);
    if (!d.ok()) return Fail(LocateError(*loaded, d.status()), 2);
    for (const auto& [k, v] : (*d)->Facts()) Log(absl::StrCat(k, ": ", v));
    domain = std::move(*d);
  } else if (spec.search_space().representation() == SearchSpaceSpec::USER_DEFINED) {
    Log(absl::StrCat("experiment '", spec.name(), "' from ", loaded->source, "; user-defined domain '",
                     spec.search_space().user_domain().name(), "'"));
    auto d = UserDomain::Create(spec);
    if (!d.ok()) return Fail(LocateError(*loaded, d.status()), 2);
    domain = std::move(*d);
  } else {
    Log(absl::StrCat("experiment '", spec.name(), "' from ", loaded->source, "; loading ", spec.evaluation().model_path()));
    auto context = EvaluationContext::Create(spec.evaluation());
    if (!context.ok()) return Fail(LocateError(*loaded, context.status()), 2);
    const ModelConfig& model = (*context)->config();
    Log(absl::StrFormat("model: %s, %d layers, %d heads (%d KV heads of %d), %lld parameters; text: %s, %d windows of %d tokens",
                        model.model_type, model.num_layers, model.num_heads, model.num_kv_heads, model.head_dim,
                        static_cast<long long>((*context)->model().parameter_count()), (*context)->text_description(),
                        (*context)->window_count(), (*context)->window_length()));
    {
      std::vector<std::string> notes;
      spec = AdaptToModel(spec, model, &notes);
      for (const std::string& n : notes) Log(absl::StrCat("fitted to the model: ", n));
    }
    valid = ValidateExperiment(*loaded, &model);
    if (!valid.ok()) return Fail(valid, 2);
    if (!absl::GetFlag(FLAGS_validate_only)) {
      Log(absl::StrFormat("uncompressed reference on %d windows of %d tokens ...", (*context)->spec().eval_windows_size(),
                          (*context)->window_length()));
      Log(absl::StrFormat("uncompressed perplexity %.4f", std::exp((*context)->baseline().mean_nll)));
    }
    auto d = KvDomain::Create(spec, fec, *context);
    if (!d.ok()) return Fail(LocateError(*loaded, d.status()), 2);
    domain = std::move(*d);
  }
  if (resume && previous.context != domain->context_fingerprint()) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
                    "experiment ", previous.id, " was run under another evaluation context (", previous.context, ", now ",
                    domain->context_fingerprint(), ": another model, text, protocol or evaluator); it cannot be resumed with these files")),
                2);
  }
  auto objectives = ObjectiveSet::Create(spec.search(), domain->Metrics(), domain->DefaultObjectives());
  if (!objectives.ok()) return Fail(LocateError(*loaded, objectives.status()), 2);
  const std::string space_line = absl::StrCat("search space of ", SpaceSize(domain->space().Size()), " ",
                                              spec.search_space().representation() == SearchSpaceSpec::PIPELINE_GRAPH
                                                  ? "genomes, and the pipeline graphs mutations reach from them"
                                                  : "candidates");
  if (absl::GetFlag(FLAGS_validate_only)) {
    std::printf("%s: valid (%s; domain %s; %s)\n", loaded->source.c_str(), spec.name().c_str(), domain->name().c_str(),
                space_line.c_str());
    return 0;
  }
  if (!domain->Fidelities().empty()) {
    std::vector<std::string> rungs;
    for (const Fidelity& f : domain->Fidelities()) rungs.push_back(absl::StrFormat("%s (%.2f of a full evaluation)", f.name, f.relative_cost));
    const FidelitySpec& fs = spec.search().fidelity();
    const std::string rule =
        fs.promotion() == FidelitySpec::TOP_FRACTION
            ? absl::StrCat("promotion of the top 1/", fs.eta(), " at each rung")
        : spec.search().algorithm() == SearchSpec::REGULARIZED_EVOLUTION
            ? absl::StrCat("promotion on arrival of results in the top 1/", fs.eta(), " of their rung")
            : "promotion on arrival of results no earlier one at their rung dominates";
    Log(absl::StrCat("fidelities: ", absl::StrJoin(rungs, ", "), "; ", rule,
                     "; the evaluation budget counts full-evaluation equivalents"));
    if (absl::GetFlag(FLAGS_verify_hits)) {
      return Fail(absl::InvalidArgumentError("--verify_hits: not with search.fidelity (hits below the full evaluation "
                                             "would be checked against full evaluations)"),
                  2);
    }
  }
  if (spec.search().has_screen()) {
    const ScreenSpec& sc = spec.search().screen();
    if (sc.initial_pool() > 0 && spec.search().population_size() > spec.search_space().seeds_size()) {
      Log(absl::StrFormat("probe screen: the initial population is chosen from %d random candidates by predicted (bits, probe "
                          "error): non-dominated rank, then crowding distance",
                          sc.initial_pool()));
    }
    if (sc.skip()) {
      Log(absl::StrFormat("probe screen: after %d full evaluations, new candidates whose predicted (bits, probe error) a full "
                          "evaluation's dominates by the margin %.2f are skipped",
                          sc.warmup(), sc.margin()));
    }
  }
  Log(absl::StrCat("domain ", domain->name(), "; ", space_line));

  if (!db.ok() && !open_db()) return db_failed();

  // 3. The cache and the hashes.
  std::unique_ptr<CacheStore> store;
  std::unique_ptr<FecCache> cache;
  auto hasher = CandidateHasher::Create(domain.get(), fec);
  if (!hasher.ok()) return Fail(hasher.status(), 1);
  if (use_cache) {
    auto s = CacheStore::Open(db_path, false);
    if (!s.ok()) return Fail(s.status(), 2);
    store = std::move(*s);
    FecCacheOptions options;
    options.capacity = fec.capacity();
    options.max_num_evals = fec.max_num_evals();
    options.remove_probability = fec.remove_probability();
    options.forget_every = fec.forget_every();
    options.seed = spec.search().seed();
    auto c = FecCache::Create(options, store.get());
    if (!c.ok()) return Fail(c.status(), 2);
    cache = std::move(*c);
    const FecStats st = cache->stats();
    if (st.entries > 0) Log(absl::StrFormat("cache: %d entries from earlier searches in %s", st.entries, db_path));
  }
  const CandidateHasher* h = hasher->get();
  Keyer keyer = [h](const Candidate& c) { return h->Hash(c); };

  // 4. Where evaluations run. Cores are shared between candidates at a time (--threads) and
  // threads inside each evaluation (--eval_threads): by default their product is the cores.
  const int eval_threads = std::max(1, spec.evaluation().threads());
  const int threads = absl::GetFlag(FLAGS_threads) > 0
                          ? absl::GetFlag(FLAGS_threads)
                          : std::max(1, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) / eval_threads);
  auto pool = MakeEvaluationPool(spec, *domain, threads);
  if (!pool.ok()) return Fail(LocateError(*loaded, pool.status()), 2);
  Log(absl::StrCat("evaluating on ", (*pool)->Describe(), "; deduplication: ", dedup_name));

  // 5. The search.
  int64_t experiment_id = previous.id;
  if (!resume) {
    ExperimentRecord rec;
    rec.name = spec.name();
    google::protobuf::TextFormat::PrintToString(spec, &rec.spec_text);
    rec.context = domain->context_fingerprint();
    rec.dedup = dedup_name;
    rec.seed = spec.search().seed();
    rec.started_micros = absl::ToUnixMicros(absl::Now());
    rec.domain = domain->name();
    auto id = (*db)->StartExperiment(rec);
    if (!id.ok()) return Fail(id.status(), 1);
    experiment_id = *id;
  } else {
    (void)(*db)->SetExperimentStatus(experiment_id, "running");
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  const std::string mode_flag = absl::GetFlag(FLAGS_progress);
  TerminalProgress::Mode mode = mode_flag == "bar"    ? TerminalProgress::Mode::kBar
                                : mode_flag == "log"  ? TerminalProgress::Mode::kLog
                                : mode_flag == "none" ? TerminalProgress::Mode::kNone
                                                      : TerminalProgress::AutoMode(stderr);
  TerminalProgress progress(stderr, mode);
  ControllerOptions options;
  options.spec = spec;
  options.experiment_id = experiment_id;
  options.resume = resume;
  options.use_cache = use_cache;
  options.keep_dominated_candidates = absl::GetFlag(FLAGS_verify_hits);
  options.context_fingerprint = domain->context_fingerprint();
  options.stop = &g_stop;
  Controller controller(options, *domain, *objectives, keyer, cache.get(), pool->get(), db->get(), &progress);
  auto result = controller.Run();
  // What the hits were, and (--verify_hits) whether the equivalents really are.
  absl::StatusOr<HitAudit> audit = absl::UnknownError("not computed");
  if (result.ok()) {
    audit = ClassifyHits(db->get(), experiment_id, result->records);
    if (!audit.ok()) Log(absl::StrCat("cannot classify the cache hits: ", audit.status().message()));
  }
  if (audit.ok() && absl::GetFlag(FLAGS_verify_hits) && !g_stop.load() && !result->progress.aborted) {
    int todo = 0;
    for (const HitAudit::Hit& h : audit->hits) todo += !h.exact_copy && !h.checked;
    if (todo > 0) Log(absl::StrCat("verifying ", todo, " functional-equivalent hits by evaluating them again ..."));
    absl::Status v = VerifyHits(
        &*audit, result->records, pool->get(), absl::GetFlag(FLAGS_verify_tolerance), db->get(),
        [&](int done, int total) {
          if (mode != TerminalProgress::Mode::kNone) std::fprintf(stderr, "search: verified %d/%d hits\n", done, total);
        },
        &g_stop);
    if (!v.ok()) Log(absl::StrCat("hit checks not all recorded: ", v.message()));
  }
  (*pool)->Shutdown();
  if (!result.ok()) {
    (void)(*db)->SetExperimentStatus(experiment_id, "failed");
    return Fail(result.status(), 1);
  }
  (void)(*db)->SetExperimentStatus(experiment_id, result->progress.aborted ? "failed"
                                                  : g_stop.load()            ? "interrupted"
                                                                             : "finished");
  if (cache) (void)cache->PersistStats();

  // 6. The front, the report, where things are.
  const Progress& p = result->progress;
  std::printf("\nStopped: %s.\n", p.stop_reason.c_str());
  std::printf("%lld candidates: %lld evaluated, %lld cache hits, %lld merged with a running evaluation, %lld partial hits, %lld invalid, %lld failed; hit rate %.1f%%.\n",
              static_cast<long long>(p.candidates), static_cast<long long>(p.misses), static_cast<long long>(p.hits),
              static_cast<long long>(p.merges), static_cast<long long>(p.partial_hits), static_cast<long long>(p.invalid),
              static_cast<long long>(p.failed), 100 * p.hit_rate());
  if (p.multi_fidelity) {
    std::printf("Compute: %.2f full-evaluation equivalents; %lld promotions; %lld candidates stopped below the full evaluation "
                "(recorded with their rung; not on the front).\n",
                p.compute, static_cast<long long>(p.promotions), static_cast<long long>(p.below_full));
  }
  if (p.screening) {
    const std::string pool =
        p.initial_pool > 0 ? absl::StrFormat("the initial population chosen from %d random candidates by prediction (%lld not chosen, recorded SCREENED); ", p.initial_pool, static_cast<long long>(p.pool_rejected)) : "";
    const std::string skipped =
        !p.screen_skips
            ? ""
            : absl::StrFormat("%lld candidates skipped as predicted dominated (recorded SCREENED, not evaluated); ",
                              static_cast<long long>(p.screened));
    std::printf("Screen: %s%spredictions took %.1f s.\n", pool.c_str(), skipped.c_str(), p.screen_seconds);
  }
  if (audit.ok() && !audit->hits.empty()) std::printf("%s.\n", audit->Summary().c_str());
  if (audit.ok() && audit->false_hits > 0) {
    std::printf("False hits (the cache returned another candidate's fitness; consider more probe inputs or mantissa bits):\n");
    for (const HitAudit::Hit& h : audit->hits) {
      if (h.checked && !h.exact_copy && h.check.error.empty() && !h.check.matched) {
        std::printf("  #%lld: relative difference %.3g\n", static_cast<long long>(h.id), h.check.max_relative_difference);
      }
    }
  }
  if (p.probes > 0 && p.misses > 0) {
    double eval_seconds = 0;
    for (const CandidateRecord& r : result->records) {
      if (r.outcome == Outcome::kMiss) eval_seconds += r.eval_seconds;
    }
    auto duration = [](double s) {
      return s < 1e-3 ? absl::StrFormat("%.1f us", 1e6 * s) : s < 1 ? absl::StrFormat("%.1f ms", 1e3 * s) : absl::StrFormat("%.2f s", s);
    };
    std::printf("Hashing took %.1f s: %lld probes, %s each, against %s per evaluation (%.2f%%).\n", p.hash_seconds,
                static_cast<long long>(p.probes), duration(p.hash_seconds / p.probes).c_str(),
                duration(eval_seconds / p.misses).c_str(),
                100 * (p.hash_seconds / p.probes) / std::max(1e-9, eval_seconds / p.misses));
  }
  if (cache) {
    const FecStats st = cache->stats();
    std::printf("The cache saved %.1f s of evaluation (%lld entries in %s).\n", st.seconds_saved,
                static_cast<long long>(st.entries), db_path.c_str());
  }
  std::string facts;
  for (const auto& [k, v] : domain->Facts()) {
    if (k != "model" && k != "text") absl::StrAppend(&facts, "; ", k, " ", v);
  }
  if (facts.size() > 80) facts.clear();  // long facts were logged at the start
  std::printf("\nPareto front (%zu candidates%s):\n", result->front.size(), facts.c_str());
  const int chosen = ChosenConfiguration(*objectives, *result);
  {
    // Columns as wide as their widest cell.
    std::vector<std::vector<std::pair<std::string, std::string>>> rows;
    for (int i : result->front) rows.push_back(domain->FrontColumns(result->records[i].objectives, *objectives));
    std::vector<size_t> widths;
    for (const auto& row : rows) {
      widths.resize(std::max(widths.size(), row.size()), 0);
      for (size_t k = 0; k < row.size(); ++k) widths[k] = std::max({widths[k], row[k].first.size(), row[k].second.size()});
    }
    std::printf("%7s", "id");
    if (!rows.empty()) {
      for (size_t k = 0; k < rows[0].size(); ++k) std::printf("  %*s", static_cast<int>(widths[k]), rows[0][k].first.c_str());
    }
    std::printf("  candidate\n");
    for (size_t n = 0; n < rows.size(); ++n) {
      const int i = result->front[n];
      const CandidateRecord& c = result->records[i];
      std::printf("%7lld", static_cast<long long>(c.id));
      for (size_t k = 0; k < rows[n].size(); ++k) std::printf("  %*s", static_cast<int>(widths[k]), rows[n][k].second.c_str());
      const std::string remark = domain->Remark(c.candidate);
      std::printf("  %s%s%s\n", i == chosen ? "* " : "", domain->Describe(c.candidate).c_str(),
                  remark.empty() ? "" : absl::StrCat("  [", remark, "]").c_str());
    }
  }
  if (chosen >= 0) std::printf("(* = the chosen candidate: lowest weighted sum of the objectives)\n");
  ReportInput report;
  report.spec = spec;
  report.result = *result;
  if (chosen >= 0 && cache && report.result.records[chosen].result.ByteSizeLong() == 0) {
    // A cache hit (or a resumed record) carries no full result: the report takes it from the
    // result stored with the cache entry.
    CandidateRecord& c = report.result.records[chosen];
    Hash128 key;
    if (Hash128::FromHex(c.cache_key, &key)) {
      auto stored = cache->StoredResult(key);
      if (stored.ok()) c.result = *stored;
    }
  }
  report.domain = domain.get();
  report.objectives = &*objectives;
  report.dedup = dedup_name;
  report.pool = (*pool)->Describe();
  report.database = db_path;
  if (audit.ok()) report.hits = &*audit;
  absl::Status written = WriteReport(report_path, report);
  if (!written.ok()) return Fail(written, 1);
  if (!absl::GetFlag(FLAGS_trace_csv).empty()) {
    std::string csv = "seconds,evaluations,compute_full_evaluations,candidates,hypervolume,best_scalar,hit_rate\n";
    for (const TracePoint& t : result->trace) {
      absl::StrAppendFormat(&csv, "%.3f,%d,%.4f,%d,%.6f,%.6f,%.4f\n", t.seconds, t.evaluations, t.compute, t.candidates,
                            t.hypervolume, t.best_scalar, t.hit_rate);
    }
    absl::Status traced = WriteFileAtomically(ResolveOutputPath(absl::GetFlag(FLAGS_trace_csv)), csv);
    if (!traced.ok()) return Fail(absl::Status(traced.code(), absl::StrCat("--trace_csv: ", traced.message())), 1);
  }
  std::printf("\nDatabase: %s (experiment %lld)\nReport:   %s\n", db_path.c_str(), static_cast<long long>(experiment_id),
              report_path.c_str());
  std::printf("Inspect the cache: bazel run //hashing:inspect -- --db=%s stats\n", db_path.c_str());
  if (p.aborted) {
    std::fprintf(stderr, "search: stopped by an error: %s\n", p.stop_reason.c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace fecsearch

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Searches KV-cache compression configurations of a language model for the Pareto front of "
      "memory vs perplexity, with functional equivalence caching; or any domain the experiment "
      "declares (docs/DOMAINS.md: user-defined gene spaces; docs/PROGRAMS.md: AutoML-Zero programs).\n"
      "  bazel run //search                      # the embedded default experiment\n"
      "  bazel run //search -- --experiment=search/experiments/pipeline_graphs.textproto\n"
      "  bazel run //search -- --experiment=$PWD/search/experiments/programs.textproto\n"
      "  bazel run //search -- --resume          # continue an interrupted search");
  fecsearch::InitProcess();
  absl::ParseCommandLine(argc, argv);
  return fecsearch::Main();
}
