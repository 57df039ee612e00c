// The KV-cache domain's fidelities on the shipped model: each rung scores its windows, a
// higher rung's result gives a lower rung's, and a promotion scores only the missing windows.
#include "search/domains/kv_domain.h"

#include <set>

#include "core/text_proto.h"
#include "gtest/gtest.h"
#include "search/experiment.h"

namespace fecsearch {
namespace {

void ExpectSameObjectives(const EvaluationResult& a, const EvaluationResult& b, const std::string& what) {
  ASSERT_EQ(a.status().code(), 0) << what << ": " << a.status().message();
  ASSERT_EQ(b.status().code(), 0) << what << ": " << b.status().message();
  ASSERT_EQ(a.windows_size(), b.windows_size()) << what;
  for (int i = 0; i < a.windows_size(); ++i) EXPECT_EQ(a.windows(i).index(), b.windows(i).index()) << what;
  ASSERT_EQ(a.objectives().metrics().size(), b.objectives().metrics().size()) << what;
  for (const auto& [name, value] : a.objectives().metrics()) {
    EXPECT_EQ(b.objectives().metrics().at(name), value) << what << ": " << name;
  }
  EXPECT_EQ(a.cache_bytes(), b.cache_bytes()) << what;
  EXPECT_EQ(a.tokens_scored(), b.tokens_scored()) << what;
}

TEST(KvDomainTest, RungsScoreNestedWindowsAndPromotionsOnlyTheMissingOnes) {
  auto e = ParseExperiment(
      "search_space { layer_groups: 1 keys { formats { format: INT bits: 3 } } }\n"
      "search { fidelity { eta: 3 rungs { windows: [1] } rungs { windows: [1, 3] } } }\n"
      "fec { dedup: EXACT }\nevaluation { threads: 2 }",
      "spec");
  ASSERT_TRUE(e.ok()) << e.status();
  auto ctx = EvaluationContext::Create(e->spec.evaluation());
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  auto domain = KvDomain::Create(e->spec, e->spec.fec(), *ctx);
  ASSERT_TRUE(domain.ok()) << domain.status();
  const KvDomain& d = **domain;

  const std::vector<Fidelity> f = d.Fidelities();
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].name, "1 window");
  EXPECT_EQ(f[1].name, "2 windows");
  EXPECT_EQ(f[2].name, "4 windows (full)");
  EXPECT_EQ(f[0].relative_cost, 0.25);
  EXPECT_EQ(f[1].relative_cost, 0.5);
  EXPECT_EQ(f[2].relative_cost, 1.0);
  EXPECT_EQ(d.FidelityWindows(1), (std::vector<int>{1, 3}));

  Candidate c;
  ASSERT_TRUE(ParseTextProto("layers { keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 } values { format: INT bits: 2 } }",
                             "test", c.mutable_genome())
                  .ok());
  auto r0 = d.EvaluateAt(c, 0);
  auto r1 = d.EvaluateAt(c, 1);
  auto full = d.EvaluateAt(c, 2);
  ASSERT_TRUE(r0.ok() && r1.ok() && full.ok());
  ASSERT_EQ(r0->windows_size(), 1);
  EXPECT_EQ(r0->windows(0).index(), 1);
  EXPECT_EQ(r0->windows(0).window(), 1);  // the default evaluation windows are 0..3
  ASSERT_EQ(full->windows_size(), 4);
  ExpectSameObjectives(*full, *d.Evaluate(c), "the last rung is the full evaluation");
  // The windows differ, so the rungs' objectives do (else the test could not tell them apart).
  EXPECT_NE(r0->objectives().mean_nll(), r1->objectives().mean_nll());
  EXPECT_NE(r1->objectives().mean_nll(), full->objectives().mean_nll());

  // A higher rung's result answers a lower rung, never the reverse.
  ExpectSameObjectives(*r0, *d.ResultAt(*full, 0), "rung 0 from the full result");
  ExpectSameObjectives(*r1, *d.ResultAt(*full, 1), "rung 1 from the full result");
  ExpectSameObjectives(*r0, *d.ResultAt(*r1, 0), "rung 0 from rung 1");
  EXPECT_EQ(d.ResultAt(*r0, 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(d.ResultAt(*r1, 2).status().code(), absl::StatusCode::kNotFound);

  // Promotions give what evaluating at the rung gives and score only the missing windows
  // (their cost is that of those windows: less than a fresh evaluation's).
  auto p1 = d.Promote(c, *r0, 1);
  ASSERT_TRUE(p1.ok()) << p1.status();
  ExpectSameObjectives(*r1, *p1, "promoted 0 -> 1");
  auto p2 = d.Promote(c, *p1, 2);
  ASSERT_TRUE(p2.ok()) << p2.status();
  ExpectSameObjectives(*full, *p2, "promoted 1 -> 2");
  auto skip = d.Promote(c, *r0, 2);
  ASSERT_TRUE(skip.ok()) << skip.status();
  ExpectSameObjectives(*full, *skip, "promoted 0 -> 2");
  EXPECT_EQ(full->analytic_effective_bits(), p2->analytic_effective_bits());

  // Out-of-range fidelities are named.
  EXPECT_NE(d.EvaluateAt(c, 3).status().message().find("fidelity 3 is outside 0..2"), std::string::npos);
  EXPECT_NE(d.ResultAt(*full, -1).status().message().find("fidelity -1 is outside 0..2"), std::string::npos);

  // Without search.fidelity the domain has no fidelities.
  ExperimentSpec plain = e->spec;
  plain.mutable_search()->clear_fidelity();
  auto without = KvDomain::Create(plain, plain.fec(), *ctx);
  ASSERT_TRUE(without.ok());
  EXPECT_TRUE((*without)->Fidelities().empty());
}

TEST(KvDomainTest, ARungBeyondThePlacedWindowsIsRefused) {
  // Validation counts the spec's eval_windows; the domain checks against the context's.
  ExperimentSpec spec;
  spec.mutable_search_space()->set_layer_groups(1);
  spec.mutable_fec()->set_dedup(FecSpec::EXACT);
  spec.mutable_search()->mutable_fidelity()->add_rungs()->add_windows(2);
  spec.mutable_evaluation()->add_eval_windows(0);
  spec.mutable_evaluation()->add_eval_windows(5);
  auto ctx = EvaluationContext::Create(spec.evaluation());
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  auto domain = KvDomain::Create(spec, spec.fec(), *ctx);
  ASSERT_FALSE(domain.ok());
  EXPECT_NE(domain.status().message().find("search.fidelity: window index 2 is outside 0..1"), std::string::npos)
      << domain.status();
}

}  // namespace
}  // namespace fecsearch
