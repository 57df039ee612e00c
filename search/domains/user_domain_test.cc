// User-defined domains: spec validation, the gene space's operators, canonical exact forms,
// the JSON protocol with real commands (python3 -c), the context fingerprint, directions, and
// the front of a search with three objectives.
#include "search/domains/user_domain.h"

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/model_test_util.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "hashing/candidate_hasher.h"
#include "search/controller.h"
#include "search/simple_domain.h"

namespace fecsearch {
namespace {

constexpr char kPython[] = "/usr/bin/python3";

UserDomainSpec Spec(const std::string& text) {
  UserDomainSpec s;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &s)) << text;
  return s;
}

// A recipe-like space: an optimizer with a conditional momentum, a log-scale rate, a stepped
// integer.
constexpr char kSpace[] = R"(
  name: "toy"
  genes { name: "opt" categorical { values: ["sgd", "momentum", "adam"] } }
  genes { name: "beta" float_range { min: 0.5 max: 0.99 } active_if { gene: "opt" values: ["momentum"] } }
  genes { name: "lr" float_range { min: 1e-4 max: 1 scale: LOG } }
  genes { name: "width" int_range { min: 8 max: 64 step: 8 } }
  genes { name: "extra" int_range { min: 0 max: 2 } active_if { gene: "width" values: ["16", "32"] } }
  objectives { name: "loss" }
)";

std::string FieldError(const std::string& text) {
  absl::Status s = ValidateUserDomain(Spec(text), "search_space.user_domain");
  return s.ok() ? "OK" : std::string(s.message());
}

TEST(UserDomainSpecTest, EachMistakeIsNamedByItsField) {
  EXPECT_EQ(FieldError(kSpace), "OK");
  const std::string obj = R"( objectives { name: "loss" } )";
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" } )" + obj),
            "search_space.user_domain.genes[0]: gene 'x' needs a type: categorical, int_range or float_range");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" int_range { min: 3 max: 2 } } )" + obj),
            "search_space.user_domain.genes[0].int_range: empty range: min 3 > max 2");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" int_range { min: 0 max: 2 step: 0 } } )" + obj),
            "search_space.user_domain.genes[0].int_range.step: 0 must be positive");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" float_range { min: 0 max: 1 scale: LOG } } )" + obj),
            "search_space.user_domain.genes[0].float_range.min: a LOG range needs min > 0");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" float_range { min: 1 max: 0.5 } } )" + obj),
            "search_space.user_domain.genes[0].float_range: empty range: min 1 > max 0.5");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" categorical { } } )" + obj),
            "search_space.user_domain.genes[0].categorical.values: is empty");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" categorical { values: ["a", "a"] } } )" + obj),
            "search_space.user_domain.genes[0].categorical.values: 'a' is listed twice");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" categorical { values: ["a"] } } genes { name: "x" categorical { values: ["b"] } } )" + obj),
            "search_space.user_domain.genes[1].name: 'x' is declared twice");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "2x" categorical { values: ["a"] } } )" + obj),
            "search_space.user_domain.genes[0].name: '2x' is not an identifier ([A-Za-z_][A-Za-z0-9_]*)");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "y" categorical { values: ["a"] } active_if { gene: "x" values: ["a"] } } )" + obj),
            "search_space.user_domain.genes[0].active_if.gene: 'x' is not a gene declared before 'y'");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" categorical { values: ["a"] } } genes { name: "y" categorical { values: ["b"] } active_if { gene: "x" values: ["c"] } } )" + obj),
            "search_space.user_domain.genes[1].active_if.values[0]: 'c' is not a value of 'x' (a)");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" int_range { min: 0 max: 8 step: 4 } } genes { name: "y" categorical { values: ["b"] } active_if { gene: "x" values: ["2"] } } )" + obj),
            "search_space.user_domain.genes[1].active_if.values[0]: 2 is not a value 'x' can take");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" categorical { values: ["a"] } })"),
            "search_space.user_domain.objectives: declare at least one objective");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" categorical { values: ["a"] } } objectives { name: "l" } objectives { name: "l" })"),
            "search_space.user_domain.objectives[1].name: 'l' is declared twice");
  EXPECT_EQ(FieldError(R"(name: "t" genes { name: "x" categorical { values: ["a"] } } objectives { name: "l" } evaluator { })"),
            "search_space.user_domain.evaluator.argv: names no program");
  EXPECT_EQ(FieldError(R"(name: "a b" genes { name: "x" categorical { values: ["a"] } } objectives { name: "l" })"),
            "search_space.user_domain.name: 'a b' must be letters, digits, '_', '.' or '-'");
}

