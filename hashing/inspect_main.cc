// bazel run //hashing:inspect -- --db=PATH COMMAND
//   stats                    entries, hits, partial hits, misses, hit rate, seconds saved
//   top N                    the N most-hit entries
//   show HASH                one entry, its result, and every candidate that mapped to it
//   export --format=csv|json every entry
// Opens the database read-only: safe on a database a running search is writing.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <cmath>
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
#include "absl/time/time.h"
#include "core/evaluator.h"
#include "core/paths.h"
#include "core/process_init.h"
#include "core/text_proto.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/field_comparator.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "hashing/cache_store.h"
#include "nlohmann/json.hpp"
#include "search/domains/factory.h"
#include "search/domains/kv_domain.h"
#include "protos/experiment.pb.h"
#include "search/experiment_db.h"

ABSL_FLAG(std::string, db, "fecsearch.db", "The search database (cache and candidates).");
ABSL_FLAG(bool, json, false, "Machine-readable JSON output.");
ABSL_FLAG(std::string, format, "csv", "export: csv or json.");

namespace fecsearch {
namespace {

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "inspect: %s\n", message.c_str());
  return code;
}

struct Entry {
  StoredEntry e;
  int64_t rowid = 0;
};

absl::StatusOr<std::vector<Entry>> LatestEntries(const CacheStore& store) {
  std::map<Hash128, Entry> latest;
  absl::Status s = store.Scan([&](const StoredEntry& e, int64_t rowid) {
    Entry& slot = latest[e.hash];
    slot.e = e;
    slot.rowid = rowid;
  });
  if (!s.ok()) return s;
  std::vector<Entry> out;
  for (auto& [h, entry] : latest)
    if (entry.e.num_evals > 0) out.push_back(std::move(entry));
  return out;
}

// An entry's fidelity, as the search database tells it (multi-fidelity searches cache a lower
// rung's result under a key derived from the candidate's, search/domain.h FidelityCacheKey).
struct RungLabel {
  int rung = -1;         // -1: not known to come from a multi-fidelity search
  int rungs = 0;         // rungs of the ladder, the full evaluation included
  std::string name;      // "1 window", "4 windows (full)"
  Hash128 full;          // the key of the same candidates' full-fidelity entry
  bool lower() const { return rung >= 0 && rung + 1 < rungs; }
  std::string Text() const { return rung < 0 ? "-" : absl::StrCat(rung, ": ", name); }
};

// Every cache key the database's multi-fidelity experiments used, with its rung: each
// candidate's key at each rung of its experiment's ladder.
std::map<Hash128, RungLabel> RungLabels(const absl::StatusOr<std::unique_ptr<ExperimentDb>>& edb) {
  std::map<Hash128, RungLabel> labels;
  if (!edb.ok()) return labels;
  auto list = (*edb)->Experiments();
  if (!list.ok()) return labels;
  for (const ExperimentRecord& e : *list) {
    ExperimentSpec spec;
    if (!ParseTextProto(e.spec_text, "experiment spec", &spec).ok() || !spec.search().has_fidelity()) continue;
    auto fidelities = KvFidelities(spec, EvalWindowCount(spec.evaluation()));
    if (!fidelities.ok()) continue;
    auto cands = (*edb)->Candidates(e.id);
    if (!cands.ok()) continue;
    const int rungs = static_cast<int>(fidelities->size());
    for (const CandidateRecord& c : *cands) {
      Hash128 key;
      if (c.cache_key.empty() || !Hash128::FromHex(c.cache_key, &key)) continue;
      for (int r = 0; r < rungs; ++r) {
        const Hash128 at = r + 1 == rungs ? key : FidelityCacheKey(key, (*fidelities)[r]);
        labels[at] = {r, rungs, (*fidelities)[r].name, key};
      }
    }
  }
  return labels;
}

std::string Time(int64_t micros) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMicros(micros), absl::UTCTimeZone());
}

// For files and scripts: ISO 8601 in UTC, e.g. 2026-11-27T11:30:03Z.
std::string IsoTime(int64_t micros) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMicros(micros), absl::UTCTimeZone());
}

