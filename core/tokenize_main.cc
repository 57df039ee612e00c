// bazel run //core:tokenize -- --tokenizer=DIR (--text=FILE | --string=S | --batch=FILE)
// Prints the token ids of UTF-8 text as Hugging Face's tokenizer encodes it with the model's
// tokenizer.json: for checking evaluation text and for the reference test.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/process_init.h"
#include "core/tokenizer.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, tokenizer, "",
          "Directory with tokenizer.json (and optionally tokenizer_config.json).");
ABSL_FLAG(std::string, text, "", "UTF-8 text file to encode (the whole file is one string).");
ABSL_FLAG(std::string, string, "", "Text to encode, given inline (e.g. --string='Hello world').");
ABSL_FLAG(std::string, batch, "",
          "JSON file holding an array of strings: each is encoded and printed on its own line.");
ABSL_FLAG(bool, add_special_tokens, true,
          "Add the post-processor's special tokens (BOS etc.); --noadd_special_tokens to leave them out.");
ABSL_FLAG(std::string, format, "ids",
          "Output: 'ids' (space-separated on one line) or 'json' (a JSON array).");
ABSL_FLAG(bool, info, false,
          "Also print the tokenizer's kind, vocab size, BOS id and fingerprint to stderr.");

namespace fecsearch {
namespace {

constexpr int kBadInput = 2;

int Fail(const std::string& message) {
  std::fprintf(stderr, "tokenize: %s\n", message.c_str());
  return kBadInput;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return !in.bad();
}

std::string Format(const std::vector<int>& ids, bool json) {
  return json ? absl::StrCat("[", absl::StrJoin(ids, ","), "]") : absl::StrJoin(ids, " ");
}

int Main() {
  const std::string dir = absl::GetFlag(FLAGS_tokenizer);
  const std::string format = absl::GetFlag(FLAGS_format);
  if (dir.empty()) return Fail("--tokenizer=DIR is required (a directory with tokenizer.json)");
  if (format != "ids" && format != "json")
    return Fail(absl::StrCat("--format='", format, "' must be ids or json"));
  const bool json = format == "json";
  const int sources = !absl::GetFlag(FLAGS_text).empty() + !absl::GetFlag(FLAGS_string).empty() +
                      !absl::GetFlag(FLAGS_batch).empty();
  // --string='' is a legitimate input (the empty string): only --text and --batch count as set
  // when non-empty, and no source at all means the empty --string.
  if (sources > 1) return Fail("give one of --text, --string and --batch");

  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = Tokenizer::Load(dir);
  if (!tokenizer.ok()) return Fail(std::string(tokenizer.status().message()));
  if (absl::GetFlag(FLAGS_info)) {
    std::fprintf(stderr, "kind: %s\nvocab_size: %d\nbos_id: %d\nfingerprint: %s\n",
                 (*tokenizer)->kind().c_str(), (*tokenizer)->vocab_size(), (*tokenizer)->bos_id(),
                 (*tokenizer)->fingerprint().c_str());
  }
  const bool special = absl::GetFlag(FLAGS_add_special_tokens);

  std::vector<std::string> texts;
  std::vector<std::string> names;  // what each text is called in errors
  if (!absl::GetFlag(FLAGS_batch).empty()) {
    const std::string path = absl::GetFlag(FLAGS_batch);
    std::string content;
    if (!ReadFile(path, &content)) return Fail(absl::StrCat(path, ": cannot read"));
    nlohmann::json list = nlohmann::json::parse(content, nullptr, /*allow_exceptions=*/false);
    if (list.is_discarded() || !list.is_array())
      return Fail(absl::StrCat(path, ": not a JSON array of strings"));
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_string()) return Fail(absl::StrCat(path, ": element ", i, " is not a string"));
      texts.push_back(list[i].get<std::string>());
      names.push_back(absl::StrCat(path, "[", i, "]"));
    }
  } else if (!absl::GetFlag(FLAGS_text).empty()) {
    const std::string path = absl::GetFlag(FLAGS_text);
    texts.emplace_back();
    if (!ReadFile(path, &texts.back())) return Fail(absl::StrCat(path, ": cannot read"));
    names.push_back(path);
  } else {
    texts.push_back(absl::GetFlag(FLAGS_string));
    names.push_back("--string");
  }

  std::string out;
  for (size_t i = 0; i < texts.size(); ++i) {
    absl::StatusOr<std::vector<int>> ids = (*tokenizer)->Encode(texts[i], special);
    if (!ids.ok()) return Fail(absl::StrCat(names[i], ": ", ids.status().message()));
    absl::StrAppend(&out, Format(*ids, json), "\n");
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace
}  // namespace fecsearch

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Prints the token ids of UTF-8 text, encoded exactly as Hugging Face's tokenizer does with "
      "the model's tokenizer.json.\n"
      "  bazel run //core:tokenize -- --tokenizer=DIR --string='Hello world'\n"
      "  bazel run //core:tokenize -- --tokenizer=DIR --text=eval.txt --noadd_special_tokens\n"
      "  bazel run //core:tokenize -- --tokenizer=DIR --batch=strings.json --format=json\n"
      "Output: the ids on one line (--format=ids, space-separated) or as a JSON array "
      "(--format=json); --batch prints one line per string. Exit code 2 on bad input (a missing "
      "or malformed file, an unsupported tokenizer feature, invalid UTF-8), naming the file and "
      "field.");
  fecsearch::InitProcess();
  absl::ParseCommandLine(argc, argv);
  return fecsearch::Main();
}
