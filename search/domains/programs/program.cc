#include "search/domains/programs/program.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fecsearch {
namespace programs {
namespace {

using R = Reg;
using D = Data;
constexpr R S = R::kScalar, V = R::kVector, M = R::kMatrix, N = R::kNone;

const OpInfo kOps[kNumOps] = {
    {NO_OP, "NO_OP", N, N, N, D::kNone},
    {SCALAR_SUM, "SCALAR_SUM", S, S, S, D::kNone},
    {SCALAR_DIFF, "SCALAR_DIFF", S, S, S, D::kNone},
    {SCALAR_PRODUCT, "SCALAR_PRODUCT", S, S, S, D::kNone},
    {SCALAR_DIVISION, "SCALAR_DIVISION", S, S, S, D::kNone},
    {SCALAR_ABS, "SCALAR_ABS", S, N, S, D::kNone},
    {SCALAR_RECIPROCAL, "SCALAR_RECIPROCAL", S, N, S, D::kNone},
    {SCALAR_SIN, "SCALAR_SIN", S, N, S, D::kNone},
    {SCALAR_COS, "SCALAR_COS", S, N, S, D::kNone},
    {SCALAR_TAN, "SCALAR_TAN", S, N, S, D::kNone},
    {SCALAR_ARCSIN, "SCALAR_ARCSIN", S, N, S, D::kNone},
    {SCALAR_ARCCOS, "SCALAR_ARCCOS", S, N, S, D::kNone},
    {SCALAR_ARCTAN, "SCALAR_ARCTAN", S, N, S, D::kNone},
    {SCALAR_EXP, "SCALAR_EXP", S, N, S, D::kNone},
    {SCALAR_LOG, "SCALAR_LOG", S, N, S, D::kNone},
    {SCALAR_HEAVISIDE, "SCALAR_HEAVISIDE", S, N, S, D::kNone},
    {VECTOR_HEAVISIDE, "VECTOR_HEAVISIDE", V, N, V, D::kNone},
    {MATRIX_HEAVISIDE, "MATRIX_HEAVISIDE", M, N, M, D::kNone},
    {SCALAR_VECTOR_PRODUCT, "SCALAR_VECTOR_PRODUCT", S, V, V, D::kNone},
    {SCALAR_BROADCAST, "SCALAR_BROADCAST", S, N, V, D::kNone},
    {VECTOR_RECIPROCAL, "VECTOR_RECIPROCAL", V, N, V, D::kNone},
    {VECTOR_NORM, "VECTOR_NORM", V, N, S, D::kNone},
    {VECTOR_ABS, "VECTOR_ABS", V, N, V, D::kNone},
    {VECTOR_SUM, "VECTOR_SUM", V, V, V, D::kNone},
    {VECTOR_DIFF, "VECTOR_DIFF", V, V, V, D::kNone},
    {VECTOR_PRODUCT, "VECTOR_PRODUCT", V, V, V, D::kNone},
    {VECTOR_DIVISION, "VECTOR_DIVISION", V, V, V, D::kNone},
    {VECTOR_INNER_PRODUCT, "VECTOR_INNER_PRODUCT", V, V, S, D::kNone},
    {VECTOR_OUTER_PRODUCT, "VECTOR_OUTER_PRODUCT", V, V, M, D::kNone},
    {SCALAR_MATRIX_PRODUCT, "SCALAR_MATRIX_PRODUCT", S, M, M, D::kNone},
    {MATRIX_RECIPROCAL, "MATRIX_RECIPROCAL", M, N, M, D::kNone},
    {MATRIX_VECTOR_PRODUCT, "MATRIX_VECTOR_PRODUCT", M, V, V, D::kNone},
    {VECTOR_COLUMN_BROADCAST, "VECTOR_COLUMN_BROADCAST", V, N, M, D::kNone},
    {VECTOR_ROW_BROADCAST, "VECTOR_ROW_BROADCAST", V, N, M, D::kNone},
    {MATRIX_NORM, "MATRIX_NORM", M, N, S, D::kNone},
    {MATRIX_COLUMN_NORM, "MATRIX_COLUMN_NORM", M, N, V, D::kNone},
    {MATRIX_ROW_NORM, "MATRIX_ROW_NORM", M, N, V, D::kNone},
    {MATRIX_TRANSPOSE, "MATRIX_TRANSPOSE", M, N, M, D::kNone},
    {MATRIX_ABS, "MATRIX_ABS", M, N, M, D::kNone},
    {MATRIX_SUM, "MATRIX_SUM", M, M, M, D::kNone},
    {MATRIX_DIFF, "MATRIX_DIFF", M, M, M, D::kNone},
    {MATRIX_PRODUCT, "MATRIX_PRODUCT", M, M, M, D::kNone},
    {MATRIX_DIVISION, "MATRIX_DIVISION", M, M, M, D::kNone},
    {MATRIX_MATRIX_PRODUCT, "MATRIX_MATRIX_PRODUCT", M, M, M, D::kNone},
    {SCALAR_MIN, "SCALAR_MIN", S, S, S, D::kNone},
    {VECTOR_MIN, "VECTOR_MIN", V, V, V, D::kNone},
    {MATRIX_MIN, "MATRIX_MIN", M, M, M, D::kNone},
    {SCALAR_MAX, "SCALAR_MAX", S, S, S, D::kNone},
    {VECTOR_MAX, "VECTOR_MAX", V, V, V, D::kNone},
    {MATRIX_MAX, "MATRIX_MAX", M, M, M, D::kNone},
    {VECTOR_MEAN, "VECTOR_MEAN", V, N, S, D::kNone},
    {MATRIX_MEAN, "MATRIX_MEAN", M, N, S, D::kNone},
    {MATRIX_ROW_MEAN, "MATRIX_ROW_MEAN", M, N, V, D::kNone},
    {MATRIX_ROW_ST_DEV, "MATRIX_ROW_ST_DEV", M, N, V, D::kNone},
    {VECTOR_ST_DEV, "VECTOR_ST_DEV", V, N, S, D::kNone},
    {MATRIX_ST_DEV, "MATRIX_ST_DEV", M, N, S, D::kNone},
    {SCALAR_CONST_SET, "SCALAR_CONST_SET", N, N, S, D::kConst},
    {VECTOR_CONST_SET, "VECTOR_CONST_SET", N, N, V, D::kVectorIndex},
    {MATRIX_CONST_SET, "MATRIX_CONST_SET", N, N, M, D::kMatrixIndex},
    {SCALAR_UNIFORM_SET, "SCALAR_UNIFORM_SET", N, N, S, D::kUniform},
    {VECTOR_UNIFORM_SET, "VECTOR_UNIFORM_SET", N, N, V, D::kUniform},
    {MATRIX_UNIFORM_SET, "MATRIX_UNIFORM_SET", N, N, M, D::kUniform},
    {SCALAR_GAUSSIAN_SET, "SCALAR_GAUSSIAN_SET", N, N, S, D::kGaussian},
    {VECTOR_GAUSSIAN_SET, "VECTOR_GAUSSIAN_SET", N, N, V, D::kGaussian},
    {MATRIX_GAUSSIAN_SET, "MATRIX_GAUSSIAN_SET", N, N, M, D::kGaussian},
};

const char* Letter(Reg r) { return r == Reg::kScalar ? "s" : r == Reg::kVector ? "v" : "m"; }

std::string Num(double v) { return absl::StrFormat("%.6g", v); }

}  // namespace

const char* const kComponentNames[3] = {"setup", "predict", "learn"};

const OpInfo& Info(ProgramOp op) {
  const int i = static_cast<int>(op);
  return kOps[i >= 0 && i < kNumOps ? i : 0];
}

int IndexOf(double f, int features) {
  int i = static_cast<int>(std::floor(static_cast<double>(features) * f));
  if (i < 0) i = 0;
  if (i > features - 1) i = features - 1;
  return i;
}

const google::protobuf::RepeatedPtrField<ProgramInstruction>& ComponentOf(const Program& p, int c) {
  return c == kSetup ? p.setup() : c == kPredict ? p.predict() : p.learn();
}
google::protobuf::RepeatedPtrField<ProgramInstruction>* MutableComponentOf(Program* p, int c) {
  return c == kSetup ? p->mutable_setup() : c == kPredict ? p->mutable_predict() : p->mutable_learn();
}

absl::Status ValidateInstruction(const ProgramInstruction& ins, const Shape& shape, const std::string& where) {
  if (!ProgramOp_IsValid(ins.op())) return absl::InvalidArgumentError(absl::StrCat(where, ".op: ", ins.op(), " is not an operation"));
  const OpInfo& info = Info(ins.op());
  auto check = [&](const char* field, int value, Reg r, bool output) -> absl::Status {
    if (r == Reg::kNone) return absl::OkStatus();
    const int lo = output ? FirstOut(r) : 0, hi = shape.count(r);
    if (value < lo || value >= hi) {
      if (hi == 0) return absl::InvalidArgumentError(absl::StrCat(where, ".", field, ": ", info.name, " needs a matrix register and the domain has none"));
      if (output && value < lo) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".", field, ": ", Letter(r), value, " is not writable (",
                                                       r == Reg::kScalar ? "s0 holds the label" : "v0 holds the features", ")"));
      }
      return absl::InvalidArgumentError(absl::StrCat(where, ".", field, ": ", Letter(r), value, " is outside ", Letter(r), lo, "..",
                                                     Letter(r), hi - 1));
    }
    return absl::OkStatus();
  };
  absl::Status s = check("in1", ins.in1(), info.in1, false);
  if (s.ok()) s = check("in2", ins.in2(), info.in2, false);
  if (s.ok()) s = check("out", ins.out(), info.out, true);
  if (!s.ok()) return s;
  for (double d : {ins.data(), ins.f0(), ins.f1(), ins.f2()}) {
    if (!std::isfinite(d)) return absl::InvalidArgumentError(absl::StrCat(where, ": data must be finite"));
  }
  if (info.data == Data::kVectorIndex || info.data == Data::kMatrixIndex) {
    if (ins.f0() < 0 || ins.f0() >= 1 || (info.data == Data::kMatrixIndex && (ins.f1() < 0 || ins.f1() >= 1))) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": index fractions f0", info.data == Data::kMatrixIndex ? ", f1" : "",
                                                     " must lie in [0, 1)"));
    }
  }
  return absl::OkStatus();
}

