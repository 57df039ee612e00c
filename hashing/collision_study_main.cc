// bazel run //hashing:collision_study -- [--genomes=2000] [--out=PATH]
// The paper's collision analysis on our domain: genomes (random ones and chains of mutations,
// as a search produces them) are grouped by functional hash at several mantissa widths; the
// members of groups with distinct genomes are fully evaluated, and since the evaluator is
// deterministic any difference in their results is a false hit. Also counts the functionally
// equivalent pairs that the structural and exact-genome hashes miss. Prints Markdown.
#include <algorithm>
#include <chrono>
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
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/evaluator.h"
#include "core/paths.h"
#include "core/process_init.h"
#include "core/text_proto.h"
#include "hashing/candidate_hasher.h"
#include "hashing/kv_probe.h"
#include "hashing/structural_hash.h"
#include "search/experiment.h"
#include "search/domains/genome_space.h"

ABSL_FLAG(int, genomes, 2000, "Genomes to hash (half random, half chains of mutations).");
ABSL_FLAG(int, chain_length, 20, "Mutations per chain.");
ABSL_FLAG(std::string, mantissa_bits, "0,1,2,4,6,8,10,12,16,23", "Mantissa widths to study.");
ABSL_FLAG(std::string, output_limits, "0,256,16",
          "Also hash only N evenly spaced outputs of each layer's block (a smaller probe); 0 = all.");
ABSL_FLAG(int, max_full_evaluations, 600, "Upper bound on full evaluations (groups are sampled beyond it).");
ABSL_FLAG(int, threads, 2, "Threads per full evaluation.");
ABSL_FLAG(uint64_t, seed, 7, "Seed of the genome generator.");
ABSL_FLAG(std::string, experiment, "", "Experiment whose search space, probe and evaluation to use (default: the embedded default).");
ABSL_FLAG(std::string, out, "", "Also write the Markdown to this file.");
ABSL_FLAG(int, show_false_hits, 3, "Print this many false-hit pairs (configurations and results) to stderr.");

namespace fecsearch {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Forwards only `limit` numbers of each output block, evenly spaced through it: a smaller
// probe (the paper's probes hold a few dozen numbers).
class TruncatingSink : public OutputSink {
 public:
  TruncatingSink(OutputSink& inner, size_t limit) : inner_(inner), limit_(limit) {}
  void AddFloats(absl::Span<const float> values) override {
    if (limit_ == 0 || values.size() <= limit_) return inner_.AddFloats(values);
    std::vector<float> sample(limit_);
    for (size_t i = 0; i < limit_; ++i) sample[i] = values[(i * values.size()) / limit_ + values.size() / (2 * limit_)];
    inner_.AddFloats(sample);
  }
  void AddInt(int64_t v) override { inner_.AddInt(v); }

