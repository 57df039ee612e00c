// Number formats for simulated quantization: fp16/bf16 rounding, and the sorted value
// tables (fp8, posit, NormalFloat) that table-based quantizers round to (docs/DOMAIN.md section 5).
#ifndef FECSEARCH_CORE_NUMBER_FORMATS_H_
#define FECSEARCH_CORE_NUMBER_FORMATS_H_

#include <cstdint>
#include <vector>

#include "Eigen/Core"
#include "absl/status/statusor.h"

namespace fecsearch {

// Round to IEEE half precision (nearest, ties to even) and back. Overflow gives +-inf.
// Inline: it runs for every cached element.
inline float RoundToFp16(float x) { return static_cast<float>(Eigen::half(x)); }
// Round to the nearest fp16 value >= x (towards +infinity) / <= x (towards -infinity).
float RoundToFp16Up(float x);
float RoundToFp16Down(float x);
// Round to bfloat16 (nearest even on the top 16 bits of the fp32 pattern) and back.
float RoundToBf16(float x);

// Decoders of single codes, used to build tables and by exhaustive tests.
// fp8 E4M3 "fn" (bias 7, no infinities, 0x7f/0xff are NaN, max 448).
float DecodeFp8E4M3(uint8_t code);
// fp8 E5M2 (bias 15, IEEE infinities and NaNs, max 57344).
float DecodeFp8E5M2(uint8_t code);
// posit(n, es) for 2 <= n <= 16, 0 <= es <= 3; code in the low n bits. NaR decodes to NaN.
double DecodePosit(uint32_t code, int n, int es);

// A sorted set of representable values with round-to-nearest lookup. Ties go to the entry
// whose code is even (round-half-to-even for fp8 and posit), or to the smaller magnitude
// for codebooks without codes. Immutable after construction; thread-compatible.
class ValueTable {
 public:
  // `values` need not be sorted; NaNs and infinities are dropped, duplicates merged.
  // `codes` (same length, optional) are the bit patterns used for the tie rule.
  ValueTable(std::vector<double> values, std::vector<uint32_t> codes = {});

  // Nearest representable value to x (saturating at the ends).
  float Round(float x) const { return values_[NearestIndex(x)]; }
  // Index of the nearest entry: a bucket of the float's ordered bit pattern (1/16 of an
  // octave) narrows the answer to an index range, usually of one entry.
  int NearestIndex(float x) const;
  // The same by binary search over the whole table (reference for tests).
  int NearestIndexSlow(float x) const;

  int size() const { return static_cast<int>(values_.size()); }
  float value(int i) const { return values_[i]; }
  float max_abs() const { return max_abs_; }
  const std::vector<float>& values() const { return values_; }

 private:
  std::vector<float> values_;     // sorted ascending
  std::vector<uint8_t> tie_up_;  // exactly between i and i+1: choose values_[i+1]
  float max_abs_ = 0;
  // Per bucket of OrderedBits(x) >> kBucketShift: the nearest indices at its two ends.
  // 18: 32 buckets per octave, so that most buckets of an 8-bit format hold no midpoint.
  static constexpr int kBucketShift = 18;
  std::vector<double> midpoints_;  // exact midpoint between values_[i] and values_[i + 1]
  std::vector<uint16_t> bucket_lo_, bucket_hi_;
  int NearestInRange(float x, size_t lo, size_t hi) const;
};

// Tables of the fixed formats (built once, shared).
const ValueTable& Fp8E4M3Table();
const ValueTable& Fp8E5M2Table();
// posit(n, es) table; InvalidArgument outside 2 <= n <= 16, 0 <= es <= 3.
absl::StatusOr<const ValueTable*> PositTable(int n, int es);
// NormalFloat codebook of 2^bits levels in [-1, 1] with an exact zero (QLoRA's
// construction generalised to any width); InvalidArgument outside 1 <= bits <= 8.
absl::StatusOr<const ValueTable*> NormalFloatTable(int bits);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_NUMBER_FORMATS_H_
