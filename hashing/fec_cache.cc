// The functional equivalence cache.
#include "hashing/fec_cache.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <tuple>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fecsearch {
namespace {

// Last-used times need no precision; the coarse clock costs a few nanoseconds.
int64_t NowMicros() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

FecEntry FromStored(const StoredEntry& s) {
  FecEntry e;
  e.objectives = s.objectives;
  e.num_evals = s.num_evals;
  e.hits = s.hits;
  e.partial_hits = s.partial_hits;
  e.first_candidate_id = s.first_candidate_id;
  e.created_micros = s.created_micros;
  e.last_used_micros = s.last_used_micros;
  e.eval_seconds = s.eval_seconds;
  return e;
}

double Mean(double old, int n, double next) { return (old * n + next) / (n + 1); }

}  // namespace

FecCache::FecCache(const FecCacheOptions& options) : options_(options) {
  const int n = std::max(1, options.shards);
  per_shard_capacity_ = std::max<int64_t>(1, (options.capacity + n - 1) / n);
  for (int i = 0; i < n; ++i) {
    shards_.push_back(std::make_unique<Shard>());
    shards_.back()->rng.seed(options.seed * 1000003 + i);
  }
}

const std::string* FecCache::Intern(const std::string& context) {
  absl::MutexLock lock(&contexts_mu_);
  return &*contexts_.insert(context).first;
}

FecCache::~FecCache() {
  if (store_) {
    (void)PersistStats();
    (void)store_->Flush();
  }
}

absl::StatusOr<std::unique_ptr<FecCache>> FecCache::Create(const FecCacheOptions& options,
                                                           CacheStore* store) {
  std::unique_ptr<FecCache> cache(new FecCache(options));
  cache->store_ = store;
  if (store == nullptr) return cache;
  // One pass over the log in row order: the latest version of every hash wins (a tombstone
  // removes it). Entries go straight into their shards, ordered for LRU by their last-used
  // time (the tick is that time; later accesses count on from the largest), and a shard that
  // grows past twice its capacity is trimmed to its most recent entries as it goes.
  auto rows_or = store->RowCount();
  if (!rows_or.ok()) return rows_or.status();
  const int64_t expected = *rows_or;
  const size_t n = cache->shards_.size();
  int64_t rows = 0;
  auto scan = [&]() {
    rows = 0;
    for (auto& sh : cache->shards_) {
      absl::MutexLock lock(&sh->mu);
      sh->map.clear();
      sh->on_disk.clear();
      // Hash-sharded, so shards fill evenly: 5 % slack.
      const int64_t per_shard = expected / static_cast<int64_t>(n) * 21 / 20 + 16;
      sh->on_disk.reserve(static_cast<size_t>(per_shard));
      sh->map.reserve(static_cast<size_t>(std::min(per_shard, 2 * cache->per_shard_capacity_ + 1)));
    }
    std::string last_context;
    const std::string* interned = nullptr;
    return store->Scan([&](const StoredEntry& e, int64_t rowid) {
      ++rows;
      Shard& sh = cache->ShardOf(e.hash);
      absl::MutexLock lock(&sh.mu);
      if (e.num_evals == 0) {  // forgotten
        sh.map.erase(e.hash);
        sh.on_disk.erase(e.hash);
        return;
      }
      sh.on_disk[e.hash] = rowid;
      if (interned == nullptr || e.context != last_context) {
        interned = cache->Intern(e.context);
        last_context = e.context;
      }
      Slot& slot = sh.map[e.hash];
      slot = Slot();
      slot.entry = FromStored(e);
      slot.result_row = e.result_row;
      slot.context = interned;
      slot.tick = static_cast<uint64_t>(std::max<int64_t>(0, e.last_used_micros));
      if (static_cast<int64_t>(sh.map.size()) > 2 * cache->per_shard_capacity_) cache->TrimToCapacity(sh);
    });
  };
  absl::Status s = scan();
  if (!s.ok()) return s;
  int64_t live = 0;
  for (auto& sh : cache->shards_) {
    absl::MutexLock lock(&sh->mu);
    live += static_cast<int64_t>(sh->on_disk.size());
  }
  if (rows > 2 * live + 10000) {  // mostly superseded versions: compact the log
    s = store->Compact();
    if (!s.ok()) return s;
    s = scan();
    if (!s.ok()) return s;
  }
  for (auto& sh : cache->shards_) {
    absl::MutexLock lock(&sh->mu);
    cache->TrimToCapacity(*sh);
    // A trim during the scan may have dropped live entries before later tombstones removed
    // others: refill up to capacity with the most recently written entries from disk.
    cache->RefillFromDisk(*sh);
    for (const auto& [h, slot] : sh->map) sh->tick = std::max(sh->tick, slot.tick);
  }
  cache->evictions_ = 0;
  return cache;
}

