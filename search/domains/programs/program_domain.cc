#include "search/domains/programs/program_domain.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "hashing/candidate_hasher.h"
#include "search/domains/programs/structural.h"
#include "xxhash.h"

namespace fecsearch {
namespace programs {
namespace {

const ProgramOp kDemoOps[] = {SCALAR_CONST_SET, VECTOR_INNER_PRODUCT, SCALAR_DIFF, SCALAR_PRODUCT, SCALAR_VECTOR_PRODUCT,
                              VECTOR_SUM};

std::string KindName(ProgramTaskSpec::Kind k) {
  switch (k) {
    case ProgramTaskSpec::SCALAR_LINEAR_REGRESSION: return "scalar linear regression";
    case ProgramTaskSpec::SCALAR_NONLINEAR_REGRESSION: return "scalar nonlinear regression (two-layer teacher)";
    case ProgramTaskSpec::BINARY_CLASSIFICATION: return "binary classification (two-layer teacher)";
    default: return "?";
  }
}

std::string TasksLine(const ProgramTaskSpec& t) {
  return absl::StrFormat("%d x %s, %d training / %d validation examples, %d epoch%s, seeds %s", t.num_tasks(), KindName(t.kind()),
                         t.num_train_examples(), t.num_valid_examples(), t.num_epochs(), t.num_epochs() == 1 ? "" : "s",
                         t.resample_per_evaluation() ? "drawn anew for every evaluation"
                                                     : absl::StrCat(t.first_seed(), "..", t.first_seed() + t.num_tasks() - 1));
}

absl::Status CheckTasks(const ProgramTaskSpec& t, const std::string& at) {
  if (t.kind() == ProgramTaskSpec::KIND_UNSPECIFIED) return absl::InvalidArgumentError(absl::StrCat(at, ".kind: must be set"));
  if (t.num_tasks() < 1 || t.num_tasks() > 10000) return absl::InvalidArgumentError(absl::StrCat(at, ".num_tasks: ", t.num_tasks(), " is outside 1..10000"));
  if (t.num_train_examples() < 1 || t.num_train_examples() > 1000000) {
    return absl::InvalidArgumentError(absl::StrCat(at, ".num_train_examples: ", t.num_train_examples(), " is outside 1..1000000"));
  }
  if (t.num_valid_examples() < 1 || t.num_valid_examples() > 1000000) {
    return absl::InvalidArgumentError(absl::StrCat(at, ".num_valid_examples: ", t.num_valid_examples(), " is outside 1..1000000"));
  }
  if (t.num_epochs() < 1 || t.num_epochs() > 100) return absl::InvalidArgumentError(absl::StrCat(at, ".num_epochs: ", t.num_epochs(), " is outside 1..100"));
  return absl::OkStatus();
}

}  // namespace

ProgramDomainSpec Normalized(const ProgramDomainSpec& in) {
  ProgramDomainSpec s = in;
  for (auto* ops : {s.mutable_setup_ops(), s.mutable_predict_ops(), s.mutable_learn_ops()}) {
    if (ops->empty()) for (ProgramOp op : kDemoOps) ops->Add(op);
  }
  if (s.setup_size_min() < 0) s.set_setup_size_min(s.setup_size());
  if (s.setup_size_max() < 0) s.set_setup_size_max(s.setup_size());
  if (s.predict_size_min() < 0) s.set_predict_size_min(s.predict_size());
  if (s.predict_size_max() < 0) s.set_predict_size_max(s.predict_size());
  if (s.learn_size_min() < 0) s.set_learn_size_min(s.learn_size());
  if (s.learn_size_max() < 0) s.set_learn_size_max(s.learn_size());
  if (!s.has_search_tasks()) s.mutable_search_tasks();
  if (!s.has_selection_tasks()) {
    ProgramTaskSpec* sel = s.mutable_selection_tasks();
    sel->set_kind(s.search_tasks().kind());
    sel->set_num_tasks(100);
    sel->set_num_train_examples(1000);
    sel->set_num_valid_examples(100);
    sel->set_num_epochs(s.search_tasks().num_epochs());
    sel->set_first_seed(1000000);
  }
  if (!s.has_mutations()) s.mutable_mutations();
  return s;
}

absl::Status ValidateProgramDomain(const ProgramDomainSpec& raw, const std::string& p) {
  const ProgramDomainSpec s = Normalized(raw);
  auto fail = [&](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(p, ".", field, ": ", why));
  };
  if (s.feature_size() < 1 || s.feature_size() > 32) return fail("feature_size", absl::StrCat(s.feature_size(), " is outside 1..32"));
  if (s.scalar_registers() < 2 || s.scalar_registers() > 64) return fail("scalar_registers", absl::StrCat(s.scalar_registers(), " is outside 2..64 (s0 label, s1 prediction)"));
  if (s.vector_registers() < 1 || s.vector_registers() > 64) return fail("vector_registers", absl::StrCat(s.vector_registers(), " is outside 1..64 (v0 features)"));
  if (s.matrix_registers() < 0 || s.matrix_registers() > 64) return fail("matrix_registers", absl::StrCat(s.matrix_registers(), " is outside 0..64"));
  Shape shape{s.feature_size(), s.scalar_registers(), s.vector_registers(), s.matrix_registers()};
  const char* names[3] = {"setup_ops", "predict_ops", "learn_ops"};
  const google::protobuf::RepeatedField<int>* ops[3] = {&s.setup_ops(), &s.predict_ops(), &s.learn_ops()};
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < ops[c]->size(); ++i) {
      const ProgramOp op = static_cast<ProgramOp>(ops[c]->Get(i));
      const OpInfo& info = Info(op);
      for (Reg r : {info.in1, info.in2, info.out}) {
        if (r != Reg::kNone && shape.count(r) - (r == info.out ? 0 : 0) == 0) {
          return fail(absl::StrCat(names[c], "[", i, "]"), absl::StrCat(info.name, " needs a matrix register; matrix_registers is 0"));
        }
      }
      if (info.out != Reg::kNone && shape.count(info.out) - FirstOut(info.out) < 1) {
        return fail(absl::StrCat(names[c], "[", i, "]"), absl::StrCat(info.name, " writes a vector and only v0 (the features) exists; set vector_registers >= 2"));
      }
    }
  }
  const int sizes[3][3] = {{s.setup_size(), s.setup_size_min(), s.setup_size_max()},
                           {s.predict_size(), s.predict_size_min(), s.predict_size_max()},
                           {s.learn_size(), s.learn_size_min(), s.learn_size_max()}};
  for (int c = 0; c < 3; ++c) {
    const std::string n = kComponentNames[c];
    if (sizes[c][0] < 0 || sizes[c][0] > 1000) return fail(n + "_size", absl::StrCat(sizes[c][0], " is outside 0..1000"));
    if (sizes[c][1] > sizes[c][0]) return fail(n + "_size_min", absl::StrCat(sizes[c][1], " exceeds ", n, "_size ", sizes[c][0]));
    if (sizes[c][2] < sizes[c][0] || sizes[c][2] > 1000) {
      return fail(n + "_size_max", absl::StrCat(sizes[c][2], " is outside ", n, "_size..1000"));
    }
  }
  if (s.predict_size() < 1) return fail("predict_size", "must be at least 1 (Predict writes the prediction)");
  absl::Status t = CheckTasks(s.search_tasks(), p + ".search_tasks");
  if (t.ok()) t = CheckTasks(s.selection_tasks(), p + ".selection_tasks");
  if (!t.ok()) return t;
  if (s.probe_train_examples() < 1 || s.probe_train_examples() > 10000) return fail("probe_train_examples", absl::StrCat(s.probe_train_examples(), " is outside 1..10000"));
  if (s.probe_valid_examples() < 1 || s.probe_valid_examples() > 10000) return fail("probe_valid_examples", absl::StrCat(s.probe_valid_examples(), " is outside 1..10000"));
  if (!(s.max_abs_error() > 0) || !std::isfinite(s.max_abs_error())) return fail("max_abs_error", "must be a positive finite number");
  const ProgramMutationSpec& m = s.mutations();
  double total = 0;
  for (double w : {m.alter_param(), m.randomize_instruction(), m.randomize_component(), m.insert_instruction(), m.remove_instruction()}) {
    if (!(w >= 0) || !std::isfinite(w)) return fail("mutations", "weights must be finite and >= 0");
    total += w;
  }
  if (total <= 0) return fail("mutations", "at least one weight must be positive");
  return absl::OkStatus();
}

