#include "hashing/fec_cache.h"

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <set>
#include <thread>

#include "core/model_test_util.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

Hash128 H(uint64_t i) { return Hash128{i * 0x9e3779b97f4a7c15ull + 1, i ^ 0xabcdefull}; }

EvaluationResult Result(double nll, double bits = 4, double seconds = 0.5) {
  EvaluationResult r;
  r.mutable_objectives()->set_mean_nll(nll);
  r.mutable_objectives()->set_effective_bits(bits);
  r.set_cost_seconds(seconds);
  return r;
}

std::unique_ptr<FecCache> Make(FecCacheOptions o = {}, CacheStore* store = nullptr) {
  auto c = FecCache::Create(o, store);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(*c);
}

// A path for a new cache file (nothing there yet).
std::string FreshDb(const std::string& name) {
  const std::string path = TestTempDir(name) + "/cache.db";
  unlink(path.c_str());
  return path;
}

FecCacheOptions OneShard(int64_t capacity) {
  FecCacheOptions o;
  o.shards = 1;
  o.capacity = capacity;
  return o;
}

// Evaluates (misses, then completes) H(first .. last - 1), candidate i with NLL 1 + i.
void Insert(FecCache& cache, int first, int last) {
  for (int i = first; i < last; ++i) {
    cache.Lookup(H(i), nullptr);
    ASSERT_TRUE(cache.Complete(H(i), i - first, Result(1.0 + (i - first)), "ctx").ok());
  }
}

// Writes entries H(first .. first + n - 1) to a fresh cache file at `path` (one shard).
void WriteEntries(const std::string& path, int first, int n) {
  auto store = CacheStore::Open(path, false);
  ASSERT_TRUE(store.ok()) << store.status();
  FecCacheOptions o;
  o.shards = 1;
  Insert(*Make(o, store->get()), first, first + n);
}

TEST(FecCacheTest, MissThenHit) {
  auto cache = Make();
  EXPECT_EQ(cache->Lookup(H(1), nullptr).kind, FecCache::Kind::kMiss);
  auto e = cache->Complete(H(1), 7, Result(1.5), "ctx");
  ASSERT_TRUE(e.ok());
  auto r = cache->Lookup(H(1), nullptr);
  ASSERT_EQ(r.kind, FecCache::Kind::kHit);
  EXPECT_EQ(r.entry.objectives.Get("mean_nll"), 1.5);
  EXPECT_EQ(r.entry.first_candidate_id, 7);
  EXPECT_EQ(r.entry.hits, 1);
  const FecStats s = cache->stats();
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.misses, 1);
  EXPECT_DOUBLE_EQ(s.seconds_saved, 0.5);
}

TEST(FecCacheTest, InFlightLookupsWaitForTheRunningEvaluation) {
  auto cache = Make();
  ASSERT_EQ(cache->Lookup(H(2), nullptr).kind, FecCache::Kind::kMiss);
  std::vector<double> seen;
  for (int i = 0; i < 3; ++i) {
    auto r = cache->Lookup(H(2), [&](absl::StatusOr<FecEntry> e) {
      ASSERT_TRUE(e.ok());
      seen.push_back(e->objectives.Get("mean_nll"));
    });
    EXPECT_EQ(r.kind, FecCache::Kind::kInFlight);
  }
  EXPECT_TRUE(seen.empty());
  ASSERT_TRUE(cache->Complete(H(2), 1, Result(2.25), "ctx").ok());
  EXPECT_EQ(seen, std::vector<double>({2.25, 2.25, 2.25}));
  EXPECT_EQ(cache->stats().inflight_merges, 3);
  // A failed evaluation tells its waiters why.
  ASSERT_EQ(cache->Lookup(H(3), nullptr).kind, FecCache::Kind::kMiss);
  absl::Status told;
  cache->Lookup(H(3), [&](absl::StatusOr<FecEntry> e) { told = e.status(); });
  cache->Abandon(H(3), absl::InvalidArgumentError("bad gene"));
  EXPECT_EQ(told.message(), "bad gene");
  EXPECT_EQ(cache->Lookup(H(3), nullptr).kind, FecCache::Kind::kMiss) << "nothing cached after a failure";
}

