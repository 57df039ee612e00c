#include "search/domains/programs/structural.h"

#include <algorithm>
#include <map>
#include <utility>

namespace fecsearch {
namespace programs {
namespace {

// One index space over all registers: scalars, then vectors, then matrices.
struct Space {
  const Shape& s;
  int Id(Reg r, int a) const {
    return r == Reg::kScalar ? a : r == Reg::kVector ? s.scalars + a : s.scalars + s.vectors + a;
  }
  int size() const { return s.scalars + s.vectors + s.matrices; }
};

bool PartialWrite(ProgramOp op) { return op == VECTOR_CONST_SET || op == MATRIX_CONST_SET; }

// Registers live before `comp` given those live after it; marks live instructions if `marks`.
std::vector<char> LiveIn(const google::protobuf::RepeatedPtrField<ProgramInstruction>& comp, std::vector<char> live,
                         const Space& sp, std::vector<bool>* marks) {
  if (marks) marks->assign(comp.size(), false);
  for (int i = comp.size() - 1; i >= 0; --i) {
    const ProgramInstruction& ins = comp.Get(i);
    const OpInfo& info = Info(ins.op());
    if (ins.op() == NO_OP || info.out == Reg::kNone) continue;
    const int out = sp.Id(info.out, ins.out());
    if (!live[out]) continue;
    if (marks) (*marks)[i] = true;
    if (!PartialWrite(ins.op())) live[out] = 0;
    if (info.in1 != Reg::kNone) live[sp.Id(info.in1, ins.in1())] = 1;
    if (info.in2 != Reg::kNone) live[sp.Id(info.in2, ins.in2())] = 1;
  }
  return live;
}

// The executor writes v0 and s0 at the entry of Predict and Learn: they carry nothing back.
void ClearInputs(std::vector<char>* live, const Space& sp) {
  (*live)[sp.Id(Reg::kScalar, kLabelScalar)] = 0;
  (*live)[sp.Id(Reg::kVector, kFeaturesVector)] = 0;
}

std::vector<char> Union(std::vector<char> a, const std::vector<char>& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] = a[i] || b[i];
  return a;
}

bool Commutative(ProgramOp op) {
  switch (op) {
    case SCALAR_SUM: case SCALAR_PRODUCT: case VECTOR_SUM: case VECTOR_PRODUCT: case MATRIX_SUM: case MATRIX_PRODUCT:
    case VECTOR_INNER_PRODUCT:
      return true;
    default: return false;
  }
}

}  // namespace

std::vector<std::vector<bool>> LiveInstructions(const Program& program, const Shape& shape) {
  const Space sp{shape};
  const int n = sp.size();
  std::vector<char> in_predict(n, 0), in_learn(n, 0);
  std::vector<char> prediction(n, 0);
  prediction[sp.Id(Reg::kScalar, kPredictionScalar)] = 1;
  // Fixpoint over Setup -> {Predict -> Learn}* -> Predict*.
  for (int iteration = 0; iteration < 4 * n + 8; ++iteration) {
    std::vector<char> after_predict = Union(Union(prediction, in_learn), in_predict);
    std::vector<char> p = LiveIn(program.predict(), after_predict, sp, nullptr);
    ClearInputs(&p, sp);
    std::vector<char> l = LiveIn(program.learn(), p, sp, nullptr);
    ClearInputs(&l, sp);
    if (p == in_predict && l == in_learn) break;
    in_predict = Union(in_predict, p);
    in_learn = Union(in_learn, l);
  }
  std::vector<std::vector<bool>> marks(3);
  LiveIn(program.setup(), in_predict, sp, &marks[kSetup]);
  LiveIn(program.predict(), Union(Union(prediction, in_learn), in_predict), sp, &marks[kPredict]);
  LiveIn(program.learn(), in_predict, sp, &marks[kLearn]);
  // Random-set instructions share the executor's generator: keep all of them if one is live.
  bool live_random = false;
  for (int c = 0; c < 3; ++c) {
    const auto& comp = ComponentOf(program, c);
    for (int i = 0; i < comp.size(); ++i) live_random = live_random || (marks[c][i] && IsRandom(comp.Get(i).op()));
  }
  if (live_random) {
    for (int c = 0; c < 3; ++c) {
      const auto& comp = ComponentOf(program, c);
      for (int i = 0; i < comp.size(); ++i) if (IsRandom(comp.Get(i).op())) marks[c][i] = true;
    }
  }
  return marks;
}

int CountLive(const Program& program, const Shape& shape) {
  int n = 0;
  for (const auto& comp : LiveInstructions(program, shape)) n += static_cast<int>(std::count(comp.begin(), comp.end(), true));
  return n;
}

Program StructuralForm(const Program& program, const Shape& shape) {
  const std::vector<std::vector<bool>> live = LiveInstructions(program, shape);
  std::map<std::pair<int, int>, int> names;  // (type, register) -> canonical register
  int next[4] = {0, 2, 1, 0};                 // by Reg: scalars after s0, s1; vectors after v0
  auto rename = [&](Reg r, int a) {
    if ((r == Reg::kScalar && a <= kPredictionScalar) || (r == Reg::kVector && a == kFeaturesVector)) return a;
    auto [it, added] = names.emplace(std::make_pair(static_cast<int>(r), a), 0);
    if (added) it->second = next[static_cast<int>(r)]++;
    return it->second;
  };
  Program out;
  for (int c = 0; c < 3; ++c) {
    const auto& comp = ComponentOf(program, c);
    auto* dst = MutableComponentOf(&out, c);
    for (int i = 0; i < comp.size(); ++i) {
      if (!live[c][i]) continue;
      const ProgramInstruction& src = comp.Get(i);
      const OpInfo& info = Info(src.op());
      ProgramInstruction ins;
      ins.set_op(src.op());
      if (info.in1 != Reg::kNone) ins.set_in1(rename(info.in1, src.in1()));
      if (info.in2 != Reg::kNone) ins.set_in2(rename(info.in2, src.in2()));
      if (info.out != Reg::kNone) ins.set_out(rename(info.out, src.out()));
      if (Commutative(src.op()) && ins.in2() < ins.in1()) {
        const int t = ins.in1();
        ins.set_in1(ins.in2());
        ins.set_in2(t);
      }
      switch (info.data) {
        case Data::kConst: ins.set_data(src.data()); break;
        case Data::kVectorIndex: ins.set_f0(IndexOf(src.f0(), shape.features)); ins.set_f1(src.f1()); break;
        case Data::kMatrixIndex:
          ins.set_f0(IndexOf(src.f0(), shape.features));
          ins.set_f1(IndexOf(src.f1(), shape.features));
          ins.set_f2(src.f2());
          break;
        case Data::kGaussian: case Data::kUniform: ins.set_f0(src.f0()); ins.set_f1(src.f1()); break;
        case Data::kNone: break;
      }
      *dst->Add() = ins;
    }
  }
  return out;
}

}  // namespace programs
}  // namespace fecsearch