std::vector<Task> ProgramDomain::MakeTasks(const ProgramTaskSpec& t, uint64_t first_seed) const {
  std::vector<Task> tasks;
  for (int i = 0; i < t.num_tasks(); ++i) {
    tasks.push_back(GenerateTask(t.kind(), first_seed + i, shape_.features, t.num_train_examples(), t.num_valid_examples()));
  }
  return tasks;
}

absl::StatusOr<std::unique_ptr<ProgramDomain>> ProgramDomain::Create(const ExperimentSpec& experiment, const FecSpec& fec) {
  const std::string prefix = "search_space.program_domain";
  absl::Status valid = ValidateProgramDomain(experiment.search_space().program_domain(), prefix);
  if (!valid.ok()) return valid;
  std::unique_ptr<ProgramDomain> d(new ProgramDomain());
  d->spec_ = Normalized(experiment.search_space().program_domain());
  const ProgramDomainSpec& s = d->spec_;
  d->shape_ = Shape{s.feature_size(), s.scalar_registers(), s.vector_registers(), s.matrix_registers()};
  SpaceSettings settings;
  settings.shape = d->shape_;
  const google::protobuf::RepeatedField<int>* ops[3] = {&s.setup_ops(), &s.predict_ops(), &s.learn_ops()};
  for (int c = 0; c < 3; ++c) {
    for (int op : *ops[c]) settings.ops[c].push_back(static_cast<ProgramOp>(op));
  }
  settings.size[0] = s.setup_size(), settings.size_min[0] = s.setup_size_min(), settings.size_max[0] = s.setup_size_max();
  settings.size[1] = s.predict_size(), settings.size_min[1] = s.predict_size_min(), settings.size_max[1] = s.predict_size_max();
  settings.size[2] = s.learn_size(), settings.size_min[2] = s.learn_size_min(), settings.size_max[2] = s.learn_size_max();
  const ProgramMutationSpec& m = s.mutations();
  const double w[5] = {m.alter_param(), m.randomize_instruction(), m.randomize_component(), m.insert_instruction(), m.remove_instruction()};
  for (int i = 0; i < 5; ++i) settings.weights[i] = w[i];
  d->space_ = std::make_unique<ProgramSpace>(settings);
  if (!s.search_tasks().resample_per_evaluation()) d->search_tasks_ = d->MakeTasks(s.search_tasks(), s.search_tasks().first_seed());
  d->selection_tasks_ = d->MakeTasks(s.selection_tasks(), s.selection_tasks().first_seed());
  d->probe_seed_ = fec.probe_seed();
  d->probe_task_ = GenerateTask(s.search_tasks().kind(), d->probe_seed_, d->shape_.features, s.probe_train_examples(), s.probe_valid_examples());

  // What decides a program's fitness: the executor, the shape, the search tasks, the bound.
  ProgramDomainSpec context;
  context.set_feature_size(s.feature_size());
  context.set_scalar_registers(s.scalar_registers());
  context.set_vector_registers(s.vector_registers());
  context.set_matrix_registers(s.matrix_registers());
  *context.mutable_search_tasks() = s.search_tasks();
  context.set_max_abs_error(s.max_abs_error());
  std::string bytes;
  context.SerializeToString(&bytes);
  bytes = absl::StrCat(kExecutorVersion, "|", bytes);
  const XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  d->fingerprint_ = absl::StrFormat("%016x%016x", h.high64, h.low64);
  return d;
}

