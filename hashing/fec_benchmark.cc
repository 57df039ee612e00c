// Benchmarks of functional hashing and the cache, each against a baseline measured in the
// same run:
//   probe hash per candidate vs one full evaluation (target <= 2 %),
//   cache lookups at 1M entries vs a bare absl::flat_hash_map (target >= 60 %),
//   durable batched inserts per second (target >= 20k/s),
//   warm start of 1M entries (target < 2 s).
//   bazel run //hashing:fec_benchmark
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "benchmark/benchmark.h"
#include "core/evaluator.h"
#include "hashing/cache_store.h"
#include "hashing/candidate_hasher.h"
#include "hashing/kv_probe.h"
#include "hashing/fec_cache.h"
#include "hashing/metrics.h"
#include "search/experiment.h"
#include "search/domains/genome_space.h"

namespace fecsearch {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  std::string p = std::string(dir ? dir : "/tmp") + "/fec_benchmark_" + std::to_string(getpid()) + "_" + name;
  unlink(p.c_str());
  unlink((p + "-wal").c_str());
  unlink((p + "-shm").c_str());
  return p;
}

Hash128 Key(uint64_t i) {
  return HashBytes(std::string(reinterpret_cast<const char*>(&i), sizeof(i)));
}

// --- probe hash vs full evaluation --------------------------------------------------------

void BM_ProbeHashVsFullEvaluation(benchmark::State& state) {
  EvaluationSpec spec;
  spec.set_threads(1);
  auto ctx = EvaluationContext::Create(spec);
  if (!ctx.ok()) return state.SkipWithError(std::string(ctx.status().message()).c_str());
  auto loaded = LoadExperiment("");
  auto space = GenomeSpace::Create(loaded->spec.search_space(), (*ctx)->config());
  FecSpec fec = loaded->spec.fec();
  auto probe = KvProbe::Create(*ctx, fec.probe_tokens(), fec.probe_seed());
  if (!probe.ok()) return state.SkipWithError(std::string(probe.status().message()).c_str());
  FunctionalHasher hasher(fec.mantissa_bits());
  Rng rng(1);
  std::vector<Candidate> genomes;
  for (int i = 0; i < 64; ++i) genomes.push_back(space->Random(rng));
  // Untimed pass: fits the NUQ codebooks these genomes need (once per experiment).
  for (const Candidate& c : genomes) (void)hasher.Hash((*ctx)->fingerprint(), [&](OutputSink& s) { return (*probe)->Run(c, s); });
  Evaluator evaluator(*ctx);
  (*ctx)->baseline();
  double eval_seconds = 0;
  const int evals = 6;
  for (int i = 0; i < evals; ++i) {
    const double t0 = Now();
    benchmark::DoNotOptimize(evaluator.Evaluate(genomes[i]));
    eval_seconds += Now() - t0;
  }
  eval_seconds /= evals;
  size_t i = 0;
  double probe_seconds = 0;
  int64_t n = 0;
  for (auto _ : state) {
    const Candidate& c = genomes[i++ % genomes.size()];
    const double t0 = Now();
    auto h = hasher.Hash((*ctx)->fingerprint(), [&](OutputSink& s) { return (*probe)->Run(c, s); });
    probe_seconds += Now() - t0;
    ++n;
    benchmark::DoNotOptimize(h);
  }
  state.counters["probe_ms"] = 1e3 * probe_seconds / n;
  state.counters["full_eval_ms"] = 1e3 * eval_seconds;
  state.counters["fraction_of_eval"] = probe_seconds / n / eval_seconds;
}
BENCHMARK(BM_ProbeHashVsFullEvaluation)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2);

// --- lookups at 1M entries -----------------------------------------------------------------

constexpr int kEntries = 1 << 20;
double flat_map_rate = 0;
using BareMap = absl::flat_hash_map<Hash128, FecObjectives, Hash128Hasher>;

// Key(i) for every entry.
const std::vector<Hash128>& Keys() {
  static const std::vector<Hash128>* keys = [] {
    auto* k = new std::vector<Hash128>(kEntries);
    for (uint64_t i = 0; i < kEntries; ++i) (*k)[i] = Key(i);
    return k;
  }();
  return *keys;
}

// An entry's objectives: one metric, as the cache stores them.
MetricValues One(double mean_nll) {
  static const MetricNames* names = InternMetricNames(MetricNames{"mean_nll"});
  MetricValues v;
  v.names = names;
  v.values.push_back(mean_nll);
  return v;
}

// The bare map with entry Key(i) holding value(i) as its mean NLL.
template <typename Value>
BareMap FilledMap(Value value) {
  BareMap map;
  map.reserve(kEntries);
  for (uint64_t i = 0; i < kEntries; ++i) map[Keys()[i]] = One(value(i));
  return map;
}

