// Group quantizers for every supported number format.
#include "core/quantizer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fecsearch {
namespace {

std::string FormatName(const QuantizerConfig& c) {
  switch (c.format) {
    case FP16: return "fp16";
    case BF16: return "bf16";
    case INT: return absl::StrCat("int", c.bits);
    case FP8_E4M3: return "fp8e4m3";
    case FP8_E5M2: return "fp8e5m2";
    case POSIT: return absl::StrCat("posit", c.bits, "_", c.posit_es);
    case NUQ: return absl::StrCat("nuq", c.bits);
    case NF: return absl::StrCat("nf", c.bits);
    default: return "fp16";
  }
}

}  // namespace

absl::StatusOr<QuantizerConfig> ResolveQuantizerConfig(const QuantizerParams& p, int head_dim,
                                                       const std::string& where) {
  QuantizerConfig c;
  c.format = p.format() == FORMAT_UNSPECIFIED ? FP16 : p.format();
  c.symmetric = p.symmetric();
  c.axis = p.axis() == AXIS_UNSPECIFIED ? PER_TOKEN : p.axis();
  switch (c.format) {
    case FP16:
    case BF16:
      c.bits = 16;
      break;
    case FP8_E4M3:
    case FP8_E5M2:
      c.bits = 8;
      break;
    case INT:
      if (p.bits() < 2 || p.bits() > 8) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".bits: ", p.bits(), " is out of range for INT (2..8)"));
      }
      c.bits = p.bits();
      break;
    case NUQ:
    case NF:
      if (p.bits() < 1 || p.bits() > 8) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ".bits: ", p.bits(), " is out of range for ", NumberFormat_Name(c.format), " (1..8)"));
      }
      c.bits = p.bits();
      break;
    case POSIT:
      if (p.bits() < 2 || p.bits() > 16) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".bits: ", p.bits(), " is out of range for POSIT (2..16)"));
      }
      if (p.posit_es() < 0 || p.posit_es() > 3) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".posit_es: ", p.posit_es(), " is out of range (0..3)"));
      }
      c.bits = p.bits();
      c.posit_es = p.posit_es();
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".format: unknown number format ", static_cast<int>(p.format())));
  }
  if (c.format == FP16 || c.format == BF16) {
    // Plain rounding: no groups, no scale; axis and symmetry do not apply.
    c.symmetric = false;
    c.axis = PER_TOKEN;
    c.group_size = head_dim;
    return c;
  }
  if (c.axis == PER_TOKEN) {
    const int g = p.group_size() == 0 ? head_dim : p.group_size();
    if (g < 1 || g > head_dim || head_dim % g != 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".group_size: ", p.group_size(),
                                                     " must divide head_dim ", head_dim,
                                                     " for PER_TOKEN groups (0 = whole vector)"));
    }
    c.group_size = g;
  } else {
    const int g = p.group_size() == 0 ? 128 : p.group_size();
    if (g < 1 || g > 1024) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".group_size: ", p.group_size(), " tokens is out of range for PER_CHANNEL (1..1024)"));
    }
    c.group_size = g;
  }
  return c;
}

std::string QuantizerSummary(const QuantizerConfig& c) {
  if (c.format == FP16 || c.format == BF16) return FormatName(c);
  return absl::StrCat(FormatName(c), c.symmetric ? "-sym" : "-asym",
                      c.axis == PER_CHANNEL ? "-chan" : "-tok", c.group_size);
}

absl::StatusOr<Quantizer> Quantizer::Create(const QuantizerConfig& config,
                                            const ValueTable* codebook) {
  Quantizer q;
  q.config_ = config;
  q.code_bits_ = config.bits;
  switch (config.format) {
    case FP16:
    case BF16:
      q.overhead_bits_ = 0;
      return q;
    case INT:
      break;
    case FP8_E4M3:
      q.table_ = &Fp8E4M3Table();
      q.table_target_ = q.table_->max_abs();
      break;
    case FP8_E5M2:
      q.table_ = &Fp8E5M2Table();
      q.table_target_ = q.table_->max_abs();
      break;
    case POSIT: {
      auto t = PositTable(config.bits, config.posit_es);
      if (!t.ok()) return t.status();
      q.table_ = *t;
      q.table_target_ = 1.0f;
      break;
    }
    case NF: {
      auto t = NormalFloatTable(config.bits);
      if (!t.ok()) return t.status();
      q.table_ = *t;
      q.table_target_ = 1.0f;
      break;
    }
    case NUQ:
      if (codebook == nullptr) {
        return absl::FailedPreconditionError("NUQ quantizer needs a fitted codebook");
      }
      q.table_ = codebook;
      q.table_target_ = 1.0f;
      break;
    default:
      return absl::InvalidArgumentError("unknown number format");
  }
  q.overhead_bits_ = config.symmetric ? 16 : 32;
  return q;
}