absl::Status ProgramDomain::Validate(const Candidate& candidate) const {
  if (!candidate.has_program()) return absl::InvalidArgumentError("candidate: not a program (domain programs)");
  const Program& p = candidate.program();
  const int mins[3] = {spec_.setup_size_min(), spec_.predict_size_min(), spec_.learn_size_min()};
  const int maxs[3] = {spec_.setup_size_max(), spec_.predict_size_max(), spec_.learn_size_max()};
  const google::protobuf::RepeatedField<int>* ops[3] = {&spec_.setup_ops(), &spec_.predict_ops(), &spec_.learn_ops()};
  for (int c = 0; c < 3; ++c) {
    const auto& comp = ComponentOf(p, c);
    if (comp.size() < mins[c] || comp.size() > maxs[c]) {
      return absl::InvalidArgumentError(absl::StrCat("program.", kComponentNames[c], ": ", comp.size(), " instructions, outside ",
                                                     mins[c], "..", maxs[c]));
    }
    for (int i = 0; i < comp.size(); ++i) {
      const std::string where = absl::StrCat("program.", kComponentNames[c], "[", i, "]");
      absl::Status s = ValidateInstruction(comp.Get(i), shape_, where);
      if (!s.ok()) return s;
      const int op = comp.Get(i).op();
      if (op != NO_OP && std::find(ops[c]->begin(), ops[c]->end(), op) == ops[c]->end()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".op: ", Info(comp.Get(i).op()).name, " is not among ", kComponentNames[c], "_ops"));
      }
    }
  }
  return absl::OkStatus();
}

