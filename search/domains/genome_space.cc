// Genome search space: genes, random genomes, mutation and crossover.
#include "search/domains/genome_space.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/pipeline_graph.h"

namespace fecsearch {
namespace {

enum GeneId {
  kFormat, kSymmetric, kAxis, kGroup, kPreRope, kOutliers, kSinks, kRecent,  // per stream
  kPolicy = 16, kKeepRatio, kObservation, kPooling, kClusters,
};
constexpr int kValuesOffset = 8;  // stream genes of values: id + 8

}  // namespace

absl::StatusOr<GenomeSpace> GenomeSpace::Create(const SearchSpaceSpec& spec, const ModelConfig& model) {
  GenomeSpace s;
  s.spec_ = spec;
  s.layer_groups_ = std::max(1, spec.layer_groups());
  s.head_dim_ = model.head_dim;
  absl::Status groups = CheckLayerGroupCount(s.layer_groups_, model.num_layers, "search_space.layer_groups");
  if (!groups.ok()) return groups;
  // Genes with a single allowed value are fixed and never mutated.
  auto add = [&](int id, int values) {
    if (values > 1) s.genes_.push_back({id, values});
  };
  for (int stream = 0; stream < 2; ++stream) {
    const bool present = stream == 0 ? spec.has_keys() : spec.has_values();
    if (!present) continue;
    const StreamSpace& st = stream == 0 ? spec.keys() : spec.values();
    const int o = stream * kValuesOffset;
    add(o + kFormat, st.formats_size());
    add(o + kSymmetric, st.symmetric_size());
    add(o + kAxis, st.axes_size());
    add(o + kGroup, std::max(st.token_group_sizes_size(), st.channel_group_sizes_size()));
    if (stream == 0) add(o + kPreRope, st.pre_rope_size());
    add(o + kOutliers, st.outlier_fractions_size());
    add(o + kSinks, st.sink_tokens_size());
    add(o + kRecent, st.recent_windows_size());
  }
  if (spec.has_eviction()) {
    add(kPolicy, spec.eviction().policies_size());
    add(kKeepRatio, spec.eviction().keep_ratios_size());
    add(kObservation, spec.eviction().observation_windows_size());
    add(kPooling, spec.eviction().pooling_kernels_size());
  }
  add(kClusters, spec.head_clusters_size());
  return s;
}

void GenomeSpace::SetGene(int gene, int v, Rng& rng, LayerCompression* layer) const {
  if (gene == kClusters) {
    layer->set_head_clusters(spec_.head_clusters(v % spec_.head_clusters_size()));
    return;
  }
  if (gene >= kPolicy) {
    TokenEviction* e = layer->mutable_eviction();
    const EvictionSpace& es = spec_.eviction();
    switch (gene) {
      case kPolicy: e->set_policy(es.policies(v % es.policies_size())); break;
      case kKeepRatio: e->set_keep_ratio(es.keep_ratios(v % es.keep_ratios_size())); break;
      case kObservation: e->set_observation_window(es.observation_windows(v % es.observation_windows_size())); break;
      case kPooling: e->set_pooling_kernel(es.pooling_kernels(v % es.pooling_kernels_size())); break;
    }
    return;
  }
  const bool values = gene >= kValuesOffset;
  const StreamSpace& st = values ? spec_.values() : spec_.keys();
  StreamCompression* s = values ? layer->mutable_values() : layer->mutable_keys();
  switch (gene % kValuesOffset) {
    case kFormat: {
      const FormatChoice& f = st.formats(v % st.formats_size());
      s->set_format(f.format());
      s->set_bits(f.bits());
      s->set_posit_es(f.posit_es());
      break;
    }
    case kSymmetric: s->set_symmetric(st.symmetric(v % st.symmetric_size())); break;
    case kAxis: {
      const QuantAxis before = s->axis();
      s->set_axis(st.axes(v % st.axes_size()));
      if (s->axis() != before) {
        // The group size list depends on the axis: draw from the new axis's list.
        const auto& groups = s->axis() == PER_CHANNEL ? st.channel_group_sizes() : st.token_group_sizes();
        s->set_group_size(groups.empty() ? 0 : groups.Get(rng.Uniform(groups.size())));
      }
      break;
    }
    case kGroup: {
      const auto& groups = s->axis() == PER_CHANNEL ? st.channel_group_sizes() : st.token_group_sizes();
      s->set_group_size(groups.empty() ? 0 : groups.Get(v % groups.size()));
      break;
    }
    case kPreRope: s->set_pre_rope(st.pre_rope(v % st.pre_rope_size())); break;
    case kOutliers: s->set_outlier_fraction(st.outlier_fractions(v % st.outlier_fractions_size())); break;
    case kSinks: s->set_sink_tokens(st.sink_tokens(v % st.sink_tokens_size())); break;
    case kRecent: s->set_recent_window(st.recent_windows(v % st.recent_windows_size())); break;
  }
}

LayerCompression GenomeSpace::RandomGroup(Rng& rng) const {
  LayerCompression layer;
  // Fixed genes (single allowed value) first, then the searched ones.
  for (int stream = 0; stream < 2; ++stream) {
    const bool present = stream == 0 ? spec_.has_keys() : spec_.has_values();
    if (!present) continue;
    const StreamSpace& st = stream == 0 ? spec_.keys() : spec_.values();
    // Materialise the stream even when every gene is fixed at its default.
    const StreamCompression& s = stream == 0 ? *layer.mutable_keys() : *layer.mutable_values();
    const int o = stream * kValuesOffset;
    // Order matters: the axis decides which group list applies.
    for (int g : {kFormat, kSymmetric, kAxis, kGroup, kPreRope, kOutliers, kSinks, kRecent}) {
      int n = 0;
      switch (g) {
        case kFormat: n = st.formats_size(); break;
        case kSymmetric: n = st.symmetric_size(); break;
        case kAxis: n = st.axes_size(); break;
        case kGroup: {
          n = s.axis() == PER_CHANNEL ? st.channel_group_sizes_size() : st.token_group_sizes_size();
          break;
        }
        case kPreRope: n = stream == 0 ? st.pre_rope_size() : 0; break;
        case kOutliers: n = st.outlier_fractions_size(); break;
        case kSinks: n = st.sink_tokens_size(); break;
        case kRecent: n = st.recent_windows_size(); break;
      }
      if (n > 0) SetGene(o + g, rng.Uniform(n), rng, &layer);
    }
  }
  if (spec_.has_eviction()) {
    const EvictionSpace& es = spec_.eviction();
    SetGene(kPolicy, rng.Uniform(es.policies_size()), rng, &layer);
    if (es.keep_ratios_size() > 0) SetGene(kKeepRatio, rng.Uniform(es.keep_ratios_size()), rng, &layer);
    if (es.observation_windows_size() > 0) SetGene(kObservation, rng.Uniform(es.observation_windows_size()), rng, &layer);
    if (es.pooling_kernels_size() > 0) SetGene(kPooling, rng.Uniform(es.pooling_kernels_size()), rng, &layer);
  }
  if (spec_.head_clusters_size() > 0) SetGene(kClusters, rng.Uniform(spec_.head_clusters_size()), rng, &layer);
  return layer;
}

Candidate GenomeSpace::Random(Rng& rng) const {
  Candidate c;
  KvCompressionGenome* g = c.mutable_genome();
  for (int i = 0; i < layer_groups_; ++i) *g->add_layers() = RandomGroup(rng);
  return c;
}

Candidate GenomeSpace::Mutate(const Candidate& parent, Rng& rng) const {
  Candidate child = parent;
  KvCompressionGenome* g = child.mutable_genome();
  while (g->layers_size() < layer_groups_) *g->add_layers() = RandomGroup(rng);
  if (genes_.empty()) return child;
  const int group = rng.Uniform(layer_groups_);
  LayerCompression* layer = g->mutable_layers(group);
  if (rng.Uniform(8) == 0) {
    // Redraw the whole layer group (until it differs).
    for (int attempt = 0; attempt < 16; ++attempt) {
      LayerCompression fresh = RandomGroup(rng);
      if (fresh.SerializeAsString() != layer->SerializeAsString()) {
        *layer = fresh;
        return child;
      }
    }
  }
  // One gene to a different value (a few tries: a value may coincide with the current one,
  // e.g. after an axis change re-drew the group size).
  for (int attempt = 0; attempt < 32; ++attempt) {
    const Gene& gene = genes_[rng.Uniform(genes_.size())];
    const std::string before = layer->SerializeAsString();
    SetGene(gene.id, rng.Uniform(gene.values), rng, layer);
    if (layer->SerializeAsString() != before) return child;
  }
  return child;
}

Candidate GenomeSpace::Crossover(const Candidate& a, const Candidate& b, Rng& rng) const {
  Candidate child;
  KvCompressionGenome* g = child.mutable_genome();
  for (int i = 0; i < layer_groups_; ++i) {
    const Candidate& from = rng.Bernoulli(0.5) ? a : b;
    if (i < from.genome().layers_size()) {
      *g->add_layers() = from.genome().layers(i);
    } else {
      *g->add_layers() = RandomGroup(rng);
    }
  }
  return child;
}

double GenomeSpace::Size() const {
  double per_group = 1;
  for (const Gene& g : genes_) per_group *= g.values;
  return std::min(std::pow(per_group, layer_groups_), std::ldexp(1.0, 62));
}

}  // namespace fecsearch
