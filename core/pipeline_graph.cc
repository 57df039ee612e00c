// Pipeline graphs: validation, compilation to LayerPlan, genome conversion.
#include "core/pipeline_graph.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace fecsearch {
namespace {

using Op = PipelineOp;

bool IsStreamOp(Op::Type t) {
  return t == Op::ROPE || t == Op::KEEP_FP16 || t == Op::SPLIT_OUTLIERS || t == Op::QUANTIZE ||
         t == Op::RESIDUAL_QUANTIZE || t == Op::CLUSTER_HEADS;
}
bool IsStage(Op::Type t) {
  return t == Op::SPLIT_OUTLIERS || t == Op::QUANTIZE || t == Op::RESIDUAL_QUANTIZE;
}

absl::Status VertexError(const std::string& where, const Op& op, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": vertex '", op.name(), "' (",
                                                 Op::Type_Name(op.type()), "): ", msg));
}

// Whether a genome stream stores quantized values (fp16 and unset store dense fp16).
bool StreamQuantizes(const StreamCompression& s) { return s.format() != FP16 && s.format() != FORMAT_UNSPECIFIED; }

// The quantizer a genome stream describes.
QuantizerParams StreamQuantizer(const StreamCompression& s) {
  QuantizerParams q;
  q.set_format(s.format());
  q.set_bits(s.bits());
  q.set_posit_es(s.posit_es());
  q.set_symmetric(s.symmetric());
  q.set_axis(s.axis());
  q.set_group_size(s.group_size());
  return q;
}

// The shortest decimal that reads back as exactly `x`: labels feed the structural hash, and
// two parameters that differ at all may compute differently (e.g. ceil(keep_ratio * tokens)).
std::string ExactNumber(double x) {
  for (int digits : {6, 15, 17}) {
    const std::string s = absl::StrFormat("%.*g", digits, x);
    if (std::strtod(s.c_str(), nullptr) == x) return s;
  }
  return absl::StrFormat("%a", x);
}

std::string QuantizerLabel(const QuantizerParams& q) {
  return absl::StrFormat("%s b%d es%d %s %s g%d", NumberFormat_Name(q.format()), q.bits(),
                         q.posit_es(), q.symmetric() ? "sym" : "asym",
                         QuantAxis_Name(q.axis() == AXIS_UNSPECIFIED ? PER_TOKEN : q.axis()),
                         q.group_size());
}

}  // namespace

