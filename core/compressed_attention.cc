// Chunked attention over a compressed KV cache: the evaluation protocol, one layer at a time.
#include "core/compressed_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/container/inlined_vector.h"
#include "core/number_formats.h"

namespace fecsearch {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A scale/zero-point record shared by the tokens of one PER_CHANNEL group; stored while any
// of them is cached.
struct GroupRecord {
  double bits = 0;
  int live = 0;
};

// What one KV head stores of one stream.
struct StreamState {
  std::vector<uint8_t> done;   // quantized already (never again)
  std::vector<double> bits;    // per row: codes, outliers and per-token group parameters
  std::vector<absl::InlinedVector<int, 2>> groups;  // per row: PER_CHANNEL records
  std::vector<GroupRecord> records;
  // Bits of the live rows and live group records, kept up to date as rows arrive, are
  // quantized and die, so that accounting at each chunk boundary costs nothing.
  double total_bits = 0;
  int cursor = 0;  // positions below this have been quantized (or skipped as sinks)
};

struct HeadState {
  int rows = 0;  // rows in use (alive and dead)
  int dead = 0;
  std::vector<int> pos;
  std::vector<uint8_t> alive;
  std::vector<float> K, V;  // rows x head_dim: what attention reads
  StreamState ks, vs;
  std::vector<float> h2o;      // accumulated attention (H2O)
  std::vector<float> snap;     // rows x 2*slots: per-chunk full and tail attention sums
  std::vector<float> feature;  // norm / redundancy score of the tapped stream
  std::vector<float> last_tap;  // the last token through the tapped stages, as the tap saw it
  int last_tap_pos = -1;        // its position (-1: none yet)
};

class LayerSimulator {
 public:
  LayerSimulator(const ModelConfig& config, const RopeTable& rope, const LayerPlan& plan,
                 const LayerTensors& in, const LayerRunOptions& options, RowMatrix* out,
                 LayerRunStats* stats)
      : plan_(plan),
        rope_(rope),
        in_(in),
        opt_(options),
        out_(out),
        stats_(stats),
        T_(static_cast<int>(in.q->rows())),
        H_(config.num_heads),
        G_(config.num_kv_heads),
        D_(config.head_dim),
        n_rep_(config.num_heads / config.num_kv_heads) {
    const EvictionPlan& ev = plan.eviction;
    evict_ = !opt_.exact && ev.active();
    if (evict_ && ev.policy == SNAPKV) {
      slots_ = std::max(1, (ev.observation_window + opt_.chunk - 1) / opt_.chunk);
    }
    heads_.resize(G_);
    for (HeadState& h : heads_) {
      h.pos.resize(T_);
      h.alive.resize(T_);
      h.K.resize(static_cast<size_t>(T_) * D_);
      h.V.resize(static_cast<size_t>(T_) * D_);
      for (StreamState* s : {&h.ks, &h.vs}) {
        s->done.resize(T_);
        s->bits.resize(T_);
        s->groups.resize(T_);
      }
      if (evict_) {
        h.h2o.assign(T_, 0.0f);
        h.feature.assign(T_, 0.0f);
        if (slots_ > 0) h.snap.assign(static_cast<size_t>(T_) * 2 * slots_, 0.0f);
      }
    }
    rep_.resize(G_);
    std::iota(rep_.begin(), rep_.end(), 0);
    protect_sinks_ = std::max(plan.keys.sink_tokens, plan.values.sink_tokens);
    protect_recent_ = std::max(plan.keys.recent_window, plan.values.recent_window);
    out_->setZero(T_, H_ * D_);
    if (opt_.attention_received) opt_.attention_received->assign(static_cast<size_t>(T_) * G_, 0.0f);
  }