std::string ProgramDomain::Describe(const Candidate& candidate) const {
  // The live instructions of Predict and Learn, as written (dead code left out).
  const Program& p = candidate.program();
  const std::vector<std::vector<bool>> live = LiveInstructions(p, shape_);
  std::vector<std::string> parts[3];
  int n_live = 0;
  for (int c = 0; c < 3; ++c) {
    const auto& comp = ComponentOf(p, c);
    for (int i = 0; i < comp.size(); ++i) {
      if (!live[c][i]) continue;
      ++n_live;
      parts[c].push_back(InstructionCode(comp.Get(i), shape_));
    }
  }
  const int total = p.setup_size() + p.predict_size() + p.learn_size();
  return absl::StrCat(n_live, "/", total, " live | predict: ", parts[kPredict].empty() ? "-" : absl::StrJoin(parts[kPredict], "; "),
                      " | learn: ", parts[kLearn].empty() ? "-" : absl::StrJoin(parts[kLearn], "; "));
}

std::vector<MetricInfo> ProgramDomain::Metrics() const {
  MetricInfo fitness{"fitness", "fitness on the search tasks (1 - 2/pi atan(validation RMSE), or accuracy)", "", true, 0};
  const double total = spec_.setup_size_max() + spec_.predict_size_max() + spec_.learn_size_max();
  MetricInfo instructions{"instructions", "live instructions (after dead-code removal)", "instructions", false, total + 1};
  return {fitness, instructions};
}

std::vector<DefaultObjective> ProgramDomain::DefaultObjectives() const {
  DefaultObjective f;
  f.name = "fitness";
  f.has_reference = true;
  f.reference = 0;
  return {f};
}

absl::StatusOr<double> ProgramDomain::MeanFitness(const Candidate& candidate, const std::vector<Task>& tasks) const {
  absl::Status valid = Validate(candidate);
  if (!valid.ok()) return valid;
  auto compiled = CompiledProgram::Compile(candidate.program(), shape_);
  if (!compiled.ok()) return compiled.status();
  RunOptions options;
  options.max_abs_error = spec_.max_abs_error();
  double sum = 0;
  options.epochs = spec_.search_tasks().num_epochs();
  for (const Task& t : tasks) sum += RunTask(*compiled, t, options).fitness;
  return tasks.empty() ? 0.0 : sum / tasks.size();
}

absl::StatusOr<EvaluationResult> ProgramDomain::Evaluate(const Candidate& candidate, int64_t candidate_id, int) const {
  const auto start = std::chrono::steady_clock::now();
  EvaluationResult r;
  absl::Status valid = Validate(candidate);
  if (!valid.ok()) {
    r.mutable_status()->set_code(static_cast<int>(valid.code()));
    r.mutable_status()->set_message(std::string(valid.message()));
    return r;
  }
  auto compiled = CompiledProgram::Compile(candidate.program(), shape_);
  if (!compiled.ok()) return compiled.status();
  const ProgramTaskSpec& ts = spec_.search_tasks();
  std::vector<Task> drawn;
  const std::vector<Task>* tasks = &search_tasks_;
  if (ts.resample_per_evaluation()) {
    Rng seeds(static_cast<uint64_t>(candidate_id) * 1000003ull + ts.first_seed());
    for (int i = 0; i < ts.num_tasks(); ++i) {
      drawn.push_back(GenerateTask(ts.kind(), seeds.Next(), shape_.features, ts.num_train_examples(), ts.num_valid_examples()));
    }
    tasks = &drawn;
  }
  RunOptions options;
  options.max_abs_error = spec_.max_abs_error();
  options.epochs = ts.num_epochs();
  double sum = 0;
  for (const Task& t : *tasks) sum += RunTask(*compiled, t, options).fitness;
  const double fitness = sum / tasks->size();
  r.mutable_status()->set_code(0);
  auto& metrics = *r.mutable_objectives()->mutable_metrics();
  metrics["fitness"] = fitness;
  metrics["instructions"] = CountLive(candidate.program(), shape_);
  r.set_cost_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  r.set_evaluator_version(kExecutorVersion);
  r.set_context_fingerprint(fingerprint_);
  return r;
}