void FecCache::Touch(Shard& s, Slot& slot, const Hash128&) {
  slot.tick = ++s.tick;
  // Last-used times are shown by inspect and decide what a warm start keeps in memory, so
  // they are read from the clock on every access (a vDSO call, ~20 ns): a clock refreshed
  // only every N accesses would be minutes stale in a search that looks up a few candidates
  // a second.
  slot.entry.last_used_micros = std::max(slot.entry.last_used_micros, NowMicros());
}

void FecCache::InsertSlot(Shard& s, const Hash128& h, Slot slot) {
  // Insertion order is the LRU order (ticks); the entry keeps the times it arrived with.
  auto [it, inserted] = s.map.insert_or_assign(h, std::move(slot));
  it->second.tick = ++s.tick;
  EvictIfNeeded(s);
}

void FecCache::EvictIfNeeded(Shard& s) {
  if (static_cast<int64_t>(s.map.size()) <= per_shard_capacity_) return;
  // Down to 15/16 of capacity in one pass: O(shard size) per batch, O(16) per evicted entry.
  evictions_ += EvictLeastRecent(s, per_shard_capacity_ - per_shard_capacity_ / 16);
}

void FecCache::TrimToCapacity(Shard& s) { EvictLeastRecent(s, per_shard_capacity_); }

int64_t FecCache::EvictLeastRecent(Shard& s, int64_t keep) {
  const int64_t size = static_cast<int64_t>(s.map.size());
  if (size <= keep) return 0;
  // The least recently used have the smallest ticks. Warm-started ticks are last-used times
  // from a coarse clock and tie: the later-written row counts as the more recent one.
  std::vector<std::tuple<uint64_t, int64_t, Hash128>> ticks;
  ticks.reserve(size);
  for (const auto& [key, slot] : s.map) {
    auto row = s.on_disk.find(key);
    ticks.emplace_back(slot.tick, row == s.on_disk.end() ? -1 : row->second, key);
  }
  const int64_t evict = size - keep;
  std::nth_element(ticks.begin(), ticks.begin() + (evict - 1), ticks.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
  });
  for (int64_t i = 0; i < evict; ++i) {
    // Hit counters not yet saved leave with the entry: saved first.
    auto it = s.map.find(std::get<2>(ticks[i]));
    PersistSlot(s, it->first, it->second);
    s.map.erase(it);
  }
  return evict;
}

void FecCache::RefillFromDisk(Shard& s) {
  const int64_t room = per_shard_capacity_ - static_cast<int64_t>(s.map.size());
  if (store_ == nullptr || room <= 0 || s.on_disk.size() <= s.map.size()) return;
  std::vector<std::pair<int64_t, Hash128>> missing;
  for (const auto& [h, row] : s.on_disk)
    if (!s.map.contains(h)) missing.emplace_back(row, h);
  const size_t n = std::min<size_t>(missing.size(), static_cast<size_t>(room));
  std::partial_sort(missing.begin(), missing.begin() + n, missing.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = 0; i < n; ++i) {
    auto row = store_->ReadRow(missing[i].first);
    if (!row.ok() || row->num_evals == 0) continue;
    Slot slot;
    slot.entry = FromStored(*row);
    slot.result_row = row->result_row;
    slot.context = Intern(row->context);
    slot.tick = static_cast<uint64_t>(std::max<int64_t>(0, row->last_used_micros));
    s.map.emplace(missing[i].second, std::move(slot));
  }
}

bool FecCache::LoadFromDisk(Shard& s, const Hash128& h) {
  if (store_ == nullptr) return false;
  auto it = s.on_disk.find(h);
  if (it == s.on_disk.end()) return false;
  auto row = store_->ReadRow(it->second);
  if (!row.ok() || row->num_evals == 0) return false;
  ++disk_reads_;
  Slot slot;
  slot.entry = FromStored(*row);
  slot.result_row = row->result_row;
  slot.context = Intern(row->context);
  InsertSlot(s, h, std::move(slot));
  return true;
}

void FecCache::Forget(Shard& s, const Hash128& h) {
  s.map.erase(h);
  s.on_disk.erase(h);
  ++forgotten_;
  if (store_) {
    StoredEntry tomb;
    tomb.hash = h;
    tomb.num_evals = 0;
    store_->Write(std::move(tomb), nullptr);
  }
}