  // KV heads are independent except through CHAI, which clusters them by their attention on
  // the first chunk: every head runs the first chunk's attention, the clusters are formed,
  // and then each cluster (a single head without CHAI) runs the rest of the window as one
  // task. Tasks touch only their own heads, so the result does not depend on the threads.
  void Run() {
    const int e0 = std::min(T_, opt_.chunk);
    cluster_features_.assign(clustering() ? G_ : 0, Eigen::RowVectorXf());
    ParallelFor(opt_.pool, G_, [&](int g) {
      Scratch scratch;
      Append(0, e0, {g});
      AttendRep(g, 0, e0, 0, &scratch);
    });
    if (clustering()) ClusterHeads();
    std::vector<std::vector<int>> clusters;  // representative first
    for (int r = 0; r < G_; ++r) {
      if (rep_[r] != r) continue;
      clusters.push_back({r});
      for (int g = 0; g < G_; ++g)
        if (g != r && rep_[g] == r) clusters.back().push_back(g);
    }
    std::vector<TaskStats> task_stats(clusters.size());
    const int chunks = (T_ + opt_.chunk - 1) / opt_.chunk;
    ParallelFor(opt_.pool, static_cast<int>(clusters.size()), [&](int ti) {
      const std::vector<int>& members = clusters[ti];
      Scratch scratch;
      for (int j = 0; j < chunks; ++j) {
        const int s = j * opt_.chunk, e = std::min(T_, s + opt_.chunk);
        if (j > 0) {
          Append(s, e, members);
          AttendRep(members[0], s, e, j, &scratch);
        }
        if (opt_.exact) continue;
        RoundNewRowsToFp16(s, e, members);
        Quantize(/*values=*/false, e, members, &scratch);
        Quantize(/*values=*/true, e, members, &scratch);
        if (evict_) Evict(e, members[0]);
        Account(members, &task_stats[ti]);
        Compact(members);
      }
    });
    if (!opt_.exact) {
      // Bits are whole numbers, so these sums are exact in any order.
      const double codebooks = CodebookBits(plan_.keys) + CodebookBits(plan_.values);
      stats_->cache_bits = codebooks * chunks;
      stats_->end_cache_bits = codebooks;
      for (const TaskStats& ts : task_stats) {
        stats_->cache_bits += ts.cache_bits;
        stats_->end_cache_bits += ts.end_cache_bits;
      }
      for (int j = 0; j < chunks; ++j) {
        const int e = std::min(T_, (j + 1) * opt_.chunk);
        const double fp16 = 2.0 * 16.0 * D_ * G_ * e;
        stats_->fp16_bits += fp16;
        stats_->end_fp16_bits = fp16;
      }
    }
    for (const HeadState& h : heads_) {
      stats_->end_kept_tokens += h.rows - h.dead;
      stats_->end_total_tokens += T_;
    }
  }

 private:
  // Buffers one task reuses across chunks.
  struct Scratch {
    RowMatrix q, s, o;
    std::vector<int> rows;
    std::vector<double> row_bits;
    Block block;
  };
  // Bits one task's heads stored, summed over chunk boundaries, and at the last one.
  struct TaskStats {
    double cache_bits = 0, end_cache_bits = 0;
  };

  bool clustering() const { return !opt_.exact && plan_.head_clusters > 0 && plan_.head_clusters < G_; }
  bool StoresKeys(int g) const { return rep_[g] == g; }

  const float* Original(bool values, bool rotated, int pos, int g) const {
    const RowMatrix& m = values ? *in_.v : (rotated ? *in_.k : *in_.k_pre);
    return m.data() + static_cast<size_t>(pos) * m.cols() + static_cast<size_t>(g) * D_;
  }

  void Append(int s, int e, const std::vector<int>& members) {
    for (int g : members) {
      HeadState& h = heads_[g];
      for (int p = s; p < e; ++p) {
        const int r = h.rows++;
        h.pos[r] = p;
        h.alive[r] = 1;
        std::copy_n(Original(false, true, p, g), D_, &h.K[static_cast<size_t>(r) * D_]);
        std::copy_n(Original(true, true, p, g), D_, &h.V[static_cast<size_t>(r) * D_]);
        h.ks.done[r] = h.vs.done[r] = 0;
        h.ks.bits[r] = h.vs.bits[r] = 0;
        h.ks.groups[r].clear();
        h.vs.groups[r].clear();
        h.ks.total_bits += 16.0 * D_;
        h.vs.total_bits += 16.0 * D_;
        if (evict_) {
          h.h2o[r] = 0;
          if (slots_ > 0) std::fill_n(&h.snap[static_cast<size_t>(r) * 2 * slots_], 2 * slots_, 0.0f);
          h.feature[r] = Feature(nullptr, p, g);
        }
      }
    }
  }