absl::StatusOr<double> ProgramDomain::SelectionFitness(const Candidate& candidate) const {
  absl::Status valid = Validate(candidate);
  if (!valid.ok()) return valid;
  auto compiled = CompiledProgram::Compile(candidate.program(), shape_);
  if (!compiled.ok()) return compiled.status();
  RunOptions options;
  options.max_abs_error = spec_.max_abs_error();
  options.epochs = spec_.selection_tasks().num_epochs();
  double sum = 0;
  for (const Task& t : selection_tasks_) sum += RunTask(*compiled, t, options).fitness;
  return sum / selection_tasks_.size();
}

absl::StatusOr<std::vector<double>> ProgramDomain::ProbeOutputs(const Candidate& candidate, int64_t* reached) const {
  absl::Status valid = Validate(candidate);
  if (!valid.ok()) return valid;
  auto compiled = CompiledProgram::Compile(candidate.program(), shape_);
  if (!compiled.ok()) return compiled.status();
  std::vector<double> outputs;
  RunOptions options;
  options.max_abs_error = spec_.max_abs_error();
  options.epochs = 1;
  options.outputs = &outputs;
  const TaskResult tr = RunTask(*compiled, probe_task_, options);
  if (reached) *reached = tr.examples_reached;
  return outputs;
}

absl::Status ProgramDomain::Probe(const Candidate& candidate, OutputSink& sink) const {
  int64_t reached = 0;
  auto outputs = ProbeOutputs(candidate, &reached);
  if (!outputs.ok()) return outputs.status();
  // The probe's identity first (its seed and sizes), so different probes never share keys.
  sink.AddInt(static_cast<int64_t>(probe_seed_));
  sink.AddInt(spec_.probe_train_examples());
  sink.AddInt(spec_.probe_valid_examples());
  std::vector<float> f(outputs->begin(), outputs->end());
  sink.AddFloats(f);
  sink.AddInt(reached);
  return absl::OkStatus();
}

absl::StatusOr<Hash128> ProgramDomain::StructuralHash(const Candidate& candidate) const {
  absl::Status valid = Validate(candidate);
  if (!valid.ok()) return valid;
  std::string bytes;
  Candidate form;
  *form.mutable_program() = StructuralForm(candidate.program(), shape_);
  return ExactHash(fingerprint_, absl::StrCat("structural|", DeterministicBytes(form)));
}

void ProgramDomain::OwnMetrics(const Candidate& candidate, Objectives* objectives) const {
  if (!candidate.has_program() || !Validate(candidate).ok()) return;
  (*objectives->mutable_metrics())["instructions"] = CountLive(candidate.program(), shape_);
}

std::vector<std::pair<std::string, std::string>> ProgramDomain::Facts() const {
  const Shape& s = shape_;
  return {
      {"search tasks", TasksLine(spec_.search_tasks())},
      {"selection tasks", TasksLine(spec_.selection_tasks())},
      {"probe", absl::StrFormat("1 task, %d training + %d validation examples, seed %d", spec_.probe_train_examples(),
                                spec_.probe_valid_examples(), probe_seed_)},
      {"registers", absl::StrFormat("%d scalars, %d vectors and %d matrices of F = %d features", s.scalars, s.vectors, s.matrices, s.features)},
      {"component sizes", absl::StrFormat("setup %d, predict %d, learn %d instructions", spec_.setup_size(), spec_.predict_size(), spec_.learn_size())},
  };
}

std::vector<DetailsTable> ProgramDomain::ResultDetails(const Candidate& candidate, const EvaluationResult&) const {
  if (!candidate.has_program()) return {};
  DetailsTable t;
  t.id = "program";
  auto sel = SelectionFitness(candidate);
  t.title = sel.ok() ? absl::StrFormat("The program (selection-task fitness %.6f on %d tasks; dead code marked '#')", *sel,
                                       spec_.selection_tasks().num_tasks())
                     : "The program";
  t.header = {"component", "instruction"};
  const std::vector<std::vector<bool>> live = LiveInstructions(candidate.program(), shape_);
  for (int c = 0; c < 3; ++c) {
    const auto& comp = ComponentOf(candidate.program(), c);
    for (int i = 0; i < comp.size(); ++i) {
      t.rows.push_back({kComponentNames[c], absl::StrCat(live[c][i] ? "" : "# ", InstructionCode(comp.Get(i), shape_))});
    }
  }
  return {t};
}

}  // namespace programs
}  // namespace fecsearch
