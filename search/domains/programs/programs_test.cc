// The programs domain against golden values from an independent reference interpreter
// (tests/programs/reference.py, written from docs/PROGRAMS.md by a session that never read
// this executor; tests/programs/CARD.md), plus the hashes, mutations and spec errors.
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "gtest/gtest.h"
#include "hashing/candidate_hasher.h"
#include "nlohmann/json.hpp"
#include "search/domains/programs/executor.h"
#include "search/domains/programs/program_domain.h"
#include "search/domains/programs/program_space.h"
#include "search/domains/programs/structural.h"

namespace fecsearch {
namespace programs {
namespace {

using nlohmann::json;

json Load(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

double Num(const json& v) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "nan") return std::nan("");
    if (s == "inf") return INFINITY;
    if (s == "-inf") return -INFINITY;
    ADD_FAILURE() << "bad number " << s;
  }
  return v.get<double>();
}

ProgramInstruction Instr(const json& j) {
  ProgramInstruction ins;
  ProgramOp op = NO_OP;
  EXPECT_TRUE(ProgramOp_Parse(j.at("op").get<std::string>(), &op)) << j.dump();
  ins.set_op(op);
  ins.set_in1(j.value("in1", 0));
  ins.set_in2(j.value("in2", 0));
  ins.set_out(j.value("out", 0));
  ins.set_data(j.value("d", 0.0));
  ins.set_f0(j.value("f0", 0.0));
  ins.set_f1(j.value("f1", 0.0));
  ins.set_f2(j.value("f2", 0.0));
  return ins;
}

Program ProgramOf(const json& j) {
  Program p;
  for (const json& i : j.at("setup")) *p.add_setup() = Instr(i);
  for (const json& i : j.at("predict")) *p.add_predict() = Instr(i);
  for (const json& i : j.at("learn")) *p.add_learn() = Instr(i);
  return p;
}

ProgramTaskSpec::Kind KindOf(const std::string& s) {
  ProgramTaskSpec::Kind k = ProgramTaskSpec::KIND_UNSPECIFIED;
  EXPECT_TRUE(ProgramTaskSpec::Kind_Parse(s, &k)) << s;
  return k;
}

// Same value: both NaN, or equal infinities, or within a relative 1e-12 (zeros of either sign equal).
bool Same(double want, double got);
// Bit for bit (NaNs of any payload equal).
bool Identical(double a, double b) { return (std::isnan(a) && std::isnan(b)) || (a == b && std::signbit(a) == std::signbit(b)); }

bool Same(double want, double got) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return want == got;
  return std::fabs(want - got) <= 1e-12 * std::max(1.0, std::fabs(want));
}

