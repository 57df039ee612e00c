// Golden reproduction of the shipped model and the GQA/BF16 fixture, loader variants and
// loader errors.
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/forward.h"
#include "core/decoder_model.h"
#include "core/model_test_util.h"
#include "core/safetensors.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

std::vector<int> Bytes(const std::string& path, size_t offset, size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string s = ss.str();
  std::vector<int> out;
  for (size_t i = offset; i < offset + n && i < s.size(); ++i) out.push_back(static_cast<unsigned char>(s[i]));
  return out;
}

ModelPlan Exact() {
  ModelPlan p;
  p.exact = true;
  return p;
}

void ExpectFirst8(const float* actual, const nlohmann::json& expected, const std::string& what) {
  ASSERT_EQ(expected.size(), 8u) << what;
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(actual[i], expected[i].get<double>(), 1e-3) << what << "[" << i << "]";
}

TEST(GoldenTest, ShippedModelReproducesEveryWindowAndTensor) {
  auto model = DecoderModel::Load(kShippedModel);
  ASSERT_TRUE(model.ok()) << model.status();
  const nlohmann::json golden = ReadJson(std::string(kShippedModel) + "/golden.json");
  const std::string text = std::string(kShippedModel) + "/eval.txt";
  const auto& windows = golden["windows"];
  ASSERT_EQ(windows.size(), 64u);
  double total = 0;
  for (size_t w = 0; w < windows.size(); ++w) {
    const size_t offset = windows[w]["offset"].get<size_t>();
    ForwardCapture cap;
    cap.want_logits = w == 0;
    cap.layer_inputs = w == 0;
    ForwardResult r = ForwardWindow(**model, Bytes(text, offset, 1024), Exact(), 16, &cap);
    const double expected = windows[w]["nll_sum"].get<double>();
    EXPECT_NEAR(r.nll_sum, expected, 1e-4 * expected) << "window " << w;
    EXPECT_EQ(r.scored, windows[w]["tokens_scored"].get<int>());
    total += r.nll_sum;
    if (w == 0) {
      ExpectFirst8(cap.logits.row(0).data(), golden["window0_logits_pos0_first8"], "logits pos0");
      ExpectFirst8(cap.logits.row(100).data(), golden["window0_logits_pos100_first8"], "logits pos100");
      ExpectFirst8(cap.logits.row(1023).data(), golden["window0_logits_last_first8"], "logits last");
      ExpectFirst8(cap.layers[0].k.row(5).data(), golden["window0_layer0_key_post_rope_head0_pos5_first8"], "key");
      ExpectFirst8(cap.layers[0].v.row(5).data(), golden["window0_layer0_value_head0_pos5_first8"], "value");
    }
  }
  EXPECT_NEAR(total / (64 * 1023), golden["mean_nll_nats"].get<double>(), 1e-5);
}

TEST(GoldenTest, ChunkLengthDoesNotChangeTheUncompressedModel) {
  auto model = DecoderModel::Load(kShippedModel);
  ASSERT_TRUE(model.ok());
  const auto tokens = Bytes(std::string(kShippedModel) + "/eval.txt", 0, 1024);
  const double a = ForwardWindow(**model, tokens, Exact(), 1).nll_sum;
  const double b = ForwardWindow(**model, tokens, Exact(), 1024).nll_sum;
  EXPECT_NEAR(a, b, 1e-6 * a);
}

struct GqaGolden {
  double nll_sum;
  nlohmann::json golden;
};

void CheckGqa(const std::string& dir) {
  auto model = DecoderModel::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->config().num_kv_heads, 2);
  EXPECT_EQ((*model)->config().rope.theta, 500000.0);
  const nlohmann::json golden = ReadJson(std::string(kGqaFixture) + "/golden.json");
  ForwardCapture cap;
  cap.want_logits = true;
  cap.layer_inputs = true;
  ForwardResult r = ForwardWindow(**model, Bytes(std::string(kShippedModel) + "/eval.txt", 0, 512),
                                  Exact(), 16, &cap);
  const double expected = golden["nll_sum"].get<double>();
  EXPECT_NEAR(r.nll_sum, expected, 1e-4 * expected);
  ExpectFirst8(cap.logits.row(0).data(), golden["logits_pos0_first8"], "logits pos0");
  ExpectFirst8(cap.logits.row(511).data(), golden["logits_last_first8"], "logits last");
  // KV head 1 of layer 1: columns 32..63 of the key matrix.
  ExpectFirst8(cap.layers[1].k.row(7).data() + 32, golden["layer1_key_post_rope_kvhead1_pos7_first8"], "key");
}

TEST(GoldenTest, GqaBf16FixtureReproduces) { CheckGqa(kGqaFixture); }