std::vector<Hash128> LookupOrder() {
  std::vector<Hash128> keys(kEntries);
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < kEntries; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    keys[i] = Key(x % kEntries);
  }
  return keys;
}

void BM_FlatHashMapLookup1M(benchmark::State& state) {
  const BareMap map = FilledMap([](uint64_t i) { return static_cast<double>(i); });
  const std::vector<Hash128> order = LookupOrder();
  size_t i = 0;
  double sum = 0;
  const double t0 = Now();
  for (auto _ : state) {
    auto it = map.find(order[i++ & (kEntries - 1)]);
    sum += it->second.values[0];
  }
  flat_map_rate = state.iterations() / (Now() - t0);
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FlatHashMapLookup1M)->MinTime(2);

// The bare map behind one mutex, independent lookups: a locked instruction is a full
// barrier, so the misses of consecutive lookups can no longer overlap.
void BM_LockedFlatHashMapLookup1M(benchmark::State& state) {
  const BareMap map = FilledMap([](uint64_t i) { return static_cast<double>(i); });
  const std::vector<Hash128> order = LookupOrder();
  absl::Mutex mu;
  size_t i = 0;
  double sum = 0;
  for (auto _ : state) {
    absl::MutexLock lock(&mu);
    sum += map.find(order[i++ & (kEntries - 1)])->second.values[0];
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LockedFlatHashMapLookup1M)->MinTime(2);

void BM_FecCacheLookup1M(benchmark::State& state) {
  FecCacheOptions o;
  o.capacity = 2 * kEntries;  // shards fill unevenly: leave room so that nothing is evicted
  auto cache = FecCache::Create(o, nullptr);
  EvaluationResult r;
  for (uint64_t i = 0; i < kEntries; ++i) {
    r.mutable_objectives()->set_mean_nll(static_cast<double>(i));
    cache.value()->Lookup(Key(i), nullptr);
    (void)cache.value()->Complete(Key(i), static_cast<int64_t>(i), r, "ctx");
  }
  const std::vector<Hash128> order = LookupOrder();
  size_t i = 0;
  double sum = 0;
  const double t0 = Now();
  for (auto _ : state) {
    FecCache::LookupResult lr = cache.value()->Lookup(order[i++ & (kEntries - 1)], nullptr);
    sum += lr.entry.objectives.Get("mean_nll");
  }
  const double rate = state.iterations() / (Now() - t0);
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
  if (flat_map_rate > 0) state.counters["vs_flat_hash_map"] = rate / flat_map_rate;
  if (cache.value()->stats().misses != kEntries) state.SkipWithError("lookups missed: the measurement would be wrong");
}
BENCHMARK(BM_FecCacheLookup1M)->MinTime(2);

// Dependent lookups: each key depends on the previous answer, as when a caller acts on the
// result before its next lookup. Both sides then pay the memory latency of every lookup; the
// independent variants above let the bare map overlap many misses, which a lock per lookup (a
// full memory barrier) cannot.
double flat_map_dependent_rate = 0;

// A random single cycle through all entries (Sattolo's algorithm): entry i stores the
// index of the next key to look up.
const std::vector<uint64_t>& Cycle() {
  static const std::vector<uint64_t>* cycle = [] {
    auto* c = new std::vector<uint64_t>(kEntries);
    for (uint64_t i = 0; i < kEntries; ++i) (*c)[i] = i;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = kEntries - 1; i > 0; --i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      std::swap((*c)[i], (*c)[x % i]);
    }
    return c;
  }();
  return *cycle;
}

void BM_FlatHashMapDependentLookup1M(benchmark::State& state) {
  const BareMap map = FilledMap([](uint64_t i) { return static_cast<double>(Cycle()[i]); });
  const std::vector<Hash128>& keys = Keys();
  uint64_t next = 0;
  const double t0 = Now();
  for (auto _ : state) {
    auto it = map.find(keys[next]);
    next = static_cast<uint64_t>(it->second.values[0]);
  }
  flat_map_dependent_rate = state.iterations() / (Now() - t0);
  benchmark::DoNotOptimize(next);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FlatHashMapDependentLookup1M)->MinTime(2);

// The same with the entries spread over 16 bare maps selected like the cache's shards: what
// the table layout alone does to the memory latency.
void BM_ShardedFlatHashMapDependentLookup1M(benchmark::State& state) {
  std::vector<BareMap> maps(16);
  for (auto& m : maps) m.reserve(kEntries / 16);
  const std::vector<Hash128>& keys = Keys();
  for (uint64_t i = 0; i < kEntries; ++i) maps[(keys[i].hi >> 32) % 16][keys[i]] = One(static_cast<double>(Cycle()[i]));
  uint64_t next = 0;
  for (auto _ : state) {
    const Hash128& k = keys[next];
    next = static_cast<uint64_t>(maps[(k.hi >> 32) % 16].find(k)->second.values[0]);
  }
  benchmark::DoNotOptimize(next);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ShardedFlatHashMapDependentLookup1M)->MinTime(2);