TEST(ProgramsGolden, TracesMatchTheReferenceInterpreter) {
  const json cases = Load("tests/programs/golden_traces.json");
  ASSERT_GE(cases.size(), 60u);
  std::set<std::string> ops_seen;
  for (const json& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const Shape shape{c.at("feature_size").get<int>(), c.at("scalar_registers").get<int>(), c.at("vector_registers").get<int>(),
                      c.at("matrix_registers").get<int>()};
    const Program program = ProgramOf(c.at("program"));
    for (int k = 0; k < 3; ++k)
      for (const auto& ins : ComponentOf(program, k)) ops_seen.insert(ProgramOp_Name(ins.op()));
    auto compiled = CompiledProgram::Compile(program, shape);
    ASSERT_TRUE(compiled.ok()) << compiled.status();
    const json& t = c.at("task");
    const Task task = GenerateTask(KindOf(t.at("kind")), t.at("seed").get<uint64_t>(), shape.features,
                                   t.at("num_train_examples").get<int>(), t.at("num_valid_examples").get<int>());
    // The task generator: the first examples' inputs and labels.
    const json& data = c.at("task_data");
    for (size_t i = 0; i < data.at("train").size(); ++i) {
      for (int f = 0; f < shape.features; ++f) EXPECT_TRUE(Same(Num(data["train"][i]["x"][f]), task.train_x[i * shape.features + f]));
      EXPECT_TRUE(Same(Num(data["train"][i]["y"]), task.train_y[i])) << "train y " << i;
    }
    for (size_t i = 0; i < data.at("valid").size(); ++i) {
      for (int f = 0; f < shape.features; ++f) EXPECT_TRUE(Same(Num(data["valid"][i]["x"][f]), task.valid_x[i * shape.features + f]));
      EXPECT_TRUE(Same(Num(data["valid"][i]["y"]), task.valid_y[i])) << "valid y " << i;
    }
    std::map<std::string, Registers> got;
    TraceFn fn = [&](const std::string& point, const Registers& r) { got[point] = r; };
    RunOptions options;
    options.epochs = t.at("num_epochs").get<int>();
    options.max_abs_error = c.at("max_abs_error").get<double>();
    options.trace = &fn;
    const TaskResult result = RunTask(*compiled, task, options);
    for (const json& point : c.at("trace")) {
      const std::string name = point.at("point");
      ASSERT_TRUE(got.count(name)) << "no trace point " << name;
      const Registers& r = got[name];
      for (int i = 0; i < shape.scalars; ++i) EXPECT_TRUE(Same(Num(point["scalars"][i]), r.scalars[i])) << name << " s" << i << " want " << point["scalars"][i] << " got " << r.scalars[i];
      for (int v = 0; v < shape.vectors; ++v)
        for (int i = 0; i < shape.features; ++i)
          EXPECT_TRUE(Same(Num(point["vectors"][v][i]), r.vectors[v][i])) << name << " v" << v << "[" << i << "]";
      for (int m = 0; m < shape.matrices; ++m)
        for (int i = 0; i < shape.features; ++i)
          for (int j = 0; j < shape.features; ++j)
            EXPECT_TRUE(Same(Num(point["matrices"][m][i][j]), r.matrices[m][i][j])) << name << " m" << m << "[" << i << "][" << j << "]";
    }
    EXPECT_TRUE(Same(Num(c.at("task_fitness")), result.fitness)) << "fitness want " << c["task_fitness"] << " got " << result.fitness;
    EXPECT_EQ(c.at("stopped_early").get<bool>(), result.stopped_early);
  }
  EXPECT_EQ(ops_seen.size(), static_cast<size_t>(kNumOps)) << "every operation has a golden case";
}

ExperimentSpec AllOpsSpec(int f, int s, int v, int m) {
  ExperimentSpec spec;
  spec.mutable_search_space()->set_representation(SearchSpaceSpec::PROGRAM);
  ProgramDomainSpec* d = spec.mutable_search_space()->mutable_program_domain();
  d->set_feature_size(f);
  d->set_scalar_registers(s);
  d->set_vector_registers(v);
  d->set_matrix_registers(m);
  for (int op = 1; op < kNumOps; ++op) {
    d->add_setup_ops(static_cast<ProgramOp>(op));
    d->add_predict_ops(static_cast<ProgramOp>(op));
    d->add_learn_ops(static_cast<ProgramOp>(op));
  }
  d->set_setup_size(0), d->set_setup_size_max(1000);
  d->set_predict_size(1), d->set_predict_size_min(0), d->set_predict_size_max(1000);
  d->set_learn_size(0), d->set_learn_size_max(1000);
  return spec;
}

TEST(ProgramsGolden, MeanFitnessMatchesTheReference) {
  const json g = Load("tests/programs/golden_fitness.json");
  ExperimentSpec spec = AllOpsSpec(g["feature_size"], g["scalar_registers"], g["vector_registers"], g["matrix_registers"]);
  ProgramTaskSpec* t = spec.mutable_search_space()->mutable_program_domain()->mutable_search_tasks();
  t->set_kind(KindOf(g["task"]["kind"]));
  t->set_num_tasks(static_cast<int>(g["task"]["seeds"].size()));
  t->set_first_seed(g["task"]["seeds"][0].get<uint64_t>());
  t->set_num_train_examples(g["task"]["num_train_examples"]);
  t->set_num_valid_examples(g["task"]["num_valid_examples"]);
  auto domain = ProgramDomain::Create(spec, FecSpec());
  ASSERT_TRUE(domain.ok()) << domain.status();
  ASSERT_GE(g["programs"].size(), 6u);
  for (const json& p : g["programs"]) {
    SCOPED_TRACE(p["name"].get<std::string>());
    Candidate c;
    *c.mutable_program() = ProgramOf(p["program"]);
    auto r = (*domain)->Evaluate(c, 1);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status().code(), 0) << r->status().message();
    EXPECT_TRUE(Same(Num(p["fitness"]), r->objectives().metrics().at("fitness")))
        << "want " << p["fitness"] << " got " << r->objectives().metrics().at("fitness");
  }
}

