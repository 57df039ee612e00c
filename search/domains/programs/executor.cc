#include "search/domains/programs/executor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "search/candidate_space.h"

// Built with -ffp-contract=off (search/BUILD.bazel): no fused multiply-adds, so every machine
// and the reference interpreter round the same way.

namespace fecsearch {
namespace programs {
namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

inline double Gaussian(Rng& rng, double mean, double sd) {
  const double u1 = rng.Real();
  const double u2 = rng.Real();
  return mean + sd * std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(kTwoPi * u2);
}
inline double Uniform(Rng& rng, double lo, double hi) { return lo + (hi - lo) * rng.Real(); }
inline double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// One component function. kF > 0: the feature size as a constant (the compiler unrolls the
// element loops); 0: `features` at run time.
typedef double V4 __attribute__((vector_size(32)));
inline V4 Load4(const double* p) {
  V4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void Store4(double* p, V4 v) { std::memcpy(p, &v, sizeof(v)); }

// The last scalar and vector an instruction of the fast path wrote, kept in machine registers
// (F = 4 only): a following instruction that reads the same register takes the value from here
// instead of loading what was just stored, which took a store-to-load forwarding round trip
// (~7 cycles) on every link of a loop-carried chain (docs/PROGRAMS.md section 8). The register
// file in memory is still written by every instruction; an offset of -1 holds nothing.
struct Carry {
  double s = 0;
  V4 v = {0, 0, 0, 0};
  int32_t s_off = -1, v_off = -1;
  // Something other than the fast path wrote `off`.
  void Forget(int32_t off) {
    if (off == s_off) s_off = -1;
    if (off == v_off) v_off = -1;
  }
};

template <int kF>
__attribute__((always_inline)) inline void Execute(const std::vector<CompiledProgram::Instr>& code, double* mem, double* tmp, Rng& rng, int features, Carry& c) {
  const int F = kF > 0 ? kF : features;
  const int FF = F * F;
  for (const CompiledProgram::Instr& in : code) {
    double* o = mem + in.o;
    const double* a = mem + in.a;
    const double* b = mem + in.b;
    if constexpr (kF == 4) {
      // Four-wide loads and stores of whole registers (the demo's F): no aliasing fallbacks.
      // Same arithmetic, element by element. Operands come from the carry when it holds them
      // (a branch, not a select, so the value does not wait for the load).
      auto S = [&](int32_t off) -> double {
        if (__builtin_expect(off == c.s_off, 1)) return c.s;
        return mem[off];
      };
      auto V = [&](int32_t off) -> V4 {
        if (__builtin_expect(off == c.v_off, 1)) return c.v;
        return Load4(mem + off);
      };
      auto PutS = [&](double x) {
        *o = x;
        c.s = x;
        c.s_off = in.o;  // (scalar and vector offsets never coincide)
      };
      auto PutV = [&](V4 x) {
        Store4(o, x);
        c.v = x;
        c.v_off = in.o;
      };
      switch (in.op) {
        case SCALAR_SUM: PutS(S(in.a) + S(in.b)); continue;
        case SCALAR_DIFF: PutS(S(in.a) - S(in.b)); continue;
        case SCALAR_PRODUCT: PutS(S(in.a) * S(in.b)); continue;
        case SCALAR_DIVISION: PutS(S(in.a) / S(in.b)); continue;
        case VECTOR_SUM: PutV(V(in.a) + V(in.b)); continue;
        case VECTOR_DIFF: PutV(V(in.a) - V(in.b)); continue;
        case VECTOR_PRODUCT: PutV(V(in.a) * V(in.b)); continue;
        case VECTOR_DIVISION: PutV(V(in.a) / V(in.b)); continue;
        case SCALAR_VECTOR_PRODUCT: PutV(S(in.a) * V(in.b)); continue;
        case SCALAR_BROADCAST: { const double x = S(in.a); PutV(V4{x, x, x, x}); continue; }
        case VECTOR_INNER_PRODUCT: {
          const V4 p = V(in.a) * V(in.b);
          PutS(((((0.0 + p[0]) + p[1]) + p[2]) + p[3]));
          continue;
        }
        default: break;
      }
      c.Forget(in.o);
    }
    switch (in.op) {
      case NO_OP: break;
      case SCALAR_SUM: *o = *a + *b; break;
      case SCALAR_DIFF: *o = *a - *b; break;
      case SCALAR_PRODUCT: *o = *a * *b; break;
      case SCALAR_DIVISION: *o = *a / *b; break;
      case SCALAR_ABS: *o = std::fabs(*a); break;
      case SCALAR_RECIPROCAL: *o = 1.0 / *a; break;
      case SCALAR_SIN: *o = std::sin(*a); break;
      case SCALAR_COS: *o = std::cos(*a); break;
      case SCALAR_TAN: *o = std::tan(*a); break;
      case SCALAR_ARCSIN: *o = std::asin(*a); break;
      case SCALAR_ARCCOS: *o = std::acos(*a); break;
      case SCALAR_ARCTAN: *o = std::atan(*a); break;
      case SCALAR_EXP: *o = std::exp(*a); break;
      case SCALAR_LOG: *o = std::log(*a); break;
      case SCALAR_HEAVISIDE: *o = *a >= 0.0 ? 1.0 : 0.0; break;
      case VECTOR_HEAVISIDE: for (int i = 0; i < F; ++i) o[i] = a[i] > 0.0 ? 1.0 : 0.0; break;
      case MATRIX_HEAVISIDE: for (int i = 0; i < FF; ++i) o[i] = a[i] > 0.0 ? 1.0 : 0.0; break;
      case SCALAR_VECTOR_PRODUCT: { const double s = *a; for (int i = 0; i < F; ++i) o[i] = s * b[i]; break; }
      case SCALAR_BROADCAST: { const double s = *a; for (int i = 0; i < F; ++i) o[i] = s; break; }
      case VECTOR_RECIPROCAL: for (int i = 0; i < F; ++i) o[i] = 1.0 / a[i]; break;
      case VECTOR_NORM: { double s = 0; for (int i = 0; i < F; ++i) s += a[i] * a[i]; *o = std::sqrt(s); break; }
      case VECTOR_ABS: for (int i = 0; i < F; ++i) o[i] = std::fabs(a[i]); break;
      case VECTOR_SUM: for (int i = 0; i < F; ++i) o[i] = a[i] + b[i]; break;
      case VECTOR_DIFF: for (int i = 0; i < F; ++i) o[i] = a[i] - b[i]; break;
      case VECTOR_PRODUCT: for (int i = 0; i < F; ++i) o[i] = a[i] * b[i]; break;
      case VECTOR_DIVISION: for (int i = 0; i < F; ++i) o[i] = a[i] / b[i]; break;
      case VECTOR_INNER_PRODUCT: { double s = 0; for (int i = 0; i < F; ++i) s += a[i] * b[i]; *o = s; break; }
      case VECTOR_OUTER_PRODUCT:
        for (int i = 0; i < F; ++i) for (int j = 0; j < F; ++j) o[i * F + j] = a[i] * b[j];
        break;
      case SCALAR_MATRIX_PRODUCT: { const double s = *a; for (int i = 0; i < FF; ++i) o[i] = s * b[i]; break; }
      case MATRIX_RECIPROCAL: for (int i = 0; i < FF; ++i) o[i] = 1.0 / a[i]; break;
      case MATRIX_VECTOR_PRODUCT:
        for (int i = 0; i < F; ++i) {
          double s = 0;
          for (int j = 0; j < F; ++j) s += a[i * F + j] * b[j];
          tmp[i] = s;
        }
        for (int i = 0; i < F; ++i) o[i] = tmp[i];
        break;
      case VECTOR_COLUMN_BROADCAST:
        for (int i = 0; i < F; ++i) for (int j = 0; j < F; ++j) o[i * F + j] = a[i];
        break;
      case VECTOR_ROW_BROADCAST:
        for (int i = 0; i < F; ++i) for (int j = 0; j < F; ++j) o[i * F + j] = a[j];
        break;
      case MATRIX_NORM: { double s = 0; for (int i = 0; i < FF; ++i) s += a[i] * a[i]; *o = std::sqrt(s); break; }
      case MATRIX_COLUMN_NORM:
        for (int j = 0; j < F; ++j) {
          double s = 0;
          for (int i = 0; i < F; ++i) s += a[i * F + j] * a[i * F + j];
          o[j] = std::sqrt(s);
        }
        break;
      case MATRIX_ROW_NORM:
        for (int i = 0; i < F; ++i) {
          double s = 0;
          for (int j = 0; j < F; ++j) s += a[i * F + j] * a[i * F + j];
          o[i] = std::sqrt(s);
        }
        break;
      case MATRIX_TRANSPOSE:
        for (int i = 0; i < F; ++i) for (int j = 0; j < F; ++j) tmp[i * F + j] = a[j * F + i];
        for (int i = 0; i < FF; ++i) o[i] = tmp[i];
        break;
      case MATRIX_ABS: for (int i = 0; i < FF; ++i) o[i] = std::fabs(a[i]); break;
      case MATRIX_SUM: for (int i = 0; i < FF; ++i) o[i] = a[i] + b[i]; break;
      case MATRIX_DIFF: for (int i = 0; i < FF; ++i) o[i] = a[i] - b[i]; break;
      case MATRIX_PRODUCT: for (int i = 0; i < FF; ++i) o[i] = a[i] * b[i]; break;
      case MATRIX_DIVISION: for (int i = 0; i < FF; ++i) o[i] = a[i] / b[i]; break;
      case MATRIX_MATRIX_PRODUCT:
        for (int i = 0; i < F; ++i) {
          for (int j = 0; j < F; ++j) {
            double s = 0;
            for (int k = 0; k < F; ++k) s += a[i * F + k] * b[k * F + j];
            tmp[i * F + j] = s;
          }
        }
        for (int i = 0; i < FF; ++i) o[i] = tmp[i];
        break;
      case SCALAR_MIN: *o = *a < *b ? *a : *b; break;
      case VECTOR_MIN: for (int i = 0; i < F; ++i) o[i] = a[i] < b[i] ? a[i] : b[i]; break;
      case MATRIX_MIN: for (int i = 0; i < FF; ++i) o[i] = a[i] < b[i] ? a[i] : b[i]; break;
      case SCALAR_MAX: *o = *a > *b ? *a : *b; break;
      case VECTOR_MAX: for (int i = 0; i < F; ++i) o[i] = a[i] > b[i] ? a[i] : b[i]; break;
      case MATRIX_MAX: for (int i = 0; i < FF; ++i) o[i] = a[i] > b[i] ? a[i] : b[i]; break;
      case VECTOR_MEAN: { double s = 0; for (int i = 0; i < F; ++i) s += a[i]; *o = s / F; break; }
      case MATRIX_MEAN: { double s = 0; for (int i = 0; i < FF; ++i) s += a[i]; *o = s / FF; break; }
      case MATRIX_ROW_MEAN:
        for (int i = 0; i < F; ++i) {
          double s = 0;
          for (int j = 0; j < F; ++j) s += a[i * F + j];
          o[i] = s / F;
        }
        break;
      case MATRIX_ROW_ST_DEV:
        for (int i = 0; i < F; ++i) {
          double s = 0, q = 0;
          for (int j = 0; j < F; ++j) s += a[i * F + j];
          for (int j = 0; j < F; ++j) q += a[i * F + j] * a[i * F + j];
          const double mean = s / F;
          tmp[i] = std::sqrt(q / F - mean * mean);
        }
        for (int i = 0; i < F; ++i) o[i] = tmp[i];
        break;
      case VECTOR_ST_DEV: {
        double s = 0, q = 0;
        for (int i = 0; i < F; ++i) s += a[i];
        for (int i = 0; i < F; ++i) q += a[i] * a[i];
        const double mean = s / F;
        *o = std::sqrt(q / F - mean * mean);
        break;
      }
      case MATRIX_ST_DEV: {
        double s = 0, q = 0;
        for (int i = 0; i < FF; ++i) s += a[i];
        for (int i = 0; i < FF; ++i) q += a[i] * a[i];
        const double mean = s / FF;
        *o = std::sqrt(q / FF - mean * mean);
        break;
      }
      case SCALAR_CONST_SET: *o = in.d0; break;
      case VECTOR_CONST_SET: o[in.i0] = in.d1; break;
      case MATRIX_CONST_SET: o[in.i0 * F + in.i1] = in.d2; break;
      case SCALAR_UNIFORM_SET: *o = Uniform(rng, in.d0, in.d1); break;
      case VECTOR_UNIFORM_SET: for (int i = 0; i < F; ++i) o[i] = Uniform(rng, in.d0, in.d1); break;
      case MATRIX_UNIFORM_SET: for (int i = 0; i < FF; ++i) o[i] = Uniform(rng, in.d0, in.d1); break;
      case SCALAR_GAUSSIAN_SET: *o = Gaussian(rng, in.d0, in.d1); break;
      case VECTOR_GAUSSIAN_SET: for (int i = 0; i < F; ++i) o[i] = Gaussian(rng, in.d0, in.d1); break;
      case MATRIX_GAUSSIAN_SET: for (int i = 0; i < FF; ++i) o[i] = Gaussian(rng, in.d0, in.d1); break;
      default: break;  // Compile rejects every other op
    }
  }
}

Registers Snapshot(const CompiledProgram& p, const double* mem) {
  const Shape& s = p.shape();
  Registers r;
  r.scalars.assign(mem, mem + s.scalars);
  for (int v = 0; v < s.vectors; ++v) {
    const double* x = mem + p.vector_offset(v);
    r.vectors.emplace_back(x, x + s.features);
  }
  for (int m = 0; m < s.matrices; ++m) {
    const double* x = mem + p.matrix_offset(m);
    std::vector<std::vector<double>> rows;
    for (int i = 0; i < s.features; ++i) rows.emplace_back(x + i * s.features, x + (i + 1) * s.features);
    r.matrices.push_back(std::move(rows));
  }
  return r;
}

// One wide copy when F is a constant: the next instruction's wide load of v0 is then
// forwarded from one store instead of stalling on four narrow ones.
template <int kF>
inline void CopyFeatures(const double* x, double* v0, int F) {
  if constexpr (kF > 0) {
    std::memcpy(v0, x, kF * sizeof(double));
  } else {
    std::copy(x, x + F, v0);
  }
}

template <int kF, bool kRecord>
TaskResult Run(const CompiledProgram& p, const Task& task, const RunOptions& opt) {
  const int F = p.shape().features;
  std::vector<double> memory(p.memory_size() + F * F, 0.0);
  double* mem = memory.data();
  double* tmp = mem + p.memory_size();  // scratch for products that may alias their output
  double* const v0 = mem + p.vector_offset(kFeaturesVector);
  double& s0 = mem[kLabelScalar];
  double& s1 = mem[kPredictionScalar];
  Rng rng(ExecutorSeed(task.seed));
  const bool classification = task.kind == ProgramTaskSpec::BINARY_CLASSIFICATION;
  const TraceFn* trace = opt.trace;
  const auto& setup = p.component(kSetup);
  const auto& predict = p.component(kPredict);
  const auto& learn = p.component(kLearn);

  Carry carry;
  const int32_t v0_off = p.vector_offset(kFeaturesVector);
  Execute<kF>(setup, mem, tmp, rng, F, carry);
  if (kRecord && trace) (*trace)("after_setup", Snapshot(p, mem));
  TaskResult result;
  double best = 0;
  const int n_train = task.num_train(), n_valid = task.num_valid();
  // Locals, not the returned struct or the options: kept in machine registers in the hot loop.
  int64_t reached = 0;
  const double max_abs_error = opt.max_abs_error;
  for (int epoch = 0; epoch < opt.epochs; ++epoch) {
    const bool first = epoch == 0;
    for (int i = 0; i < n_train; ++i) {
      const double* x = task.train_x.data() + static_cast<size_t>(i) * F;
      const double y = task.train_y[i];
      CopyFeatures<kF>(x, v0, F);
      s0 = 0;
      carry.Forget(v0_off);
      carry.Forget(kLabelScalar);
      Execute<kF>(predict, mem, tmp, rng, F, carry);
      if (classification) {
        s1 = Sigmoid(s1);
        carry.Forget(kPredictionScalar);
      }
      if (first) {
        ++reached;
        if (kRecord) {
          if (opt.outputs) opt.outputs->push_back(s1);
          if (trace && i < 3) (*trace)(absl::StrCat("after_predict_train_", i), Snapshot(p, mem));
        }
      }
      const double err = std::fabs(y - s1);
      if (std::isnan(err) || err > max_abs_error) {
        result.stopped_early = true;
        result.fitness = first ? 0 : best;
        result.examples_reached = reached;
        return result;
      }
      // v0 still holds x: no operation writes v0.
      s0 = y;
      carry.Forget(kLabelScalar);
      Execute<kF>(learn, mem, tmp, rng, F, carry);
      if (kRecord && first && trace && i < 3) (*trace)(absl::StrCat("after_learn_train_", i), Snapshot(p, mem));
    }
    double loss = 0;
    bool bad = false;
    for (int i = 0; i < n_valid; ++i) {
      const double* x = task.valid_x.data() + static_cast<size_t>(i) * F;
      const double y = task.valid_y[i];
      CopyFeatures<kF>(x, v0, F);
      s0 = 0;
      carry.Forget(v0_off);
      carry.Forget(kLabelScalar);
      Execute<kF>(predict, mem, tmp, rng, F, carry);
      const double pred = s1;
      if (first) {
        ++reached;
        if (kRecord) {
          if (opt.outputs) opt.outputs->push_back(pred);
          if (trace && i < 3) (*trace)(absl::StrCat("after_predict_valid_", i), Snapshot(p, mem));
        }
      }
      if (!std::isfinite(pred)) {
        bad = true;
        break;
      }
      double e;
      if (classification) {
        e = ((y > 0.5) == (Sigmoid(pred) > 0.5)) ? 0.0 : 1.0;
        loss += e;
      } else {
        e = y - pred;
        loss += e * e;
      }
      if (std::isnan(e) || std::fabs(e) > max_abs_error) {
        bad = true;
        break;
      }
    }
    double fitness = 0;
    if (!bad && n_valid > 0) {
      fitness = classification ? 1.0 - loss / n_valid : 1.0 - (2.0 / M_PI) * std::atan(std::sqrt(loss / n_valid));
    }
    if (bad) result.stopped_early = true;
    best = std::max(best, fitness);
  }
  result.fitness = best;
  result.examples_reached = reached;
  return result;
}

}  // namespace

Task GenerateTask(ProgramTaskSpec::Kind kind, uint64_t seed, int features, int num_train, int num_valid) {
  Task t;
  t.kind = kind;
  t.seed = seed;
  t.features = features;
  const int F = features;
  Rng r(seed);
  std::vector<double> w, W, u;
  if (kind == ProgramTaskSpec::SCALAR_LINEAR_REGRESSION) {
    for (int i = 0; i < F; ++i) w.push_back(Gaussian(r, 0, 1));
  } else {
    for (int i = 0; i < F * F; ++i) W.push_back(Gaussian(r, 0, 1));
    for (int i = 0; i < F; ++i) u.push_back(Gaussian(r, 0, 1));
  }
  auto label = [&](const double* x) {
    if (kind == ProgramTaskSpec::SCALAR_LINEAR_REGRESSION) {
      double y = 0;
      for (int i = 0; i < F; ++i) y += w[i] * x[i];
      return y;
    }
    double y = 0;
    for (int k = 0; k < F; ++k) {
      double h = 0;
      for (int i = 0; i < F; ++i) h += W[k * F + i] * x[i];
      y += u[k] * std::max(0.0, h);
    }
    if (kind == ProgramTaskSpec::BINARY_CLASSIFICATION) return y > 0 ? 1.0 : 0.0;
    return y;
  };
  auto fill = [&](int n, std::vector<double>* xs, std::vector<double>* ys) {
    xs->resize(static_cast<size_t>(n) * F);
    for (auto& v : *xs) v = Gaussian(r, 0, 1);
    ys->resize(n);
    for (int i = 0; i < n; ++i) (*ys)[i] = label(xs->data() + static_cast<size_t>(i) * F);
  };
  fill(num_train, &t.train_x, &t.train_y);
  fill(num_valid, &t.valid_x, &t.valid_y);
  return t;
}

absl::StatusOr<CompiledProgram> CompiledProgram::Compile(const Program& program, const Shape& shape) {
  if (shape.features < 1 || shape.features > 32) return absl::InvalidArgumentError("feature_size must be 1..32");
  CompiledProgram p;
  p.shape_ = shape;
  p.memory_size_ = shape.scalars + shape.vectors * shape.features + shape.matrices * shape.features * shape.features;
  for (int c = 0; c < 3; ++c) {
    const auto& comp = ComponentOf(program, c);
    for (int i = 0; i < comp.size(); ++i) {
      const ProgramInstruction& ins = comp.Get(i);
      absl::Status s = ValidateInstruction(ins, shape, absl::StrCat("program.", kComponentNames[c], "[", i, "]"));
      if (!s.ok()) return s;
      const OpInfo& info = Info(ins.op());
      auto offset = [&](Reg r, int a) {
        return r == Reg::kScalar ? p.scalar_offset(a) : r == Reg::kVector ? p.vector_offset(a) : r == Reg::kMatrix ? p.matrix_offset(a) : 0;
      };
      Instr in;
      in.op = ins.op();
      in.a = offset(info.in1, ins.in1());
      in.b = offset(info.in2, ins.in2());
      in.o = offset(info.out, ins.out());
      switch (info.data) {
        case Data::kConst: in.d0 = ins.data(); break;
        case Data::kVectorIndex: in.i0 = IndexOf(ins.f0(), shape.features); in.d1 = ins.f1(); break;
        case Data::kMatrixIndex:
          in.i0 = IndexOf(ins.f0(), shape.features);
          in.i1 = IndexOf(ins.f1(), shape.features);
          in.d2 = ins.f2();
          break;
        case Data::kGaussian: case Data::kUniform: in.d0 = ins.f0(); in.d1 = ins.f1(); break;
        case Data::kNone: break;
      }
      if (ins.op() != NO_OP) p.components_[c].push_back(in);
    }
  }
  return p;
}

TaskResult RunTask(const CompiledProgram& program, const Task& task, const RunOptions& options) {
  const bool record = options.outputs != nullptr || options.trace != nullptr;
  switch (options.unspecialised ? 0 : program.shape().features) {
    case 4: return record ? Run<4, true>(program, task, options) : Run<4, false>(program, task, options);
    case 8: return record ? Run<8, true>(program, task, options) : Run<8, false>(program, task, options);
    default: return record ? Run<0, true>(program, task, options) : Run<0, false>(program, task, options);
  }
}

}  // namespace programs
}  // namespace fecsearch