absl::StatusOr<PipelineGraph> PipelineGraph::FromProto(const LayerPipeline& proto,
                                                       const ModelConfig& model,
                                                       const std::string& where) {
  PipelineGraph pg;
  pg.head_dim_ = model.head_dim;
  std::map<std::string, int> index;
  for (int i = 0; i < proto.ops_size(); ++i) {
    const Op& op = proto.ops(i);
    if (op.name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ops[", i, "] has no name"));
    }
    if (!Op::Type_IsValid(op.type()) || op.type() == Op::OP_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": vertex '", op.name(),
                                                     "' has no operator type, or one this version does not know (",
                                                     static_cast<int>(op.type()), ")"));
    }
    if (!index.emplace(op.name(), i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": vertex name '", op.name(), "' is used twice"));
    }
    boost::add_vertex(op, pg.graph_);
  }
  for (int i = 0; i < proto.edges_size(); ++i) {
    const PipelineEdge& e = proto.edges(i);
    auto from = index.find(e.from()), to = index.find(e.to());
    if (from == index.end() || to == index.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": edge ", i, " (", e.from(), " -> ", e.to(), ") is dangling: vertex '",
          from == index.end() ? e.from() : e.to(), "' does not exist"));
    }
    if (from->second == to->second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": vertex '", e.from(), "' has an edge to itself (a cycle)"));
    }
    if (boost::edge(from->second, to->second, pg.graph_).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": edge ", e.from(), " -> ", e.to(), " appears twice"));
    }
    boost::add_edge(from->second, to->second, pg.graph_);
  }
  const int n = pg.num_vertices();
  // Cycles (Kahn's algorithm); a vertex left over lies on or behind a cycle.
  {
    std::vector<int> indegree(n);
    for (int v = 0; v < n; ++v) indegree[v] = static_cast<int>(boost::in_degree(v, pg.graph_));
    std::vector<int> ready;
    for (int v = 0; v < n; ++v)
      if (indegree[v] == 0) ready.push_back(v);
    int seen = 0;
    while (!ready.empty()) {
      int v = ready.back();
      ready.pop_back();
      ++seen;
      for (int w : pg.successors(v))
        if (--indegree[w] == 0) ready.push_back(w);
    }
    if (seen != n) {
      // Left over: vertices on a cycle and those behind one. Each has a left-over
      // predecessor, so walking back n steps from any of them ends on a cycle.
      int v = 0;
      while (indegree[v] == 0) ++v;
      for (int step = 0; step < n; ++step) {
        for (int u : pg.predecessors(v)) {
          if (indegree[u] > 0) {
            v = u;
            break;
          }
        }
      }
      // The cycle through v, for the message.
      std::vector<std::string> cycle = {pg.op(v).name()};
      int w = v;
      for (int step = 0; step < n; ++step) {
        for (int u : pg.predecessors(w)) {
          if (indegree[u] > 0) {
            w = u;
            break;
          }
        }
        cycle.push_back(pg.op(w).name());
        if (w == v) break;
      }
      std::reverse(cycle.begin(), cycle.end());
      return VertexError(where, pg.op(v),
                         absl::StrCat("lies on a cycle (", absl::StrJoin(cycle, " -> "), "); a pipeline must be acyclic"));
    }
  }
  // Counts and degrees per operator type.
  int keys_in = -1, values_in = -1, output = -1, evict = -1;
  for (int v = 0; v < n; ++v) {
    const Op& op = pg.op(v);
    const int indeg = static_cast<int>(boost::in_degree(v, pg.graph_));
    switch (op.type()) {
      case Op::KEYS_INPUT:
      case Op::VALUES_INPUT: {
        int& slot = op.type() == Op::KEYS_INPUT ? keys_in : values_in;
        if (slot >= 0) return VertexError(where, op, "a second input of the same stream");
        slot = v;
        if (indeg != 0) return VertexError(where, op, "an input vertex cannot have incoming edges");
        break;
      }
      case Op::OUTPUT:
        if (output >= 0) return VertexError(where, op, "a second OUTPUT; a layer has exactly one");
        output = v;
        if (boost::out_degree(v, pg.graph_) != 0) {
          return VertexError(where, op, "OUTPUT cannot have outgoing edges");
        }
        break;
      case Op::EVICT:
        if (evict >= 0) return VertexError(where, op, "a second EVICT; a layer has at most one");
        evict = v;
        if (indeg != 1) return VertexError(where, op, "EVICT needs exactly one input (the stream it scores)");
        break;
      default:
        if (indeg != 1) {
          return VertexError(where, op, absl::StrCat("has ", indeg, " inputs; stream operators take exactly one"));
        }
    }
  }
  if (keys_in < 0) return absl::InvalidArgumentError(absl::StrCat(where, ": no KEYS_INPUT vertex"));
  if (values_in < 0) return absl::InvalidArgumentError(absl::StrCat(where, ": no VALUES_INPUT vertex"));
  if (output < 0) return absl::InvalidArgumentError(absl::StrCat(where, ": no OUTPUT vertex"));
  // Walk each stream's main path: every vertex on it has exactly one successor that is a
  // stream operator or OUTPUT; other successors may only be the EVICT vertex.
  std::vector<int> stream_of(n, -1);  // 0 keys, 1 values
  for (int stream = 0; stream < 2; ++stream) {
    int v = stream == 0 ? keys_in : values_in;
    bool rope_seen = false, stage_before_rope = false, stage_after_rope = false, quantize_seen = false;
    while (true) {
      stream_of[v] = stream;
      const Op& op = pg.op(v);
      if (op.type() == Op::ROPE) {
        if (stream == 1) return VertexError(where, op, "ROPE on the value stream (type mismatch: it takes keys)");
        if (rope_seen) return VertexError(where, op, "a second ROPE on the key path");
        rope_seen = true;
      }
      if (op.type() == Op::CLUSTER_HEADS && stream == 1) {
        return VertexError(where, op, "CLUSTER_HEADS on the value stream (type mismatch: it takes keys)");
      }
      if (IsStage(op.type())) {
        (rope_seen ? stage_after_rope : stage_before_rope) = true;
        if (op.type() == Op::QUANTIZE) quantize_seen = true;
        if (op.type() == Op::RESIDUAL_QUANTIZE && !quantize_seen) {
          return VertexError(where, op, "RESIDUAL_QUANTIZE needs a QUANTIZE before it on its path");
        }
      }
      std::vector<int> main;
      for (int w : pg.successors(v)) {
        const Op::Type t = pg.op(w).type();
        if (t == Op::EVICT) continue;
        if (!IsStreamOp(t) && t != Op::OUTPUT) {
          return VertexError(where, pg.op(w), absl::StrCat("cannot take the stream of '", op.name(), "'"));
        }
        main.push_back(w);
      }
      if (main.size() != 1) {
        return VertexError(where, op, main.empty() ? "its stream never reaches OUTPUT"
                                                   : "its stream forks; only EVICT may tap a stream");
      }
      if (stream_of[main[0]] >= 0) {
        return VertexError(where, pg.op(main[0]), "is reached by both the key and the value stream");
      }
      if (pg.op(main[0]).type() == Op::OUTPUT) break;
      v = main[0];
    }
    if (stream == 0) {
      if (!rope_seen) return absl::InvalidArgumentError(absl::StrCat(where, ": the key path has no ROPE vertex"));
      if (stage_before_rope && stage_after_rope) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": the key path quantizes both before and after ROPE; put every quantization "
                   "stage on one side"));
      }
    }
  }
  // OUTPUT inputs: one from each stream (checked by the walk) and at most the EVICT.
  for (int w : pg.predecessors(output)) {
    if (stream_of[w] < 0 && pg.op(w).type() != Op::EVICT) {
      return VertexError(where, pg.op(w), "feeds OUTPUT but is not on a stream path");
    }
  }
  if (boost::in_degree(output, pg.graph_) != (evict >= 0 ? 3u : 2u)) {
    return VertexError(where, pg.op(output), "needs exactly one key input, one value input and at most one EVICT");
  }
  for (int v = 0; v < n; ++v) {
    const Op& op = pg.op(v);
    if (stream_of[v] < 0 && v != output && v != evict) {
      return VertexError(where, op, "is not on the key or value path to OUTPUT");
    }
  }
  if (evict >= 0) {
    const Op& op = pg.op(evict);
    const auto succ = pg.successors(evict);
    if (succ.size() != 1 || succ[0] != output) {
      return VertexError(where, op, "EVICT must have exactly one output edge, to OUTPUT");
    }
    const int tap = pg.predecessors(evict)[0];
    if (stream_of[tap] < 0) return VertexError(where, op, "EVICT must tap a vertex on a stream path");
    if (!op.has_eviction() || op.eviction().policy() == NO_EVICTION) {
      return VertexError(where, op, "EVICT needs an eviction policy");
    }
    const TokenEviction& ev = op.eviction();
    if (!(ev.keep_ratio() > 0 && ev.keep_ratio() <= 1)) {
      return VertexError(where, op, absl::StrCat("keep_ratio ", ev.keep_ratio(), " is outside (0, 1]"));
    }
    if (ev.observation_window() < 1 || ev.observation_window() > 4096) {
      return VertexError(where, op, absl::StrCat("observation_window ", ev.observation_window(), " is outside 1..4096"));
    }
    if (ev.pooling_kernel() < 1 || ev.pooling_kernel() % 2 == 0 || ev.pooling_kernel() > 63) {
      return VertexError(where, op, absl::StrCat("pooling_kernel ", ev.pooling_kernel(), " must be odd, 1..63"));
    }
    if (ev.policy() == KEY_NORM && stream_of[tap] != 0) {
      return VertexError(where, op, "KEY_NORM must tap the key stream (type mismatch)");
    }
    if (ev.policy() == VALUE_NORM && stream_of[tap] != 1) {
      return VertexError(where, op, "VALUE_NORM must tap the value stream (type mismatch)");
    }
  }
  // Parameters.
  for (int v = 0; v < n; ++v) {
    const Op& op = pg.op(v);
    switch (op.type()) {
      case Op::KEEP_FP16:
        if (op.sink_tokens() < 0 || op.sink_tokens() > 1 << 20) {
          return VertexError(where, op, absl::StrCat("sink_tokens ", op.sink_tokens(), " is out of range"));
        }
        if (op.recent_window() < 0 || op.recent_window() > 1 << 20) {
          return VertexError(where, op, absl::StrCat("recent_window ", op.recent_window(), " is out of range"));
        }
        break;
      case Op::SPLIT_OUTLIERS:
        if (!(op.outlier_fraction() >= 0 && op.outlier_fraction() <= 0.5)) {
          return VertexError(where, op, absl::StrCat("outlier_fraction ", op.outlier_fraction(), " is outside [0, 0.5]"));
        }
        break;
      case Op::QUANTIZE:
      case Op::RESIDUAL_QUANTIZE: {
        if (!op.has_quantizer()) return VertexError(where, op, "needs a quantizer");
        auto q = ResolveQuantizerConfig(op.quantizer(), model.head_dim,
                                        absl::StrCat(where, ": vertex '", op.name(), "'.quantizer"));
        if (!q.ok()) return q.status();
        break;
      }
      case Op::CLUSTER_HEADS:
        if (op.clusters() < 1 || op.clusters() > model.num_kv_heads) {
          return VertexError(where, op, absl::StrCat("clusters ", op.clusters(), " is outside 1..",
                                                     model.num_kv_heads, " (the KV head count)"));
        }
        break;
      default:
        break;
    }
  }
  return pg;
}