TEST(FecCacheTest, AggregatingBelowMaxNumEvals) {
  FecCacheOptions o;
  o.max_num_evals = 2;
  auto cache = Make(o);
  ASSERT_EQ(cache->Lookup(H(4), nullptr).kind, FecCache::Kind::kMiss);
  ASSERT_TRUE(cache->Complete(H(4), 1, Result(1.0), "c").ok());
  auto r = cache->Lookup(H(4), nullptr);
  ASSERT_EQ(r.kind, FecCache::Kind::kPartialHit);
  EXPECT_EQ(r.entry.num_evals, 1);
  auto e = cache->Complete(H(4), 2, Result(2.0), "c");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->num_evals, 2);
  EXPECT_DOUBLE_EQ(e->objectives.Get("mean_nll"), 1.5);
  r = cache->Lookup(H(4), nullptr);
  EXPECT_EQ(r.kind, FecCache::Kind::kHit);
  EXPECT_EQ(cache->stats().partial_hits, 1);
}

TEST(FecCacheTest, ForgetfulAndForgetEvery) {
  FecCacheOptions forgetful;
  forgetful.remove_probability = 1.0;
  auto cache = Make(forgetful);
  cache->Lookup(H(5), nullptr);
  cache->Complete(H(5), 1, Result(1), "c").IgnoreError();
  EXPECT_EQ(cache->Lookup(H(5), nullptr).kind, FecCache::Kind::kMiss);
  EXPECT_EQ(cache->stats().forgotten, 1);

  FecCacheOptions every;
  every.forget_every = 2;
  cache = Make(every);
  cache->Lookup(H(6), nullptr);
  cache->Complete(H(6), 1, Result(1), "c").IgnoreError();
  EXPECT_EQ(cache->Lookup(H(6), nullptr).kind, FecCache::Kind::kHit);
  EXPECT_EQ(cache->Lookup(H(6), nullptr).kind, FecCache::Kind::kHit);
  EXPECT_EQ(cache->Lookup(H(6), nullptr).kind, FecCache::Kind::kMiss);
}

TEST(FecCacheTest, LruEvictsTheLeastRecentlyUsed) {
  FecCacheOptions o;
  o.capacity = 3;
  o.shards = 1;
  auto cache = Make(o);
  for (int i = 0; i < 3; ++i) {
    cache->Lookup(H(10 + i), nullptr);
    cache->Complete(H(10 + i), i, Result(i), "c").IgnoreError();
  }
  EXPECT_EQ(cache->Lookup(H(10), nullptr).kind, FecCache::Kind::kHit);  // 10 is now most recent
  cache->Lookup(H(13), nullptr);
  cache->Complete(H(13), 3, Result(3), "c").IgnoreError();  // evicts 11
  EXPECT_TRUE(cache->Peek(H(10)).has_value());
  EXPECT_FALSE(cache->Peek(H(11)).has_value());
  EXPECT_TRUE(cache->Peek(H(12)).has_value());
  EXPECT_EQ(cache->stats().evictions, 1);
}

TEST(FecCacheTest, WarmStartFillsMemoryToCapacityWhenForgottenEntriesFollowATrim) {
  // The log holds H(40..45), then tombstones for the three latest. Loading with capacity 2
  // trims during the scan (to H(43), H(44)) before the tombstones remove them: the live
  // H(40..42) must still fill memory, the latest written first.
  const std::string path = FreshDb("fec_refill");
  WriteEntries(path, 40, 6);
  {
    auto store = CacheStore::Open(path, false);
    FecCacheOptions o;
    o.shards = 1;
    o.remove_probability = 1;
    auto cache = Make(o, store->get());
    for (int i = 3; i < 6; ++i) EXPECT_EQ(cache->Lookup(H(40 + i), nullptr).kind, FecCache::Kind::kMiss);
    for (int i = 3; i < 6; ++i) cache->Abandon(H(40 + i), absl::CancelledError("test"));
  }
  auto store = CacheStore::Open(path, false);
  FecCacheOptions o;
  o.shards = 1;
  o.capacity = 2;
  auto cache = Make(o, store->get());
  EXPECT_EQ(cache->stats().entries, 3);
  EXPECT_EQ(cache->stats().in_memory, 2);
  for (uint64_t i : {41, 42}) EXPECT_TRUE(cache->Peek(H(i)).has_value()) << i;
  EXPECT_EQ(cache->stats().disk_reads, 0);
  for (uint64_t i : {43, 44, 45}) EXPECT_FALSE(cache->Peek(H(i)).has_value()) << i;
}