// The entry's objectives by name (and, at the top level, each under its own name, as scripts
// written for KV-cache databases read them).
nlohmann::json EntryJson(const Entry& x, const std::map<Hash128, RungLabel>& labels) {
  const StoredEntry& e = x.e;
  nlohmann::json j = {{"hash", e.hash.Hex()},
                      {"num_evals", e.num_evals},
                      {"hits", e.hits},
                      {"partial_hits", e.partial_hits},
                      {"first_candidate_id", e.first_candidate_id},
                      {"created", IsoTime(e.created_micros)},
                      {"last_used", IsoTime(e.last_used_micros)},
                      {"eval_seconds", e.eval_seconds},
                      {"context", e.context}};
  nlohmann::json objectives = nlohmann::json::object();
  if (e.objectives.names) {
    for (size_t i = 0; i < e.objectives.names->size(); ++i) {
      objectives[(*e.objectives.names)[i]] = e.objectives.values[i];
      j[(*e.objectives.names)[i]] = e.objectives.values[i];
    }
  }
  j["objectives"] = objectives;
  // Multi-fidelity searches: the rung whose windows the objectives are on.
  auto label = labels.find(e.hash);
  if (label != labels.end()) {
    j["rung"] = label->second.rung;
    j["fidelity"] = label->second.name;
    if (label->second.lower()) j["full_fidelity_hash"] = label->second.full.Hex();
  }
  return j;
}

// "name value, name value" for one line (`precise`: 9 significant digits, else 6).
std::string ObjectivesLine(const MetricValues& m, bool precise = false) {
  std::vector<std::string> parts;
  if (m.names) {
    for (size_t i = 0; i < m.names->size(); ++i) {
      parts.push_back(absl::StrCat((*m.names)[i], " ",
                                   precise ? absl::StrFormat("%.9g", m.values[i]) : absl::StrFormat("%.6g", m.values[i])));
    }
  }
  return absl::StrJoin(parts, ", ");
}