std::unique_ptr<ProgramDomain> Demo() {
  ExperimentSpec spec;
  spec.mutable_search_space()->set_representation(SearchSpaceSpec::PROGRAM);
  auto d = ProgramDomain::Create(spec, FecSpec());
  EXPECT_TRUE(d.ok()) << d.status();
  return std::move(*d);
}

ProgramInstruction I(ProgramOp op, int in1, int in2, int out, double data = 0) {
  ProgramInstruction i;
  i.set_op(op), i.set_in1(in1), i.set_in2(in2), i.set_out(out), i.set_data(data);
  return i;
}

// Gradient-descent linear regression, padded to the demo's sizes with NO_OPs.
Candidate Gd(double lr) {
  Candidate c;
  Program* p = c.mutable_program();
  *p->add_setup() = I(SCALAR_CONST_SET, 0, 0, 2, lr);
  while (p->setup_size() < 10) *p->add_setup() = I(NO_OP, 0, 0, 0);
  *p->add_predict() = I(VECTOR_INNER_PRODUCT, 1, 0, 1);
  *p->add_predict() = I(NO_OP, 0, 0, 0);
  *p->add_learn() = I(SCALAR_DIFF, 0, 1, 3);
  *p->add_learn() = I(SCALAR_PRODUCT, 2, 3, 3);
  *p->add_learn() = I(SCALAR_VECTOR_PRODUCT, 3, 0, 2);
  *p->add_learn() = I(VECTOR_SUM, 1, 2, 1);
  while (p->learn_size() < 8) *p->add_learn() = I(NO_OP, 0, 0, 0);
  return c;
}

TEST(ProgramsHashes, DeadCodeAndRenamingShareTheStructuralForm) {
  auto d = Demo();
  const Candidate gd = Gd(0.01);
  EXPECT_EQ(CountLive(gd.program(), d->shape()), 6);
  // Dead code: writes nobody reads, a value overwritten before use.
  Candidate dead = gd;
  *dead.mutable_program()->mutable_setup(3) = I(SCALAR_CONST_SET, 0, 0, 3, 0.7);  // s3 is overwritten in Learn first
  *dead.mutable_program()->mutable_learn(5) = I(SCALAR_PRODUCT, 2, 2, 3);         // s3 written, never read after
  // Predict overwriting the rate after the prediction is live, and makes Setup's rate dead.
  *dead.mutable_program()->mutable_predict(1) = I(SCALAR_CONST_SET, 0, 0, 2, 0.5);
  EXPECT_EQ(CountLive(dead.program(), d->shape()), 6);
  EXPECT_FALSE(LiveInstructions(dead.program(), d->shape())[kSetup][0]);
  EXPECT_TRUE(LiveInstructions(dead.program(), d->shape())[kPredict][1]);
  *dead.mutable_program()->mutable_predict(1) = I(NO_OP, 0, 0, 0);
  EXPECT_EQ(CountLive(dead.program(), d->shape()), 6);
  // Renamed registers: s2 <-> s3 and v1 <-> v2 throughout.
  Candidate renamed = gd;
  Program* r = renamed.mutable_program();
  *r->mutable_setup(0) = I(SCALAR_CONST_SET, 0, 0, 3, 0.01);
  *r->mutable_predict(0) = I(VECTOR_INNER_PRODUCT, 2, 0, 1);
  *r->mutable_learn(0) = I(SCALAR_DIFF, 0, 1, 2);
  *r->mutable_learn(1) = I(SCALAR_PRODUCT, 2, 3, 2);  // operands swapped too (commutative)
  *r->mutable_learn(2) = I(SCALAR_VECTOR_PRODUCT, 2, 0, 1);
  *r->mutable_learn(3) = I(VECTOR_SUM, 2, 1, 2);
  auto h0 = d->StructuralHash(gd), h1 = d->StructuralHash(dead), h2 = d->StructuralHash(renamed);
  ASSERT_TRUE(h0.ok() && h1.ok() && h2.ok());
  EXPECT_EQ(h0->Hex(), h1->Hex());
  EXPECT_EQ(h0->Hex(), h2->Hex());
  auto f0 = d->Evaluate(gd), f2 = d->Evaluate(renamed);
  EXPECT_EQ(f0->objectives().metrics().at("fitness"), f2->objectives().metrics().at("fitness"));
  // A different learning rate is another structure and another function.
  auto h3 = d->StructuralHash(Gd(0.02));
  EXPECT_NE(h0->Hex(), h3->Hex());
}