  // Norm or redundancy feature of a token for the eviction scorer, from `tapped` (the
  // stream as the tap sees it) or, when null, the original in the tap's domain. Temporal
  // redundancy compares with the previous token as the tap sees it: `prev_tapped` when that
  // token went through the tapped stages, else its original (a token still exact).
  float Feature(const float* tapped, int pos, int g, const float* prev_tapped = nullptr) const {
    const EvictionPlan& ev = plan_.eviction;
    if (ev.policy != KEY_NORM && ev.policy != VALUE_NORM && ev.policy != TEMPORAL_REDUNDANCY) return 0;
    const float* x = tapped ? tapped : Original(ev.tap_values, ev.tap_rotated, pos, g);
    double nx = 0;
    for (int i = 0; i < D_; ++i) nx += double{x[i]} * x[i];
    nx = std::sqrt(nx);
    if (ev.policy == KEY_NORM) return static_cast<float>(-nx);
    if (ev.policy == VALUE_NORM) return static_cast<float>(nx);
    if (pos == 0) return 1.0f;
    const float* prev = prev_tapped ? prev_tapped : Original(ev.tap_values, ev.tap_rotated, pos - 1, g);
    double dot = 0, np = 0;
    for (int i = 0; i < D_; ++i) {
      dot += double{x[i]} * prev[i];
      np += double{prev[i]} * prev[i];
    }
    const double denom = nx * std::sqrt(np);
    return static_cast<float>(denom > 0 ? 1.0 - dot / denom : 1.0);
  }