int Stats(const CacheStore& store, const std::string& db_path) {
  auto entries = LatestEntries(store);
  if (!entries.ok()) return Fail(std::string(entries.status().message()), 1);
  int64_t hits = 0, partial = 0, evals = 0;
  double saved = 0, eval_seconds = 0;
  for (const Entry& x : *entries) {
    hits += x.e.hits;
    partial += x.e.partial_hits;
    evals += x.e.num_evals;
    saved += x.e.hits * x.e.eval_seconds;
    eval_seconds += x.e.num_evals * x.e.eval_seconds;
  }
  // Misses are the evaluations that created or re-measured entries, less partial hits.
  const int64_t misses = evals - partial;
  const int64_t lookups = hits + partial + misses;
  const double rate = lookups > 0 ? static_cast<double>(hits) / lookups : 0.0;
  // Per-experiment outcomes, when the candidates table is there.
  nlohmann::json experiments = nlohmann::json::array();
  auto edb = ExperimentDb::Open(db_path, true);
  if (edb.ok()) {
    auto list = (*edb)->Experiments();
    if (list.ok()) {
      for (const ExperimentRecord& e : *list) {
        auto cands = (*edb)->Candidates(e.id);
        if (!cands.ok()) continue;
        std::map<std::string, int64_t> outcomes, rungs;
        int64_t pool_rows = 0;
        for (const CandidateRecord& c : *cands) {
          // Initial-pool members not chosen were predicted, never proposed: not candidates.
          if (c.operation == kInitialPoolOperation) {
            ++pool_rows;
            continue;
          }
          ++outcomes[OutcomeName(c.outcome)];
          // Multi-fidelity searches: how many candidates stopped at each rung (the last is the
          // full evaluation).
          if (c.rung >= 0 && c.has_objectives) ++rungs[absl::StrCat(c.rung)];
        }
        nlohmann::json one = {{"id", e.id}, {"name", e.name}, {"status", e.status}, {"dedup", e.dedup},
                              {"candidates", static_cast<int64_t>(cands->size()) - pool_rows}, {"outcomes", outcomes}};
        if (pool_rows > 0) one["initial_pool_not_chosen"] = pool_rows;  // search.screen.initial_pool
        if (!rungs.empty()) one["rungs"] = rungs;  // multi-fidelity experiments only
        // Their compute, in full-evaluation equivalents: the windows each evaluated candidate
        // scored (its rung's, promotions included) over the windows of a full evaluation.
        ExperimentSpec spec;
        if (!rungs.empty() && ParseTextProto(e.spec_text, "experiment spec", &spec).ok() && spec.search().has_fidelity()) {
          const int n = EvalWindowCount(spec.evaluation());
          auto whole = (*edb)->Candidates(e.id, /*with_results=*/true);
          if (whole.ok()) {
            int64_t windows = 0;
            for (const CandidateRecord& c : *whole) {
              if (c.outcome == Outcome::kMiss || c.outcome == Outcome::kPartialHit) windows += c.result.windows_size();
            }
            one["compute_full_evaluations"] = static_cast<double>(windows) / n;
          }
        }
        experiments.push_back(one);
      }
    }
  }
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = {{"entries", entries->size()}, {"hits", hits},           {"partial_hits", partial},
                        {"misses", misses},           {"hit_rate", rate},       {"evaluations", evals},
                        {"evaluation_seconds", eval_seconds}, {"seconds_saved", saved}, {"experiments", experiments}};
    std::cout << j.dump(1) << std::endl;
    return 0;
  }
  std::printf("database            %s\n", db_path.c_str());
  std::printf("entries             %zu\n", entries->size());
  std::printf("hits                %lld\n", static_cast<long long>(hits));
  std::printf("partial hits        %lld\n", static_cast<long long>(partial));
  std::printf("misses              %lld (evaluations that created an entry)\n", static_cast<long long>(misses));
  std::printf("hit rate            %.1f %% of cache lookups\n", 100 * rate);
  std::printf("evaluation time     %.1f s spent, %.1f s saved by hits\n", eval_seconds, saved);
  for (const auto& e : experiments) {
    std::vector<std::string> parts;
    for (auto it = e["outcomes"].begin(); it != e["outcomes"].end(); ++it)
      parts.push_back(absl::StrCat(it.key(), " ", it.value().get<int64_t>()));
    std::printf("experiment %-8lld %s (%s, dedup %s): %lld candidates: %s\n", e["id"].get<long long>(),
                e["name"].get<std::string>().c_str(), e["status"].get<std::string>().c_str(),
                e["dedup"].get<std::string>().c_str(), e["candidates"].get<long long>(),
                absl::StrJoin(parts, ", ").c_str());
    if (e.contains("initial_pool_not_chosen")) {
      std::printf("%-19s %lld initial-pool members not chosen (predicted only, never evaluated; search.screen.initial_pool)\n",
                  "", e["initial_pool_not_chosen"].get<long long>());
    }
    if (e.contains("rungs")) {
      std::vector<std::string> rungs;
      for (auto it = e["rungs"].begin(); it != e["rungs"].end(); ++it) {
        rungs.push_back(absl::StrCat("rung ", it.key(), ": ", it.value().get<int64_t>()));
      }
      std::printf("%-19s highest fidelity reached (search.fidelity; the last rung is the full evaluation): %s\n", "",
                  absl::StrJoin(rungs, ", ").c_str());
      if (e.contains("compute_full_evaluations")) {
        std::printf("%-19s compute %.2f full-evaluation equivalents (windows scored / windows of a full evaluation)\n", "",
                    e["compute_full_evaluations"].get<double>());
      }
    }
  }
  return 0;
}