TEST(ProgramsHashes, StructuralFormIsSound) {
  // Random programs over every operation: whenever two share a structural form they must
  // compute the same fitness and probe outputs (the structural pre-check answers without the
  // probe, so a false equivalence here would be a wrong cache hit).
  auto spec = AllOpsSpec(3, 5, 3, 2);
  spec.mutable_search_space()->mutable_program_domain()->set_setup_size(3);
  spec.mutable_search_space()->mutable_program_domain()->set_predict_size(2);
  spec.mutable_search_space()->mutable_program_domain()->set_learn_size(3);
  auto d = ProgramDomain::Create(spec, FecSpec());
  ASSERT_TRUE(d.ok()) << d.status();
  Rng rng(7);
  std::map<std::string, std::pair<double, std::vector<double>>> by_form;
  int shared = 0;
  for (int i = 0; i < 4000; ++i) {
    Candidate c = (*d)->space().Random(rng);
    for (int k = rng.Uniform(4); k > 0; --k) c = (*d)->space().Mutate(c, rng);
    auto h = (*d)->StructuralHash(c);
    ASSERT_TRUE(h.ok()) << h.status();
    auto r = (*d)->Evaluate(c);
    auto probe = (*d)->ProbeOutputs(c);
    ASSERT_TRUE(r.ok() && probe.ok());
    const double fit = r->objectives().metrics().at("fitness");
    auto [it, added] = by_form.emplace(h->Hex(), std::make_pair(fit, *probe));
    if (!added) {
      ++shared;
      EXPECT_EQ(it->second.first, fit) << (*d)->Describe(c);
      ASSERT_EQ(it->second.second.size(), probe->size());
      for (size_t k = 0; k < probe->size(); ++k) EXPECT_TRUE(Same(it->second.second[k], (*probe)[k]));
    }
  }
  EXPECT_GT(shared, 100) << "the sample must contain structurally equal programs";
}

TEST(ProgramsExecutor, TheSpecialisedPathsComputeWhatTheGenericOneDoes) {
  // F = 4 and 8 run specialised code (F = 4 also keeps the last scalar and vector written in
  // machine registers, forgetting them when anything else writes there): random programs over
  // every operation, mutated, must give the same probe outputs and fitness bit for bit as the
  // generic path on several tasks.
  for (int features : {4, 8}) {
    auto spec = AllOpsSpec(3, 5, 3, 2);
    auto* pd = spec.mutable_search_space()->mutable_program_domain();
    pd->set_feature_size(features);
    pd->set_setup_size(4);
    pd->set_predict_size(4);
    pd->set_learn_size(5);
    auto d = ProgramDomain::Create(spec, FecSpec());
    ASSERT_TRUE(d.ok()) << d.status();
    const Shape shape{features, 5, 3, 2};
    Rng rng(11 + features);
    int varied = 0;
    for (int i = 0; i < 1500; ++i) {
      Candidate c = (*d)->space().Random(rng);
      for (int k = rng.Uniform(4); k > 0; --k) c = (*d)->space().Mutate(c, rng);
      auto compiled = CompiledProgram::Compile(c.program(), shape);
      ASSERT_TRUE(compiled.ok()) << compiled.status();
      const Task task = GenerateTask(i % 3 == 0   ? ProgramTaskSpec::BINARY_CLASSIFICATION
                                     : i % 3 == 1 ? ProgramTaskSpec::SCALAR_NONLINEAR_REGRESSION
                                                  : ProgramTaskSpec::SCALAR_LINEAR_REGRESSION,
                                     100 + i, features, 12, 6);
      std::vector<double> fast_out, slow_out;
      RunOptions fast, slow;
      fast.epochs = slow.epochs = 2;
      fast.outputs = &fast_out;
      slow.outputs = &slow_out;
      slow.unspecialised = true;
      const TaskResult a = RunTask(*compiled, task, fast);
      const TaskResult b = RunTask(*compiled, task, slow);
      EXPECT_TRUE(Identical(a.fitness, b.fitness)) << (*d)->Describe(c);
      EXPECT_EQ(a.stopped_early, b.stopped_early);
      EXPECT_EQ(a.examples_reached, b.examples_reached);
      ASSERT_EQ(fast_out.size(), slow_out.size());
      for (size_t k = 0; k < fast_out.size(); ++k) EXPECT_TRUE(Identical(fast_out[k], slow_out[k])) << (*d)->Describe(c);
      varied += fast_out.size() > 1 && !Identical(fast_out.front(), fast_out.back());
    }
    EXPECT_GT(varied, 100) << "the sample must contain programs whose outputs vary";
  }
}

