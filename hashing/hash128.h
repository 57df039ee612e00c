// A 128-bit hash (XXH3-128 output) used as cache key.
#ifndef FECSEARCH_HASHING_HASH128_H_
#define FECSEARCH_HASHING_HASH128_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/strings/string_view.h"

namespace fecsearch {

struct Hash128 {
  uint64_t hi = 0;
  uint64_t lo = 0;

  bool operator==(const Hash128& o) const { return hi == o.hi && lo == o.lo; }
  bool operator!=(const Hash128& o) const { return !(*this == o); }
  bool operator<(const Hash128& o) const { return hi != o.hi ? hi < o.hi : lo < o.lo; }

  // 32 lowercase hex digits.
  std::string Hex() const {
    char buf[33];
    std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(hi),
                  static_cast<unsigned long long>(lo));
    return buf;
  }
  // Parses 32 hex digits; false on anything else.
  static bool FromHex(absl::string_view hex, Hash128* out) {
    if (hex.size() != 32) return false;
    uint64_t parts[2] = {0, 0};
    for (int i = 0; i < 32; ++i) {
      const char c = hex[i];
      int v;
      if (c >= '0' && c <= '9') v = c - '0';
      else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
      else return false;
      parts[i / 16] = (parts[i / 16] << 4) | static_cast<uint64_t>(v);
    }
    out->hi = parts[0];
    out->lo = parts[1];
    return true;
  }

  template <typename H>
  friend H AbslHashValue(H h, const Hash128& x) {
    return H::combine(std::move(h), x.hi, x.lo);
  }
};

// The low word of an XXH3 hash is already uniformly distributed: use it directly as the
// hash-table hash instead of hashing the hash again.
struct Hash128Hasher {
  size_t operator()(const Hash128& h) const { return static_cast<size_t>(h.lo); }
};

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_HASH128_H_
