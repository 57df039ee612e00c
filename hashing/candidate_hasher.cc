// Functional, structural and exact hashes of any domain's candidates.
#include "hashing/candidate_hasher.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace fecsearch {

std::string DeterministicBytes(const Candidate& candidate) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    candidate.SerializeToCodedStream(&coded);
  }
  return bytes;
}

std::string HashSource::ExactForm(const Candidate& candidate) const { return DeterministicBytes(candidate); }

Hash128 ExactHash(const std::string& context, const std::string& exact_form) {
  return HashBytes(absl::StrCat(context, "|exact|", exact_form));
}

Hash128 ExactHash(const std::string& context, const Candidate& candidate) {
  return ExactHash(context, DeterministicBytes(candidate));
}

absl::StatusOr<std::unique_ptr<CandidateHasher>> CandidateHasher::Create(const HashSource* source, const FecSpec& fec) {
  if (fec.mantissa_bits() < 0 || fec.mantissa_bits() > 23) {
    return absl::InvalidArgumentError(absl::StrCat("fec.mantissa_bits: ", fec.mantissa_bits(), " is outside 0..23"));
  }
  auto hasher = std::unique_ptr<CandidateHasher>(new CandidateHasher(fec.mantissa_bits()));
  hasher->source_ = source;
  hasher->dedup_ = fec.dedup() == FecSpec::DEDUP_UNSPECIFIED ? FecSpec::FUNCTIONAL : fec.dedup();
  return hasher;
}

absl::StatusOr<CandidateHashes> CandidateHasher::Hash(const Candidate& candidate) const {
  auto structural = source_->StructuralHash(candidate);
  if (!structural.ok()) return structural.status();
  const std::string& context = source_->context_fingerprint();
  CandidateHashes h;
  h.structural = *structural;
  h.exact = ExactHash(context, source_->ExactForm(candidate));
  if (dedup_ == FecSpec::EXACT || !source_->has_probe()) {
    h.key = h.exact;
    return h;
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = by_structure_.find(h.structural);
    if (it != by_structure_.end()) {
      h.functional = it->second;
      h.key = h.functional;
      return h;
    }
  }
  auto f = hasher_.Hash(context, [&](OutputSink& sink) { return source_->Probe(candidate, sink); });
  if (!f.ok()) return f.status();
  h.functional = *f;
  h.key = *f;
  h.probe_ran = true;
  absl::MutexLock lock(&mu_);
  by_structure_.emplace(h.structural, h.functional);
  return h;
}

}  // namespace fecsearch