std::vector<int> PipelineGraph::successors(int v) const {
  std::vector<int> out;
  for (auto [it, end] = boost::adjacent_vertices(v, graph_); it != end; ++it) out.push_back(*it);
  return out;
}

std::vector<int> PipelineGraph::predecessors(int v) const {
  std::vector<int> out;
  for (auto [it, end] = boost::in_edges(v, graph_); it != end; ++it) out.push_back(boost::source(*it, graph_));
  return out;
}

LayerPipeline PipelineGraph::ToProto() const {
  LayerPipeline p;
  for (int v = 0; v < num_vertices(); ++v) *p.add_ops() = op(v);
  for (auto [it, end] = boost::edges(graph_); it != end; ++it) {
    PipelineEdge* e = p.add_edges();
    e->set_from(op(boost::source(*it, graph_)).name());
    e->set_to(op(boost::target(*it, graph_)).name());
  }
  return p;
}

std::string PipelineGraph::Label(int v) const {
  const Op& o = op(v);
  std::string label = Op::Type_Name(o.type());
  switch (o.type()) {
    case Op::KEEP_FP16:
      absl::StrAppend(&label, " s", o.sink_tokens(), " r", o.recent_window());
      break;
    case Op::SPLIT_OUTLIERS:
      absl::StrAppend(&label, " p", ExactNumber(o.outlier_fraction()));
      break;
    case Op::QUANTIZE:
    case Op::RESIDUAL_QUANTIZE:
      absl::StrAppend(&label, " ", QuantizerLabel(o.quantizer()));
      break;
    case Op::CLUSTER_HEADS:
      absl::StrAppend(&label, " k", o.clusters());
      break;
    case Op::EVICT: {
      const TokenEviction& e = o.eviction();
      absl::StrAppend(&label, " ", EvictionPolicy_Name(e.policy()), " r", ExactNumber(e.keep_ratio()),
                      absl::StrFormat(" w%d p%d", e.observation_window(), e.pooling_kernel()));
      break;
    }
    default:
      break;
  }
  return label;
}