int Top(const CacheStore& store, const std::string& db_path, int n) {
  auto entries = LatestEntries(store);
  if (!entries.ok()) return Fail(std::string(entries.status().message()), 1);
  std::sort(entries->begin(), entries->end(), [](const Entry& a, const Entry& b) {
    return a.e.hits != b.e.hits ? a.e.hits > b.e.hits : a.e.hash < b.e.hash;
  });
  if (static_cast<int>(entries->size()) > n) entries->resize(n);
  const std::map<Hash128, RungLabel> labels = RungLabels(ExperimentDb::Open(db_path, true));
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = nlohmann::json::array();
    for (const Entry& x : *entries) j.push_back(EntryJson(x, labels));
    std::cout << j.dump(1) << std::endl;
    return 0;
  }
  // The fidelity column only for databases of multi-fidelity searches.
  const bool multi = !labels.empty();
  std::printf("%-32s  %6s  %5s  %15s  %s%s\n", "hash", "hits", "evals", "first candidate",
              multi ? absl::StrFormat("%-20s  ", "fidelity rung").c_str() : "", "objectives");
  bool any_lower = false;
  for (const Entry& x : *entries) {
    auto label = labels.find(x.e.hash);
    const RungLabel none;
    const RungLabel& l = label == labels.end() ? none : label->second;
    any_lower = any_lower || l.lower();
    std::printf("%-32s  %6lld  %5d  %15lld  %s%s\n", x.e.hash.Hex().c_str(), static_cast<long long>(x.e.hits),
                x.e.num_evals, static_cast<long long>(x.e.first_candidate_id),
                multi ? absl::StrFormat("%-20s  ", l.Text()).c_str() : "", ObjectivesLine(x.e.objectives).c_str());
  }
  if (any_lower) {
    std::printf("\nA rung below the last is a lower fidelity (search.fidelity): its objectives are on its windows\n"
                "only, against the uncompressed model on the same windows; fronts use full evaluations only.\n");
  }
  return 0;
}

// Field-by-field differences between two candidates, e.g.
// "genome.layers[0].keys.bits: 4 -> 8".
std::vector<std::string> Differences(const Candidate& a, const Candidate& b) {
  std::string report;
  {
    // The reporter writes through a printer that flushes when both go out of scope.
    google::protobuf::io::StringOutputStream stream(&report);
    google::protobuf::util::MessageDifferencer::StreamReporter reporter(&stream);
    google::protobuf::util::MessageDifferencer d;
    d.ReportDifferencesTo(&reporter);
    d.Compare(a, b);
  }
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(report, '\n', absl::SkipEmpty())) out.emplace_back(line);
  return out;
}