// The bare map behind a mutex (locked, nothing else): separates the cost of the lock from
// the cache's bookkeeping.
void BM_LockedFlatHashMapDependentLookup1M(benchmark::State& state) {
  const BareMap map = FilledMap([](uint64_t i) { return static_cast<double>(Cycle()[i]); });
  const std::vector<Hash128>& keys = Keys();
  absl::Mutex mu;
  uint64_t next = 0;
  for (auto _ : state) {
    absl::MutexLock lock(&mu);
    next = static_cast<uint64_t>(map.find(keys[next])->second.values[0]);
  }
  benchmark::DoNotOptimize(next);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LockedFlatHashMapDependentLookup1M)->MinTime(2);

void BM_FecCacheDependentLookup1M(benchmark::State& state) {
  FecCacheOptions o;
  o.capacity = 2 * kEntries;  // shards fill unevenly: leave room so that nothing is evicted
  auto cache = FecCache::Create(o, nullptr);
  EvaluationResult r;
  const std::vector<Hash128>& keys = Keys();
  for (uint64_t i = 0; i < kEntries; ++i) {
    r.mutable_objectives()->set_mean_nll(static_cast<double>(Cycle()[i]));
    cache.value()->Lookup(keys[i], nullptr);
    (void)cache.value()->Complete(keys[i], static_cast<int64_t>(i), r, "ctx");
  }
  uint64_t next = 0;
  const double t0 = Now();
  for (auto _ : state) {
    FecCache::LookupResult lr = cache.value()->Lookup(keys[next], nullptr);
    next = static_cast<uint64_t>(lr.entry.objectives.Get("mean_nll"));
  }
  const double rate = state.iterations() / (Now() - t0);
  benchmark::DoNotOptimize(next);
  state.SetItemsProcessed(state.iterations());
  if (flat_map_dependent_rate > 0) state.counters["vs_flat_hash_map"] = rate / flat_map_dependent_rate;
  if (cache.value()->stats().misses != kEntries) state.SkipWithError("lookups missed: the measurement would be wrong");
}
BENCHMARK(BM_FecCacheDependentLookup1M)->MinTime(2);

// --- durable inserts ------------------------------------------------------------------------

void BM_DurableInserts(benchmark::State& state) {
  const std::string path = TempPath("inserts.db");
  auto store = CacheStore::Open(path, false);
  if (!store.ok()) return state.SkipWithError(std::string(store.status().message()).c_str());
  uint64_t next = 0;
  std::atomic<int64_t> durable{0};
  const int batch = 20000;
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) {
      StoredEntry e;
      e.hash = Key(next++);
      e.num_evals = 1;
      e.objectives = One(1.5);
      e.context = "benchmark";
      e.result = std::string(200, 'r');  // a small serialised result, as real entries carry
      (*store)->Write(std::move(e), [&](absl::StatusOr<WrittenRow> r) {
        if (r.ok()) ++durable;
      });
    }
    if (!(*store)->Flush().ok()) state.SkipWithError("flush failed");
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["durable_inserts/s"] =
      benchmark::Counter(static_cast<double>(durable.load()), benchmark::Counter::kIsRate);
  store->reset();
  unlink(path.c_str());
}
BENCHMARK(BM_DurableInserts)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);

// --- warm start ------------------------------------------------------------------------------

void BM_WarmStart1M(benchmark::State& state) {
  const std::string path = TempPath("warm.db");
  {
    auto store = CacheStore::Open(path, false);
    for (uint64_t i = 0; i < kEntries; ++i) {
      StoredEntry e;
      e.hash = Key(i);
      e.num_evals = 1;
      e.objectives = One(1.0 + i * 1e-9);
      e.last_used_micros = static_cast<int64_t>(i);
      e.context = "benchmark";
      (*store)->Write(std::move(e), nullptr);
    }
    (void)(*store)->Flush();
  }
  for (auto _ : state) {
    auto store = CacheStore::Open(path, false);
    FecCacheOptions o;
    o.capacity = kEntries;
    const double t0 = Now();
    auto cache = FecCache::Create(o, store->get());
    state.SetIterationTime(Now() - t0);
    if (!cache.ok()) state.SkipWithError(std::string(cache.status().message()).c_str());
    state.counters["entries"] = static_cast<double>(cache.ok() ? cache.value()->stats().entries : 0);
  }
  unlink(path.c_str());
}
BENCHMARK(BM_WarmStart1M)->Unit(benchmark::kMillisecond)->UseManualTime()->Iterations(3);

}  // namespace
}  // namespace fecsearch
