// Runs a program on a task as docs/PROGRAMS.md section 4 defines: Setup once, then for each
// training example Predict then Learn, then Predict on the validation examples; the
// squashed RMS error (regression) or accuracy (classification) as fitness. Tasks are
// generated from their seeds (section 6).
#ifndef FECSEARCH_SEARCH_DOMAINS_PROGRAMS_EXECUTOR_H_
#define FECSEARCH_SEARCH_DOMAINS_PROGRAMS_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "protos/program.pb.h"
#include "search/domains/programs/program.h"

namespace fecsearch {
namespace programs {

// One generated task: F features per example, row-major.
struct Task {
  ProgramTaskSpec::Kind kind = ProgramTaskSpec::SCALAR_LINEAR_REGRESSION;
  uint64_t seed = 0;
  int features = 4;
  std::vector<double> train_x, train_y, valid_x, valid_y;
  int num_train() const { return static_cast<int>(train_y.size()); }
  int num_valid() const { return static_cast<int>(valid_y.size()); }
};

// docs/PROGRAMS.md section 6.
Task GenerateTask(ProgramTaskSpec::Kind kind, uint64_t seed, int features, int num_train, int num_valid);

// A program decoded for execution: register addresses as offsets into one memory block.
class CompiledProgram {
 public:
  struct Instr {
    int32_t op = 0;
    int32_t a = 0, b = 0, o = 0;  // offsets of in1, in2, out
    int32_t i0 = 0, i1 = 0;       // resolved indices (const-set ops)
    double d0 = 0, d1 = 0, d2 = 0;
  };
  // Validates every instruction against `shape` (INVALID_ARGUMENT naming it).
  static absl::StatusOr<CompiledProgram> Compile(const Program& program, const Shape& shape);

  const Shape& shape() const { return shape_; }
  const std::vector<Instr>& component(int c) const { return components_[c]; }
  int memory_size() const { return memory_size_; }
  int scalar_offset(int r) const { return r; }
  int vector_offset(int r) const { return shape_.scalars + r * shape_.features; }
  int matrix_offset(int r) const { return shape_.scalars + shape_.vectors * shape_.features + r * shape_.features * shape_.features; }

 private:
  Shape shape_;
  std::vector<Instr> components_[3];
  int memory_size_ = 0;
};

// The register file at one point of an execution, for golden-trace tests.
struct Registers {
  std::vector<double> scalars;
  std::vector<std::vector<double>> vectors;
  std::vector<std::vector<std::vector<double>>> matrices;
};
// Called at "after_setup", "after_predict_train_<i>", "after_learn_train_<i>",
// "after_predict_valid_<i>" (i from 0, first epoch only).
using TraceFn = std::function<void(const std::string& point, const Registers& registers)>;

struct RunOptions {
  int epochs = 1;
  double max_abs_error = 100;
  // Probe outputs: s1 after each training Predict (after the sigmoid for classification),
  // then after each validation Predict, in order (first epoch).
  std::vector<double>* outputs = nullptr;
  const TraceFn* trace = nullptr;
  // For tests: run the generic path (no feature-size specialisation, no carried registers),
  // against which the specialised paths are checked.
  bool unspecialised = false;
};

struct TaskResult {
  double fitness = 0;
  bool stopped_early = false;
  int64_t examples_reached = 0;  // training + validation examples predicted
};

// Runs `program` on `task`. Thread-safe (no shared state).
TaskResult RunTask(const CompiledProgram& program, const Task& task, const RunOptions& options);

// The executor generator's seed for a task (docs/PROGRAMS.md section 3).
inline uint64_t ExecutorSeed(uint64_t task_seed) { return task_seed ^ 0x5851f42d4c957f2dull; }

}  // namespace programs
}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_DOMAINS_PROGRAMS_EXECUTOR_H_