TEST(FecCacheTest, WarmStartKeepsTheMostRecentlyUsedAndHonoursForgetting) {
  const std::string path = FreshDb("fec_warm");
  {
    auto store = CacheStore::Open(path, false);
    ASSERT_TRUE(store.ok()) << store.status();
    FecCacheOptions o;
    o.shards = 1;
    auto cache = Make(o, store->get());
    // Last-used times come from the coarse clock (a few ms per tick): accesses that must be
    // told apart are spaced by more than two of its ticks.
    timespec res{};
    clock_getres(CLOCK_REALTIME_COARSE, &res);
    const auto gap = std::chrono::nanoseconds(2 * (res.tv_sec * 1000000000L + res.tv_nsec)) + std::chrono::milliseconds(1);
    for (int i = 0; i < 6; ++i) {
      cache->Lookup(H(30 + i), nullptr);
      ASSERT_TRUE(cache->Complete(H(30 + i), i, Result(1.0 + i), "ctx").ok());
      std::this_thread::sleep_for(gap);
    }
    // H(30) and H(31) become the most recently used; H(35) is forgotten.
    EXPECT_EQ(cache->Lookup(H(30), nullptr).kind, FecCache::Kind::kHit);
    std::this_thread::sleep_for(gap);
    EXPECT_EQ(cache->Lookup(H(31), nullptr).kind, FecCache::Kind::kHit);
  }
  {
    auto store = CacheStore::Open(path, false);
    FecCacheOptions o;
    o.shards = 1;
    o.remove_probability = 1;  // the next hit forgets
    auto cache = Make(o, store->get());
    EXPECT_EQ(cache->Lookup(H(35), nullptr).kind, FecCache::Kind::kMiss);
    cache->Abandon(H(35), absl::CancelledError("test"));
  }
  auto store = CacheStore::Open(path, false);
  FecCacheOptions o;
  o.shards = 1;
  o.capacity = 2;
  auto cache = Make(o, store->get());
  const FecStats st = cache->stats();
  EXPECT_EQ(st.entries, 5) << "the forgotten entry stays forgotten";
  EXPECT_EQ(st.in_memory, 2);
  // The two most recently used are the ones in memory: peeking them reads nothing from disk.
  for (uint64_t i : {30, 31}) {
    auto e = cache->Peek(H(i));
    ASSERT_TRUE(e.has_value()) << i;
    EXPECT_GE(e->last_used_micros, e->created_micros);
  }
  EXPECT_EQ(cache->stats().disk_reads, 0);
  EXPECT_FALSE(cache->Peek(H(35)).has_value());
}