FecCache::LookupResult FecCache::Lookup(const Hash128& h, Waiter waiter) {
  Shard& s = ShardOf(h);
  absl::MutexLock lock(&s.mu);
  auto it = s.map.find(h);
  if (it == s.map.end() && LoadFromDisk(s, h)) it = s.map.find(h);
  auto join_inflight = [&]() -> bool {
    auto in = s.inflight.find(h);
    if (in == s.inflight.end()) return false;
    in->second.push_back(std::move(waiter));
    ++inflight_merges_;
    return true;
  };
  if (it != s.map.end()) {
    Slot& slot = it->second;
    if (options_.forget_every > 0 && slot.hits_since_eval >= options_.forget_every) {
      Forget(s, h);
      it = s.map.end();
    } else if (slot.entry.num_evals < options_.max_num_evals) {
      if (join_inflight()) return {Kind::kInFlight, {}};
      s.inflight[h];
      ++slot.entry.partial_hits;
      slot.dirty = true;
      ++partial_hits_;
      Touch(s, slot, h);
      return {Kind::kPartialHit, slot.entry};
    } else if (options_.remove_probability > 0 &&
               std::uniform_real_distribution<double>(0, 1)(s.rng) < options_.remove_probability) {
      Forget(s, h);
      it = s.map.end();
    } else {
      ++slot.entry.hits;
      ++slot.hits_since_eval;
      slot.dirty = true;
      Touch(s, slot, h);
      ++s.hits;
      s.saved_micros += static_cast<int64_t>(slot.entry.eval_seconds * 1e6);
      return {Kind::kHit, slot.entry};
    }
  }
  if (join_inflight()) return {Kind::kInFlight, {}};
  s.inflight[h];
  ++misses_;
  return {Kind::kMiss, {}};
}

StoredEntry FecCache::ToStored(const Hash128& h, const FecEntry& e) const {
  StoredEntry s;
  s.hash = h;
  s.objectives = e.objectives;
  s.num_evals = e.num_evals;
  s.hits = e.hits;
  s.partial_hits = e.partial_hits;
  s.first_candidate_id = e.first_candidate_id;
  s.created_micros = e.created_micros;
  s.last_used_micros = e.last_used_micros;
  s.eval_seconds = e.eval_seconds;
  return s;
}

void FecCache::CompleteAsync(const Hash128& h, int64_t candidate_id, const EvaluationResult& result,
                             const std::string& context, Waiter done) {
  Shard& s = ShardOf(h);
  FecEntry updated;
  {
    absl::MutexLock lock(&s.mu);
    auto it = s.map.find(h);
    if (it == s.map.end()) LoadFromDisk(s, h), it = s.map.find(h);
    const int64_t now = NowMicros();
    if (it != s.map.end()) {
      updated = it->second.entry;
    } else {
      updated.first_candidate_id = candidate_id;
      updated.created_micros = now;
    }
    const FecObjectives latest = FecObjectives::From(result.objectives());
    const int n = updated.num_evals;
    FecObjectives* m = &updated.objectives;
    if (n == 0 || m->names != latest.names) {
      *m = latest;  // the first evaluation (or another domain's metrics: start over)
    } else {
      for (size_t i = 0; i < m->values.size(); ++i) m->values[i] = Mean(m->values[i], n, latest.values[i]);
    }
    updated.eval_seconds = Mean(updated.eval_seconds, n, result.cost_seconds());
    updated.num_evals = n + 1;
    updated.last_used_micros = now;
  }
  // Durable before visible: the entry reaches the map, and the waiters, from the store's
  // commit callback.
  auto publish = [this, h, updated, context, done](int64_t rowid, int64_t result_row) {
    Shard& s = ShardOf(h);
    std::vector<Waiter> waiters;
    {
      absl::MutexLock lock(&s.mu);
      if (rowid >= 0) s.on_disk[h] = rowid;
      Slot slot;
      auto it = s.map.find(h);
      if (it != s.map.end()) slot = it->second;
      // Hits counted while this evaluation ran are kept.
      const int64_t hits = std::max(slot.entry.hits, updated.hits);
      const int64_t partial = std::max(slot.entry.partial_hits, updated.partial_hits);
      slot.entry = updated;
      slot.entry.hits = hits;
      slot.entry.partial_hits = partial;
      slot.hits_since_eval = 0;
      if (result_row >= 0) slot.result_row = result_row;
      slot.context = Intern(context);
      InsertSlot(s, h, std::move(slot));
      auto in = s.inflight.find(h);
      if (in != s.inflight.end()) {
        waiters = std::move(in->second);
        s.inflight.erase(in);
      }
    }
    for (Waiter& w : waiters) {
      merged_saved_micros_ += static_cast<int64_t>(updated.eval_seconds * 1e6);
      if (w) w(updated);
    }
    if (done) done(updated);
  };
  if (store_ == nullptr) {
    publish(-1, -1);
    return;
  }
  StoredEntry stored = ToStored(h, updated);
  stored.result = result.SerializeAsString();
  stored.context = context;
  store_->Write(std::move(stored), [this, h, done_on_error = done, publish = std::move(publish)](
                                       absl::StatusOr<WrittenRow> written) mutable {
    if (!written.ok()) {
      Abandon(h, written.status());
      if (done_on_error) done_on_error(written.status());
      return;
    }
    publish(written->row, written->result_row);
  });
}