LayerPlan PipelineGraph::Compile() const {
  LayerPlan plan;
  int keys_in = -1, values_in = -1, evict = -1;
  for (int v = 0; v < num_vertices(); ++v) {
    if (op(v).type() == Op::KEYS_INPUT) keys_in = v;
    if (op(v).type() == Op::VALUES_INPUT) values_in = v;
    if (op(v).type() == Op::EVICT) evict = v;
  }
  const int tap = evict >= 0 ? predecessors(evict)[0] : -1;
  for (int stream = 0; stream < 2; ++stream) {
    StreamPlan& sp = stream == 0 ? plan.keys : plan.values;
    int v = stream == 0 ? keys_in : values_in;
    bool rope_seen = false;
    while (true) {
      const Op& o = op(v);
      switch (o.type()) {
        case Op::ROPE:
          rope_seen = true;
          break;
        case Op::KEEP_FP16:
          sp.sink_tokens = std::max(sp.sink_tokens, o.sink_tokens());
          sp.recent_window = std::max(sp.recent_window, o.recent_window());
          break;
        case Op::SPLIT_OUTLIERS: {
          Stage s;
          s.kind = StageKind::kSplitOutliers;
          s.outlier_fraction = o.outlier_fraction();
          sp.stages.push_back(s);
          break;
        }
        case Op::QUANTIZE:
        case Op::RESIDUAL_QUANTIZE: {
          Stage s;
          s.kind = o.type() == Op::QUANTIZE ? StageKind::kQuantize : StageKind::kResidualQuantize;
          s.quantizer = *ResolveQuantizerConfig(o.quantizer(), head_dim_, "");
          if (s.quantizer.axis == PER_CHANNEL) {
            sp.channel_alignment = std::max(sp.channel_alignment, s.quantizer.group_size);
          }
          sp.stages.push_back(s);
          break;
        }
        case Op::CLUSTER_HEADS:
          plan.head_clusters =
              plan.head_clusters == 0 ? o.clusters() : std::min(plan.head_clusters, o.clusters());
          break;
        default:
          break;
      }
      if (stream == 0 && IsStage(o.type()) && !rope_seen) sp.quantize_before_rope = true;
      if (v == tap) {
        plan.eviction.tap_values = stream == 1;
        plan.eviction.tap_after_stages = static_cast<int>(sp.stages.size());
        plan.eviction.tap_rotated = stream == 0 && rope_seen;
      }
      int next = -1;
      for (int w : successors(v))
        if (op(w).type() != Op::EVICT) next = w;
      if (op(next).type() == Op::OUTPUT) break;
      v = next;
    }
    // Stored codes: the last QUANTIZE (earlier ones are re-encoded by it), the residual stages
    // after it, and every outlier split.
    int last_quantize = -1;
    for (size_t i = 0; i < sp.stages.size(); ++i)
      if (sp.stages[i].kind == StageKind::kQuantize) last_quantize = static_cast<int>(i);
    for (size_t i = 0; i < sp.stages.size(); ++i) {
      Stage& s = sp.stages[i];
      s.stored = s.kind == StageKind::kSplitOutliers ||
                 (s.kind == StageKind::kQuantize && static_cast<int>(i) == last_quantize) ||
                 (s.kind == StageKind::kResidualQuantize && static_cast<int>(i) > last_quantize);
    }
  }
  if (evict >= 0) {
    const TokenEviction& e = op(evict).eviction();
    plan.eviction.policy = e.policy();
    plan.eviction.keep_ratio = e.keep_ratio();
    plan.eviction.observation_window = e.observation_window();
    plan.eviction.pooling_kernel = e.pooling_kernel();
  }
  return plan;
}

