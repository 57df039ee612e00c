// Hashes of KV-compression candidates (genomes and pipeline graphs alike): the functional
// hash (what the candidate computes on the probe), the structural hash (its operator
// graphs) and the exact hash (its serialised form), and the cache key the dedup mode picks.
#ifndef FECSEARCH_HASHING_CANDIDATE_HASHER_H_
#define FECSEARCH_HASHING_CANDIDATE_HASHER_H_

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/evaluator.h"
#include "hashing/functional_hasher.h"
#include "hashing/hash128.h"
#include "hashing/structural_hash.h"
#include "protos/experiment.pb.h"

namespace fecsearch {

// The probe program for KV-cache candidates (docs/DOMAIN.md section 4): each layer's attention
// outputs with the candidate's compressed cache, on queries, keys and values captured from
// the model on the probe window, and on a seeded synthetic variant of its first half whose
// channels carry large-LLM-like outliers (so that outlier and per-channel settings are
// exercised);
// plus the exact cache bits on both, the analytic memory at the deployment context, and, for
// layers with an active eviction (which can hide the rest of the layer from a probe this
// short), the layer's compiled plan with resolved settings.
// Thread-safe; immutable after Create.
class KvProbe {
 public:
  static absl::StatusOr<std::unique_ptr<KvProbe>> Create(std::shared_ptr<const EvaluationContext> context,
                                                         int probe_tokens, uint64_t probe_seed);
  absl::Status Run(const Candidate& candidate, OutputSink& sink) const;
  int probe_tokens() const { return probe_tokens_; }

 private:
  std::shared_ptr<const EvaluationContext> context_;
  int probe_tokens_ = 0;
  std::vector<CapturedLayer> real_, synthetic_;
};

struct CandidateHashes {
  Hash128 key;         // what the cache is keyed by (per the dedup mode)
  Hash128 functional;  // zero unless computed
  Hash128 structural;
  Hash128 exact;
  bool probe_ran = false;  // false when the structural pre-check answered
};

// Thread-safe.
class CandidateHasher {
 public:
  // `fec` chooses the dedup mode, probe length, mantissa bits and probe seed.
  static absl::StatusOr<std::unique_ptr<CandidateHasher>> Create(
      std::shared_ptr<const EvaluationContext> context, const FecSpec& fec);

  // Fails (INVALID_ARGUMENT naming the field) for a candidate that does not compile.
  absl::StatusOr<CandidateHashes> Hash(const Candidate& candidate) const;

  const FunctionalHasher& functional() const { return hasher_; }
  const KvProbe& probe() const { return *probe_; }
  FecSpec::Dedup dedup() const { return dedup_; }

 private:
  CandidateHasher(int mantissa_bits, const ModelConfig& model, int window_length)
      : hasher_(mantissa_bits), structural_(model, window_length) {}
  std::shared_ptr<const EvaluationContext> context_;
  FecSpec::Dedup dedup_ = FecSpec::FUNCTIONAL;
  FunctionalHasher hasher_;
  std::unique_ptr<KvProbe> probe_;
  StructuralHasher structural_;
  // Structural pre-check: candidates with the same graphs compute the same function.
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<Hash128, Hash128, Hash128Hasher> by_structure_ ABSL_GUARDED_BY(mu_);
};

// XXH3-128 of the context fingerprint and the candidate's deterministic serialisation.
Hash128 ExactHash(const std::string& context, const Candidate& candidate);

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_CANDIDATE_HASHER_H_
