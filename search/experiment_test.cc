// Every shipped experiment parses and validates; invalid specs name the field and line.
#include "search/experiment.h"

#include <dirent.h>

#include "core/evaluator.h"
#include "core/model_config.h"
#include "core/text_proto.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

ModelConfig ShippedConfig() {
  auto c = LoadModelConfig("data/tinylm-bytes-5m/config.json");
  EXPECT_TRUE(c.ok());
  return *c;
}

TEST(ExperimentTest, EveryShippedExperimentParsesAndValidates) {
  const ModelConfig model = ShippedConfig();
  DIR* dir = opendir("search/experiments");
  ASSERT_NE(dir, nullptr);
  int count = 0;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.size() < 10 || name.substr(name.size() - 10) != ".textproto") continue;
    ++count;
    auto e = LoadExperiment("search/experiments/" + name);
    ASSERT_TRUE(e.ok()) << e.status();
    absl::Status s = ValidateExperiment(*e, &model);
    EXPECT_TRUE(s.ok()) << s;
    // Its evaluation section loads (paths, windows against the text).
    auto ctx = EvaluationContext::Create(e->spec.evaluation());
    EXPECT_TRUE(ctx.ok()) << name << ": " << ctx.status();
  }
  closedir(dir);
  EXPECT_GE(count, 1);
}

TEST(ExperimentTest, EmbeddedDefaultIsTheShippedFile) {
  std::string text;
  ASSERT_TRUE(ReadFile("search/experiments/default.textproto", &text).ok());
  EXPECT_EQ(std::string(kDefaultExperiment), "\n" + text);
  auto e = LoadExperiment("");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->spec.name(), "default");
  EXPECT_EQ(e->source, "<embedded default>");
}

TEST(ExperimentTest, SyntaxErrorsGiveLineAndColumn) {
  auto e = ParseExperiment("name: \"x\"\nsearch {\n  population_size: many\n}\n", "bad.textproto");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("bad.textproto:3:"), std::string::npos) << e.status();
  e = ParseExperiment("search { no_such_field: 1 }", "bad.textproto");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("no_such_field"), std::string::npos) << e.status();
}