LayerPipeline GenomeLayerToPipeline(const LayerCompression& layer) {
  LayerPipeline p;
  auto add = [&](const std::string& name, Op::Type type) {
    Op* op = p.add_ops();
    op->set_name(name);
    op->set_type(type);
    return op;
  };
  auto edge = [&](const std::string& from, const std::string& to) {
    PipelineEdge* e = p.add_edges();
    e->set_from(from);
    e->set_to(to);
  };
  // Appends the outlier split and quantizer of one stream after `last`; returns the name of
  // the stream's last vertex.
  auto stream_ops = [&](const StreamCompression& s, const std::string& prefix, std::string last) {
    if (!StreamQuantizes(s)) return last;
    if (s.outlier_fraction() > 0) {
      add(prefix + "_outliers", Op::SPLIT_OUTLIERS)->set_outlier_fraction(s.outlier_fraction());
      edge(last, prefix + "_outliers");
      last = prefix + "_outliers";
    }
    *add(prefix + "_quant", Op::QUANTIZE)->mutable_quantizer() = StreamQuantizer(s);
    edge(last, prefix + "_quant");
    return prefix + "_quant";
  };
  auto keep = [&](const StreamCompression& s, const std::string& prefix, std::string last) {
    if (s.sink_tokens() == 0 && s.recent_window() == 0) return last;
    Op* op = add(prefix + "_fp16", Op::KEEP_FP16);
    op->set_sink_tokens(s.sink_tokens());
    op->set_recent_window(s.recent_window());
    edge(last, prefix + "_fp16");
    return prefix + "_fp16";
  };
  add("keys", Op::KEYS_INPUT);
  add("values", Op::VALUES_INPUT);
  add("cache", Op::OUTPUT);
  const StreamCompression& k = layer.keys();
  const StreamCompression& v = layer.values();
  std::string last = keep(k, "k", "keys");
  const std::string k_original = last;
  if (k.pre_rope()) {
    last = stream_ops(k, "k", last);
    add("rope", Op::ROPE);
    edge(last, "rope");
    last = "rope";
  } else {
    add("rope", Op::ROPE);
    edge(last, "rope");
    last = stream_ops(k, "k", "rope");
  }
  if (layer.head_clusters() > 0) {
    add("chai", Op::CLUSTER_HEADS)->set_clusters(layer.head_clusters());
    edge(last, "chai");
    last = "chai";
  }
  edge(last, "cache");
  std::string v_last = keep(v, "v", "values");
  v_last = stream_ops(v, "v", v_last);
  edge(v_last, "cache");
  if (layer.has_eviction() && layer.eviction().policy() != NO_EVICTION) {
    const TokenEviction& e = layer.eviction();
    Op* op = add("evict", Op::EVICT);
    *op->mutable_eviction() = e;
    // The genome scores the original keys (values for VALUE_NORM) in the domain the cache
    // holds them in: before RoPE when they are quantized before it, else rotated (pre_rope
    // on unquantized keys changes nothing). Scoring dequantized ones takes a pipeline graph.
    std::string tap;
    if (e.policy() == VALUE_NORM) {
      tap = "values";
    } else {
      tap = k.pre_rope() && StreamQuantizes(k) ? k_original : "rope";
    }
    edge(tap, "evict");
    edge("evict", "cache");
  }
  return p;
}

