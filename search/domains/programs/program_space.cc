#include "search/domains/programs/program_space.h"

#include <algorithm>
#include <cmath>

#include "google/protobuf/util/message_differencer.h"

namespace fecsearch {
namespace programs {
namespace {

constexpr double kSignFlipProbability = 0.1;  // AutoML-Zero's kSignFlipProb

double Gauss(Rng& rng) {
  const double u1 = rng.Real(), u2 = rng.Real();
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(6.283185307179586 * u2);
}
double UniformIn(Rng& rng, double lo, double hi) { return lo + (hi - lo) * rng.Real(); }
// AutoML-Zero's MutateActivationLogScale: v -> sign(v) exp(log|v| + N(0, 1)).
double LogScale(double v, Rng& rng) {
  const double g = Gauss(rng);
  return v > 0 ? std::exp(std::log(v) + g) : -std::exp(std::log(-v) + g);
}
double LogScaleOrFlip(double v, Rng& rng) { return rng.Bernoulli(kSignFlipProbability) ? -v : LogScale(v, rng); }

}  // namespace

ProgramInstruction ProgramSpace::RandomInstruction(ProgramOp op, Rng& rng) const {
  ProgramInstruction ins;
  ins.set_op(op);
  const OpInfo& info = Info(op);
  const Shape& sh = s_.shape;
  auto in_addr = [&](Reg r) { return rng.Uniform(sh.count(r)); };
  auto out_addr = [&](Reg r) { return FirstOut(r) + rng.Uniform(sh.count(r) - FirstOut(r)); };
  if (info.in1 != Reg::kNone) ins.set_in1(in_addr(info.in1));
  if (info.in2 != Reg::kNone) ins.set_in2(in_addr(info.in2));
  if (info.out != Reg::kNone) ins.set_out(out_addr(info.out));
  switch (info.data) {
    case Data::kConst: ins.set_data(UniformIn(rng, -1, 1)); break;
    case Data::kVectorIndex: ins.set_f0(rng.Real()); ins.set_f1(UniformIn(rng, -1, 1)); break;
    case Data::kMatrixIndex: ins.set_f0(rng.Real()); ins.set_f1(rng.Real()); ins.set_f2(UniformIn(rng, -1, 1)); break;
    case Data::kGaussian: ins.set_f0(UniformIn(rng, -1, 1)); ins.set_f1(rng.Real()); break;
    case Data::kUniform: ins.set_f0(UniformIn(rng, -1, 1)); ins.set_f1(UniformIn(rng, -1, 1)); break;
    case Data::kNone: break;
  }
  return ins;
}

void ProgramSpace::AlterParam(ProgramInstruction* ins, Rng& rng) const {
  const OpInfo& info = Info(ins->op());
  const Shape& sh = s_.shape;
  auto in_addr = [&](Reg r) { return rng.Uniform(sh.count(r)); };
  auto out_addr = [&](Reg r) { return FirstOut(r) + rng.Uniform(sh.count(r) - FirstOut(r)); };
  if (ins->op() == NO_OP) return;
  if (info.data != Data::kNone) {
    if (rng.Uniform(2) == 0) {
      ins->set_out(out_addr(info.out));
      return;
    }
    switch (info.data) {
      case Data::kConst: ins->set_data(LogScaleOrFlip(ins->data(), rng)); break;
      case Data::kVectorIndex:
        if (rng.Uniform(2) == 0) ins->set_f0(rng.Real()); else ins->set_f1(LogScaleOrFlip(ins->f1(), rng));
        break;
      case Data::kMatrixIndex:
        switch (rng.Uniform(3)) {
          case 0: ins->set_f0(rng.Real()); break;
          case 1: ins->set_f1(rng.Real()); break;
          default: ins->set_f2(LogScaleOrFlip(ins->f2(), rng)); break;
        }
        break;
      case Data::kGaussian:
        if (rng.Uniform(2) == 0) ins->set_f0(LogScaleOrFlip(ins->f0(), rng)); else ins->set_f1(LogScale(ins->f1(), rng));
        break;
      case Data::kUniform: {
        double lo = ins->f0(), hi = ins->f1();
        if (rng.Uniform(2) == 0) lo = LogScaleOrFlip(lo, rng); else hi = LogScaleOrFlip(hi, rng);
        ins->set_f0(std::min(lo, hi));
        ins->set_f1(std::max(lo, hi));
        break;
      }
      case Data::kNone: break;
    }
    return;
  }
  const bool binary = info.in2 != Reg::kNone;
  switch (rng.Uniform(binary ? 3 : 2)) {
    case 0: ins->set_in1(in_addr(info.in1)); break;
    case 1:
      if (binary) ins->set_in2(in_addr(info.in2)); else ins->set_out(out_addr(info.out));
      break;
    default: ins->set_out(out_addr(info.out)); break;
  }
}

Candidate ProgramSpace::Random(Rng& rng) const {
  Candidate c;
  Program* p = c.mutable_program();
  for (int k = 0; k < 3; ++k) {
    if (s_.ops[k].empty()) continue;
    auto* comp = MutableComponentOf(p, k);
    for (int i = 0; i < s_.size[k]; ++i) *comp->Add() = RandomInstruction(s_.ops[k][rng.Uniform(s_.ops[k].size())], rng);
  }
  return c;
}

void ProgramSpace::MutateOnce(Program* p, Rng& rng) const {
  // The mutation type by weight, then the component uniformly among those with operations.
  double total = 0;
  for (double w : s_.weights) total += w;
  double x = rng.Real() * total;
  int type = 0;
  while (type < 4 && x >= s_.weights[type]) x -= s_.weights[type++];
  std::vector<int> comps;
  for (int k = 0; k < 3; ++k) if (!s_.ops[k].empty()) comps.push_back(k);
  if (comps.empty()) return;
  const int k = comps[rng.Uniform(comps.size())];
  auto* comp = MutableComponentOf(p, k);
  const auto& ops = s_.ops[k];
  switch (type) {
    case 0:  // alter one parameter
      if (!comp->empty()) AlterParam(comp->Mutable(rng.Uniform(comp->size())), rng);
      break;
    case 1:  // randomize one instruction
      if (!comp->empty()) *comp->Mutable(rng.Uniform(comp->size())) = RandomInstruction(ops[rng.Uniform(ops.size())], rng);
      break;
    case 2:  // randomize the component function (its size unchanged)
      for (int i = 0; i < comp->size(); ++i) *comp->Mutable(i) = RandomInstruction(ops[rng.Uniform(ops.size())], rng);
      break;
    case 3:  // insert
      if (comp->size() < s_.size_max[k]) {
        const int at = rng.Uniform(comp->size() + 1);
        *comp->Add() = RandomInstruction(ops[rng.Uniform(ops.size())], rng);
        for (int i = comp->size() - 1; i > at; --i) comp->SwapElements(i, i - 1);
      }
      break;
    default:  // remove
      if (comp->size() > s_.size_min[k]) {
        const int at = rng.Uniform(comp->size());
        for (int i = at; i + 1 < comp->size(); ++i) comp->SwapElements(i, i + 1);
        comp->RemoveLast();
      }
      break;
  }
}

Candidate ProgramSpace::Mutate(const Candidate& parent, Rng& rng) const {
  Candidate child = parent;
  for (int attempt = 0; attempt < 16; ++attempt) {
    MutateOnce(child.mutable_program(), rng);
    if (!google::protobuf::util::MessageDifferencer::Equals(child.program(), parent.program())) return child;
  }
  return child;
}

Candidate ProgramSpace::Crossover(const Candidate& a, const Candidate& b, Rng& rng) const {
  Candidate c;
  for (int k = 0; k < 3; ++k) {
    const Candidate& from = rng.Uniform(2) == 0 ? a : b;
    *MutableComponentOf(c.mutable_program(), k) = ComponentOf(from.program(), k);
  }
  return c;
}

double ProgramSpace::Size() const {
  // log2 of the distinct programs, counting an instruction's addresses (data count once).
  double log2 = 0;
  for (int k = 0; k < 3; ++k) {
    double per = 0;
    for (ProgramOp op : s_.ops[k]) {
      const OpInfo& info = Info(op);
      double n = 1;
      if (info.in1 != Reg::kNone) n *= s_.shape.count(info.in1);
      if (info.in2 != Reg::kNone) n *= s_.shape.count(info.in2);
      if (info.out != Reg::kNone) n *= std::max(1, s_.shape.count(info.out) - FirstOut(info.out));
      per += n;
    }
    if (per > 0) log2 += s_.size[k] * std::log2(per);
  }
  return std::exp2(std::min(62.0, log2));
}

}  // namespace programs
}  // namespace fecsearch