int Show(const CacheStore& store, const std::string& db_path, const std::string& hex) {
  Hash128 hash;
  if (!Hash128::FromHex(hex, &hash)) return Fail(absl::StrCat("'", hex, "' is not a 32-digit hex hash (see `top`)"), 2);
  auto entries = LatestEntries(store);
  if (!entries.ok()) return Fail(std::string(entries.status().message()), 1);
  const Entry* found = nullptr;
  for (const Entry& x : *entries)
    if (x.e.hash == hash) found = &x;
  if (found == nullptr) return Fail(absl::StrCat("no cache entry ", hex, " in ", db_path), 1);
  auto full = store.ReadRow(found->rowid);
  EvaluationResult result;
  if (full.ok() && !full->result.empty()) result.ParseFromString(full->result);
  // A lower rung's entry: its candidates are recorded under the full-fidelity key.
  auto edb = ExperimentDb::Open(db_path, true);
  const std::map<Hash128, RungLabel> labels = RungLabels(edb);
  auto label_it = labels.find(hash);
  const RungLabel label = label_it == labels.end() ? RungLabel() : label_it->second;
  std::vector<CandidateRecord> candidates;
  if (edb.ok()) {
    auto c = (*edb)->CandidatesWithHash(label.lower() ? label.full.Hex() : hex);
    if (c.ok()) candidates = *c;
  }
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = EntryJson(*found, labels);
    std::string result_json;
    google::protobuf::util::MessageToJsonString(result, &result_json);
    j["result"] = nlohmann::json::parse(result_json.empty() ? "{}" : result_json);
    j["candidates"] = nlohmann::json::array();
    for (const CandidateRecord& c : candidates) {
      j["candidates"].push_back({{"id", c.id}, {"experiment", c.experiment_id}, {"outcome", OutcomeName(c.outcome)},
                                 {"structural_hash", c.structural_hash}, {"exact_hash", c.exact_hash},
                                 {"candidate", ShortText(c.candidate)},
                                 {"differences_from_first", candidates.empty() ? std::vector<std::string>() : Differences(candidates[0].candidate, c.candidate)}});
      if (c.rung >= 0) j["candidates"].back()["rung"] = c.rung;  // multi-fidelity searches only
    }
    std::cout << j.dump(1) << std::endl;
    return 0;
  }
  const StoredEntry& e = found->e;
  std::printf("hash                %s\n", e.hash.Hex().c_str());
  if (label.rung >= 0) {
    std::string note;
    if (label.lower()) {
      bool promoted = false;
      for (const Entry& x : *entries) promoted = promoted || x.e.hash == label.full;
      note = absl::StrCat(": a lower fidelity, objectives on its windows only; ",
                          promoted ? absl::StrCat("the same candidates' full evaluation is entry ", label.full.Hex())
                                   : "never promoted to the full evaluation");
    }
    std::printf("fidelity            rung %d of 0..%d, %s%s\n", label.rung, label.rungs - 1, label.name.c_str(), note.c_str());
  }
  std::printf("objectives          %s\n", ObjectivesLine(e.objectives, true).c_str());
  std::printf("evaluations         %d (mean %.3f s each); %lld hits, %lld partial hits\n", e.num_evals, e.eval_seconds,
              static_cast<long long>(e.hits), static_cast<long long>(e.partial_hits));
  std::printf("created / last used %s / %s UTC\n", Time(e.created_micros).c_str(), Time(e.last_used_micros).c_str());
  std::printf("first candidate     %lld\n", static_cast<long long>(e.first_candidate_id));
  std::printf("context             %s\n", e.context.c_str());
  if (result.ByteSizeLong() > 0) {
    // The full result as the domain's evaluator returned it.
    std::string text;
    google::protobuf::TextFormat::Printer printer;
    printer.SetSingleLineMode(true);
    printer.PrintToString(result, &text);
    std::printf("result              %s\n", text.c_str());
  }
  if (candidates.empty()) {
    std::printf("\nNo candidate records reference this hash (cache written without a search database?).\n");
    return 0;
  }
  std::printf("\n%zu candidates computed this function:\n", candidates.size());
  const CandidateRecord& first = candidates[0];
  // Domains that need no model show their candidates their own way (a program as code).
  std::map<int64_t, std::unique_ptr<Domain>> domains;
  auto domain_of = [&](int64_t experiment) -> const Domain* {
    auto it = domains.find(experiment);
    if (it == domains.end()) {
      std::unique_ptr<Domain> d;
      if (edb.ok()) {
        auto e = (*edb)->GetExperiment(experiment);
        if (e.ok()) d = DomainWithoutModel(e->spec_text);
      }
      it = domains.emplace(experiment, std::move(d)).first;
    }
    return it->second.get();
  };
  for (const CandidateRecord& c : candidates) {
    std::printf("\n--- candidate %lld (experiment %lld, %s, %s, domain %s%s)\n", static_cast<long long>(c.id),
                static_cast<long long>(c.experiment_id), OutcomeName(c.outcome), c.operation.c_str(), c.domain.c_str(),
                c.rung >= 0 ? absl::StrCat(", fidelity rung ", c.rung).c_str() : "");
    std::string text;
    google::protobuf::TextFormat::PrintToString(c.candidate, &text);
    const Domain* domain = domain_of(c.experiment_id);
    if (domain != nullptr && domain->Validate(c.candidate).ok()) {
      std::printf("%s\n", domain->Describe(c.candidate).c_str());
      for (const DetailsTable& t : domain->ResultDetails(c.candidate, result)) {
        std::printf("%s:\n", t.title.c_str());
        for (const auto& row : t.rows) std::printf("  %s\n", absl::StrJoin(row, "  ").c_str());
      }
      std::printf("as text proto:\n");
    }
    std::printf("%s", text.c_str());
    if (&c == &first) continue;
    // What made them equivalent: the fields that differ from the first candidate, and whether
    // their structural forms already agree (structural) or only the behaviour does (functional).
    const std::vector<std::string> diff = Differences(first.candidate, c.candidate);
    if (diff.empty()) {
      std::printf("    identical to candidate %lld (an exact copy)\n", static_cast<long long>(first.id));
    } else {
      std::printf("    differs from candidate %lld in:\n", static_cast<long long>(first.id));
      for (const std::string& d : diff) std::printf("      %s\n", d.c_str());
      std::printf("    %s\n", c.structural_hash == first.structural_hash
                                  ? "same structural form (the differing fields do not reach it): structural hashing finds this too"
                                  : "different structure, same outputs on the probe: only functional hashing finds this");
    }
  }
  return 0;
}