namespace {

absl::Status CheckStream(const StreamCompression& s, bool keys, const ModelConfig& model,
                         const std::string& where) {
  if (!NumberFormat_IsValid(s.format())) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".format: unknown value ", static_cast<int>(s.format())));
  }
  if (!keys && s.pre_rope()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".pre_rope: applies to keys only"));
  }
  if (!(s.outlier_fraction() >= 0 && s.outlier_fraction() <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".outlier_fraction: ", s.outlier_fraction(), " is outside [0, 0.5]"));
  }
  if (s.sink_tokens() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".sink_tokens: ", s.sink_tokens(), " is negative"));
  }
  if (s.recent_window() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".recent_window: ", s.recent_window(), " is negative"));
  }
  if (StreamQuantizes(s)) {
    auto r = ResolveQuantizerConfig(StreamQuantizer(s), model.head_dim, where);
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

absl::Status CheckGenomeLayer(const LayerCompression& l, const ModelConfig& model,
                              const std::string& where) {
  absl::Status s = CheckStream(l.keys(), true, model, where + ".keys");
  if (!s.ok()) return s;
  s = CheckStream(l.values(), false, model, where + ".values");
  if (!s.ok()) return s;
  if (l.head_clusters() < 0 || l.head_clusters() > model.num_kv_heads) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".head_clusters: ", l.head_clusters(),
                                                   " is outside 0..", model.num_kv_heads,
                                                   " (the KV head count)"));
  }
  if (l.has_eviction()) {
    const TokenEviction& e = l.eviction();
    if (!EvictionPolicy_IsValid(e.policy())) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".eviction.policy: unknown value"));
    }
    if (!(e.keep_ratio() > 0 && e.keep_ratio() <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".eviction.keep_ratio: ", e.keep_ratio(), " is outside (0, 1]"));
    }
    if (e.observation_window() < 1 || e.observation_window() > 4096) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".eviction.observation_window: ",
                                                     e.observation_window(), " is outside 1..4096"));
    }
    if (e.pooling_kernel() < 1 || e.pooling_kernel() % 2 == 0 || e.pooling_kernel() > 63) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".eviction.pooling_kernel: ",
                                                     e.pooling_kernel(), " must be odd, 1..63"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int LayerGroupOf(int layer, int groups, int num_layers) {
  return groups <= 1 ? 0 : static_cast<int>((static_cast<int64_t>(layer + 1) * groups - 1) / num_layers);
}