TEST(FecCacheTest, PersistentEntriesSurviveEvictionAndReopening) {
  const std::string path = FreshDb("fec_persist");
  {
    auto store = CacheStore::Open(path, false);
    ASSERT_TRUE(store.ok()) << store.status();
    auto cache = Make(OneShard(2), store->get());
    for (int i = 0; i < 5; ++i) {
      cache->Lookup(H(20 + i), nullptr);
      ASSERT_TRUE(cache->Complete(H(20 + i), i, Result(1.0 + i), "ctx").ok());
      // Durable when Complete returns: a separate read-only connection sees it.
      auto reader = CacheStore::Open(path, true);
      ASSERT_TRUE(reader.ok());
      int rows = 0;
      ASSERT_TRUE((*reader)->Scan([&](const StoredEntry&, int64_t) { ++rows; }).ok());
      EXPECT_EQ(rows, i + 1);
    }
    // H(20) was evicted from memory but is found on disk.
    auto r = cache->Lookup(H(20), nullptr);
    ASSERT_EQ(r.kind, FecCache::Kind::kHit);
    EXPECT_EQ(r.entry.objectives.Get("mean_nll"), 1.0);
    EXPECT_EQ(cache->stats().disk_reads, 1);
    EXPECT_EQ(cache->stats().entries, 5);
  }
  auto store = CacheStore::Open(path, false);
  ASSERT_TRUE(store.ok());
  auto cache = Make(FecCacheOptions(), store->get());
  EXPECT_EQ(cache->stats().entries, 5);
  auto e = cache->Peek(H(20));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->hits, 1) << "hit counters are persisted on close";
  auto row = (*store)->ReadRow(1);
  ASSERT_TRUE(row.ok());
  EvaluationResult stored;
  ASSERT_TRUE(stored.ParseFromString(row->result));
  EXPECT_EQ(stored.objectives().mean_nll(), 1.0);
}

TEST(FecCacheTest, HitCountersOfAnEntryEvictedFromMemoryAreKept) {
  const std::string path = FreshDb("fec_evict_hits");
  {
    auto store = CacheStore::Open(path, false);
    ASSERT_TRUE(store.ok()) << store.status();
    auto cache = Make(OneShard(2), store->get());
    Insert(*cache, 50, 52);
    ASSERT_EQ(cache->Lookup(H(50), nullptr).kind, FecCache::Kind::kHit);
    ASSERT_EQ(cache->Lookup(H(50), nullptr).kind, FecCache::Kind::kHit);
    Insert(*cache, 52, 54);  // evicts H(51), then H(50) with its unsaved hits
    ASSERT_EQ(cache->stats().evictions, 2);
  }
  auto store = CacheStore::Open(path, false);
  auto cache = Make(FecCacheOptions(), store->get());
  auto e = cache->Peek(H(50));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->hits, 2);
}

TEST(FecCacheTest, CorruptAndForeignFilesAreRefused) {
  const std::string dir = TestTempDir("fec_bad");
  const std::string garbage = dir + "/garbage.db";
  std::ofstream(garbage) << std::string(8192, 'x');
  auto store = CacheStore::Open(garbage, false);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_NE(store.status().message().find(garbage), std::string::npos);
  std::ifstream check(garbage);
  std::string contents((std::istreambuf_iterator<char>(check)), std::istreambuf_iterator<char>());
  EXPECT_EQ(contents, std::string(8192, 'x')) << "a refused file is left untouched";

  const std::string foreign = dir + "/foreign.db";
  unlink(foreign.c_str());
  sqlite3* db;
  ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE photos (id INTEGER)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  store = CacheStore::Open(foreign, false);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_NE(store.status().message().find("another application"), std::string::npos);
}

TEST(FecCacheTest, ConcurrentLookupsEvaluateEachHashOnce) {
  auto cache = Make();
  std::atomic<int> evaluations{0}, answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const Hash128 h = H((i * 7 + t) % 100);
        auto r = cache->Lookup(h, [&](absl::StatusOr<FecEntry> e) {
          EXPECT_TRUE(e.ok());
          ++answered;
        });
        if (r.kind == FecCache::Kind::kMiss) {
          ++evaluations;
          cache->Complete(h, i, Result(1.0), "c").IgnoreError();
          ++answered;
        } else if (r.kind == FecCache::Kind::kHit) {
          ++answered;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(evaluations.load(), 100);
  EXPECT_EQ(answered.load(), 8 * 2000);
  const FecStats s = cache->stats();
  EXPECT_EQ(s.hits + s.misses + s.inflight_merges, 8 * 2000);
}

}  // namespace
}  // namespace fecsearch
