// Pipeline-graph candidates: path form, random graphs, mutations.
#include "search/domains/graph_space.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "core/pipeline_graph.h"

namespace fecsearch {
namespace {

using Op = PipelineOp;

template <typename T>
T Pick(const google::protobuf::RepeatedField<T>& values, T fallback, Rng& rng) {
  return values.empty() ? fallback : values.Get(rng.Uniform(values.size()));
}

}  // namespace

LayerPaths DecodeLayer(const LayerPipeline& pipeline) {
  std::map<std::string, int> index;
  for (int i = 0; i < pipeline.ops_size(); ++i) index[pipeline.ops(i).name()] = i;
  std::map<std::string, std::vector<std::string>> next;
  std::string evict_input;
  int evict = -1;
  for (const PipelineEdge& e : pipeline.edges()) next[e.from()].push_back(e.to());
  for (int i = 0; i < pipeline.ops_size(); ++i) {
    if (pipeline.ops(i).type() == Op::EVICT) evict = i;
  }
  for (const PipelineEdge& e : pipeline.edges())
    if (evict >= 0 && e.to() == pipeline.ops(evict).name()) evict_input = e.from();
  LayerPaths p;
  for (int stream = 0; stream < 2; ++stream) {
    std::string v;
    for (const Op& op : pipeline.ops())
      if (op.type() == (stream == 0 ? Op::KEYS_INPUT : Op::VALUES_INPUT)) v = op.name();
    std::vector<Op>& path = stream == 0 ? p.keys : p.values;
    if (v == evict_input) {
      p.tap_values = stream == 1;
      p.tap = -1;
    }
    while (true) {
      std::string main;
      for (const std::string& w : next[v])
        if (pipeline.ops(index[w]).type() != Op::EVICT) main = w;
      if (main.empty() || pipeline.ops(index[main]).type() == Op::OUTPUT) break;
      Op op = pipeline.ops(index[main]);
      op.clear_name();
      path.push_back(op);
      if (main == evict_input) {
        p.tap_values = stream == 1;
        p.tap = static_cast<int>(path.size()) - 1;
      }
      v = main;
    }
  }
  if (evict >= 0) {
    p.has_evict = true;
    p.evict = pipeline.ops(evict);
    p.evict.clear_name();
  }
  return p;
}

LayerPipeline EncodeLayer(const LayerPaths& p) {
  LayerPipeline out;
  auto add = [&](Op op, const std::string& name) {
    op.set_name(name);
    *out.add_ops() = op;
  };
  auto edge = [&](const std::string& a, const std::string& b) {
    PipelineEdge* e = out.add_edges();
    e->set_from(a);
    e->set_to(b);
  };
  Op in, out_op;
  in.set_type(Op::KEYS_INPUT);
  add(in, "keys");
  in.set_type(Op::VALUES_INPUT);
  add(in, "values");
  out_op.set_type(Op::OUTPUT);
  add(out_op, "cache");
  std::string tap_name;
  for (int stream = 0; stream < 2; ++stream) {
    const std::vector<Op>& path = stream == 0 ? p.keys : p.values;
    const std::string prefix = stream == 0 ? "k" : "v";
    std::string last = stream == 0 ? "keys" : "values";
    if (p.has_evict && p.tap_values == (stream == 1) && p.tap == -1) tap_name = last;
    for (size_t i = 0; i < path.size(); ++i) {
      const std::string name = absl::StrCat(prefix, i + 1);
      add(path[i], name);
      edge(last, name);
      last = name;
      if (p.has_evict && p.tap_values == (stream == 1) && p.tap == static_cast<int>(i)) tap_name = name;
    }
    edge(last, "cache");
  }
  if (p.has_evict) {
    add(p.evict, "evict");
    edge(tap_name, "evict");
    edge("evict", "cache");
  }
  return out;
}

absl::StatusOr<GraphSpace> GraphSpace::Create(const SearchSpaceSpec& spec, const ModelConfig& model, int window_length) {
  auto genomes = GenomeSpace::Create(spec, model);
  if (!genomes.ok()) return genomes.status();
  return GraphSpace(std::move(*genomes), spec, model, window_length);
}

bool GraphSpace::Valid(const LayerPipeline& pipeline) const {
  Candidate c;
  *c.mutable_pipeline()->add_layers() = pipeline;
  if (!CompileCandidate(c, model_, window_length_).ok()) return false;
  const int max_ops = spec_.graph_mutations().max_ops_per_path();
  const LayerPaths p = DecodeLayer(pipeline);
  return static_cast<int>(p.keys.size()) <= max_ops + 1 && static_cast<int>(p.values.size()) <= max_ops;
}

QuantizerParams GraphSpace::RandomQuantizer(bool values, Rng& rng) const {
  const StreamSpace& st = values ? spec_.values() : spec_.keys();
  QuantizerParams q;
  if (st.formats_size() > 0) {
    const FormatChoice& f = st.formats(rng.Uniform(st.formats_size()));
    q.set_format(f.format() == FP16 ? INT : f.format());  // an explicit FP16 stage is a no-op
    q.set_bits(f.format() == FP16 ? 4 : f.bits());
    q.set_posit_es(f.posit_es());
  } else {
    q.set_format(INT);
    q.set_bits(4);
  }
  q.set_symmetric(Pick(st.symmetric(), false, rng));
  q.set_axis(static_cast<QuantAxis>(Pick<int>(st.axes(), PER_TOKEN, rng)));
  q.set_group_size(q.axis() == PER_CHANNEL ? Pick(st.channel_group_sizes(), 32, rng) : Pick(st.token_group_sizes(), 0, rng));
  return q;
}

TokenEviction GraphSpace::RandomEviction(Rng& rng) const {
  TokenEviction e;
  const EvictionSpace& es = spec_.eviction();
  std::vector<EvictionPolicy> policies;
  for (int p : es.policies())
    if (p != NO_EVICTION) policies.push_back(static_cast<EvictionPolicy>(p));
  if (policies.empty()) policies = {H2O};
  e.set_policy(policies[rng.Uniform(policies.size())]);
  e.set_keep_ratio(Pick(es.keep_ratios(), 0.5, rng));
  e.set_observation_window(Pick(es.observation_windows(), 32, rng));
  e.set_pooling_kernel(Pick(es.pooling_kernels(), 1, rng));
  return e;
}

PipelineOp GraphSpace::RandomOp(bool values, const LayerPaths& p, int position, Rng& rng) const {
  const StreamSpace& st = values ? spec_.values() : spec_.keys();
  std::vector<Op::Type> types = {Op::KEEP_FP16, Op::SPLIT_OUTLIERS, Op::QUANTIZE, Op::QUANTIZE};
  const std::vector<Op>& path = values ? p.values : p.keys;
  bool quantize_before = false;
  for (int i = 0; i < position && i < static_cast<int>(path.size()); ++i) quantize_before |= path[i].type() == Op::QUANTIZE;
  if (quantize_before) types.push_back(Op::RESIDUAL_QUANTIZE);
  if (!values && spec_.head_clusters_size() > 0) types.push_back(Op::CLUSTER_HEADS);
  Op op;
  op.set_type(types[rng.Uniform(types.size())]);
  switch (op.type()) {
    case Op::KEEP_FP16:
      op.set_sink_tokens(Pick(st.sink_tokens(), 4, rng));
      op.set_recent_window(Pick(st.recent_windows(), 32, rng));
      break;
    case Op::SPLIT_OUTLIERS: {
      double f = Pick(st.outlier_fractions(), 0.01, rng);
      op.set_outlier_fraction(f > 0 ? f : 0.01);
      break;
    }
    case Op::QUANTIZE:
    case Op::RESIDUAL_QUANTIZE:
      *op.mutable_quantizer() = RandomQuantizer(values, rng);
      break;
    case Op::CLUSTER_HEADS: {
      int k = Pick(spec_.head_clusters(), 2, rng);
      op.set_clusters(k > 0 ? k : std::max(1, model_.num_kv_heads / 2));
      break;
    }
    default:
      break;
  }
  return op;
}

void GraphSpace::ChangeParameter(PipelineOp* op, bool values, Rng& rng) const {
  const StreamSpace& st = values ? spec_.values() : spec_.keys();
  switch (op->type()) {
    case Op::KEEP_FP16:
      if (rng.Bernoulli(0.5)) {
        op->set_sink_tokens(Pick(st.sink_tokens(), 4, rng));
      } else {
        op->set_recent_window(Pick(st.recent_windows(), 32, rng));
      }
      break;
    case Op::SPLIT_OUTLIERS: {
      double f = Pick(st.outlier_fractions(), 0.01, rng);
      op->set_outlier_fraction(f > 0 ? f : 0.005);
      break;
    }
    case Op::QUANTIZE:
    case Op::RESIDUAL_QUANTIZE: {
      // One field of the quantizer.
      const QuantizerParams fresh = RandomQuantizer(values, rng);
      QuantizerParams* q = op->mutable_quantizer();
      switch (rng.Uniform(3)) {
        case 0:
          q->set_format(fresh.format());
          q->set_bits(fresh.bits());
          q->set_posit_es(fresh.posit_es());
          break;
        case 1:
          q->set_symmetric(!q->symmetric());
          break;
        default:
          q->set_axis(fresh.axis());
          q->set_group_size(fresh.group_size());
      }
      break;
    }
    case Op::CLUSTER_HEADS: {
      int k = Pick(spec_.head_clusters(), 2, rng);
      op->set_clusters(k > 0 ? k : 1);
      break;
    }
    default:
      break;
  }
}

void GraphSpace::MutateLayer(LayerPaths* p, Rng& rng) const {
  const GraphMutationSpec& w = spec_.graph_mutations();
  const double weights[] = {w.insert_op(), w.delete_op(), w.replace_op(), w.change_parameter(), w.swap_adjacent()};
  double total = 0;
  for (double x : weights) total += x;
  double r = rng.Real() * total;
  int kind = 0;
  while (kind < 4 && r >= weights[kind]) r -= weights[kind++];
  const bool values = rng.Bernoulli(0.5);
  std::vector<Op>& path = values ? p->values : p->keys;
  const bool tap_here = p->has_evict && p->tap_values == values;
  switch (kind) {
    case 0: {  // insert an operator (or the eviction, when there is none)
      if (!p->has_evict && spec_.has_eviction() && rng.Uniform(4) == 0) {
        p->has_evict = true;
        p->evict.set_type(Op::EVICT);
        *p->evict.mutable_eviction() = RandomEviction(rng);
        p->tap_values = p->evict.eviction().policy() == VALUE_NORM;
        const int n = static_cast<int>((p->tap_values ? p->values : p->keys).size());
        p->tap = rng.Uniform(n + 1) - 1;
        return;
      }
      const int pos = rng.Uniform(path.size() + 1);
      path.insert(path.begin() + pos, RandomOp(values, *p, pos, rng));
      if (tap_here && p->tap >= pos) ++p->tap;
      return;
    }
    case 1: {  // delete an operator (ROPE stays), or the eviction
      std::vector<int> deletable;
      for (size_t i = 0; i < path.size(); ++i)
        if (path[i].type() != Op::ROPE) deletable.push_back(static_cast<int>(i));
      if (p->has_evict && (deletable.empty() || rng.Uniform(deletable.size() + 1) == 0)) {
        p->has_evict = false;
        return;
      }
      if (deletable.empty()) return;
      const int i = deletable[rng.Uniform(deletable.size())];
      path.erase(path.begin() + i);
      if (tap_here && p->tap >= i) --p->tap;
      return;
    }
    case 2: {  // replace an operator by another at the same place
      std::vector<int> replaceable;
      for (size_t i = 0; i < path.size(); ++i)
        if (path[i].type() != Op::ROPE) replaceable.push_back(static_cast<int>(i));
      if (replaceable.empty()) return;
      const int i = replaceable[rng.Uniform(replaceable.size())];
      path[i] = RandomOp(values, *p, i, rng);
      return;
    }
    case 3: {  // change a parameter (of an operator, or the eviction and where it taps)
      if (p->has_evict && rng.Uniform(path.size() + 1) == 0) {
        TokenEviction* e = p->evict.mutable_eviction();
        const TokenEviction fresh = RandomEviction(rng);
        switch (rng.Uniform(4)) {
          case 0:
            e->set_policy(fresh.policy());
            if (e->policy() == VALUE_NORM) p->tap_values = true, p->tap = std::min<int>(p->tap, p->values.size() - 1);
            if (e->policy() == KEY_NORM && p->tap_values) p->tap_values = false, p->tap = -1;
            break;
          case 1:
            e->set_keep_ratio(fresh.keep_ratio());
            break;
          case 2:
            e->set_observation_window(fresh.observation_window());
            e->set_pooling_kernel(fresh.pooling_kernel());
            break;
          default: {  // move the tap along its stream
            const int n = static_cast<int>((p->tap_values ? p->values : p->keys).size());
            p->tap = rng.Uniform(n + 1) - 1;
          }
        }
        return;
      }
      if (path.empty()) return;
      ChangeParameter(&path[rng.Uniform(path.size())], values, rng);
      return;
    }
    default: {  // swap two adjacent operators (ROPE included: moves quantization across it)
      if (path.size() < 2) return;
      const int i = rng.Uniform(path.size() - 1);
      std::swap(path[i], path[i + 1]);
      if (tap_here) {
        if (p->tap == i) {
          p->tap = i + 1;
        } else if (p->tap == i + 1) {
          p->tap = i;
        }
      }
      return;
    }
  }
}

Candidate GraphSpace::Random(Rng& rng) const {
  Candidate c;
  PipelineGraphCandidate* g = c.mutable_pipeline();
  for (int i = 0; i < genomes_.layer_groups(); ++i) {
    LayerPipeline layer = GenomeLayerToPipeline(genomes_.RandomGroup(rng));
    const int mutations = rng.Uniform(3);
    for (int m = 0; m < mutations; ++m) {
      for (int attempt = 0; attempt < 20; ++attempt) {
        LayerPaths p = DecodeLayer(layer);
        MutateLayer(&p, rng);
        LayerPipeline next = EncodeLayer(p);
        if (Valid(next)) {
          layer = next;
          break;
        }
      }
    }
    *g->add_layers() = EncodeLayer(DecodeLayer(layer));  // canonical names
  }
  return c;
}

Candidate GraphSpace::Mutate(const Candidate& parent, Rng& rng) const {
  Candidate child = parent;
  PipelineGraphCandidate* g = child.mutable_pipeline();
  const int groups = g->layers_size();
  if (groups == 0) return Random(rng);
  const GraphMutationSpec& w = spec_.graph_mutations();
  const double copy_weight = groups > 1 ? w.copy_to_neighbour() : 0.0;
  const double layer_weights = w.insert_op() + w.delete_op() + w.replace_op() + w.change_parameter() + w.swap_adjacent();
  if (copy_weight > 0 && rng.Real() * (copy_weight + layer_weights) < copy_weight) {
    const int from = rng.Uniform(groups);
    const int to = from == 0 ? 1 : from == groups - 1 ? groups - 2 : from + (rng.Bernoulli(0.5) ? 1 : -1);
    if (g->layers(to).SerializeAsString() != g->layers(from).SerializeAsString()) {
      *g->mutable_layers(to) = g->layers(from);
      return child;
    }
  }
  const int group = rng.Uniform(groups);
  const std::string before = g->layers(group).SerializeAsString();
  for (int attempt = 0; attempt < 50; ++attempt) {
    LayerPaths p = DecodeLayer(g->layers(group));
    MutateLayer(&p, rng);
    LayerPipeline next = EncodeLayer(p);
    if (next.SerializeAsString() != before && Valid(next)) {
      *g->mutable_layers(group) = next;
      return child;
    }
  }
  return child;
}

Candidate GraphSpace::Crossover(const Candidate& a, const Candidate& b, Rng& rng) const {
  Candidate child;
  PipelineGraphCandidate* g = child.mutable_pipeline();
  const int groups = std::max(a.pipeline().layers_size(), b.pipeline().layers_size());
  for (int i = 0; i < groups; ++i) {
    const Candidate& from = rng.Bernoulli(0.5) ? a : b;
    const Candidate& other = &from == &a ? b : a;
    *g->add_layers() = i < from.pipeline().layers_size() ? from.pipeline().layers(i) : other.pipeline().layers(i);
  }
  return child;
}

absl::StatusOr<std::unique_ptr<CandidateSpace>> MakeCandidateSpace(const SearchSpaceSpec& spec,
                                                                   const ModelConfig& model, int window_length) {
  if (spec.representation() == SearchSpaceSpec::PIPELINE_GRAPH) {
    auto g = GraphSpace::Create(spec, model, window_length);
    if (!g.ok()) return g.status();
    return std::unique_ptr<CandidateSpace>(new GraphSpace(std::move(*g)));
  }
  auto s = GenomeSpace::Create(spec, model);
  if (!s.ok()) return s.status();
  return std::unique_ptr<CandidateSpace>(new GenomeSpace(std::move(*s)));
}

}  // namespace fecsearch