absl::Status CheckLayerGroupCount(int entries, int num_layers, const std::string& field) {
  if (entries > num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", entries, " entries exceed the model's ", num_layers,
                                                   " layers (one entry per group of consecutive layers)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CandidateGraphs> CandidateToGraphEntries(const Candidate& candidate, const ModelConfig& model) {
  std::vector<LayerPipeline> entries;
  std::string field;
  if (candidate.has_pipeline()) {
    field = "pipeline.layers";
    for (const LayerPipeline& l : candidate.pipeline().layers()) entries.push_back(l);
    if (entries.empty()) {
      return absl::InvalidArgumentError("pipeline.layers: a pipeline candidate needs at least one layer graph");
    }
  } else {
    field = "genome.layers";
    const KvCompressionGenome& g = candidate.genome();
    for (int i = 0; i < g.layers_size(); ++i) {
      absl::Status s = CheckGenomeLayer(g.layers(i), model, absl::StrCat(field, "[", i, "]"));
      if (!s.ok()) return s;
      entries.push_back(GenomeLayerToPipeline(g.layers(i)));
    }
    if (entries.empty()) entries.push_back(GenomeLayerToPipeline(LayerCompression()));
  }
  absl::Status s = CheckLayerGroupCount(static_cast<int>(entries.size()), model.num_layers, field);
  if (!s.ok()) return s;
  CandidateGraphs graphs;
  for (size_t i = 0; i < entries.size(); ++i) {
    auto g = PipelineGraph::FromProto(entries[i], model, absl::StrCat(field, "[", i, "]"));
    if (!g.ok()) return g.status();
    graphs.entries.push_back(std::move(*g));
  }
  for (int l = 0; l < model.num_layers; ++l) {
    graphs.entry_of_layer.push_back(LayerGroupOf(l, static_cast<int>(entries.size()), model.num_layers));
  }
  return graphs;
}

absl::StatusOr<std::vector<PipelineGraph>> CandidateToGraphs(const Candidate& candidate,
                                                             const ModelConfig& model) {
  auto entries = CandidateToGraphEntries(candidate, model);
  if (!entries.ok()) return entries.status();
  std::vector<PipelineGraph> graphs;
  for (int l = 0; l < model.num_layers; ++l) graphs.push_back(entries->layer(l));
  return graphs;
}

absl::StatusOr<ModelPlan> CompileCandidate(const Candidate& candidate, const ModelConfig& model,
                                           int window_length) {
  auto graphs = CandidateToGraphEntries(candidate, model);
  if (!graphs.ok()) return graphs.status();
  std::vector<LayerPlan> compiled;
  for (const PipelineGraph& g : graphs->entries) compiled.push_back(g.Compile());
  ModelPlan plan;
  for (int l = 0; l < model.num_layers; ++l) {
    LayerPlan lp = compiled[graphs->entry_of_layer[l]];
    for (int stream = 0; stream < 2; ++stream) {
      const StreamPlan& sp = stream == 0 ? lp.keys : lp.values;
      const char* name = stream == 0 ? "keys" : "values";
      if (sp.sink_tokens > window_length) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer ", l, " ", name, ": sink_tokens ", sp.sink_tokens,
            " exceeds the evaluation window of ", window_length, " tokens"));
      }
      if (sp.recent_window > window_length) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer ", l, " ", name, ": recent_window ", sp.recent_window,
            " exceeds the evaluation window of ", window_length, " tokens"));
      }
      if (sp.channel_alignment > window_length) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer ", l, " ", name, ": PER_CHANNEL group of ", sp.channel_alignment,
            " tokens exceeds the evaluation window of ", window_length, " tokens"));
      }
    }
    plan.layers.push_back(std::move(lp));
  }
  return plan;
}

