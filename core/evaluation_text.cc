// Evaluation text loading: bytes, token ids, or tokenized UTF-8.
#include "core/evaluation_text.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/paths.h"
#include "core/tokenizer.h"

namespace fecsearch {

absl::StatusOr<std::vector<int>> LoadTokens(const std::string& path,
                                            EvaluationSpec::InputFormat format, int vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open evaluation text (", std::strerror(errno), ")"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<int> tokens;
  if (format == EvaluationSpec::TOKEN_IDS) {
    std::istringstream is(text);
    std::string word;
    long count = 0;
    while (is >> word) {
      char* end = nullptr;
      const long id = std::strtol(word.c_str(), &end, 10);
      if (end == word.c_str() || *end != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": token ", count, " ('", word, "') is not a decimal integer"));
      }
      if (id < 0 || id >= vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": token ", count, " = ", id,
                                                       " is outside the vocabulary 0..",
                                                       vocab_size - 1));
      }
      tokens.push_back(static_cast<int>(id));
      ++count;
    }
  } else {
    if (vocab_size < 256) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": byte input needs a vocabulary of 256, the model has ", vocab_size,
          " (use input_format: TOKEN_IDS)"));
    }
    tokens.reserve(text.size());
    for (unsigned char c : text) tokens.push_back(c);
  }
  return tokens;
}

absl::StatusOr<EvaluationText> LoadEvaluationText(const std::string& path, const EvaluationSpec& spec,
                                                  const std::string& model_dir, int vocab_size) {
  const std::string tokenizer_dir =
      spec.tokenizer_path().empty() ? model_dir : ResolveInputPath(spec.tokenizer_path());
  EvaluationSpec::InputFormat format = spec.input_format();
  if (format == EvaluationSpec::INPUT_FORMAT_UNSPECIFIED || format == EvaluationSpec::AUTO) {
    format = PathExists(tokenizer_dir + "/tokenizer.json") ? EvaluationSpec::TEXT : EvaluationSpec::BYTES;
  }
  EvaluationText out;
  if (format != EvaluationSpec::TEXT) {
    auto tokens = LoadTokens(path, format, vocab_size);
    if (!tokens.ok()) return tokens.status();
    out.tokens = std::move(*tokens);
    out.description = absl::StrFormat("%d tokens (%s of %s)", out.tokens.size(),
                                      format == EvaluationSpec::BYTES ? "bytes" : "token ids", path);
    return out;
  }
  auto tokenizer = Tokenizer::Load(tokenizer_dir);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat("evaluation.input_format TEXT: ", tokenizer.status().message()));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open evaluation text (", std::strerror(errno), ")"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  // The whole file as one string, as a user would encode it; BOS goes to each window instead.
  auto ids = (*tokenizer)->Encode(ss.str(), /*add_special_tokens=*/false);
  if (!ids.ok()) return absl::Status(ids.status().code(), absl::StrCat(path, ": ", ids.status().message()));
  for (size_t i = 0; i < ids->size(); ++i) {
    if ((*ids)[i] < 0 || (*ids)[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": token ", i, " = ", (*ids)[i],
                                                     " from the tokenizer is outside the model's vocabulary 0..",
                                                     vocab_size - 1, " (tokenizer and model do not match?)"));
    }
  }
  out.tokens = std::move(*ids);
  out.bos = (*tokenizer)->bos_id();
  if (out.bos >= vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(tokenizer_dir, "/tokenizer.json: BOS id ", out.bos,
                                                   " is outside the model's vocabulary 0..", vocab_size - 1));
  }
  out.description = absl::StrFormat("%d tokens (%s tokenizer.json of %s%s)", out.tokens.size(), (*tokenizer)->kind(),
                                    tokenizer_dir, out.bos >= 0 ? absl::StrCat(", BOS ", out.bos) : "");
  return out;
}

}  // namespace fecsearch