const GeneValue* Find(const Candidate& c, const std::string& name) {
  for (const GeneValue& g : c.genes().genes())
    if (g.name() == name) return &g;
  return nullptr;
}

TEST(GeneSpaceTest, RandomMutateAndCrossoverStayValidAndRespectConditions) {
  GeneSpace space(Spec(kSpace));
  Rng rng(7);
  std::vector<double> log_lr;
  std::set<int64_t> widths;
  int with_beta = 0;
  for (int i = 0; i < 3000; ++i) {
    Candidate c = space.Random(rng);
    ASSERT_TRUE(space.Validate(c).ok()) << space.Validate(c) << c.ShortDebugString();
    const bool momentum = Find(c, "opt")->string_value() == "momentum";
    EXPECT_EQ(Find(c, "beta") != nullptr, momentum);
    with_beta += momentum;
    const int64_t w = Find(c, "width")->int_value();
    widths.insert(w);
    EXPECT_EQ(Find(c, "extra") != nullptr, w == 16 || w == 32);
    log_lr.push_back(std::log10(Find(c, "lr")->float_value()));

    Candidate m = space.Mutate(c, rng);
    ASSERT_TRUE(space.Validate(m).ok()) << space.Validate(m);
    EXPECT_NE(m.SerializeAsString(), c.SerializeAsString()) << "a mutation changes the candidate";
    Candidate other = space.Random(rng);
    Candidate x = space.Crossover(c, other, rng);
    ASSERT_TRUE(space.Validate(x).ok()) << space.Validate(x);
    // Every gene the child shares with a parent that has it comes from one of them.
    for (const GeneValue& g : x.genes().genes()) {
      const GeneValue* a = Find(c, g.name());
      const GeneValue* b = Find(other, g.name());
      if (a && b) {
        EXPECT_TRUE(g.SerializeAsString() == a->SerializeAsString() || g.SerializeAsString() == b->SerializeAsString())
            << g.name();
      }
    }
  }
  // The integer grid: every step from 8 to 64 and nothing else.
  EXPECT_EQ(widths, (std::set<int64_t>{8, 16, 24, 32, 40, 48, 56, 64}));
  // LOG scale: uniform in log10 over [-4, 0] (mean -2, a quarter below -3).
  double mean = 0;
  int below = 0;
  for (double v : log_lr) mean += v / log_lr.size(), below += v < -3;
  EXPECT_NEAR(mean, -2.0, 0.1);
  EXPECT_NEAR(below / 3000.0, 0.25, 0.03);
  EXPECT_NEAR(with_beta / 3000.0, 1 / 3.0, 0.03);
}

TEST(GeneSpaceTest, MutatingAParentGeneSwitchesItsChildrenOnAndOff) {
  GeneSpace space(Spec(R"(name: "t" genes { name: "opt" categorical { values: ["sgd", "momentum"] } }
                          genes { name: "beta" float_range { min: 0.5 max: 0.9 } active_if { gene: "opt" values: ["momentum"] } }
                          objectives { name: "l" })"));
  Rng rng(3);
  int on = 0, off = 0;
  for (int i = 0; i < 200; ++i) {
    Candidate c = space.Random(rng);
    Candidate m = space.Mutate(c, rng);
    if (Find(c, "beta") == nullptr && Find(m, "beta") != nullptr) ++on;
    if (Find(c, "beta") != nullptr && Find(m, "beta") == nullptr) ++off;
    EXPECT_TRUE(space.Validate(m).ok());
  }
  EXPECT_GT(on, 20);
  EXPECT_GT(off, 10);
}

TEST(GeneSpaceTest, ValidateNamesTheGene) {
  GeneSpace space(Spec(kSpace));
  Candidate c;
  auto add = [&](const std::string& name) {
    GeneValue* g = c.mutable_genes()->add_genes();
    g->set_name(name);
    return g;
  };
  add("opt")->set_string_value("sgd");
  add("beta")->set_float_value(0.9);
  add("lr")->set_float_value(0.1);
  add("width")->set_int_value(8);
  EXPECT_NE(std::string(space.Validate(c).message()).find("genes.beta: is present but inactive"), std::string::npos)
      << space.Validate(c);
  c.mutable_genes()->mutable_genes()->erase(c.mutable_genes()->mutable_genes()->begin() + 1);
  EXPECT_TRUE(space.Validate(c).ok()) << space.Validate(c);
  c.mutable_genes()->mutable_genes(2)->set_int_value(12);
  EXPECT_EQ(space.Validate(c).message(), "genes.width: 12 is not in 8..64 step 8");
  c.mutable_genes()->mutable_genes(2)->set_int_value(8);
  c.mutable_genes()->mutable_genes(1)->set_float_value(3);
  EXPECT_EQ(space.Validate(c).message(), "genes.lr: 3 is outside 0.0001..1");
  c.mutable_genes()->mutable_genes(1)->set_string_value("fast");
  EXPECT_EQ(space.Validate(c).message(), "genes.lr: must be a number");
}

// A spec with commands written in Python on the command line (no files).
ExperimentSpec WithCommands(const std::string& evaluate, const std::string& probe, const std::string& extra = "") {
  ExperimentSpec spec;
  *spec.mutable_search_space()->mutable_user_domain() = Spec(absl::StrCat(
      R"(name: "mod3" genes { name: "x" int_range { min: 0 max: 29 } } genes { name: "tag" categorical { values: ["a", "b"] } }
         objectives { name: "y" } objectives { name: "acc" direction: MAXIMIZE unit: "%" } )",
      extra));
  spec.mutable_search_space()->set_representation(SearchSpaceSpec::USER_DEFINED);
  auto* u = spec.mutable_search_space()->mutable_user_domain();
  for (const char* a : {kPython, "-c"}) u->mutable_evaluator()->add_argv(a);
  u->mutable_evaluator()->add_argv(evaluate);
  u->mutable_evaluator()->set_timeout_seconds(20);
  if (!probe.empty()) {
    for (const char* a : {kPython, "-c"}) u->mutable_probe()->add_argv(a);
    u->mutable_probe()->add_argv(probe);
    u->mutable_probe()->set_timeout_seconds(20);
  }
  spec.mutable_fec()->set_mantissa_bits(23);
  return spec;
}