  // Attention of representative r's query heads and its cluster members' (they share r's
  // scores and keep their own values) for the chunk [s, e).
  void AttendRep(int r, int s, int e, int chunk_index, Scratch* scratch) {
    const int c = e - s;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D_));
    RowMatrix& Q = scratch->q;
    RowMatrix& S = scratch->s;
    RowMatrix& O = scratch->o;
    Q.resize(n_rep_ * c, D_);
    HeadState& hr = heads_[r];
    const int n = hr.rows;
    const int old = n - c;  // cached rows before this chunk
    for (int i = 0; i < n_rep_; ++i) {
      const int head = r * n_rep_ + i;
      for (int t = 0; t < c; ++t) {
        Q.row(i * c + t) = in_.q->row(s + t).segment(static_cast<Eigen::Index>(head) * D_, D_);
      }
    }
    Eigen::Map<const RowMatrix> K(hr.K.data(), n, D_);
    S.resize(n_rep_ * c, n);
    S.noalias() = (Q * K.transpose()) * scale;
    for (int row = 0; row < n_rep_ * c; ++row) {
      const int t = row % c;
      float* srow = S.row(row).data();
      if (hr.dead > 0) {
        for (int k = 0; k < old; ++k)
          if (!hr.alive[k]) srow[k] = kNegInf;
      }
      for (int k = t + 1; k < c; ++k) srow[old + k] = kNegInf;  // causal within the chunk
      const float m = S.row(row).maxCoeff();
      // Probabilities below the smallest normal float are set to zero: they weigh nothing,
      // and subnormal operands slow the S x V product down by an order of magnitude.
      S.row(row) = (S.row(row).array() - m).exp().matrix();
      constexpr float kSmallest = std::numeric_limits<float>::min();
      for (int k = 0; k < n; ++k) srow[k] = srow[k] < kSmallest ? 0.0f : srow[k];
      S.row(row) /= S.row(row).sum();
    }
    Statistics(r, S, s, c, chunk_index);
    if (chunk_index == 0 && clustering()) {
      Eigen::RowVectorXf mean = Eigen::RowVectorXf::Zero(c * n);
      for (int row = 0; row < n_rep_ * c; ++row) {
        mean.segment((row % c) * n, n) += S.row(row) / static_cast<float>(n_rep_);
      }
      cluster_features_[r] = mean;
    }
    for (int g = 0; g < G_; ++g) {
      if (rep_[g] != r) continue;
      Eigen::Map<const RowMatrix> V(heads_[g].V.data(), n, D_);
      O.noalias() = S * V;
      for (int i = 0; i < n_rep_; ++i) {
        const int head = g * n_rep_ + i;
        for (int t = 0; t < c; ++t) {
          out_->row(s + t).segment(static_cast<Eigen::Index>(head) * D_, D_) = O.row(i * c + t);
        }
      }
    }
  }

  // Attention statistics for eviction scores and calibration weights.
  void Statistics(int r, const RowMatrix& P, int s, int c, int chunk_index) {
    HeadState& h = heads_[r];
    const int n = h.rows;
    if (opt_.attention_received) {
      Eigen::RowVectorXf col = P.colwise().sum();
      for (int k = 0; k < n; ++k) (*opt_.attention_received)[static_cast<size_t>(h.pos[k]) * G_ + r] += col[k];
    }
    if (!evict_) return;
    const EvictionPolicy policy = plan_.eviction.policy;
    if (policy == H2O) {
      Eigen::RowVectorXf col = P.colwise().sum();
      for (int k = 0; k < n; ++k) h.h2o[k] += col[k];
    } else if (policy == SNAPKV) {
      // Queries of this chunk that will still be in the observation window when this chunk
      // is the oldest one in it (`tail`), and all of them (`full`).
      const int w = plan_.eviction.observation_window;
      const int first_tail = s + c + (slots_ - 1) * opt_.chunk - w;
      const int slot = chunk_index % slots_;
      Eigen::RowVectorXf full = Eigen::RowVectorXf::Zero(n), tail = Eigen::RowVectorXf::Zero(n);
      for (int row = 0; row < P.rows(); ++row) {
        full += P.row(row);
        if (s + row % c >= first_tail) tail += P.row(row);
      }
      for (int k = 0; k < n; ++k) {
        float* ring = &h.snap[static_cast<size_t>(k) * 2 * slots_];
        ring[2 * slot] = full[k];
        ring[2 * slot + 1] = tail[k];
      }
    }
  }

  // CHAI: k-means over the heads' first-chunk attention; representatives are the members
  // closest to their cluster's mean. Deterministic (farthest-point initialisation from head 0).
  void ClusterHeads() {
    const int k = plan_.head_clusters;
    std::vector<int> centers = {0};
    while (static_cast<int>(centers.size()) < k) {
      int best = -1;
      float best_d = -1;
      for (int g = 0; g < G_; ++g) {
        float d = std::numeric_limits<float>::max();
        for (int ctr : centers) d = std::min(d, (cluster_features_[g] - cluster_features_[ctr]).squaredNorm());
        if (d > best_d) {
          best_d = d;
          best = g;
        }
      }
      centers.push_back(best);
    }
    std::vector<Eigen::RowVectorXf> means;
    for (int ctr : centers) means.push_back(cluster_features_[ctr]);
    std::vector<int> assign(G_, 0);
    for (int it = 0; it < 20; ++it) {
      for (int g = 0; g < G_; ++g) {
        float best = std::numeric_limits<float>::max();
        for (int m = 0; m < k; ++m) {
          const float d = (cluster_features_[g] - means[m]).squaredNorm();
          if (d < best) {
            best = d;
            assign[g] = m;
          }
        }
      }
      for (int m = 0; m < k; ++m) {
        Eigen::RowVectorXf sum = Eigen::RowVectorXf::Zero(means[m].size());
        int count = 0;
        for (int g = 0; g < G_; ++g)
          if (assign[g] == m) {
            sum += cluster_features_[g];
            ++count;
          }
        if (count > 0) means[m] = sum / static_cast<float>(count);
      }
    }
    for (int m = 0; m < k; ++m) {
      int best = -1;
      float best_d = std::numeric_limits<float>::max();
      for (int g = 0; g < G_; ++g) {
        if (assign[g] != m) continue;
        const float d = (cluster_features_[g] - means[m]).squaredNorm();
        if (d < best_d) {
          best_d = d;
          best = g;
        }
      }
      for (int g = 0; g < G_; ++g)
        if (assign[g] == m) rep_[g] = best;
    }
  }

  void RoundNewRowsToFp16(int s, int e, const std::vector<int>& members) {
    const int c = e - s;
    for (int g : members) {
      HeadState& h = heads_[g];
      for (int r = h.rows - c; r < h.rows; ++r) {
        float* k = &h.K[static_cast<size_t>(r) * D_];
        float* v = &h.V[static_cast<size_t>(r) * D_];
        for (int i = 0; i < D_; ++i) {
          k[i] = RoundToFp16(k[i]);
          v[i] = RoundToFp16(v[i]);
        }
      }
    }
  }

  void Quantize(bool values, int e, const std::vector<int>& members, Scratch* scratch) {
    const StreamPlan& sp = values ? plan_.values : plan_.keys;
    if (!sp.quantizes()) return;
    const EvictionPlan& ev = plan_.eviction;
    const bool tap_here = evict_ && ev.tap_values == values && ev.tap_after_stages > 0 &&
                          (ev.policy == KEY_NORM || ev.policy == VALUE_NORM ||
                           ev.policy == TEMPORAL_REDUNDANCY);
    const int limit = e - sp.recent_window;  // positions below this have left the window
    bool has_residual = false;
    for (const Stage& st : sp.stages) has_residual |= st.kind == StageKind::kResidualQuantize;
    const bool rotate_after = !values && sp.quantize_before_rope;
    for (int g : members) {
      HeadState& h = heads_[g];
      StreamState& st = values ? h.vs : h.ks;
      if (!values && !StoresKeys(g)) continue;
      // Every position below the cursor has been decided (quantized, a sink, or dead), and
      // rows are in position order: start scanning at the cursor.
      const int first = static_cast<int>(std::lower_bound(h.pos.begin(), h.pos.begin() + h.rows, st.cursor) - h.pos.begin());
      const int decided = sp.channel_alignment > 0 ? std::max(0, limit) / sp.channel_alignment * sp.channel_alignment
                                                   : std::max(0, limit);
      st.cursor = std::max(st.cursor, decided);
      std::vector<int>& rows = scratch->rows;
      rows.clear();
      for (int r = first; r < h.rows; ++r) {
        if (!h.alive[r] || st.done[r]) continue;
        const int p = h.pos[r];
        if (p < sp.sink_tokens || p >= limit) continue;
        if (sp.channel_alignment > 0 && (p / sp.channel_alignment + 1) * sp.channel_alignment > limit) continue;
        rows.push_back(r);
      }
      if (rows.empty()) continue;
      Block& b = scratch->block;
      b.rows = static_cast<int>(rows.size());
      b.cols = D_;
      b.x.resize(static_cast<size_t>(b.rows) * D_);
      b.fixed.assign(b.x.size(), 0);
      b.positions.resize(b.rows);
      for (int i = 0; i < b.rows; ++i) {
        b.positions[i] = h.pos[rows[i]];
        std::copy_n(Original(values, !sp.quantize_before_rope, b.positions[i], g), D_,
                    &b.x[static_cast<size_t>(i) * D_]);
      }
      // The exact values are needed only by residual stages.
      if (has_residual) b.ref = b.x;
      std::vector<double>& row_bits = scratch->row_bits;
      row_bits.assign(b.rows, 0.0);
      for (size_t si = 0; si < sp.stages.size(); ++si) {
        const Stage& stage = sp.stages[si];
        if (stage.kind == StageKind::kSplitOutliers) {
          SplitOutliers(stage.outlier_fraction, &b);
        } else {
          StageCharges ch = QuantizeBlock(*stage.resolved, stage.kind == StageKind::kResidualQuantize, &b);
          if (stage.stored) {
            const double code = static_cast<double>(stage.resolved->code_bits()) * D_;
            for (int i = 0; i < b.rows; ++i) row_bits[i] += code + ch.per_row_overhead_bits;
            for (size_t gi = 0; gi < ch.channel_groups.size(); ++gi) {
              st.records.push_back({ch.channel_groups[gi].second,
                                    static_cast<int>(ch.channel_group_rows[gi].size())});
              st.total_bits += ch.channel_groups[gi].second;
              const int id = static_cast<int>(st.records.size()) - 1;
              for (int i : ch.channel_group_rows[gi]) st.groups[rows[i]].push_back(id);
            }
          }
        }
        if (tap_here && static_cast<int>(si) + 1 == ev.tap_after_stages) {
          for (int i = 0; i < b.rows; ++i) {
            std::vector<float> x(&b.x[static_cast<size_t>(i) * D_], &b.x[static_cast<size_t>(i + 1) * D_]);
            if (rotate_after && ev.tap_rotated) rope_.Apply(b.positions[i], x.data());
            const bool prev_tapped = h.last_tap_pos >= 0 && h.last_tap_pos == b.positions[i] - 1;
            h.feature[rows[i]] = Feature(x.data(), b.positions[i], g, prev_tapped ? h.last_tap.data() : nullptr);
            h.last_tap = std::move(x);
            h.last_tap_pos = b.positions[i];
          }
        }
      }
      // With no stored quantizer the stream stays dense fp16 beside its outliers.
      const double dense_bits = sp.dense_fp16() ? 16.0 * D_ : 0.0;
      for (int i = 0; i < b.rows; ++i) {
        float* dst = values ? &h.V[static_cast<size_t>(rows[i]) * D_] : &h.K[static_cast<size_t>(rows[i]) * D_];
        std::copy_n(&b.x[static_cast<size_t>(i) * D_], D_, dst);
        if (rotate_after) rope_.Apply(b.positions[i], dst);
        int outliers = 0;
        for (int c = 0; c < D_; ++c) outliers += b.fixed[static_cast<size_t>(i) * D_ + c];
        st.done[rows[i]] = 1;
        st.bits[rows[i]] = dense_bits + row_bits[i] + 32.0 * outliers;
        st.total_bits += st.bits[rows[i]] - 16.0 * D_;
      }
    }
  }

  void Kill(HeadState& h, int r) {
    h.alive[r] = 0;
    ++h.dead;
    for (StreamState* st : {&h.ks, &h.vs}) {
      st->total_bits -= st->done[r] ? st->bits[r] : 16.0 * D_;
      for (int id : st->groups[r]) {
        if (--st->records[id].live == 0) st->total_bits -= st->records[id].bits;
      }
    }
  }

  // Eviction in representative r's cluster (the kept set is r's, for every member).
  void Evict(int e, int r) {
    const EvictionPlan& ev = plan_.eviction;
    const long budget = static_cast<long>(std::ceil(ev.keep_ratio * e - 1e-9));
    {
      HeadState& h = heads_[r];
      std::vector<int> alive_rows;
      for (int k = 0; k < h.rows; ++k)
        if (h.alive[k]) alive_rows.push_back(k);
      if (static_cast<long>(alive_rows.size()) <= budget) return;
      std::vector<float> score(alive_rows.size());
      for (size_t i = 0; i < alive_rows.size(); ++i) {
        const int k = alive_rows[i];
        switch (ev.policy) {
          case STREAMING_LLM: score[i] = static_cast<float>(h.pos[k]); break;
          case H2O: score[i] = h.h2o[k]; break;
          case SNAPKV: {
            const float* ring = &h.snap[static_cast<size_t>(k) * 2 * slots_];
            const int last = (e - 1) / opt_.chunk;  // index of the chunk just processed
            float sum = 0;
            for (int d = 0; d < slots_; ++d) {
              const int chunk = last - d;
              if (chunk < 0) break;
              const int slot = chunk % slots_;
              sum += (d == slots_ - 1) ? ring[2 * slot + 1] : ring[2 * slot];
            }
            score[i] = sum;
            break;
          }
          default: score[i] = h.feature[k]; break;
        }
      }
      if (ev.policy == SNAPKV && ev.pooling_kernel > 1) {
        const int half = ev.pooling_kernel / 2;
        std::vector<float> pooled(score.size());
        const int n = static_cast<int>(score.size());
        for (int i = 0; i < n; ++i) {
          float sum = 0;
          int count = 0;
          for (int j = std::max(0, i - half); j <= std::min(n - 1, i + half); ++j) {
            sum += score[j];
            ++count;
          }
          pooled[i] = sum / count;
        }
        score = pooled;
      }
      std::vector<int> candidates;
      long protected_count = 0;
      for (size_t i = 0; i < alive_rows.size(); ++i) {
        const int p = h.pos[alive_rows[i]];
        if (p < protect_sinks_ || p >= e - protect_recent_) {
          ++protected_count;
        } else {
          candidates.push_back(static_cast<int>(i));
        }
      }
      const long keep = std::max(0L, budget - protected_count);
      if (static_cast<long>(candidates.size()) <= keep) return;
      // Highest score first; ties keep the more recent token. Only the set of the best
      // `keep` matters, which a partial selection finds (the order is total, so the set is
      // the same as after a full sort).
      std::nth_element(candidates.begin(), candidates.begin() + keep, candidates.end(), [&](int a, int b) {
        if (score[a] != score[b]) return score[a] > score[b];
        return alive_rows[a] > alive_rows[b];
      });
      for (size_t ci = keep; ci < candidates.size(); ++ci) {
        const int k = alive_rows[candidates[ci]];
        for (int g = 0; g < G_; ++g)
          if (rep_[g] == r) Kill(heads_[g], k);
      }
    }
  }

  static double CodebookBits(const StreamPlan& sp) {
    double bits = 0;
    for (const Stage& s : sp.stages)
      if (s.stored && s.kind != StageKind::kSplitOutliers && s.quantizer.format == NUQ)
        bits += 16.0 * (1 << s.quantizer.bits);
    return bits;
  }

  void Account(const std::vector<int>& members, TaskStats* ts) {
    double bits = 0;
    for (int g : members) {
      const HeadState& h = heads_[g];
      if (StoresKeys(g)) bits += h.ks.total_bits;
      bits += h.vs.total_bits;
    }
    ts->cache_bits += bits;
    ts->end_cache_bits = bits;
  }

  // Drops dead rows once they are a quarter of the buffer (attention masks them until then).
  // Members of a cluster share row indices (the representative's kept set), so they are
  // compacted together.
  void Compact(const std::vector<int>& members) {
    const HeadState& first = heads_[members[0]];
    if (!(first.dead > 16 && first.dead * 4 > first.rows)) return;
    for (int g : members) {
      HeadState& h = heads_[g];
      int w = 0;
      for (int r = 0; r < h.rows; ++r) {
        if (!h.alive[r]) continue;
        if (w != r) {
          h.pos[w] = h.pos[r];
          h.alive[w] = 1;
          std::copy_n(&h.K[static_cast<size_t>(r) * D_], D_, &h.K[static_cast<size_t>(w) * D_]);
          std::copy_n(&h.V[static_cast<size_t>(r) * D_], D_, &h.V[static_cast<size_t>(w) * D_]);
          for (StreamState* st : {&h.ks, &h.vs}) {
            st->done[w] = st->done[r];
            st->bits[w] = st->bits[r];
            st->groups[w] = st->groups[r];
          }
          if (evict_) {
            h.h2o[w] = h.h2o[r];
            h.feature[w] = h.feature[r];
            if (slots_ > 0) {
              std::copy_n(&h.snap[static_cast<size_t>(r) * 2 * slots_], 2 * slots_,
                          &h.snap[static_cast<size_t>(w) * 2 * slots_]);
            }
          }
        }
        ++w;
      }
      h.rows = w;
      h.dead = 0;
    }
  }

  const LayerPlan& plan_;
  const RopeTable& rope_;
  const LayerTensors& in_;
  const LayerRunOptions& opt_;
  RowMatrix* out_;
  LayerRunStats* stats_;
  const int T_, H_, G_, D_, n_rep_;
  bool evict_ = false;
  int slots_ = 0;
  int protect_sinks_ = 0, protect_recent_ = 0;
  std::vector<HeadState> heads_;
  std::vector<int> rep_;  // CHAI representative of each KV head (itself when unclustered)
  std::vector<Eigen::RowVectorXf> cluster_features_;  // CHAI: each head's first-chunk attention
};

}  // namespace

void RunCompressedAttention(const ModelConfig& config, const RopeTable& rope,
                            const LayerPlan& plan, const LayerTensors& in,
                            const LayerRunOptions& options, RowMatrix* out, LayerRunStats* stats) {
  LayerSimulator sim(config, rope, plan, in, options, out, stats);
  sim.Run();
}

}  // namespace fecsearch