TEST(ProgramsHashes, ABehaviourOnlyEquivalenceSharesTheFunctionalKey) {
  auto d = Demo();
  FecSpec fec;
  auto hasher = CandidateHasher::Create(d.get(), fec);
  ASSERT_TRUE(hasher.ok());
  // s2 = 0.005; s3 = 2; s2 = s2 * s3 computes the rate 0.01 another way: same function,
  // other structure.
  Candidate a = Gd(0.01), b = Gd(0.01);
  *b.mutable_program()->mutable_setup(0) = I(SCALAR_CONST_SET, 0, 0, 2, 0.005);
  *b.mutable_program()->mutable_setup(1) = I(SCALAR_CONST_SET, 0, 0, 3, 2.0);
  *b.mutable_program()->mutable_setup(2) = I(SCALAR_PRODUCT, 2, 3, 2);
  auto ha = (*hasher)->Hash(a), hb = (*hasher)->Hash(b);
  ASSERT_TRUE(ha.ok() && hb.ok());
  EXPECT_NE(ha->structural.Hex(), hb->structural.Hex());
  EXPECT_NE(ha->exact.Hex(), hb->exact.Hex());
  EXPECT_EQ(ha->key.Hex(), hb->key.Hex());
  // A truly different program does not.
  auto hc = (*hasher)->Hash(Gd(0.03));
  ASSERT_TRUE(hc.ok());
  EXPECT_NE(ha->key.Hex(), hc->key.Hex());
}

TEST(ProgramsHashes, DeadRandomOpsStayWhileAnotherRandomOpIsLive) {
  auto spec = AllOpsSpec(4, 4, 3, 1);
  auto d = ProgramDomain::Create(spec, FecSpec());
  ASSERT_TRUE(d.ok());
  Program p;
  ProgramInstruction g;
  g.set_op(SCALAR_GAUSSIAN_SET), g.set_out(3), g.set_f0(0), g.set_f1(1);  // dead (s3 never read)
  *p.add_setup() = g;
  g.set_out(2);  // live: feeds the prediction
  *p.add_setup() = g;
  *p.add_predict() = I(SCALAR_SUM, 2, 2, 1);
  const auto live = LiveInstructions(p, (*d)->shape());
  EXPECT_TRUE(live[kSetup][0]) << "removing it would shift the live draw";
  EXPECT_TRUE(live[kSetup][1]);
}

TEST(ProgramsSpace, MutationsAreAutoMlZerosAndStayValid) {
  auto d = Demo();
  Rng rng(3);
  Candidate c = d->space().Random(rng);
  ASSERT_TRUE(d->Validate(c).ok());
  EXPECT_EQ(c.program().setup_size(), 10);
  EXPECT_EQ(c.program().predict_size(), 2);
  EXPECT_EQ(c.program().learn_size(), 8);
  for (int i = 0; i < 2000; ++i) {
    Candidate m = d->space().Mutate(c, rng);
    ASSERT_TRUE(d->Validate(m).ok()) << d->Validate(m);
    EXPECT_NE(DeterministicBytes(m), DeterministicBytes(c));
    // Sizes are fixed in the demo; a mutation touches one component.
    int changed = 0;
    for (int k = 0; k < 3; ++k) {
      ASSERT_EQ(ComponentOf(m.program(), k).size(), ComponentOf(c.program(), k).size());
      std::string x, y;
      for (const auto& ins : ComponentOf(m.program(), k)) x += ins.SerializeAsString();
      for (const auto& ins : ComponentOf(c.program(), k)) y += ins.SerializeAsString();
      changed += x != y;
    }
    EXPECT_EQ(changed, 1);
    c = m;
  }
}