// y = x mod 3 (the tag does not matter): the probe prints it, so x and x + 3 share a key.
constexpr char kEvaluate[] =
    "import json,sys; r=json.load(sys.stdin); g=r['genes']; assert r['protocol']=='fecsearch.domain.v1' and r['kind']=='evaluate';"
    "print(json.dumps({'protocol':'fecsearch.domain.v1','objectives':{'y':g['x']%3,'acc':50.0+r['candidate_id']*0},"
    "'cost_seconds':0.5}) if g['x']!=13 else json.dumps({'protocol':'fecsearch.domain.v1','error':'13 is unlucky'}))";
constexpr char kProbe[] =
    "import json,sys; r=json.load(sys.stdin); assert r['kind']=='probe';"
    "print(json.dumps({'protocol':'fecsearch.domain.v1','outputs':[r['genes']['x']%3, 0.5]}))";

Candidate XTag(int64_t x, const std::string& tag) {
  Candidate c;
  GeneValue* g = c.mutable_genes()->add_genes();
  g->set_name("x");
  g->set_int_value(x);
  g = c.mutable_genes()->add_genes();
  g->set_name("tag");
  g->set_string_value(tag);
  return c;
}

TEST(UserDomainTest, EvaluatesThroughTheJsonProtocol) {
  auto d = UserDomain::Create(WithCommands(kEvaluate, kProbe));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->name(), "user:mod3");
  auto r = (*d)->Evaluate(XTag(7, "a"), 42, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status().code(), 0);
  EXPECT_EQ(r->objectives().metrics().at("y"), 1.0);
  EXPECT_EQ(r->objectives().metrics().at("acc"), 50.0);
  EXPECT_EQ(r->cost_seconds(), 0.5);
  // The evaluator's "error": the candidate is invalid, with its words.
  auto bad = (*d)->Evaluate(XTag(13, "a"), 1, 1);
  ASSERT_TRUE(bad.ok());
  EXPECT_NE(bad->status().code(), 0);
  EXPECT_NE(bad->status().message().find("13 is unlucky"), std::string::npos) << bad->status().message();
  // A candidate outside the space never reaches the command.
  auto outside = (*d)->Evaluate(XTag(40, "a"), 1, 1);
  ASSERT_TRUE(outside.ok());
  EXPECT_EQ(outside->status().message(), "genes.x: 40 is not in 0..29 step 1");
  // A maximised objective is minimised negated, and shown as it is.
  auto objectives = ObjectiveSet::Create(SearchSpec(), (*d)->Metrics(), (*d)->DefaultObjectives());
  ASSERT_TRUE(objectives.ok());
  Individual ind;
  objectives->Score(r->objectives(), &ind);
  EXPECT_EQ(ind.objectives, (std::vector<double>{1.0, -50.0}));
  EXPECT_EQ(objectives->Display(1, ind.objectives[1]), 50.0);
  EXPECT_EQ(ObjectiveSet::Axis(objectives->entries()[1].metric), "acc (%)");
  EXPECT_EQ(ind.violation, 0);
  // Constraints by name, either bound: acc >= 60 is violated by 50 (relative excess 1/6).
  SearchSpec constrained;
  Constraint* c = constrained.add_constraints();
  c->set_name("acc");
  c->set_min_value(60);
  auto with_bound = ObjectiveSet::Create(constrained, (*d)->Metrics(), (*d)->DefaultObjectives());
  ASSERT_TRUE(with_bound.ok()) << with_bound.status();
  Individual bounded;
  with_bound->Score(r->objectives(), &bounded);
  EXPECT_NEAR(bounded.violation, 10.0 / 60.0, 1e-12);
  c->set_name("accuracy");
  auto unknown = ObjectiveSet::Create(constrained, (*d)->Metrics(), (*d)->DefaultObjectives());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(),
            "search.constraints[0].name: 'accuracy' is not measured by this domain (it measures: y, acc)");
}

