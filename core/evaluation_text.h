// The evaluation text as token ids: raw bytes, decimal token ids, or UTF-8 text encoded with
// the model's Hugging Face tokenizer (docs/DOMAIN.md section 4, docs/MODELS.md).
#ifndef FECSEARCH_CORE_EVALUATION_TEXT_H_
#define FECSEARCH_CORE_EVALUATION_TEXT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "protos/experiment.pb.h"

namespace fecsearch {

// Loads the token ids of `path`: raw bytes (BYTES) or whitespace-separated decimal ids
// (TOKEN_IDS), each checked against `vocab_size`.
absl::StatusOr<std::vector<int>> LoadTokens(const std::string& path, EvaluationSpec::InputFormat format, int vocab_size);

struct EvaluationText {
  std::vector<int> tokens;  // the whole text, without BOS
  int bos = -1;             // the id each window starts with (TEXT with a BOS-adding tokenizer)
  std::string description;  // e.g. "4,412,001 tokens (byte-level BPE, tokenizer.json of DIR)"
};

// Reads `path` as `spec.input_format()` says: AUTO is TEXT when the tokenizer directory
// (spec.tokenizer_path(), else `model_dir`) holds tokenizer.json, else BYTES. TEXT encodes
// the whole file once, without special tokens; the tokenizer's BOS (if it adds one) is
// returned for the windows. Errors name the file and, for ids outside the model's
// vocabulary, the token's position.
absl::StatusOr<EvaluationText> LoadEvaluationText(const std::string& path, const EvaluationSpec& spec,
                                                  const std::string& model_dir, int vocab_size);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_EVALUATION_TEXT_H_
