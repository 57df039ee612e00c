// The instruction set of the programs domain (docs/PROGRAMS.md section 2): what each
// operation reads and writes, its data, and programs as code text.
#ifndef FECSEARCH_SEARCH_DOMAINS_PROGRAMS_PROGRAM_H_
#define FECSEARCH_SEARCH_DOMAINS_PROGRAMS_PROGRAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "protos/program.pb.h"

namespace fecsearch {
namespace programs {

enum class Reg : uint8_t { kNone, kScalar, kVector, kMatrix };
enum class Data : uint8_t {
  kNone,
  kConst,         // data
  kVectorIndex,   // v[index(f0)] = f1
  kMatrixIndex,   // m[index(f0)][index(f1)] = f2
  kGaussian,      // gaussian(f0, f1)
  kUniform,       // uniform(f0, f1)
};

struct OpInfo {
  ProgramOp op;
  const char* name;  // "SCALAR_SUM"
  Reg in1, in2, out;
  Data data;
};

constexpr int kNumOps = 65;
// The table entry of `op` (every ProgramOp has one).
const OpInfo& Info(ProgramOp op);
inline bool IsRandom(ProgramOp op) {
  const Data d = Info(op).data;
  return d == Data::kGaussian || d == Data::kUniform;
}

// Fixed registers.
constexpr int kLabelScalar = 0;
constexpr int kPredictionScalar = 1;
constexpr int kFeaturesVector = 0;
// The first writable register of each type.
inline int FirstOut(Reg r) { return r == Reg::kScalar ? 1 : r == Reg::kVector ? 1 : 0; }

struct Shape {
  int features = 4;
  int scalars = 4, vectors = 3, matrices = 1;
  int count(Reg r) const { return r == Reg::kScalar ? scalars : r == Reg::kVector ? vectors : r == Reg::kMatrix ? matrices : 0; }
};

enum Component { kSetup = 0, kPredict = 1, kLearn = 2 };
extern const char* const kComponentNames[3];  // "setup", "predict", "learn"
const google::protobuf::RepeatedPtrField<ProgramInstruction>& ComponentOf(const Program& p, int c);
google::protobuf::RepeatedPtrField<ProgramInstruction>* MutableComponentOf(Program* p, int c);

// OK, or INVALID_ARGUMENT naming the instruction ("program.learn[3].out: s0 is not writable").
absl::Status ValidateInstruction(const ProgramInstruction& ins, const Shape& shape, const std::string& where);

// "s1 = dot(v1, v0)"; "v2[1] = 0.5" (the index as the shape resolves it).
std::string InstructionCode(const ProgramInstruction& ins, const Shape& shape);
// The whole program as three functions, one instruction a line.
std::string ProgramCode(const Program& program, const Shape& shape);

// index(f) = min(F - 1, floor(F * f)) for f in [0, 1) (docs/PROGRAMS.md section 2).
int IndexOf(double f, int features);

}  // namespace programs
}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_DOMAINS_PROGRAMS_PROGRAM_H_
