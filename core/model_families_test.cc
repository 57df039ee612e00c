// Every supported family (llama with each RoPE variant, mistral, qwen2 tied and untied,
// qwen3) reproduces the golden NLL, logits, keys and values of its fixture, which come from
// tests/data/reference/hf_numpy.py (a numpy reference written from transformers' source by a
// session that never read this code; see each fixture's MODEL_CARD.md).
#include <cmath>
#include <string>
#include <vector>

#include "core/decoder_model.h"
#include "core/forward.h"
#include "core/model_test_util.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

struct Family {
  const char* dir;
  const char* model_type;
  bool scaled_rope;  // a RoPE variant that default RoPE would not reproduce
};

const Family kFamilies[] = {
    {"tests/data/llama3-rope-bf16", "llama", true},
    {"tests/data/llama-yarn-sharded", "llama", true},
    {"tests/data/llama-linear-bias", "llama", true},
    {"tests/data/llama-dynamic", "llama", true},
    {"tests/data/mistral-gqa", "mistral", false},
    {"tests/data/qwen2-bias-tied", "qwen2", false},
    {"tests/data/qwen2-bias-untied-bf16", "qwen2", false},
    {"tests/data/qwen3-qknorm-sharded-bf16", "qwen3", false},
};

// The golden tests' tolerances (model_test.cc): NLL 1e-4 relative, values 1e-3 absolute.
constexpr double kNllRelative = 1e-4;
constexpr double kValueAbsolute = 1e-3;

std::vector<int> Ids(const nlohmann::json& golden) { return golden["input_ids"].get<std::vector<int>>(); }

ModelPlan Exact() {
  ModelPlan p;
  p.exact = true;
  return p;
}

void ExpectRow(const float* actual, const nlohmann::json& expected, const std::string& what) {
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_NEAR(actual[i], expected[i].get<double>(), kValueAbsolute) << what << "[" << i << "]";
  }
}

class FamilyTest : public ::testing::TestWithParam<Family> {};

TEST_P(FamilyTest, ReproducesGoldenNllLogitsKeysAndValues) {
  const Family& f = GetParam();
  const nlohmann::json golden = ReadJson(std::string(f.dir) + "/golden.json");
  const std::vector<int> ids = Ids(golden);
  auto model = DecoderModel::Load(f.dir, static_cast<int>(ids.size()));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->config().model_type, f.model_type);
  // The RoPE frequencies and cos/sin multiplier the reference used.
  const auto& inv = golden["rope"]["inv_freq"];
  ASSERT_EQ(inv.size(), (*model)->rope().inv_freq().size());
  for (size_t i = 0; i < inv.size(); ++i) {
    EXPECT_NEAR((*model)->rope().inv_freq()[i], inv[i].get<double>(), 1e-6 * inv[i].get<double>()) << "inv_freq " << i;
  }
  EXPECT_NEAR((*model)->rope().attention_scaling(), golden["rope"]["attention_scaling"].get<double>(), 1e-9);

  ForwardCapture cap;
  cap.want_logits = true;
  cap.layer_inputs = true;
  ForwardResult r = ForwardWindow(**model, ids, Exact(), 16, &cap);
  const double nll = golden["nll_sum"].get<double>();
  EXPECT_NEAR(r.nll_sum, nll, kNllRelative * nll);
  EXPECT_EQ(r.scored, golden["tokens_scored"].get<int>());
  for (const auto& [pos, row] : golden["logits"].items()) {
    ExpectRow(cap.logits.row(std::stoi(pos)).data(), row, std::string(f.dir) + " logits at " + pos);
  }
  for (const auto& kv : golden["kv"]) {
    const int l = kv["layer"].get<int>(), p = kv["position"].get<int>();
    const std::string at = std::string(f.dir) + " layer " + std::to_string(l) + " position " + std::to_string(p);
    ExpectRow(cap.layers[l].k_pre.row(p).data(), kv["key_pre_rope"], at + " key before RoPE");
    ExpectRow(cap.layers[l].k.row(p).data(), kv["key"], at + " key");
    ExpectRow(cap.layers[l].v.row(p).data(), kv["value"], at + " value");
  }
}

TEST_P(FamilyTest, ResultsDoNotDependOnTheThreadCount) {
  const Family& f = GetParam();
  const std::vector<int> ids = Ids(ReadJson(std::string(f.dir) + "/golden.json"));
  auto model = DecoderModel::Load(f.dir, static_cast<int>(ids.size()));
  ASSERT_TRUE(model.ok()) << model.status();
  const double one = ForwardWindow(**model, ids, Exact(), 16).nll_sum;
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    EXPECT_EQ(ForwardWindow(**model, ids, Exact(), 16, nullptr, &pool).nll_sum, one) << threads << " threads";
  }
}

// The scaled-RoPE fixtures use a small original context so that the evaluated positions are
// past the scaling threshold: run with default RoPE, they miss the golden NLL by far more
// than the tolerance (so the golden test above does test the scaling).
TEST_P(FamilyTest, DefaultRopeWouldMissTheGoldenValues) {
  const Family& f = GetParam();
  if (!f.scaled_rope) GTEST_SKIP() << "default RoPE";
  const nlohmann::json golden = ReadJson(std::string(f.dir) + "/golden.json");
  const std::vector<int> ids = Ids(golden);
  const std::string dir = TestTempDir(std::string("default_rope_") + std::to_string(std::hash<std::string>()(f.dir)));
  WriteModelVariant(f.dir, dir, "", [](nlohmann::json& c) {
    c.erase("rope_scaling");
    const double theta = c.contains("rope_parameters") && c["rope_parameters"].contains("rope_theta")
                             ? c["rope_parameters"]["rope_theta"].get<double>()
                             : c.value("rope_theta", 10000.0);
    c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", theta}};
    c["max_position_embeddings"] = 1024;
  });
  auto model = DecoderModel::Load(dir, static_cast<int>(ids.size()));
  ASSERT_TRUE(model.ok()) << model.status();
  ForwardCapture cap;
  cap.want_logits = true;
  const double nll = golden["nll_sum"].get<double>();
  const double miss = std::fabs(ForwardWindow(**model, ids, Exact(), 16, &cap).nll_sum - nll);
  double logit_miss = 0;
  for (const auto& [pos, row] : golden["logits"].items()) {
    for (size_t i = 0; i < row.size(); ++i) {
      logit_miss = std::max(logit_miss, std::fabs(cap.logits(std::stoi(pos), i) - row[i].get<double>()));
    }
  }
  EXPECT_GT(miss, 10 * kNllRelative * nll) << f.dir << ": default RoPE's NLL lands within 10x the tolerance";
  EXPECT_GT(logit_miss, 100 * kValueAbsolute) << f.dir << ": default RoPE's logits land within 100x the tolerance";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FamilyTest, ::testing::ValuesIn(kFamilies),
                         [](const ::testing::TestParamInfo<Family>& info) {
                           std::string name = info.param.dir + std::string("tests/data/").size();
                           for (char& c : name)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

}  // namespace
}  // namespace fecsearch