void Quantizer::QuantizeGroup(float* x, int n, int stride, const uint8_t* fixed,
                              int fixed_stride) const {
  auto is_fixed = [&](int i) { return fixed != nullptr && fixed[i * fixed_stride] != 0; };
  if (config_.format == FP16) {
    for (int i = 0; i < n; ++i)
      if (!is_fixed(i)) x[i * stride] = RoundToFp16(x[i * stride]);
    return;
  }
  if (config_.format == BF16) {
    for (int i = 0; i < n; ++i)
      if (!is_fixed(i)) x[i * stride] = RoundToBf16(x[i * stride]);
    return;
  }
  float lo = INFINITY, hi = -INFINITY;
  bool any = false;
  for (int i = 0; i < n; ++i) {
    if (is_fixed(i)) continue;
    const float v = x[i * stride];
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    any = true;
  }
  if (!any) return;
  // Scales and zero points are stored in fp16: the scale is rounded up and the range's
  // lower end down, so that no value falls outside the grid and the error stays within half
  // a step.
  if (table_ == nullptr) {
    if (config_.symmetric) {
      const int qmax = (1 << (config_.bits - 1)) - 1;
      const float amax = std::max(std::fabs(lo), std::fabs(hi));
      const float scale = RoundToFp16Up(amax / qmax);
      if (scale == 0) {
        for (int i = 0; i < n; ++i)
          if (!is_fixed(i)) x[i * stride] = 0.0f;
        return;
      }
      const float inv = 1.0f / scale;
      for (int i = 0; i < n; ++i) {
        if (is_fixed(i)) continue;
        float qv = std::nearbyint(x[i * stride] * inv);
        qv = std::min(std::max(qv, static_cast<float>(-qmax)), static_cast<float>(qmax));
        x[i * stride] = qv * scale;
      }
    } else {
      const int levels = (1 << config_.bits) - 1;
      const float zero = RoundToFp16Down(lo);
      const float scale = RoundToFp16Up((hi - zero) / levels);
      if (scale == 0) {
        for (int i = 0; i < n; ++i)
          if (!is_fixed(i)) x[i * stride] = zero;
        return;
      }
      const float inv = 1.0f / scale;
      for (int i = 0; i < n; ++i) {
        if (is_fixed(i)) continue;
        float qv = std::nearbyint((x[i * stride] - zero) * inv);
        qv = std::min(std::max(qv, 0.0f), static_cast<float>(levels));
        x[i * stride] = qv * scale + zero;
      }
    }
    return;
  }
  // Table formats: normalise the group so that its largest magnitude maps to the table's
  // target, round to the nearest table entry, scale back.
  float center = 0, half_range;
  if (config_.symmetric) {
    half_range = std::max(std::fabs(lo), std::fabs(hi));
  } else {
    center = RoundToFp16(0.5f * (lo + hi));
    half_range = std::max(hi - center, center - lo);
  }
  const float scale = RoundToFp16Up(half_range / table_target_);
  if (scale == 0) {
    for (int i = 0; i < n; ++i)
      if (!is_fixed(i)) x[i * stride] = center;
    return;
  }
  const float inv = 1.0f / scale;
  for (int i = 0; i < n; ++i) {
    if (is_fixed(i)) continue;
    const float u = (x[i * stride] - center) * inv;
    x[i * stride] = table_->Round(u) * scale + center;
  }
}

int SplitOutliers(double fraction, Block* block) {
  const int total = block->rows * block->cols;
  int count = static_cast<int>(std::lround(fraction * total));
  if (count <= 0) return 0;
  // Largest magnitude first; ties broken by the lower index so that the choice is
  // deterministic. A bounded min-heap of the best `count` so far: most entries are rejected
  // by one comparison with its top.
  using Item = std::pair<float, int>;  // (magnitude, -index): larger is better
  auto better = [](const Item& a, const Item& b) { return a > b; };
  thread_local std::vector<Item> heap;
  heap.clear();
  for (int i = 0; i < total; ++i) {
    if (block->fixed[i]) continue;
    const Item item(std::fabs(block->x[i]), -i);
    if (static_cast<int>(heap.size()) < count) {
      heap.push_back(item);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(item, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = item;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  for (const Item& item : heap) {
    const int i = -item.second;
    block->fixed[i] = 1;
    block->x[i] = RoundToFp16(block->x[i]);
  }
  return static_cast<int>(heap.size());
}

StageCharges QuantizeBlock(const Quantizer& q, bool residual, Block* block) {
  StageCharges charges;
  const QuantizerConfig& c = q.config();
  const int rows = block->rows, cols = block->cols;
  std::vector<float> residual_values;
  float* data = block->x.data();
  if (residual) {
    residual_values.resize(block->x.size());
    for (size_t i = 0; i < residual_values.size(); ++i)
      residual_values[i] = block->fixed[i] ? 0.0f : block->ref[i] - block->x[i];
    data = residual_values.data();
  }
  const uint8_t* fixed = block->fixed.data();
  if (c.axis == PER_TOKEN) {
    const int g = c.group_size;
    for (int r = 0; r < rows; ++r) {
      for (int c0 = 0; c0 < cols; c0 += g) {
        q.QuantizeGroup(data + r * cols + c0, std::min(g, cols - c0), 1, fixed + r * cols + c0, 1);
      }
    }
    charges.per_row_overhead_bits =
        static_cast<double>(q.group_overhead_bits()) * ((cols + g - 1) / g);
  } else {
    const int g = c.group_size;
    int r0 = 0;
    while (r0 < rows) {
      const int group = block->positions[r0] / g;
      int r1 = r0;
      while (r1 < rows && block->positions[r1] / g == group) ++r1;
      for (int col = 0; col < cols; ++col) {
        q.QuantizeGroup(data + r0 * cols + col, r1 - r0, cols, fixed + r0 * cols + col, cols);
      }
      charges.channel_groups.emplace_back(group, static_cast<double>(q.group_overhead_bits()) * cols);
      std::vector<int> members(r1 - r0);
      std::iota(members.begin(), members.end(), r0);
      charges.channel_group_rows.push_back(std::move(members));
      r0 = r1;
    }
  }
  if (residual) {
    for (size_t i = 0; i < residual_values.size(); ++i)
      if (!block->fixed[i]) block->x[i] += residual_values[i];
  }
  return charges;
}

}  // namespace fecsearch
