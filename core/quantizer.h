// Group quantizers: quantize-dequantize blocks of cached keys or values in any supported
// number format, along either axis, with a mask of entries to leave alone (outliers).
#ifndef FECSEARCH_CORE_QUANTIZER_H_
#define FECSEARCH_CORE_QUANTIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/number_formats.h"
#include "protos/kv_compression.pb.h"
#include "protos/pipeline_graph.pb.h"

namespace fecsearch {

// Resolved quantizer settings (proto defaults applied, group size made explicit).
struct QuantizerConfig {
  NumberFormat format = FP16;
  int bits = 16;
  int posit_es = 0;
  bool symmetric = false;
  QuantAxis axis = PER_TOKEN;
  // PER_TOKEN: elements along head_dim (divides head_dim). PER_CHANNEL: tokens.
  int group_size = 0;

  bool operator==(const QuantizerConfig& o) const {
    return format == o.format && bits == o.bits && posit_es == o.posit_es &&
           symmetric == o.symmetric && axis == o.axis && group_size == o.group_size;
  }
};

// Checks ranges and resolves defaults; errors name `where` (e.g. "layers[2].keys").
absl::StatusOr<QuantizerConfig> ResolveQuantizerConfig(const QuantizerParams& params, int head_dim,
                                                       const std::string& where);
// Short human-readable form, e.g. "int2-asym-chan32", "nuq3-sym-tok64", "fp8e4m3-tok".
std::string QuantizerSummary(const QuantizerConfig& c);

// A ready-to-run quantizer: format tables resolved. Immutable; thread-safe.
class Quantizer {
 public:
  // `codebook` is required for NUQ (values in the normalised range [-1, 1]) and ignored
  // otherwise; it must outlive the quantizer.
  static absl::StatusOr<Quantizer> Create(const QuantizerConfig& config,
                                          const ValueTable* codebook = nullptr);

  const QuantizerConfig& config() const { return config_; }
  // Bits of one code.
  int code_bits() const { return code_bits_; }
  // Bits of the per-group parameters: scale (16) and, when asymmetric, zero point (16).
  int group_overhead_bits() const { return overhead_bits_; }

  // Quantizes and dequantizes in place one group of `n` values x[0], x[stride], ...
  // Entries whose fixed[i * fixed_stride] is non-zero are left unchanged and ignored for the
  // group's statistics. Round to nearest, ties to even.
  void QuantizeGroup(float* x, int n, int stride, const uint8_t* fixed, int fixed_stride) const;

 private:
  QuantizerConfig config_;
  int code_bits_ = 16;
  int overhead_bits_ = 0;
  const ValueTable* table_ = nullptr;  // table formats
  float table_target_ = 1.0f;          // the normalised magnitude a group's amax maps to
};

// A block of one (layer, KV head, stream): `rows` tokens x `cols` channels, row-major.
struct Block {
  int rows = 0, cols = 0;
  std::vector<float> x;        // current approximation
  std::vector<float> ref;      // exact values in the same domain (for residual stages)
  std::vector<uint8_t> fixed;  // entries kept exactly in fp16 (outliers)
  std::vector<int> positions;  // token position of each row
};

// Marks the largest-magnitude round(fraction x entries) non-fixed entries of `block` as
// fixed, rounding them to fp16. Returns how many were marked.
int SplitOutliers(double fraction, Block* block);

// Per-group charges of one quantization stage on a block.
struct StageCharges {
  // PER_TOKEN: overhead bits charged to each row (its own groups).
  double per_row_overhead_bits = 0;
  // PER_CHANNEL: one record per token group touched: (group index = position / G, bits).
  std::vector<std::pair<int, double>> channel_groups;
  // Row indices of each channel group (parallel to channel_groups).
  std::vector<std::vector<int>> channel_group_rows;
};

// Applies `q` to the block: x = Q(x) (residual = false) or x += Q(ref - x) (residual = true).
// Fixed entries are untouched.
StageCharges QuantizeBlock(const Quantizer& q, bool residual, Block* block);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_QUANTIZER_H_
