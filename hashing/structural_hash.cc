// Weisfeiler-Lehman hashing of pipeline graphs.
#include "hashing/structural_hash.h"

#include <algorithm>
#include <string>

#include "hashing/functional_hasher.h"

namespace fecsearch {
namespace {

Hash128 HashOf(const std::vector<Hash128>& parts, const Hash128& self) {
  std::string bytes(reinterpret_cast<const char*>(&self), sizeof(self));
  bytes.append(reinterpret_cast<const char*>(parts.data()), parts.size() * sizeof(Hash128));
  return HashBytes(bytes);
}

}  // namespace

Hash128 StructuralHash(const PipelineGraph& graph) {
  const int n = graph.num_vertices();
  std::vector<Hash128> label(n), next(n);
  for (int v = 0; v < n; ++v) label[v] = HashBytes(graph.Label(v));
  // n rounds let every label see the whole (acyclic, connected) graph.
  for (int round = 0; round < n; ++round) {
    for (int v = 0; v < n; ++v) {
      std::vector<Hash128> in, out;
      for (int u : graph.predecessors(v)) in.push_back(label[u]);
      for (int w : graph.successors(v)) out.push_back(label[w]);
      std::sort(in.begin(), in.end());
      std::sort(out.begin(), out.end());
      std::vector<Hash128> parts = in;
      parts.push_back(Hash128{~0ull, ~0ull});  // separates predecessors from successors
      parts.insert(parts.end(), out.begin(), out.end());
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

}  // namespace fecsearch