TEST(GoldenTest, F32AndTopLevelRopeThetaVariantsEvaluateIdentically) {
  const auto tokens = Bytes(std::string(kShippedModel) + "/eval.txt", 0, 512);
  auto original = DecoderModel::Load(kGqaFixture);
  ASSERT_TRUE(original.ok());
  const double reference = ForwardWindow(**original, tokens, Exact(), 16).nll_sum;

  const std::string f32 = TestTempDir("gqa_f32");
  WriteModelVariant(kGqaFixture, f32, "F32", nullptr);
  auto f32_model = SafetensorsFile::Open(f32 + "/model.safetensors");
  ASSERT_TRUE(f32_model.ok());
  EXPECT_EQ((*f32_model)->tensors().at("lm_head.weight").dtype, "F32");
  CheckGqa(f32);

  const std::string top = TestTempDir("gqa_top_level_theta");
  WriteModelVariant(kGqaFixture, top, "", [](nlohmann::json& c) {
    const double theta = c["rope_parameters"]["rope_theta"].get<double>();
    c.erase("rope_parameters");
    c["rope_theta"] = theta;
  });
  CheckGqa(top);
  for (const std::string& dir : {f32, top}) {
    auto m = DecoderModel::Load(dir);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(ForwardWindow(**m, tokens, Exact(), 16).nll_sum, reference) << dir;
  }
}

TEST(LoaderErrorsTest, MissingDirectoryNamesThePath) {
  auto m = DecoderModel::Load("/nonexistent/model");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("/nonexistent/model/config.json"), std::string::npos);
}

TEST(LoaderErrorsTest, TruncatedWeightsAreDataLoss) {
  const std::string dir = TestTempDir("gqa_truncated");
  WriteModelVariant(kGqaFixture, dir, "", nullptr);
  std::string bytes;
  {
    std::ifstream in(dir + "/model.safetensors", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  std::ofstream(dir + "/model.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  auto m = DecoderModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(m.status().message().find("model.safetensors"), std::string::npos) << m.status();
  std::ofstream(dir + "/model.safetensors", std::ios::binary) << "garbage";
  m = DecoderModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("too short"), std::string::npos) << m.status();
}

TEST(LoaderErrorsTest, WrongShapeNamesTheTensor) {
  const std::string dir = TestTempDir("gqa_wrong_shape");
  WriteModelVariant(kGqaFixture, dir, "", nullptr, [](nlohmann::json& h) {
    auto& t = h["model.layers.1.mlp.down_proj.weight"];
    t["shape"] = {t["shape"][1], t["shape"][0]};
  });
  auto m = DecoderModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("model.layers.1.mlp.down_proj.weight"), std::string::npos) << m.status();
  EXPECT_NE(m.status().message().find("expected [128, 352]"), std::string::npos) << m.status();
}

TEST(LoaderErrorsTest, UnsupportedDtypeIsNamed) {
  const std::string dir = TestTempDir("gqa_i16");
  WriteModelVariant(kGqaFixture, dir, "", nullptr,
                    [](nlohmann::json& h) { h["model.norm.weight"]["dtype"] = "I16"; });
  auto m = DecoderModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("I16"), std::string::npos) << m.status();
  EXPECT_NE(m.status().message().find("model.norm.weight"), std::string::npos) << m.status();
}

TEST(LoaderErrorsTest, BadConfigIsNamed) {
  const std::string dir = TestTempDir("gqa_bad_config");
  WriteModelVariant(kGqaFixture, dir, "", [](nlohmann::json& c) { c.erase("hidden_size"); });
  auto m = DecoderModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("hidden_size"), std::string::npos) << m.status();
  WriteModelVariant(kGqaFixture, dir, "", [](nlohmann::json& c) { c["num_key_value_heads"] = 3; });
  m = DecoderModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("num_key_value_heads"), std::string::npos) << m.status();
  // An unknown RoPE type is refused, in either spelling, rather than run unscaled.
  WriteModelVariant(kGqaFixture, dir, "", [](nlohmann::json& c) {
    c["rope_scaling"] = {{"type", "su"}, {"factor", 8}};
  });
  m = DecoderModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("rope_scaling.type 'su'"), std::string::npos) << m.status();
  WriteModelVariant(kGqaFixture, dir, "", [](nlohmann::json& c) {
    c["rope_parameters"] = {{"rope_type", "longrope"}, {"factor", 4}};
  });
  m = DecoderModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("rope_parameters.rope_type 'longrope'"), std::string::npos) << m.status();
  std::ofstream(dir + "/config.json") << "{not json";
  m = DecoderModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("config.json"), std::string::npos) << m.status();
}

}  // namespace
}  // namespace fecsearch