TEST(UserDomainTest, TheProbeFindsEquivalencesAndTheExactFormIsCanonical) {
  auto d = UserDomain::Create(WithCommands(kEvaluate, kProbe));
  ASSERT_TRUE(d.ok()) << d.status();
  FecSpec fec;
  fec.set_mantissa_bits(23);
  auto h = CandidateHasher::Create(d->get(), fec);
  ASSERT_TRUE(h.ok());
  auto a = (*h)->Hash(XTag(4, "a")), b = (*h)->Hash(XTag(7, "b")), c = (*h)->Hash(XTag(5, "a"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status() << b.status() << c.status();
  EXPECT_EQ(a->key, b->key) << "4 and 7 compute the same (mod 3): one key";
  EXPECT_NE(a->exact, b->exact);
  EXPECT_NE(a->key, c->key);
  // Without a probe: the exact genes; floats by their canonical bits (-0 is 0).
  ExperimentSpec no_probe = WithCommands(kEvaluate, "");
  no_probe.mutable_search_space()->mutable_user_domain()->clear_genes();
  auto* g = no_probe.mutable_search_space()->mutable_user_domain()->add_genes();
  g->set_name("f");
  g->mutable_float_range()->set_min(-1);
  g->mutable_float_range()->set_max(1);
  auto e = UserDomain::Create(no_probe);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE((*e)->has_probe());
  auto F = [](double v) {
    Candidate c;
    GeneValue* x = c.mutable_genes()->add_genes();
    x->set_name("f");
    x->set_float_value(v);
    return c;
  };
  EXPECT_EQ((*e)->ExactForm(F(0.0)), (*e)->ExactForm(F(-0.0)));
  EXPECT_NE((*e)->ExactForm(F(0.1)), (*e)->ExactForm(F(std::nextafter(0.1, 1.0))));
}

TEST(UserDomainTest, ContextFingerprintCoversEvaluatorVersionAndFilesButNotTheProbe) {
  const std::string file = TestTempDir("user_domain") + "/evaluator_data.txt";
  auto write = [&](const std::string& s) { std::ofstream(file) << s; };
  write("v1");
  auto fp = [&](const std::string& evaluate, const std::string& probe, const std::string& extra) {
    auto d = UserDomain::Create(WithCommands(evaluate, probe, extra));
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? (*d)->context_fingerprint() : std::string();
  };
  const std::string files = absl::StrCat(R"(context_files: [")", file, R"("])");
  const std::string base = fp(kEvaluate, kProbe, files);
  EXPECT_EQ(base, fp(kEvaluate, kProbe, files)) << "deterministic";
  EXPECT_EQ(base, fp(kEvaluate, "print(1)", files)) << "the probe decides keys, not fitness";
  EXPECT_NE(base, fp(std::string(kEvaluate) + " ", kProbe, files)) << "the evaluator's argv";
  EXPECT_NE(base, fp(kEvaluate, kProbe, files + R"( version: "2")"));
  write("v2");
  EXPECT_NE(base, fp(kEvaluate, kProbe, files)) << "a listed file's bytes";
  auto missing = UserDomain::Create(WithCommands(kEvaluate, kProbe, R"(context_files: ["/no/such/file"])"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("context_files[0]: cannot read '/no/such/file'"), std::string::npos);
  unlink(file.c_str());
}

TEST(UserDomainTest, DifferentProbesNeverShareKeys) {
  // Two probes that print the same numbers for different reasons: their keys differ.
  auto a = UserDomain::Create(WithCommands(kEvaluate, kProbe));
  auto b = UserDomain::Create(WithCommands(kEvaluate, std::string(kProbe) + " "));
  ASSERT_TRUE(a.ok() && b.ok());
  FecSpec fec;
  auto ha = CandidateHasher::Create(a->get(), fec);
  auto hb = CandidateHasher::Create(b->get(), fec);
  EXPECT_NE((*ha)->Hash(XTag(1, "a"))->key, (*hb)->Hash(XTag(1, "a"))->key);
}

// Three objectives: the front (and hypervolume) is that of the first two; the algorithms rank
// all three.
TEST(UserDomainTest, WithThreeObjectivesTheFrontIsThatOfTheFirstPair) {
  GeneSpace space(Spec(R"(name: "t" genes { name: "x" int_range { min: 0 max: 9 } } genes { name: "y" int_range { min: 0 max: 9 } }
                          objectives { name: "a" })"));
  auto gene = [](const Candidate& c, int i) { return static_cast<double>(c.genes().genes(i).int_value()); };
  SimpleDomain domain(
      "three", &space, {{"a", "a", "", false, 0}, {"b", "b", "", false, 0}, {"c", "c", "", false, 0}},
      {{"a", 1, true, 20}, {"b", 1, true, 20}, {"c", 1, true, 20}}, [&](const Candidate& c) -> absl::StatusOr<EvaluationResult> {
        EvaluationResult r;
        r.mutable_status()->set_code(0);
        const double x = gene(c, 0), y = gene(c, 1);
        auto& m = *r.mutable_objectives()->mutable_metrics();
        // On (a, b) odd y is dominated by an even y at the same or a smaller a (if the search
        // evaluated one; the brute force below decides), on (a, b, c) it is not.
        m["a"] = x + y;
        m["b"] = 18 - x - y + std::fmod(y, 2);
        m["c"] = 9 - y;  // ranks odd y above its (a, b) dominators on the third objective
        return r;
      });
  ExperimentSpec spec;
  spec.mutable_search()->set_algorithm(SearchSpec::NSGA2);
  spec.mutable_search()->set_population_size(12);
  spec.mutable_search()->set_max_evaluations(100);
  auto objectives = ObjectiveSet::Create(spec.search(), domain.Metrics(), domain.DefaultObjectives());
  ASSERT_TRUE(objectives.ok()) << objectives.status();
  const std::string path = TestTempDir("user_domain") + "/three.db";
  unlink(path.c_str());
  auto db = ExperimentDb::Open(path, false);
  ASSERT_TRUE(db.ok());
  ExperimentRecord rec;
  rec.name = "three";
  ControllerOptions o;
  o.spec = spec;
  o.experiment_id = *(*db)->StartExperiment(rec);
  o.use_cache = false;
  LocalPool pool([&](int64_t id, const Candidate& c) { return domain.Evaluate(c, id, 1); }, 2, "synthetic");
  Keyer keyer = [&](const Candidate& c) -> absl::StatusOr<CandidateHashes> {
    CandidateHashes h;
    h.exact = ExactHash("three", c);
    h.structural = h.exact;
    h.key = h.exact;
    return h;
  };
  Controller controller(o, domain, *objectives, keyer, nullptr, &pool, db->get(), nullptr);
  auto result = controller.Run();
  pool.Shutdown();
  ASSERT_TRUE(result.ok()) << result.status();
  // Brute force on (a, b) over everything evaluated.
  // (The search's order depends on two threads, so which points it evaluated varies: the
  // test compares against what it did evaluate.)
  std::set<int64_t> want, got;
  int dominated_odd_y = 0;
  for (const CandidateRecord& r : result->records) {
    const double a = MetricValue(r.objectives, "a"), b = MetricValue(r.objectives, "b");
    bool dominated = false;
    for (const CandidateRecord& s : result->records) {
      const double sa = MetricValue(s.objectives, "a"), sb = MetricValue(s.objectives, "b");
      dominated |= sa <= a && sb <= b && (sa < a || sb < b);
    }
    if (!dominated) want.insert(static_cast<int64_t>(a * 100 + b));
    dominated_odd_y += dominated && std::fmod(9 - MetricValue(r.objectives, "c"), 2) == 1;
  }
  for (int i : result->front) {
    const CandidateRecord& r = result->records[i];
    got.insert(static_cast<int64_t>(MetricValue(r.objectives, "a") * 100 + MetricValue(r.objectives, "b")));
  }
  // An odd y dominated on (a, b) has a lower c than its dominators, so it would be on a front
  // of all three objectives; the front over the first pair must leave every one out.
  EXPECT_GT(dominated_odd_y, 0) << "the search saw candidates dominated on the first pair";
  EXPECT_EQ(got, want);
  EXPECT_GT(result->progress.hypervolume, 0);
}

}  // namespace
}  // namespace fecsearch
