// The KV-cache compression domain's side of hashing: its probe program (each layer's
// compressed attention on captured queries, keys and values) and the hash source the generic
// CandidateHasher reads (structural form: the pipeline graphs; docs/DOMAIN.md section 4).
#ifndef FECSEARCH_HASHING_KV_PROBE_H_
#define FECSEARCH_HASHING_KV_PROBE_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/evaluator.h"
#include "hashing/candidate_hasher.h"
#include "hashing/functional_hasher.h"
#include "hashing/structural_hash.h"
#include "protos/experiment.pb.h"

namespace fecsearch {

// The probe program for KV-cache candidates: each layer's attention outputs with the
// candidate's compressed cache, on queries, keys and values captured from the model on the
// probe window, and on a seeded synthetic variant of its first half whose channels carry
// large-LLM-like outliers (so that outlier and per-channel settings are exercised); plus the
// exact cache bits on both, the analytic memory at the deployment context, and, for layers
// with an active eviction (which can hide the rest of the layer from a probe this short), the
// layer's compiled plan with resolved settings. Thread-safe; immutable after Create.
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

// Genomes and pipeline graphs: validated and structurally hashed through their compiled
// graphs, probed with KvProbe. Thread-safe; immutable after Create.
class KvHashSource : public HashSource {
 public:
  // Captures the probe unless `fec` deduplicates by exact hash only.
  static absl::StatusOr<std::unique_ptr<KvHashSource>> Create(std::shared_ptr<const EvaluationContext> context,
                                                              const FecSpec& fec);
  const std::string& context_fingerprint() const override { return context_->fingerprint(); }
  absl::StatusOr<Hash128> StructuralHash(const Candidate& candidate) const override;
  bool has_probe() const override { return probe_ != nullptr; }
  absl::Status Probe(const Candidate& candidate, OutputSink& sink) const override;
  const KvProbe& probe() const { return *probe_; }

 private:
  explicit KvHashSource(std::shared_ptr<const EvaluationContext> context);
  std::shared_ptr<const EvaluationContext> context_;
  std::unique_ptr<KvProbe> probe_;
  StructuralHasher structural_;
};

// A CandidateHasher over a new KvHashSource (kept in `source`, which must outlive it).
absl::StatusOr<std::unique_ptr<CandidateHasher>> MakeKvCandidateHasher(std::shared_ptr<const EvaluationContext> context,
                                                                       const FecSpec& fec,
                                                                       std::unique_ptr<KvHashSource>* source);

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_KV_PROBE_H_