TEST(ProgramsSpace, InsertAndRemoveKeepTheLimits) {
  ExperimentSpec spec;
  spec.mutable_search_space()->set_representation(SearchSpaceSpec::PROGRAM);
  ProgramDomainSpec* p = spec.mutable_search_space()->mutable_program_domain();
  p->set_learn_size(4), p->set_learn_size_min(2), p->set_learn_size_max(6);
  p->set_predict_size(2), p->set_predict_size_min(1), p->set_predict_size_max(3);
  p->mutable_mutations()->set_alter_param(0), p->mutable_mutations()->set_randomize_instruction(0);
  p->mutable_mutations()->set_randomize_component(0), p->mutable_mutations()->set_insert_instruction(1);
  p->mutable_mutations()->set_remove_instruction(1);
  auto d = ProgramDomain::Create(spec, FecSpec());
  ASSERT_TRUE(d.ok()) << d.status();
  Rng rng(5);
  Candidate c = (*d)->space().Random(rng);
  std::set<int> learn_sizes;
  for (int i = 0; i < 500; ++i) {
    c = (*d)->space().Mutate(c, rng);
    ASSERT_TRUE((*d)->Validate(c).ok()) << (*d)->Validate(c);
    learn_sizes.insert(c.program().learn_size());
  }
  EXPECT_EQ(learn_sizes, (std::set<int>{2, 3, 4, 5, 6}));
}

TEST(ProgramsDomain, BadSpecsNameTheField) {
  struct Case {
    std::string field;
    std::function<void(ProgramDomainSpec*)> set;
  };
  const std::vector<Case> cases = {
      {"feature_size", [](ProgramDomainSpec* p) { p->set_feature_size(0); }},
      {"scalar_registers", [](ProgramDomainSpec* p) { p->set_scalar_registers(1); }},
      {"predict_ops[0]", [](ProgramDomainSpec* p) { p->set_matrix_registers(0); p->add_predict_ops(MATRIX_SUM); }},
      {"learn_size_min", [](ProgramDomainSpec* p) { p->set_learn_size_min(9); }},
      {"search_tasks.num_tasks", [](ProgramDomainSpec* p) { p->mutable_search_tasks()->set_num_tasks(0); }},
      {"max_abs_error", [](ProgramDomainSpec* p) { p->set_max_abs_error(-1); }},
      {"mutations", [](ProgramDomainSpec* p) {
         p->mutable_mutations()->set_alter_param(0), p->mutable_mutations()->set_randomize_instruction(0);
         p->mutable_mutations()->set_randomize_component(0);
       }},
  };
  for (const Case& c : cases) {
    ExperimentSpec spec;
    spec.mutable_search_space()->set_representation(SearchSpaceSpec::PROGRAM);
    c.set(spec.mutable_search_space()->mutable_program_domain());
    auto d = ProgramDomain::Create(spec, FecSpec());
    ASSERT_FALSE(d.ok()) << c.field;
    EXPECT_NE(std::string(d.status().message()).find("search_space.program_domain." + c.field), std::string::npos)
        << d.status().message();
  }
}

TEST(ProgramsDomain, InvalidCandidatesAreRefusedByName) {
  auto d = Demo();
  Candidate c = Gd(0.01);
  *c.mutable_program()->mutable_learn(0) = I(SCALAR_DIFF, 0, 1, 0);  // writes the label
  auto r = d->Evaluate(c);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->status().code(), 0);
  EXPECT_NE(r->status().message().find("program.learn[0].out: s0 is not writable"), std::string::npos) << r->status().message();
  c = Gd(0.01);
  *c.mutable_program()->mutable_learn(0) = I(SCALAR_SIN, 0, 0, 2);  // not among the demo's ops
  EXPECT_NE(std::string(d->Validate(c).message()).find("learn[0].op: SCALAR_SIN is not among learn_ops"), std::string::npos);
  c = Gd(0.01);
  c.mutable_program()->add_predict();
  EXPECT_NE(std::string(d->Validate(c).message()).find("program.predict: 3 instructions, outside 2..2"), std::string::npos);
}

TEST(ProgramsDomain, GradientDescentSolvesTheSelectionTasks) {
  auto d = Demo();
  auto sel = d->SelectionFitness(Gd(0.01));
  ASSERT_TRUE(sel.ok());
  EXPECT_GT(*sel, 0.999);
  auto bad = d->SelectionFitness(Gd(0.0));
  EXPECT_LT(*bad, 0.9);
}

}  // namespace
}  // namespace programs
}  // namespace fecsearch