 private:
  OutputSink& inner_;
  size_t limit_;
};

struct Genome {
  Candidate candidate;
  std::vector<Hash128> functional;  // per (output limit, mantissa width), limit-major
  Hash128 structural, exact;
  int evaluation = -1;  // index into the distinct full evaluations
};

int Main() {
  std::vector<int> widths;
  for (absl::string_view w : absl::StrSplit(absl::GetFlag(FLAGS_mantissa_bits), ',')) {
    int m;
    if (!absl::SimpleAtoi(w, &m) || m < 0 || m > 23) {
      std::fprintf(stderr, "collision_study: --mantissa_bits: '%s' is not 0..23\n", std::string(w).c_str());
      return 2;
    }
    widths.push_back(m);
  }
  std::sort(widths.begin(), widths.end());
  std::vector<int> limits;
  for (absl::string_view w : absl::StrSplit(absl::GetFlag(FLAGS_output_limits), ',', absl::SkipEmpty())) {
    int n;
    if (!absl::SimpleAtoi(w, &n) || n < 0) {
      std::fprintf(stderr, "collision_study: --output_limits: '%s' is not a count\n", std::string(w).c_str());
      return 2;
    }
    limits.push_back(n);
  }
  if (limits.empty() || limits[0] != 0) limits.insert(limits.begin(), 0);  // the full probe first
  auto loaded = LoadExperiment(absl::GetFlag(FLAGS_experiment));
  if (!loaded.ok()) {
    std::fprintf(stderr, "collision_study: %s\n", std::string(loaded.status().message()).c_str());
    return 2;
  }
  EvaluationSpec eval_spec = loaded->spec.evaluation();
  eval_spec.set_threads(absl::GetFlag(FLAGS_threads));
  auto ctx = EvaluationContext::Create(eval_spec);
  if (!ctx.ok()) {
    std::fprintf(stderr, "collision_study: %s\n", std::string(ctx.status().message()).c_str());
    return 2;
  }
  auto space = GenomeSpace::Create(loaded->spec.search_space(), (*ctx)->config());
  if (!space.ok()) {
    std::fprintf(stderr, "collision_study: %s\n", std::string(space.status().message()).c_str());
    return 2;
  }
  const FecSpec& fec = loaded->spec.fec();
  auto probe = KvProbe::Create(*ctx, fec.probe_tokens(), fec.probe_seed());
  if (!probe.ok()) {
    std::fprintf(stderr, "collision_study: %s\n", std::string(probe.status().message()).c_str());
    return 1;
  }
  StructuralHasher structural((*ctx)->config(), (*ctx)->window_length());

  // 1. Genomes: random ones and chains of mutations (mutation probability 0.9, else an exact
  // copy), as a search proposes them.
  const int total = absl::GetFlag(FLAGS_genomes), chain = std::max(1, absl::GetFlag(FLAGS_chain_length));
  Rng rng(absl::GetFlag(FLAGS_seed));
  std::vector<Genome> genomes;
  while (static_cast<int>(genomes.size()) < total / 2) genomes.push_back({space->Random(rng)});
  while (static_cast<int>(genomes.size()) < total) {
    Candidate c = space->Random(rng);
    for (int i = 0; i < chain && static_cast<int>(genomes.size()) < total; ++i) {
      if (rng.Bernoulli(0.9)) c = space->Mutate(c, rng);
      genomes.push_back({c});
    }
  }
  // 2. Hashes.
  std::fprintf(stderr, "collision_study: hashing %d genomes at %zu widths ...\n", total, widths.size());
  const double t_hash = Now();
  for (size_t i = 0; i < genomes.size(); ++i) {
    Genome& g = genomes[i];
    auto s = structural.Hash(g.candidate);
    if (!s.ok()) {
      std::fprintf(stderr, "collision_study: genome %zu: %s\n", i, std::string(s.status().message()).c_str());
      return 1;
    }
    g.structural = *s;
    for (int limit : limits) {
      auto f = FunctionalHasher::HashAtWidths(
          (*ctx)->fingerprint(),
          [&](OutputSink& sink) {
            TruncatingSink truncated(sink, limit);
            return (*probe)->Run(g.candidate, truncated);
          },
          widths);
      if (!f.ok()) {
        std::fprintf(stderr, "collision_study: genome %zu: %s\n", i, std::string(f.status().message()).c_str());
        return 1;
      }
      g.functional.insert(g.functional.end(), f->begin(), f->end());
    }
    g.exact = ExactHash((*ctx)->fingerprint(), g.candidate);
    if ((i + 1) % 200 == 0) std::fprintf(stderr, "collision_study: %zu/%d hashed\n", i + 1, total);
  }
  const double hash_seconds = Now() - t_hash;

  // 3. Full evaluations of every distinct genome sharing a functional hash (at the narrowest
  // width: its groups contain those of every wider width) with another distinct genome.
  // Groups of every configuration, the coarsest first (it contains the finer ones' groups).
  std::vector<std::vector<int>> colliding;
  for (size_t config = genomes.empty() ? 0 : genomes[0].functional.size(); config-- > 0;) {
    std::map<Hash128, std::vector<int>> groups;
    for (size_t i = 0; i < genomes.size(); ++i) groups[genomes[i].functional[config]].push_back(static_cast<int>(i));
    for (auto& [h, members] : groups) colliding.push_back(std::move(members));
  }
  std::map<Hash128, int> distinct_index;  // exact hash -> evaluation slot
  std::vector<int> to_evaluate;           // a representative genome per slot
  int groups_sampled = 0, groups_total = 0;
  std::set<std::vector<int>> seen_groups;
  for (const std::vector<int>& members : colliding) {
    if (!seen_groups.insert(members).second) continue;
    std::set<Hash128> exacts;
    for (int i : members) exacts.insert(genomes[i].exact);
    if (exacts.size() < 2) continue;
    ++groups_total;
    if (static_cast<int>(to_evaluate.size() + exacts.size()) > absl::GetFlag(FLAGS_max_full_evaluations)) continue;
    ++groups_sampled;
    for (int i : members) {
      auto [it, inserted] = distinct_index.emplace(genomes[i].exact, static_cast<int>(to_evaluate.size()));
      if (inserted) to_evaluate.push_back(i);
      genomes[i].evaluation = it->second;
    }
  }
  std::fprintf(stderr, "collision_study: %zu full evaluations (%d of %d colliding groups) ...\n", to_evaluate.size(),
               groups_sampled, groups_total);
  Evaluator evaluator(*ctx);
  std::vector<EvaluationResult> results;
  const double t_eval = Now();
  for (size_t k = 0; k < to_evaluate.size(); ++k) {
    results.push_back(evaluator.Evaluate(genomes[to_evaluate[k]].candidate));
    if ((k + 1) % 50 == 0) std::fprintf(stderr, "collision_study: %zu/%zu evaluated\n", k + 1, to_evaluate.size());
  }
  const double eval_seconds = Now() - t_eval;
  auto same = [&](int a, int b) {
    const EvaluationResult &ra = results[genomes[a].evaluation], &rb = results[genomes[b].evaluation];
    return ra.objectives().mean_nll() == rb.objectives().mean_nll() && ra.cache_bytes() == rb.cache_bytes();
  };

  // 4. Per width: groups, hit rate, false hits (a hit whose full result differs from the
  // entry's first member, among the fully evaluated groups).
  std::string md;
  absl::StrAppendFormat(&md,
                        "| outputs hashed per block | mantissa bits | distinct hashes | hit rate | hits among distinct genomes | false hits | false-hit rate |\n"
                        "|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t config = 0; config < limits.size() * widths.size(); ++config) {
    const size_t w = config % widths.size();
    const int limit = limits[config / widths.size()];
    std::map<Hash128, std::vector<int>> groups;
    for (size_t i = 0; i < genomes.size(); ++i) groups[genomes[i].functional[config]].push_back(static_cast<int>(i));
    int hits = 0, distinct_hits = 0, false_hits = 0;
    for (const auto& [h, members] : groups) {
      const int first = members[0];
      for (size_t k = 1; k < members.size(); ++k) {
        const int i = members[k];
        ++hits;
        if (genomes[i].exact == genomes[first].exact) continue;
        ++distinct_hits;
        if (genomes[i].evaluation >= 0 && genomes[first].evaluation >= 0 && !same(i, first)) {
          if (config + 1 == widths.size() && false_hits < absl::GetFlag(FLAGS_show_false_hits)) {
            const EvaluationResult &ra = results[genomes[first].evaluation], &rb = results[genomes[i].evaluation];
            std::fprintf(stderr, "false hit at m=%d:\n  %s\n    -> mean NLL %.9f, %lld bytes\n  %s\n    -> mean NLL %.9f, %lld bytes\n",
                         widths[w], CandidateSummary(genomes[first].candidate, (*ctx)->config()).c_str(),
                         ra.objectives().mean_nll(), static_cast<long long>(ra.cache_bytes()),
                         CandidateSummary(genomes[i].candidate, (*ctx)->config()).c_str(), rb.objectives().mean_nll(),
                         static_cast<long long>(rb.cache_bytes()));
          }
          ++false_hits;
        }
      }
    }
    absl::StrAppendFormat(&md, "| %s | %d | %d | %.1f %% | %d | %d | %.2f %% |\n",
                          limit == 0 ? std::string("all") : absl::StrCat(limit), widths[w], groups.size(),
                          100.0 * hits / genomes.size(), distinct_hits, false_hits,
                          distinct_hits > 0 ? 100.0 * false_hits / hits : 0.0);
  }
  // 5. Equivalent pairs (identical full results, same widest-width hash) and what the
  // structural and exact hashes make of them.
  int64_t equivalent_pairs = 0, structural_misses = 0, exact_misses = 0;
  std::map<Hash128, std::vector<int>> widest;
  // The full probe at the widest mantissa.
  for (size_t i = 0; i < genomes.size(); ++i) widest[genomes[i].functional[widths.size() - 1]].push_back(static_cast<int>(i));
  for (const auto& [h, members] : widest) {
    for (size_t a = 0; a < members.size(); ++a) {
      for (size_t b = a + 1; b < members.size(); ++b) {
        const int i = members[a], j = members[b];
        const bool evaluated = genomes[i].evaluation >= 0 && genomes[j].evaluation >= 0;
        if (genomes[i].exact != genomes[j].exact && !(evaluated && same(i, j))) continue;
        ++equivalent_pairs;
        structural_misses += genomes[i].structural != genomes[j].structural;
        exact_misses += genomes[i].exact != genomes[j].exact;
      }
    }
  }
  std::string header = absl::StrFormat(
      "%d genomes (%d random, %d in chains of %d mutations with an exact copy 1 time in 10) from the search space of "
      "%s; probe of %d tokens; %zu distinct genomes fully evaluated (%d of %d groups with distinct genomes%s).\n"
      "Probe hashing took %.1f ms per genome at all widths together; full evaluations %.0f ms each.\n\n",
      total, total / 2, total - total / 2, chain, loaded->source, fec.probe_tokens(), to_evaluate.size(), groups_sampled,
      groups_total, groups_sampled < groups_total ? ", sampled" : "", 1e3 * hash_seconds / total,
      to_evaluate.empty() ? 0.0 : 1e3 * eval_seconds / to_evaluate.size());
  std::string pairs = absl::StrFormat(
      "\nFunctionally equivalent pairs (identical full evaluation, or the same genome): %d. The structural hash "
      "separates %d of them (%.1f %%); the exact-genome hash separates %d (%.1f %%); the functional hash, by "
      "construction of this count, none.\n",
      equivalent_pairs, structural_misses, equivalent_pairs ? 100.0 * structural_misses / equivalent_pairs : 0.0,
      exact_misses, equivalent_pairs ? 100.0 * exact_misses / equivalent_pairs : 0.0);
  const std::string report = header + md + pairs;
  std::printf("%s", report.c_str());
  if (!absl::GetFlag(FLAGS_out).empty()) {
    absl::Status s = WriteFileAtomically(ResolveOutputPath(absl::GetFlag(FLAGS_out)), report);
    if (!s.ok()) {
      std::fprintf(stderr, "collision_study: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace fecsearch

int main(int argc, char** argv) {
  fecsearch::InitProcess();
  absl::SetProgramUsageMessage("Collision study of the functional hash (docs/COLLISION_STUDY.md).");
  absl::ParseCommandLine(argc, argv);
  return fecsearch::Main();
}