namespace {

// Stage sequences a genome stream can have: none, [quantize] or [outliers, quantize].
void StreamGraphOnly(const StreamPlan& sp, const char* stream, std::set<std::string>* out) {
  const auto& st = sp.stages;
  const bool genome_shape =
      st.empty() || (st.size() == 1 && st[0].kind == StageKind::kQuantize) ||
      (st.size() == 2 && st[0].kind == StageKind::kSplitOutliers && st[1].kind == StageKind::kQuantize);
  if (genome_shape) return;
  int quantizers = 0, residuals = 0, splits = 0;
  for (const Stage& s : st) {
    quantizers += s.kind == StageKind::kQuantize;
    residuals += s.kind == StageKind::kResidualQuantize;
    splits += s.kind == StageKind::kSplitOutliers;
  }
  if (residuals > 0) out->insert(absl::StrCat("residual quantization of ", stream));
  if (quantizers > 1) out->insert(absl::StrCat("repeated quantizers on ", stream));
  if (splits > 1) out->insert(absl::StrCat("repeated outlier splits on ", stream));
  if (splits == 1 && quantizers == 0) {
    out->insert(absl::StrCat("outliers split off unquantized ", stream));
  } else if (splits == 1 && st.back().kind == StageKind::kSplitOutliers) {
    out->insert(absl::StrCat("outliers split after quantizing ", stream));
  }
  if (out->empty()) out->insert(absl::StrCat("a stage order on ", stream, " no genome has"));
}

}  // namespace

std::string GraphOnlyFeatures(const Candidate& candidate, const ModelConfig& model) {
  if (!candidate.has_pipeline()) return "";
  auto graphs = CandidateToGraphEntries(candidate, model);
  if (!graphs.ok()) return "";
  std::set<std::string> features;
  for (const PipelineGraph& g : graphs->entries) {
    const LayerPlan p = g.Compile();
    StreamGraphOnly(p.keys, "keys", &features);
    StreamGraphOnly(p.values, "values", &features);
    const EvictionPlan& e = p.eviction;
    if (e.policy == KEY_NORM || e.policy == TEMPORAL_REDUNDANCY) {
      if (e.tap_after_stages > 0) features.insert("eviction scored on dequantized keys");
      else if (e.tap_rotated == p.keys.quantize_before_rope) features.insert("eviction scored on keys rotated differently from the genome's");
    }
    if (e.policy == VALUE_NORM && e.tap_after_stages > 0) features.insert("eviction scored on dequantized values");
  }
  return absl::StrJoin(features, ", ");
}

namespace {

std::string StreamSummary(const StreamPlan& sp) {
  std::vector<std::string> parts;
  for (const Stage& s : sp.stages) {
    if (s.kind == StageKind::kSplitOutliers) {
      parts.push_back(absl::StrFormat("%.3g%%out", 100 * s.outlier_fraction));
    } else {
      parts.push_back(absl::StrCat(s.kind == StageKind::kResidualQuantize ? "+res:" : "",
                                   QuantizerSummary(s.quantizer)));
    }
  }
  std::string out = parts.empty() ? "fp16" : absl::StrJoin(parts, "+");
  if (sp.quantize_before_rope) absl::StrAppend(&out, " preRoPE");
  if (sp.sink_tokens > 0) absl::StrAppend(&out, " s", sp.sink_tokens);
  if (sp.recent_window > 0) absl::StrAppend(&out, " r", sp.recent_window);
  return out;
}

}  // namespace

std::string CandidateSummary(const Candidate& candidate, const ModelConfig& model) {
  auto graphs = CandidateToGraphs(candidate, model);
  if (!graphs.ok()) return absl::StrCat("invalid: ", graphs.status().message());
  std::vector<std::string> lines;
  std::string previous;
  int first = 0;
  auto flush = [&](int last) {
    if (previous.empty()) return;
    lines.push_back(first == last ? absl::StrCat("L", first, ": ", previous)
                                  : absl::StrCat("L", first, "-", last, ": ", previous));
  };
  for (size_t l = 0; l < graphs->size(); ++l) {
    LayerPlan p = (*graphs)[l].Compile();
    std::string s = absl::StrCat("K ", StreamSummary(p.keys), " | V ", StreamSummary(p.values));
    if (p.eviction.policy != NO_EVICTION) {
      absl::StrAppend(&s, absl::StrFormat(" | %s keep %.0f%%", EvictionPolicy_Name(p.eviction.policy),
                                          100 * p.eviction.keep_ratio));
    }
    if (p.head_clusters > 0) absl::StrAppend(&s, " | CHAI k", p.head_clusters);
    if (s != previous) {
      flush(static_cast<int>(l) - 1);
      previous = s;
      first = static_cast<int>(l);
    }
  }
  flush(static_cast<int>(graphs->size()) - 1);
  return absl::StrJoin(lines, "; ");
}

}  // namespace fecsearch
