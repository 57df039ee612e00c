// Number formats: fp16/bf16 rounding and the value tables of fp8, posit and NormalFloat.
#include "core/number_formats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <utility>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace fecsearch {
namespace {

uint16_t HalfBits(Eigen::half h) { return Eigen::numext::bit_cast<uint16_t>(h); }
Eigen::half HalfFromBits(uint16_t b) { return Eigen::numext::bit_cast<Eigen::half>(b); }

// Standard normal quantile by bisection on erfc: only used to build small tables once.
double NormalQuantile(double p) {
  double lo = -12, hi = 12;
  for (int i = 0; i < 200; ++i) {
    double mid = 0.5 * (lo + hi);
    double cdf = 0.5 * std::erfc(-mid / std::sqrt(2.0));
    (cdf < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

float RoundToFp16Up(float x) {
  Eigen::half h(x);
  if (!(static_cast<float>(h) < x)) return static_cast<float>(h);
  uint16_t b = HalfBits(h);
  if ((b & 0x7fff) == 0) return static_cast<float>(HalfFromBits(0x0001));
  b = (b & 0x8000) ? b - 1 : b + 1;
  return static_cast<float>(HalfFromBits(b));
}

float RoundToFp16Down(float x) { return -RoundToFp16Up(-x); }

float RoundToBf16(float x) {
  if (std::isnan(x)) return x;
  uint32_t u;
  std::memcpy(&u, &x, 4);
  uint32_t lsb = (u >> 16) & 1u;
  u += 0x7fffu + lsb;
  u &= 0xffff0000u;
  float y;
  std::memcpy(&y, &u, 4);
  return y;
}

float DecodeFp8E4M3(uint8_t code) {
  const int sign = code >> 7, exp = (code >> 3) & 0xf, man = code & 0x7;
  if (exp == 0xf && man == 0x7) return std::numeric_limits<float>::quiet_NaN();
  float v = exp == 0 ? std::ldexp(man / 8.0f, -6) : std::ldexp(1.0f + man / 8.0f, exp - 7);
  return sign ? -v : v;
}

float DecodeFp8E5M2(uint8_t code) {
  const int sign = code >> 7, exp = (code >> 2) & 0x1f, man = code & 0x3;
  float v;
  if (exp == 0x1f) {
    v = man == 0 ? std::numeric_limits<float>::infinity()
                 : std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    v = std::ldexp(man / 4.0f, -14);
  } else {
    v = std::ldexp(1.0f + man / 4.0f, exp - 15);
  }
  return sign ? -v : v;
}

double DecodePosit(uint32_t code, int n, int es) {
  const uint32_t mask = n == 32 ? 0xffffffffu : ((1u << n) - 1);
  code &= mask;
  if (code == 0) return 0.0;
  if (code == (1u << (n - 1))) return std::numeric_limits<double>::quiet_NaN();
  const bool negative = (code >> (n - 1)) & 1u;
  if (negative) code = (~code + 1) & mask;
  // Regime: run of identical bits after the sign.
  int i = n - 2;
  const int first = (code >> i) & 1u;
  int run = 0;
  while (i >= 0 && static_cast<int>((code >> i) & 1u) == first) {
    ++run;
    --i;
  }
  const int k = first ? run - 1 : -run;
  --i;  // skip the terminating bit (if any)
  int e = 0;
  for (int j = 0; j < es; ++j) {
    e <<= 1;
    if (i >= 0) {
      e |= (code >> i) & 1u;
      --i;
    }
  }
  const int frac_bits = std::max(i + 1, 0);
  const double frac =
      frac_bits > 0 ? static_cast<double>(code & ((1u << frac_bits) - 1)) / (1u << frac_bits) : 0;
  const double value = std::ldexp(1.0 + frac, k * (1 << es) + e);
  return negative ? -value : value;
}

namespace {

// Float bits mapped to an unsigned integer that increases with the float's value.
uint32_t OrderedBits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

float FromOrderedBits(uint32_t k) {
  const uint32_t b = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

}  // namespace

ValueTable::ValueTable(std::vector<double> values, std::vector<uint32_t> codes) {
  const bool have_codes = codes.size() == values.size();
  std::vector<std::pair<double, uint32_t>> entries;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) continue;
    entries.emplace_back(values[i], have_codes ? codes[i] : 0u);
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<uint32_t> kept_codes;
  for (const auto& [v, c] : entries) {
    float f = static_cast<float>(v);
    if (!values_.empty() && values_.back() == f) {
      // Merged duplicate (e.g. +0 and -0): keep an even code if either is even.
      if ((kept_codes.back() & 1u) && !(c & 1u)) kept_codes.back() = c;
      continue;
    }
    values_.push_back(f);
    kept_codes.push_back(c);
  }
  for (size_t i = 0; i + 1 < values_.size(); ++i) {
    bool up;
    if (have_codes) {
      up = (kept_codes[i] & 1u) && !(kept_codes[i + 1] & 1u);
    } else {
      up = std::fabs(values_[i + 1]) < std::fabs(values_[i]);
    }
    tie_up_.push_back(up ? 1 : 0);
  }
  for (float v : values_) max_abs_ = std::max(max_abs_, std::fabs(v));
  for (size_t i = 0; i + 1 < values_.size(); ++i) midpoints_.push_back(0.5 * (double{values_[i]} + values_[i + 1]));
  // Bucket index: nearest entries at each bucket's lowest and highest finite float.
  const size_t buckets = size_t{1} << (32 - kBucketShift);
  bucket_lo_.resize(buckets);
  bucket_hi_.resize(buckets);
  for (size_t k = 0; k < buckets; ++k) {
    float a = FromOrderedBits(static_cast<uint32_t>(k << kBucketShift));
    float b = FromOrderedBits(static_cast<uint32_t>(((k + 1) << kBucketShift) - 1));
    // Buckets of NaN patterns (never looked up) and infinities saturate at the ends.
    if (std::isnan(a) || std::isnan(b)) {
      const bool negative = k < buckets / 2;
      bucket_lo_[k] = bucket_hi_[k] = negative ? 0 : static_cast<uint16_t>(values_.size() - 1);
      continue;
    }
    bucket_lo_[k] = static_cast<uint16_t>(NearestIndexSlow(a));
    bucket_hi_[k] = static_cast<uint16_t>(NearestIndexSlow(b));
  }
}


int ValueTable::NearestInRange(float x, size_t lo, size_t hi) const {
  // First entry >= x within [lo, hi], then the nearer of it and its predecessor, compared
  // exactly in double (the difference of two floats is exact there); ties follow tie_up_.
  const size_t n = values_.size();
  const size_t i = std::lower_bound(values_.begin() + lo, values_.begin() + hi + 1, x) - values_.begin();
  if (i == 0) return 0;
  if (i == n) return static_cast<int>(n - 1);
  const double d_lo = double{x} - values_[i - 1];
  const double d_hi = double{values_[i]} - x;
  if (d_lo < d_hi) return static_cast<int>(i - 1);
  if (d_hi < d_lo) return static_cast<int>(i);
  return static_cast<int>(tie_up_[i - 1] ? i : i - 1);
}

int ValueTable::NearestIndexSlow(float x) const {
  if (std::isnan(x)) return 0;
  return NearestInRange(x, 0, values_.size() - 1);
}

int ValueTable::NearestIndex(float x) const {
  if (std::isnan(x)) return 0;
  const uint32_t bucket = OrderedBits(x) >> kBucketShift;
  const size_t lo = bucket_lo_[bucket], hi = bucket_hi_[bucket];
  if (lo == hi) return static_cast<int>(lo);
  if (hi == lo + 1) {
    // One midpoint inside the bucket: a single exact comparison decides.
    const double mid = midpoints_[lo];
    if (x < mid) return static_cast<int>(lo);
    if (x > mid) return static_cast<int>(hi);
    return static_cast<int>(tie_up_[lo] ? hi : lo);
  }
  // The answer lies in [lo, hi]; searching [lo - 1, hi] keeps the predecessor comparison.
  return NearestInRange(x, lo == 0 ? 0 : lo - 1, std::min(hi + 1, values_.size() - 1));
}



const ValueTable& Fp8E4M3Table() {
  static const ValueTable* table = [] {
    std::vector<double> v;
    std::vector<uint32_t> c;
    for (int code = 0; code < 256; ++code) {
      v.push_back(DecodeFp8E4M3(static_cast<uint8_t>(code)));
      c.push_back(code);
    }
    return new ValueTable(v, c);
  }();
  return *table;
}

const ValueTable& Fp8E5M2Table() {
  static const ValueTable* table = [] {
    std::vector<double> v;
    std::vector<uint32_t> c;
    for (int code = 0; code < 256; ++code) {
      v.push_back(DecodeFp8E5M2(static_cast<uint8_t>(code)));
      c.push_back(code);
    }
    return new ValueTable(v, c);
  }();
  return *table;
}

namespace {
absl::Mutex table_mu;
std::map<std::pair<int, int>, std::unique_ptr<ValueTable>>& TableCache() {
  static auto* cache = new std::map<std::pair<int, int>, std::unique_ptr<ValueTable>>();
  return *cache;
}
}  // namespace

absl::StatusOr<const ValueTable*> PositTable(int n, int es) {
  if (n < 2 || n > 16 || es < 0 || es > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("posit(", n, ", ", es, ") is not supported: need 2 <= n <= 16, 0 <= es <= 3"));
  }
  absl::MutexLock lock(&table_mu);
  auto& slot = TableCache()[{n, es}];
  if (!slot) {
    std::vector<double> v;
    std::vector<uint32_t> c;
    for (uint32_t code = 0; code < (1u << n); ++code) {
      v.push_back(DecodePosit(code, n, es));
      c.push_back(code);
    }
    slot = std::make_unique<ValueTable>(v, c);
  }
  return slot.get();
}

absl::StatusOr<const ValueTable*> NormalFloatTable(int bits) {
  if (bits < 1 || bits > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("NF", bits, " is not supported: need 1 <= bits <= 8"));
  }
  absl::MutexLock lock(&table_mu);
  auto& slot = TableCache()[{-1, bits}];
  if (!slot) {
    std::vector<double> v;
    if (bits == 1) {
      v = {-1.0, 1.0};
    } else {
      // QLoRA: 2^(b-1) positive and 2^(b-1)-1 negative normal quantiles plus an exact zero,
      // normalised to [-1, 1].
      const int levels = 1 << bits;
      const int pos = levels / 2, neg = levels / 2 - 1;
      const double offset = 0.5 * ((1 - 1.0 / (2 * (levels - 1))) + (1 - 1.0 / (2 * levels)));
      for (int i = 0; i < pos; ++i) {
        double p = offset + (0.5 - offset) * i / pos;  // linspace(offset, 0.5, pos+1)[:-1]
        v.push_back(NormalQuantile(p));
      }
      for (int i = 0; i < neg; ++i) {
        double p = offset + (0.5 - offset) * i / neg;
        v.push_back(-NormalQuantile(p));
      }
      v.push_back(0.0);
      double m = 0;
      for (double x : v) m = std::max(m, std::fabs(x));
      for (double& x : v) x /= m;
    }
    slot = std::make_unique<ValueTable>(v);
  }
  return slot.get();
}

}  // namespace fecsearch