TEST(ExperimentTest, InvalidFieldsNameFieldAndLine) {
  const ModelConfig model = ShippedConfig();
  struct Case {
    const char* text;
    const char* expect;
  };
  for (Case c : std::vector<Case>{
           {"search_space { keys { formats { format: INT bits: 4 } } }\nsearch {\n  tournament_size: 50\n}",
            "spec:3: search.tournament_size: 50 is outside 1..32"},
           {"search_space {\n  layer_groups: 7\n}", "spec:2: search_space.layer_groups: 7 exceeds the model's 6 layers"},
           {"search_space {\n  keys {\n    formats { format: INT bits: 4 }\n    formats { format: INT bits: 12 }\n  }\n}",
            "spec:4: search_space.keys.formats[1].bits: 12 is out of range"},
           {"search_space { keys { token_group_sizes: [16, 24] } }", "search_space.keys.token_group_sizes[1]: 24 does not divide"},
           {"search_space { values { pre_rope: true } }", "search_space.values.pre_rope[0]: applies to keys only"},
           {"search_space { keys { recent_windows: [512] } }\nfec {\n  probe_tokens: 256\n}",
            "spec:3: fec.probe_tokens: 256 tokens are too few for this search space"},
           // KVQuant/KIVI-style per-channel groups of 128 behind a 128-token window: at 256
           // tokens the probe would never see a key quantized.
           {"search_space { keys { axes: [PER_CHANNEL] channel_group_sizes: [128] recent_windows: [128] } }\n"
            "fec {\n  probe_tokens: 256\n}",
            "spec:3: fec.probe_tokens: 256 tokens are too few for this search space: the largest sink count (0) + "
            "recent window (128) + per-channel group (128) + evaluation.chunk_length (16) is 272"},
           {"search_space { values { sink_tokens: [1024] } }\nfec { dedup: EXACT }",
            "search_space.values.sink_tokens[0]: 1024 tokens do not fit in evaluation.window_length (1024 tokens)"},
           {"search_space {\n  representation: PIPELINE_GRAPH\n  graph_mutations { insert_op: 0 delete_op: 0 replace_op: 0 "
            "change_parameter: 0 swap_adjacent: 0 }\n}",
            "spec:3: search_space.graph_mutations: insert_op, delete_op"},
           {"", "search_space: is required"},
           {"search_space {}\nsearch { max_evaluations: 0 }", "spec:2: search.max_evaluations: is 0"},
           {"search_space {}\nworkers {}", "workers.targets"},
           // The fidelity ladder (four default evaluation windows).
           {"search_space {}\nsearch { fidelity {\n  eta: 1.5\n  rungs { windows: [0] } } }",
            "spec:3: search.fidelity.eta: 1.5 is outside 2..1000"},
           {"search_space {}\nsearch { population_size: 24 screen { initial_pool: 10 } }",
            "search.screen.initial_pool: 10 is outside 0 or population_size (24)..100000"},
           {"search_space {}\nsearch { screen { skip: false } }", "search.screen.skip: is false and initial_pool is 0"},
           {"search_space {}\nsearch { fidelity {\n  min_gain: 1\n  rungs { windows: [0] } } }",
            "spec:3: search.fidelity.min_gain: 1 is outside 0 <= min_gain < 1"},
           {"search_space {}\nsearch { fidelity { min_gain: -0.1 rungs { windows: [0] } } }",
            "search.fidelity.min_gain: -0.1 is outside"},
           {"search_space {}\nsearch { fidelity { } }", "search.fidelity.rungs: needs at least one rung"},
           {"search_space {}\nsearch { fidelity {\n  rungs { windows: [4] } } }",
            "spec:3: search.fidelity.rungs[0].windows[0]: 4 is outside 0..3"},
           {"search_space {}\nevaluation { eval_windows: [0, 1, 2, 3, 4, 5] }\nsearch { fidelity { rungs { windows: [5] } } }",
            ""},
           {"search_space {}\nsearch { fidelity { rungs { windows: [0] } rungs { windows: [1, 2] } } }",
            "search.fidelity.rungs[1].windows: does not contain window 0 of rung 0: the ladder must be nested"},
           {"search_space {}\nsearch { fidelity { rungs { windows: [0, 1] } rungs { windows: [1, 0] } } }",
            "search.fidelity.rungs[1].windows[1]: indices must increase: 1 then 0"},
           {"search_space {}\nsearch { fidelity { rungs { windows: [1] } rungs { windows: [1] } } }",
            "search.fidelity.rungs[1].windows: scores the same windows as rung 0"},
           {"search_space {}\nsearch { fidelity { rungs { windows: [0, 1, 2, 3] } } }",
            "search.fidelity.rungs[0].windows: scores all 4 evaluation windows"},
           {"search_space {}\nsearch { fidelity { rungs { } } }", "search.fidelity.rungs[0].windows: is empty"},
           {"search_space { representation: PROGRAM }\nsearch { fidelity { rungs { windows: [0] } } }",
            "search.fidelity: needs a domain with fidelities"},
           // The probe screen.
           {"search_space {}\nsearch { screen {\n  margin: 1.5 } }", "spec:3: search.screen.margin: 1.5 is outside 0 <= margin < 1"},
           {"search_space {}\nsearch { screen { margin: -0.1 } }", "search.screen.margin: -0.1 is outside"},
           {"search_space {}\nsearch { screen { warmup: -1 } }", "search.screen.warmup: -1 is outside 0..1000000"},
           {"search_space { representation: PROGRAM }\nsearch { screen { } }", "search.screen: needs a domain with a predictor"},
       }) {
    if (*c.expect == 0) {  // valid
      auto e = ParseExperiment(c.text, "spec");
      ASSERT_TRUE(e.ok()) << c.text;
      EXPECT_TRUE(ValidateExperiment(*e, &model).ok()) << c.text << ": " << ValidateExperiment(*e, &model);
      continue;
    }
    auto e = ParseExperiment(c.text, "spec");
    ASSERT_TRUE(e.ok()) << c.text;
    absl::Status s = ValidateExperiment(*e, &model);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
  }
}

TEST(ExperimentTest, LocateErrorFindsTheFieldOfAContextError) {
  auto e = ParseExperiment("search_space {}\nevaluation {\n  eval_windows: [0, 99]\n}", "spec");
  ASSERT_TRUE(e.ok());
  auto ctx = EvaluationContext::Create(e->spec.evaluation());
  ASSERT_FALSE(ctx.ok());
  absl::Status located = LocateError(*e, ctx.status());
  EXPECT_NE(located.message().find("spec:3: evaluation.eval_windows[1]: window 99"), std::string::npos)
      << located;
}

}  // namespace
}  // namespace fecsearch
