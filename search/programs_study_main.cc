// programs_study: the evidence of docs/PROGRAMS.md section 7 from searches' databases.
//   reach DB...       for each experiment: when (evaluations, candidates, seconds) the search
//                     first held a program whose selection-task fitness reaches --target, the
//                     hit rate, and hits that are not exact copies
//   collisions DB     false hits against mantissa bits and probe size (truth: full evaluation)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/process_init.h"
#include "hashing/candidate_hasher.h"
#include "hashing/sqlite_db.h"
#include "nlohmann/json.hpp"
#include "search/domains/programs/program_domain.h"
#include "search/experiment.h"

ABSL_FLAG(double, target, 0.9999, "reach: selection-task fitness to reach (the demo's sufficient_fitness).");
ABSL_FLAG(int, max_programs, 20000, "collisions: distinct programs taken from the database, in order.");
ABSL_FLAG(std::string, mantissa_bits, "4,8,12,16,23", "collisions: mantissa widths.");
ABSL_FLAG(std::string, probe_sizes, "2,5,10,20", "collisions: probe sizes (training = validation examples).");

namespace fecsearch {
namespace {

int Fail(const std::string& m) {
  std::fprintf(stderr, "programs_study: %s\n", m.c_str());
  return 2;
}

struct Experiment {
  int64_t id;
  std::string spec, dedup;
  int64_t seed, started;
};

absl::StatusOr<std::vector<Experiment>> Experiments(SqliteDb& db) {
  auto st = db.Prepare("SELECT id, spec, dedup, seed, started_micros FROM experiments ORDER BY id");
  if (!st.ok()) return st.status();
  std::vector<Experiment> out;
  while (true) {
    auto row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({st->Int(0), st->Text(1), st->Text(2), st->Int(3), st->Int(4)});
  }
  return out;
}

absl::StatusOr<std::unique_ptr<programs::ProgramDomain>> DomainOf(const Experiment& e, int probe_size = 0) {
  auto loaded = ParseExperiment(e.spec, "experiments.spec");
  if (!loaded.ok()) return loaded.status();
  ExperimentSpec spec = loaded->spec;
  if (spec.search_space().representation() != SearchSpaceSpec::PROGRAM) {
    return absl::InvalidArgumentError(absl::StrCat("experiment ", e.id, " is not a programs experiment"));
  }
  if (probe_size > 0) {
    spec.mutable_search_space()->mutable_program_domain()->set_probe_train_examples(probe_size);
    spec.mutable_search_space()->mutable_program_domain()->set_probe_valid_examples(probe_size);
  }
  return programs::ProgramDomain::Create(spec, spec.fec());
}

int Reach(const std::vector<std::string>& paths) {
  const double target = absl::GetFlag(FLAGS_target);
  std::printf("| db | experiment | dedup | seed | candidates | evaluated | hit rate | hits not exact copies | reached %.4f | evaluations to reach | candidates to reach | seconds to reach | best selection fitness | best program (live) |\n", target);
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const std::string& path : paths) {
    auto db = SqliteDb::Open(path, true);
    if (!db.ok()) return Fail(std::string(db.status().message()));
    auto exps = Experiments(**db);
    if (!exps.ok()) return Fail(std::string(exps.status().message()));
    for (const Experiment& e : *exps) {
      auto domain = DomainOf(e);
      if (!domain.ok()) return Fail(std::string(domain.status().message()));
      auto st = (*db)->Prepare(
          "SELECT outcome, candidate, objectives, exact_hash, created_micros FROM candidates WHERE experiment_id = ? ORDER BY id");
      if (!st.ok()) return Fail(std::string(st.status().message()));
      st->Bind(1, e.id);
      int64_t candidates = 0, evaluated = 0, hits = 0, novel_hits = 0;
      double best = -1, best_sel = -1;
      std::string best_desc;
      int64_t reach_evals = -1, reach_cands = -1;
      double reach_seconds = -1;
      std::set<std::string> exact_seen;
      while (true) {
        auto row = st->Step();
        if (!row.ok()) return Fail(std::string(row.status().message()));
        if (!*row) break;
        const std::string outcome = st->Text(0);
        bool outcome_is_partial = false;
        // A partial hit (aggregating FEC) is evaluated again: it counts as an evaluation.
        if (outcome == "PARTIAL_HIT") outcome_is_partial = true;
        else if (outcome != "MISS" && outcome != "HIT") continue;
        ++candidates;
        const std::string exact = st->Text(3);
        const bool seen = !exact_seen.insert(exact).second;
        if (outcome == "MISS" || outcome_is_partial) ++evaluated;
        if (outcome == "HIT") {
          ++hits;
          if (!seen) ++novel_hits;
        }
        if (st->IsNull(2)) continue;
        const double fitness = nlohmann::json::parse(st->Text(2)).value("fitness", -1.0);
        if (fitness > best + 1e-12) {
          best = fitness;
          Candidate c;
          if (!c.ParseFromString(st->Blob(1))) return Fail(absl::StrCat(path, ": unreadable candidate"));
          auto sel = (*domain)->SelectionFitness(c);
          if (!sel.ok()) continue;
          if (*sel > best_sel) {
            best_sel = *sel;
            best_desc = (*domain)->Describe(c);
          }
          if (reach_evals < 0 && *sel >= target) {
            reach_evals = evaluated;
            reach_cands = candidates;
            reach_seconds = (st->Int(4) - e.started) / 1e6;
          }
        }
      }
      std::printf("| %s | %lld | %s | %lld | %lld | %lld | %.1f%% | %.1f%% | %s | %s | %s | %s | %.6f | `%s` |\n", path.c_str(),
                  static_cast<long long>(e.id), e.dedup.c_str(), static_cast<long long>(e.seed), static_cast<long long>(candidates),
                  static_cast<long long>(evaluated), candidates ? 100.0 * hits / candidates : 0.0,
                  candidates ? 100.0 * novel_hits / candidates : 0.0, reach_evals >= 0 ? "yes" : "no",
                  reach_evals >= 0 ? absl::StrCat(reach_evals).c_str() : "-",
                  reach_cands >= 0 ? absl::StrCat(reach_cands).c_str() : "-",
                  reach_seconds >= 0 ? absl::StrFormat("%.1f", reach_seconds).c_str() : "-", best_sel, best_desc.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}

int Collisions(const std::string& path) {
  auto db = SqliteDb::Open(path, true);
  if (!db.ok()) return Fail(std::string(db.status().message()));
  auto exps = Experiments(**db);
  if (!exps.ok() || exps->empty()) return Fail(absl::StrCat(path, ": no experiment"));
  const Experiment& e = exps->front();
  auto base = DomainOf(e);
  if (!base.ok()) return Fail(std::string(base.status().message()));
  // Distinct programs in the order the search proposed them, with their full fitness.
  auto st = (*db)->Prepare("SELECT candidate FROM candidates WHERE experiment_id = ? ORDER BY id");
  st->Bind(1, e.id);
  std::vector<Candidate> programs;
  std::vector<double> fitness;
  std::set<std::string> seen;
  const int max_programs = absl::GetFlag(FLAGS_max_programs);
  while (static_cast<int>(programs.size()) < max_programs) {
    auto row = st->Step();
    if (!row.ok() || !*row) break;
    Candidate c;
    if (!c.ParseFromString(st->Blob(0)) || !(*base)->Validate(c).ok()) continue;
    if (!seen.insert(DeterministicBytes(c)).second) continue;
    auto r = (*base)->Evaluate(c);
    if (!r.ok() || r->status().code() != 0) continue;
    programs.push_back(c);
    fitness.push_back(r->objectives().metrics().at("fitness"));
  }
  std::printf("%zu distinct programs from %s (experiment %lld); a hit is false when the full evaluation's fitness differs "
              "(by more than 1e-12) from the fitness of the first program with the same key.\n\n",
              programs.size(), path.c_str(), static_cast<long long>(e.id));
  std::printf("| probe examples (train + valid) | mantissa bits | hits | false hits | false-hit rate | probe time per program (us) |\n");
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  for (const std::string& ps : std::vector<std::string>(absl::StrSplit(absl::GetFlag(FLAGS_probe_sizes), ','))) {
    int size = 0;
    if (!absl::SimpleAtoi(ps, &size)) return Fail("--probe_sizes: " + ps);
    auto domain = DomainOf(e, size);
    if (!domain.ok()) return Fail(std::string(domain.status().message()));
    for (const std::string& mb : std::vector<std::string>(absl::StrSplit(absl::GetFlag(FLAGS_mantissa_bits), ','))) {
      int bits = 0;
      if (!absl::SimpleAtoi(mb, &bits)) return Fail("--mantissa_bits: " + mb);
      FunctionalHasher hasher(bits);
      std::map<std::string, double> first;
      int64_t hits = 0, false_hits = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (size_t i = 0; i < programs.size(); ++i) {
        auto h = hasher.Hash((*domain)->context_fingerprint(),
                             [&](OutputSink& sink) { return (*domain)->Probe(programs[i], sink); });
        if (!h.ok()) return Fail(std::string(h.status().message()));
        auto [it, added] = first.emplace(h->Hex(), fitness[i]);
        if (!added) {
          ++hits;
          if (std::fabs(it->second - fitness[i]) > 1e-12) ++false_hits;
        }
      }
      const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / programs.size();
      std::printf("| %d + %d | %d | %lld | %lld | %.3f%% | %.1f |\n", size, size, bits, static_cast<long long>(hits),
                  static_cast<long long>(false_hits), hits ? 100.0 * false_hits / hits : 0.0, us);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace fecsearch

int main(int argc, char** argv) {
  fecsearch::InitProcess();
  absl::SetProgramUsageMessage(
      "Evidence for the programs domain (docs/PROGRAMS.md).\n"
      "  bazel run //search:programs_study -- reach A.db B.db ...   [--target=0.9999]\n"
      "  bazel run //search:programs_study -- collisions A.db        [--mantissa_bits=4,8,12,16,23 --probe_sizes=2,5,10,20]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 3) return fecsearch::Fail("usage: programs_study reach DB... | collisions DB (--help)");
  const std::string mode = args[1];
  std::vector<std::string> dbs(args.begin() + 2, args.end());
  if (mode == "reach") return fecsearch::Reach(dbs);
  if (mode == "collisions") return fecsearch::Collisions(dbs[0]);
  return fecsearch::Fail("mode '" + mode + "' is not reach or collisions");
}
