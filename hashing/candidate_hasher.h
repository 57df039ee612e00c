// The hashes of a candidate of any domain: functional (what it computes on the domain's
// probe), structural (its structural form) and exact (its canonical form), and the cache key
// the dedup mode picks. The domain supplies its forms and probe through HashSource.
#ifndef FECSEARCH_HASHING_CANDIDATE_HASHER_H_
#define FECSEARCH_HASHING_CANDIDATE_HASHER_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "hashing/functional_hasher.h"
#include "hashing/hash128.h"
#include "protos/candidate.pb.h"
#include "protos/experiment.pb.h"

namespace fecsearch {

// What a domain gives the hasher. Implementations are thread-safe.
class HashSource {
 public:
  virtual ~HashSource() = default;
  // The evaluation context's fingerprint: part of every hash, so that different contexts
  // (models, texts, evaluators) never share a cache entry.
  virtual const std::string& context_fingerprint() const = 0;
  // Validates the candidate (INVALID_ARGUMENT naming the field) and hashes its structural
  // form; a domain without one returns the hash of its exact form.
  virtual absl::StatusOr<Hash128> StructuralHash(const Candidate& candidate) const = 0;
  // The canonical bytes of the candidate that the exact hash covers. Default: its
  // deterministic protobuf serialisation.
  virtual std::string ExactForm(const Candidate& candidate) const;
  // Whether the domain has a probe; without one, functional deduplication keys by the exact hash.
  virtual bool has_probe() const = 0;
  // Runs the candidate on the domain's fixed probe, writing what it computes to `sink`.
  // INVALID_ARGUMENT: the candidate is invalid (recorded so); any other error stops the search.
  virtual absl::Status Probe(const Candidate& candidate, OutputSink& sink) const = 0;
};

struct CandidateHashes {
  Hash128 key;         // what the cache is keyed by (per the dedup mode)
  Hash128 functional;  // zero unless computed
  Hash128 structural;
  Hash128 exact;
  bool probe_ran = false;  // false when the structural pre-check answered
};

// Thread-safe. Does not own the source.
class CandidateHasher {
 public:
  // `fec` chooses the dedup mode and the mantissa bits.
  static absl::StatusOr<std::unique_ptr<CandidateHasher>> Create(const HashSource* source, const FecSpec& fec);

  // Fails (INVALID_ARGUMENT naming the field) for an invalid candidate; other errors come
  // from the probe and mean the search cannot go on.
  absl::StatusOr<CandidateHashes> Hash(const Candidate& candidate) const;

  const FunctionalHasher& functional() const { return hasher_; }
  FecSpec::Dedup dedup() const { return dedup_; }

 private:
  explicit CandidateHasher(int mantissa_bits) : hasher_(mantissa_bits) {}
  const HashSource* source_ = nullptr;
  FecSpec::Dedup dedup_ = FecSpec::FUNCTIONAL;
  FunctionalHasher hasher_;
  // Structural pre-check: candidates with the same structural form compute the same function.
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<Hash128, Hash128, Hash128Hasher> by_structure_ ABSL_GUARDED_BY(mu_);
};

// XXH3-128 of the context fingerprint and the candidate's exact form.
Hash128 ExactHash(const std::string& context, const std::string& exact_form);
// The same with the deterministic serialisation as the exact form.
Hash128 ExactHash(const std::string& context, const Candidate& candidate);
// A candidate's deterministic protobuf serialisation.
std::string DeterministicBytes(const Candidate& candidate);

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_CANDIDATE_HASHER_H_