std::string InstructionCode(const ProgramInstruction& ins, const Shape& shape) {
  const OpInfo& info = Info(ins.op());
  auto reg = [](Reg r, int a) { return absl::StrCat(Letter(r), a); };
  const std::string a = reg(info.in1, ins.in1()), b = reg(info.in2, ins.in2()), o = reg(info.out, ins.out());
  const int F = shape.features;
  switch (ins.op()) {
    case NO_OP: return "pass";
    case SCALAR_SUM: case VECTOR_SUM: case MATRIX_SUM: return absl::StrCat(o, " = ", a, " + ", b);
    case SCALAR_DIFF: case VECTOR_DIFF: case MATRIX_DIFF: return absl::StrCat(o, " = ", a, " - ", b);
    case SCALAR_PRODUCT: case VECTOR_PRODUCT: case MATRIX_PRODUCT: case SCALAR_VECTOR_PRODUCT: case SCALAR_MATRIX_PRODUCT:
      return absl::StrCat(o, " = ", a, " * ", b);
    case SCALAR_DIVISION: case VECTOR_DIVISION: case MATRIX_DIVISION: return absl::StrCat(o, " = ", a, " / ", b);
    case SCALAR_ABS: case VECTOR_ABS: case MATRIX_ABS: return absl::StrCat(o, " = abs(", a, ")");
    case SCALAR_RECIPROCAL: case VECTOR_RECIPROCAL: case MATRIX_RECIPROCAL: return absl::StrCat(o, " = 1 / ", a);
    case SCALAR_SIN: return absl::StrCat(o, " = sin(", a, ")");
    case SCALAR_COS: return absl::StrCat(o, " = cos(", a, ")");
    case SCALAR_TAN: return absl::StrCat(o, " = tan(", a, ")");
    case SCALAR_ARCSIN: return absl::StrCat(o, " = arcsin(", a, ")");
    case SCALAR_ARCCOS: return absl::StrCat(o, " = arccos(", a, ")");
    case SCALAR_ARCTAN: return absl::StrCat(o, " = arctan(", a, ")");
    case SCALAR_EXP: return absl::StrCat(o, " = exp(", a, ")");
    case SCALAR_LOG: return absl::StrCat(o, " = log(", a, ")");
    case SCALAR_HEAVISIDE: case VECTOR_HEAVISIDE: case MATRIX_HEAVISIDE: return absl::StrCat(o, " = heaviside(", a, ")");
    case SCALAR_BROADCAST: return absl::StrCat(o, " = bcast(", a, ")");
    case VECTOR_NORM: case MATRIX_NORM: return absl::StrCat(o, " = norm(", a, ")");
    case VECTOR_INNER_PRODUCT: return absl::StrCat(o, " = dot(", a, ", ", b, ")");
    case VECTOR_OUTER_PRODUCT: return absl::StrCat(o, " = outer(", a, ", ", b, ")");
    case MATRIX_VECTOR_PRODUCT: return absl::StrCat(o, " = dot(", a, ", ", b, ")");
    case VECTOR_COLUMN_BROADCAST: return absl::StrCat(o, " = bcast(", a, ", axis=0)");
    case VECTOR_ROW_BROADCAST: return absl::StrCat(o, " = bcast(", a, ", axis=1)");
    case MATRIX_COLUMN_NORM: return absl::StrCat(o, " = norm(", a, ", axis=0)");
    case MATRIX_ROW_NORM: return absl::StrCat(o, " = norm(", a, ", axis=1)");
    case MATRIX_TRANSPOSE: return absl::StrCat(o, " = transpose(", a, ")");
    case MATRIX_MATRIX_PRODUCT: return absl::StrCat(o, " = matmul(", a, ", ", b, ")");
    case SCALAR_MIN: case VECTOR_MIN: case MATRIX_MIN: return absl::StrCat(o, " = minimum(", a, ", ", b, ")");
    case SCALAR_MAX: case VECTOR_MAX: case MATRIX_MAX: return absl::StrCat(o, " = maximum(", a, ", ", b, ")");
    case VECTOR_MEAN: case MATRIX_MEAN: return absl::StrCat(o, " = mean(", a, ")");
    case MATRIX_ROW_MEAN: return absl::StrCat(o, " = mean(", a, ", axis=1)");
    case MATRIX_ROW_ST_DEV: return absl::StrCat(o, " = std(", a, ", axis=1)");
    case VECTOR_ST_DEV: case MATRIX_ST_DEV: return absl::StrCat(o, " = std(", a, ")");
    case SCALAR_CONST_SET: return absl::StrCat(o, " = ", Num(ins.data()));
    case VECTOR_CONST_SET: return absl::StrCat(o, "[", IndexOf(ins.f0(), F), "] = ", Num(ins.f1()));
    case MATRIX_CONST_SET:
      return absl::StrCat(o, "[", IndexOf(ins.f0(), F), ", ", IndexOf(ins.f1(), F), "] = ", Num(ins.f2()));
    case SCALAR_UNIFORM_SET: case VECTOR_UNIFORM_SET: case MATRIX_UNIFORM_SET:
      return absl::StrCat(o, " = uniform(", Num(ins.f0()), ", ", Num(ins.f1()), ")");
    case SCALAR_GAUSSIAN_SET: case VECTOR_GAUSSIAN_SET: case MATRIX_GAUSSIAN_SET:
      return absl::StrCat(o, " = gaussian(", Num(ins.f0()), ", ", Num(ins.f1()), ")");
    default: break;
  }
  return absl::StrCat("op ", ins.op());
}

std::string ProgramCode(const Program& program, const Shape& shape) {
  std::string out;
  static const char* const kHeads[3] = {"def Setup():", "def Predict():  # v0: features; prediction in s1",
                                        "def Learn():  # s0: label"};
  for (int c = 0; c < 3; ++c) {
    absl::StrAppend(&out, kHeads[c], "\n");
    const auto& comp = ComponentOf(program, c);
    if (comp.empty()) absl::StrAppend(&out, "  pass\n");
    for (const ProgramInstruction& ins : comp) absl::StrAppend(&out, "  ", InstructionCode(ins, shape), "\n");
  }
  return out;
}

}  // namespace programs
}  // namespace fecsearch