absl::StatusOr<FecEntry> FecCache::Complete(const Hash128& h, int64_t candidate_id,
                                            const EvaluationResult& result, const std::string& context) {
  absl::Mutex mu;
  bool done = false;
  absl::StatusOr<FecEntry> out = absl::UnknownError("not completed");
  auto finish = [&](absl::StatusOr<FecEntry> e) {
    absl::MutexLock lock(&mu);
    out = std::move(e);
    done = true;
  };
  CompleteAsync(h, candidate_id, result, context, finish);
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));
  return out;
}

void FecCache::Abandon(const Hash128& h, const absl::Status& why) {
  Shard& s = ShardOf(h);
  std::vector<Waiter> waiters;
  {
    absl::MutexLock lock(&s.mu);
    auto in = s.inflight.find(h);
    if (in == s.inflight.end()) return;
    waiters = std::move(in->second);
    s.inflight.erase(in);
  }
  for (Waiter& w : waiters)
    if (w) w(why);
}

std::optional<FecEntry> FecCache::Peek(const Hash128& h) {
  Shard& s = ShardOf(h);
  absl::MutexLock lock(&s.mu);
  auto it = s.map.find(h);
  if (it == s.map.end() && LoadFromDisk(s, h)) it = s.map.find(h);
  if (it == s.map.end()) return std::nullopt;
  return it->second.entry;
}

absl::StatusOr<EvaluationResult> FecCache::StoredResult(const Hash128& h) {
  if (store_ == nullptr) return absl::NotFoundError("the cache has no store");
  int64_t row = -1;
  {
    Shard& s = ShardOf(h);
    absl::MutexLock lock(&s.mu);
    auto it = s.on_disk.find(h);
    if (it != s.on_disk.end()) row = it->second;
  }
  if (row < 0) return absl::NotFoundError(absl::StrCat("no stored entry for ", h.Hex()));
  auto stored = store_->ReadRow(row);
  if (!stored.ok()) return stored.status();
  EvaluationResult r;
  if (stored->result.empty() || !r.ParseFromString(stored->result)) {
    return absl::NotFoundError(absl::StrCat("entry ", h.Hex(), " has no stored result"));
  }
  return r;
}

FecStats FecCache::stats() const {
  FecStats st;
  st.partial_hits = partial_hits_;
  st.inflight_merges = inflight_merges_;
  st.misses = misses_;
  st.evictions = evictions_;
  st.disk_reads = disk_reads_;
  st.forgotten = forgotten_;
  int64_t saved = merged_saved_micros_;
  for (const auto& sh : shards_) {
    absl::MutexLock lock(&sh->mu);
    st.hits += sh->hits;
    saved += sh->saved_micros;
    st.in_memory += sh->map.size();
    st.entries += store_ ? static_cast<int64_t>(sh->on_disk.size()) : static_cast<int64_t>(sh->map.size());
  }
  st.seconds_saved = saved / 1e6;
  return st;
}

void FecCache::PersistSlot(Shard& s, const Hash128& h, Slot& slot) {
  if (!slot.dirty || store_ == nullptr) return;
  auto it = s.on_disk.find(h);
  if (it == s.on_disk.end()) return;  // not durable yet
  slot.dirty = false;
  // A counters-only version pointing at the same stored result.
  StoredEntry e = ToStored(h, slot.entry);
  e.result_row = slot.result_row;
  if (slot.context) e.context = *slot.context;
  const Hash128 key = h;
  Shard* shard = &s;
  store_->Write(std::move(e), [shard, key](absl::StatusOr<WrittenRow> row) {
    if (!row.ok()) return;
    absl::MutexLock l(&shard->mu);
    auto d = shard->on_disk.find(key);
    if (d != shard->on_disk.end() && d->second < row->row) d->second = row->row;
  });
}

absl::Status FecCache::PersistStats() {
  if (!store_) return absl::OkStatus();
  for (auto& sh : shards_) {
    absl::MutexLock lock(&sh->mu);
    for (auto& [h, slot] : sh->map) PersistSlot(*sh, h, slot);
  }
  return absl::OkStatus();
}

}  // namespace fecsearch
