// RoPE variants. transformers computes inverse frequencies on fp32 tensors and scalar
// parameters in Python doubles; the same split is kept here so that angles agree to fp32.
#include "core/rope.h"

#include <algorithm>
#include <cmath>

namespace fecsearch {
namespace {

// 1 / base^(2i / dim) in fp32, i = 0..dim/2-1 (transformers' default inverse frequencies).
std::vector<float> DefaultInvFreq(double base, int dim) {
  std::vector<float> inv(dim / 2);
  for (int i = 0; i < dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv[i] = 1.0f / std::pow(static_cast<float>(base), exponent);
  }
  return inv;
}

double YarnMscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

}  // namespace

std::vector<float> RopeInverseFrequencies(const ModelConfig& config, int seq_len, double* attention_scaling) {
  const RopeConfig& r = config.rope;
  const int dim = config.head_dim;
  *attention_scaling = 1.0;
  switch (r.type) {
    case RopeConfig::Type::kDefault:
      return DefaultInvFreq(r.theta, dim);
    case RopeConfig::Type::kLinear: {
      std::vector<float> inv = DefaultInvFreq(r.theta, dim);
      for (float& f : inv) f /= static_cast<float>(r.factor);
      return inv;
    }
    case RopeConfig::Type::kDynamic: {
      // Sequences up to max_position_embeddings keep the default frequencies; longer ones
      // raise the base so that the lowest frequency stretches over the sequence.
      const double len = std::max<double>(seq_len, config.max_positions);
      const double base = r.theta * std::pow(r.factor * len / config.max_positions - (r.factor - 1),
                                             static_cast<double>(dim) / (dim - 2));
      return DefaultInvFreq(base, dim);
    }
    case RopeConfig::Type::kLlama3: {
      std::vector<float> inv = DefaultInvFreq(r.theta, dim);
      const float factor = static_cast<float>(r.factor);
      const float old_len = static_cast<float>(r.original_max_positions);
      const float low_wavelen = static_cast<float>(r.original_max_positions / r.low_freq_factor);
      const float high_wavelen = static_cast<float>(r.original_max_positions / r.high_freq_factor);
      const float pi2 = static_cast<float>(2 * M_PI);
      for (float& f : inv) {
        const float wavelen = pi2 / f;
        if (wavelen > low_wavelen) {
          f = f / factor;  // low frequencies: interpolated by the full factor
        } else if (!(wavelen < high_wavelen)) {
          // Medium frequencies: a smooth blend of scaled and unscaled.
          const float smooth = (old_len / wavelen - static_cast<float>(r.low_freq_factor)) /
                               static_cast<float>(r.high_freq_factor - r.low_freq_factor);
          f = (1 - smooth) * f / factor + smooth * f;
        }
      }
      return inv;
    }
    case RopeConfig::Type::kYarn: {
      const double factor = r.factor;
      if (r.attention_factor > 0) {
        *attention_scaling = r.attention_factor;
      } else if (r.mscale != 0 && r.mscale_all_dim != 0) {
        *attention_scaling = YarnMscale(factor, r.mscale) / YarnMscale(factor, r.mscale_all_dim);
      } else {
        *attention_scaling = YarnMscale(factor, 1.0);
      }
      auto correction_dim = [&](double rotations) {
        return (dim * std::log(r.original_max_positions / (rotations * 2 * M_PI))) / (2 * std::log(r.theta));
      };
      double low = correction_dim(r.beta_fast), high = correction_dim(r.beta_slow);
      if (r.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim - 1));
      if (low == high) high += 0.001;  // transformers: prevent a singular ramp
      std::vector<float> inv(dim / 2);
      for (int i = 0; i < dim / 2; ++i) {
        const float pos_freq = std::pow(static_cast<float>(r.theta), static_cast<float>(2 * i) / static_cast<float>(dim));
        const float extrapolation = 1.0f / pos_freq;
        const float interpolation = 1.0f / (static_cast<float>(factor) * pos_freq);
        const float ramp = std::clamp((static_cast<float>(i) - static_cast<float>(low)) / static_cast<float>(high - low), 0.0f, 1.0f);
        const float extrapolation_factor = 1.0f - ramp;
        inv[i] = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
      }
      return inv;
    }
  }
  return DefaultInvFreq(r.theta, dim);
}

RopeTable::RopeTable(const ModelConfig& config, int positions)
    : head_dim_(config.head_dim), positions_(positions) {
  inv_freq_ = RopeInverseFrequencies(config, positions, &attention_scaling_);
  const int half = head_dim_ / 2;
  const float scaling = static_cast<float>(attention_scaling_);
  cos_.resize(static_cast<size_t>(positions) * half);
  sin_.resize(cos_.size());
  for (int pos = 0; pos < positions; ++pos) {
    for (int i = 0; i < half; ++i) {
      // fp32 angle (transformers: inv_freq @ position_ids in fp32), then cos/sin of it.
      const float angle = static_cast<float>(pos) * inv_freq_[i];
      cos_[static_cast<size_t>(pos) * half + i] = static_cast<float>(std::cos(double{angle})) * scaling;
      sin_[static_cast<size_t>(pos) * half + i] = static_cast<float>(std::sin(double{angle})) * scaling;
    }
  }
}

void RopeTable::Apply(int pos, float* x) const {
  const int half = head_dim_ / 2;
  const float* c = &cos_[static_cast<size_t>(pos) * half];
  const float* s = &sin_[static_cast<size_t>(pos) * half];
  for (int i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * c[i] - b * s[i];
    x[i + half] = b * c[i] + a * s[i];
  }
}

}  // namespace fecsearch