std::string Csv(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

int Export(const CacheStore& store, const std::string& db_path) {
  auto entries = LatestEntries(store);
  if (!entries.ok()) return Fail(std::string(entries.status().message()), 1);
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format != "csv" && format != "json") return Fail(absl::StrCat("--format: '", format, "' is not csv or json"), 2);
  const std::map<Hash128, RungLabel> labels = RungLabels(ExperimentDb::Open(db_path, true));
  if (format == "json" || absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = nlohmann::json::array();
    for (const Entry& x : *entries) j.push_back(EntryJson(x, labels));
    std::cout << j.dump(1) << std::endl;
    return 0;
  }
  // One column per metric name any entry has (sorted), then the entry's bookkeeping.
  std::set<std::string> names;
  for (const Entry& x : *entries)
    if (x.e.objectives.names) names.insert(x.e.objectives.names->begin(), x.e.objectives.names->end());
  // The rung columns last (scripts that read the earlier columns by position keep working);
  // empty for entries not of a multi-fidelity search.
  std::printf("hash,%s%snum_evals,hits,partial_hits,first_candidate_id,created,last_used,eval_seconds,context,rung,fidelity,full_fidelity_hash\n",
              absl::StrJoin(names, ",").c_str(), names.empty() ? "" : ",");
  for (const Entry& x : *entries) {
    const StoredEntry& e = x.e;
    std::string values;
    for (const std::string& n : names) {
      const double v = e.objectives.Get(n);
      absl::StrAppend(&values, std::isnan(v) ? std::string() : absl::StrFormat("%.9g", v), ",");
    }
    auto label = labels.find(e.hash);
    std::string rung = ",,";
    if (label != labels.end()) {
      rung = absl::StrCat(label->second.rung, ",", Csv(label->second.name), ",",
                          label->second.lower() ? label->second.full.Hex() : "");
    }
    std::printf("%s,%s%d,%lld,%lld,%lld,%s,%s,%.6g,%s,%s\n", e.hash.Hex().c_str(), values.c_str(), e.num_evals,
                static_cast<long long>(e.hits), static_cast<long long>(e.partial_hits),
                static_cast<long long>(e.first_candidate_id), IsoTime(e.created_micros).c_str(),
                IsoTime(e.last_used_micros).c_str(), e.eval_seconds, Csv(e.context).c_str(), rung.c_str());
  }
  return 0;
}

int Main(const std::vector<char*>& args) {
  if (args.size() < 2) {
    return Fail("missing command: stats | top N | show HASH | export [--format=csv|json] (see --help)", 2);
  }
  const std::string db_path = ResolveInputPath(absl::GetFlag(FLAGS_db));
  auto store = CacheStore::Open(db_path, /*read_only=*/true);
  if (!store.ok()) return Fail(std::string(store.status().message()), 2);
  const std::string command = args[1];
  if (command == "stats") return Stats(**store, db_path);
  if (command == "top") {
    int n = 10;
    if (args.size() > 2 && (!absl::SimpleAtoi(args[2], &n) || n < 1)) {
      return Fail(absl::StrCat("top: '", args[2], "' is not a positive number of entries"), 2);
    }
    return Top(**store, db_path, n);
  }
  if (command == "show") {
    if (args.size() < 3) return Fail("show needs a HASH (see `top`)", 2);
    return Show(**store, db_path, args[2]);
  }
  if (command == "export") return Export(**store, db_path);
  return Fail(absl::StrCat("unknown command '", command, "': stats | top N | show HASH | export"), 2);
}

}  // namespace
}  // namespace fecsearch

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Inspects the functional equivalence cache of a search database.\n"
      "  bazel run //hashing:inspect -- --db=fecsearch.db stats\n"
      "  bazel run //hashing:inspect -- --db=fecsearch.db top 10\n"
      "  bazel run //hashing:inspect -- --db=fecsearch.db show HASH\n"
      "  bazel run //hashing:inspect -- --db=fecsearch.db export --format=csv > cache.csv");
  fecsearch::InitProcess();
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  return fecsearch::Main(args);
}
