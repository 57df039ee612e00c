// Weisfeiler-Lehman hashing of pipeline graphs.
#include "hashing/structural_hash.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "hashing/functional_hasher.h"

namespace fecsearch {
namespace {

// Hash of `self` followed by `parts`, without building a string.
Hash128 HashOf(std::vector<Hash128>& parts, const Hash128& self) {
  parts.push_back(self);
  const Hash128 h = HashBytes(absl::string_view(reinterpret_cast<const char*>(parts.data()), parts.size() * sizeof(Hash128)));
  parts.pop_back();
  return h;
}

}  // namespace

Hash128 StructuralHash(const PipelineGraph& graph) {
  const int n = graph.num_vertices();
  std::vector<Hash128> label(n), next(n);
  for (int v = 0; v < n; ++v) label[v] = HashBytes(graph.Label(v));
  // n rounds let every label see the whole (acyclic, connected) graph.
  std::vector<std::vector<int>> preds(n), succs(n);
  for (int v = 0; v < n; ++v) {
    preds[v] = graph.predecessors(v);
    succs[v] = graph.successors(v);
  }
  std::vector<Hash128> parts;
  for (int round = 0; round < n; ++round) {
    for (int v = 0; v < n; ++v) {
      parts.clear();
      for (int u : preds[v]) parts.push_back(label[u]);
      std::sort(parts.begin(), parts.end());
      parts.push_back(Hash128{~0ull, ~0ull});  // separates predecessors from successors
      const size_t mid = parts.size();
      for (int w : succs[v]) parts.push_back(label[w]);
      std::sort(parts.begin() + mid, parts.end());
      next[v] = HashOf(parts, label[v]);
    }
    label.swap(next);
  }
  std::sort(label.begin(), label.end());
  return HashOf(label, Hash128{static_cast<uint64_t>(n), 0});
}

Hash128 StructuralHash(const std::vector<PipelineGraph>& layers) {
  std::vector<Hash128> parts;
  for (const PipelineGraph& g : layers) parts.push_back(StructuralHash(g));
  return HashOf(parts, Hash128{static_cast<uint64_t>(layers.size()), 1});
}

Hash128 StructuralHash(const CandidateGraphs& graphs) {
  std::vector<Hash128> per_entry;
  for (const PipelineGraph& g : graphs.entries) per_entry.push_back(StructuralHash(g));
  std::vector<Hash128> parts;
  for (int e : graphs.entry_of_layer) parts.push_back(per_entry[e]);
  return HashOf(parts, Hash128{static_cast<uint64_t>(parts.size()), 1});
}

StructuralHasher::Entry StructuralHasher::Analyse(const LayerPipeline& pipeline, const std::string& where) const {
  Entry e;
  auto g = PipelineGraph::FromProto(pipeline, model_, where);
  if (!g.ok()) {
    e.status = g.status();
    return e;
  }
  // The per-entry checks of CompileCandidate.
  const LayerPlan plan = g->Compile();
  for (int stream = 0; stream < 2 && e.status.ok(); ++stream) {
    const StreamPlan& sp = stream == 0 ? plan.keys : plan.values;
    const char* name = stream == 0 ? "keys" : "values";
    if (sp.sink_tokens > window_length_ || sp.recent_window > window_length_ || sp.channel_alignment > window_length_) {
      e.status = absl::InvalidArgumentError(absl::StrCat(
          where, " ", name, ": sink_tokens ", sp.sink_tokens, ", recent_window ", sp.recent_window,
          " and PER_CHANNEL groups (", sp.channel_alignment, " tokens) must not exceed the evaluation window of ",
          window_length_, " tokens"));
    }
  }
  e.hash = StructuralHash(*g);
  return e;
}

absl::StatusOr<Hash128> StructuralHasher::Hash(const Candidate& candidate) const {
  const bool graph = candidate.has_pipeline();
  const std::string field = graph ? "pipeline.layers" : "genome.layers";
  const int entries = graph ? candidate.pipeline().layers_size() : candidate.genome().layers_size();
  if (graph && entries == 0) {
    return absl::InvalidArgumentError("pipeline.layers: a pipeline candidate needs at least one layer graph");
  }
  const int n = std::max(1, entries);
  absl::Status groups = CheckLayerGroupCount(n, model_.num_layers, field);
  if (!groups.ok()) return groups;
  // Remembered errors are stored relative to their entry ("<entry>.keys.bits: ...") and
  // named after this candidate's entry when returned.
  const std::string placeholder = "<entry>";
  auto named = [&](const absl::Status& s, int i) {
    std::string msg(s.message());
    const size_t at = msg.find(placeholder);
    if (at != std::string::npos) msg.replace(at, placeholder.size(), absl::StrCat(field, "[", i, "]"));
    return absl::Status(s.code(), msg);
  };
  std::vector<Hash128> per_entry(n);
  for (int i = 0; i < n; ++i) {
    std::string key = graph ? "g" : "c";
    if (entries > 0) {
      key += graph ? candidate.pipeline().layers(i).SerializeAsString() : candidate.genome().layers(i).SerializeAsString();
    }
    {
      absl::MutexLock lock(&mu_);
      auto it = remembered_.find(key);
      if (it != remembered_.end()) {
        if (!it->second.status.ok()) return named(it->second.status, i);
        per_entry[i] = it->second.hash;
        continue;
      }
    }
    // Not seen before: the full check through the graph (genome genes are checked on the way).
    Candidate one;
    if (graph) {
      *one.mutable_pipeline()->add_layers() = candidate.pipeline().layers(i);
    } else if (entries > 0) {
      *one.mutable_genome()->add_layers() = candidate.genome().layers(i);
    }
    Entry e;
    auto g = CandidateToGraphEntries(one, model_);
    if (!g.ok()) {
      std::string msg(g.status().message());
      const std::string prefix = field + "[0]";
      if (msg.rfind(prefix, 0) == 0) msg = placeholder + msg.substr(prefix.size());
      e.status = absl::Status(g.status().code(), msg);
    } else {
      e = Analyse(g->entries[0].ToProto(), placeholder);
    }
    {
      absl::MutexLock lock(&mu_);
      if (remembered_.size() >= max_remembered_) remembered_.clear();
      remembered_.emplace(key, e);
    }
    if (!e.status.ok()) return named(e.status, i);
    per_entry[i] = e.hash;
  }
  std::vector<Hash128> parts;
  for (int l = 0; l < model_.num_layers; ++l) parts.push_back(per_entry[LayerGroupOf(l, n, model_.num_layers)]);
  return HashOf(parts, Hash128{static_cast<uint64_t>(parts.size()), 1});
}

}  // namespace fecsearch
