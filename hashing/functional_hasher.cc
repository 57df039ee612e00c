// Canonicalisation and XXH3-128 streaming for functional hashes.
#include "hashing/functional_hasher.h"

#include <cstring>
#include <memory>
#include <vector>

#define XXH_INLINE_ALL
#include "xxhash.h"

namespace fecsearch {

uint32_t CanonicalFloatBits(float v, int mantissa_bits) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  const uint32_t exponent = bits & 0x7f800000u;
  const uint32_t mantissa = bits & 0x007fffffu;
  if (exponent == 0x7f800000u) {
    if (mantissa != 0) return 0x7fc00000u;               // every NaN
    return (bits & 0x80000000u) ? 0xff800000u : 0x7f800000u;  // -inf, +inf
  }
  if ((bits & 0x7fffffffu) == 0) return 0;  // -0 as +0
  const int drop = 23 - mantissa_bits;
  if (drop > 0) bits &= ~((1u << drop) - 1u);
  if ((bits & 0x7fffffffu) == 0) return 0;
  return bits;
}

void CanonicalizeFloats(absl::Span<const float> values, int mantissa_bits, uint32_t* out) {
  // Branch-free form of CanonicalFloatBits, which the compiler vectorises.
  const uint32_t keep = mantissa_bits >= 23 ? 0xffffffffu : ~((1u << (23 - mantissa_bits)) - 1u);
  const float* in = values.data();
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, in + i, 4);
    const bool is_nan = (bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0;
    uint32_t t = bits & keep;  // infinities have no mantissa bits and pass unchanged
    t = (t & 0x7fffffffu) == 0 ? 0u : t;
    out[i] = is_nan ? 0x7fc00000u : t;
  }
}

namespace {

class XxhSink : public OutputSink {
 public:
  explicit XxhSink(int mantissa_bits) : m_(mantissa_bits) {
    state_ = XXH3_createState();
    XXH3_128bits_reset(state_);
  }
  ~XxhSink() override { XXH3_freeState(state_); }

  void Raw(const void* data, size_t n) { XXH3_128bits_update(state_, data, n); }

  void AddFloats(absl::Span<const float> values) override {
    buffer_.resize(values.size());
    CanonicalizeFloats(values, m_, buffer_.data());
    // Length-prefixed so that [a][b, c] and [a, b][c] differ.
    const uint64_t n = values.size();
    Raw(&n, sizeof(n));
    Raw(buffer_.data(), buffer_.size() * sizeof(uint32_t));
  }
  void AddInt(int64_t v) override {
    const uint64_t tag = ~uint64_t{0};
    Raw(&tag, sizeof(tag));
    Raw(&v, sizeof(v));
  }
  Hash128 Digest() {
    const XXH128_hash_t h = XXH3_128bits_digest(state_);
    return Hash128{h.high64, h.low64};
  }

 private:
  int m_;
  XXH3_state_t* state_;
  std::vector<uint32_t> buffer_;
};

}  // namespace

namespace {

class FanOutSink : public OutputSink {
 public:
  explicit FanOutSink(std::vector<std::unique_ptr<XxhSink>>& sinks) : sinks_(sinks) {}
  void AddFloats(absl::Span<const float> values) override {
    for (auto& s : sinks_) s->AddFloats(values);
  }
  void AddInt(int64_t v) override {
    for (auto& s : sinks_) s->AddInt(v);
  }

 private:
  std::vector<std::unique_ptr<XxhSink>>& sinks_;
};

void Start(XxhSink& sink, const std::string& context, int mantissa_bits) {
  const uint64_t n = context.size();
  sink.Raw(&n, sizeof(n));
  sink.Raw(context.data(), context.size());
  const int32_t m = mantissa_bits;
  sink.Raw(&m, sizeof(m));
}

}  // namespace

absl::StatusOr<std::vector<Hash128>> FunctionalHasher::HashAtWidths(const std::string& context,
                                                                    const ProbeProgram& program,
                                                                    const std::vector<int>& mantissa_bits) {
  std::vector<std::unique_ptr<XxhSink>> sinks;
  for (int m : mantissa_bits) {
    sinks.push_back(std::make_unique<XxhSink>(m));
    Start(*sinks.back(), context, m);
  }
  FanOutSink fan(sinks);
  absl::Status s = program(fan);
  if (!s.ok()) return s;
  std::vector<Hash128> out;
  for (auto& sink : sinks) out.push_back(sink->Digest());
  return out;
}

absl::StatusOr<Hash128> FunctionalHasher::Hash(const std::string& context,
                                               const ProbeProgram& program) const {
  XxhSink sink(mantissa_bits_);
  Start(sink, context, mantissa_bits_);
  absl::Status s = program(sink);
  if (!s.ok()) return s;
  return sink.Digest();
}

Hash128 HashBytes(absl::string_view bytes) {
  const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  return Hash128{h.high64, h.low64};
}

}  // namespace fecsearch
