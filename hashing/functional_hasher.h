// Representation-agnostic functional hashing: run anything on a fixed probe, canonicalise
// the numbers it produces, hash them with XXH3-128 (docs/DOMAIN.md section 1).
#ifndef FECSEARCH_HASHING_FUNCTIONAL_HASHER_H_
#define FECSEARCH_HASHING_FUNCTIONAL_HASHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "hashing/hash128.h"

namespace fecsearch {

// Receives a probe program's outputs and streams their canonical form into the hash.
// Canonical form of a float: mantissa truncated to `mantissa_bits` bits, -0 as +0, every NaN
// as one code, +inf and -inf as their own codes. Not thread-safe (one per hash).
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void AddFloats(absl::Span<const float> values) = 0;
  void AddFloat(float v) { AddFloats(absl::MakeConstSpan(&v, 1)); }
  // Exact integers (counts, byte sizes) are hashed as they are.
  virtual void AddInt(int64_t v) = 0;
};

// The canonical 32-bit pattern of one float (the definition; exposed for tests).
uint32_t CanonicalFloatBits(float v, int mantissa_bits);
// The same for many floats at once, vectorised: what OutputSink hashes.
void CanonicalizeFloats(absl::Span<const float> values, int mantissa_bits, uint32_t* out);

// A probe program: runs a candidate on the probe and writes its outputs to the sink.
using ProbeProgram = std::function<absl::Status(OutputSink&)>;

// Thread-safe; holds only its settings.
class FunctionalHasher {
 public:
  // mantissa_bits in 0..23 (23 keeps fp32 exactly).
  explicit FunctionalHasher(int mantissa_bits) : mantissa_bits_(mantissa_bits) {}

  // XXH3-128 of `context` (the evaluation-context fingerprint, so that caches of different
  // models, texts or protocols never mix) followed by the program's canonical outputs.
  absl::StatusOr<Hash128> Hash(const std::string& context, const ProbeProgram& program) const;

  int mantissa_bits() const { return mantissa_bits_; }

  // Runs `program` once and hashes its outputs at several mantissa widths (the collision
  // study); result i is what Hash would return with mantissa_bits[i].
  static absl::StatusOr<std::vector<Hash128>> HashAtWidths(const std::string& context, const ProbeProgram& program,
                                                           const std::vector<int>& mantissa_bits);

 private:
  int mantissa_bits_;
};

// XXH3-128 of arbitrary bytes (exact-genome hashing, fingerprints).
Hash128 HashBytes(absl::string_view bytes);

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_FUNCTIONAL_HASHER_H_
