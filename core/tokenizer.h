// Hugging Face tokenizer.json encoding (BPE family), id for id as Hugging Face's JavaScript
// tokenizer (@huggingface/tokenizers) encodes.
#ifndef FECSEARCH_CORE_TOKENIZER_H_
#define FECSEARCH_CORE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fecsearch {

// Encodes UTF-8 text with a model's tokenizer.json (+ tokenizer_config.json). Supported: model
// BPE; normalizers NFC, Prepend, Replace, Sequence; pre-tokenizers Split (Isolated, Removed),
// ByteLevel, Metaspace, Sequence; added tokens; post-processors TemplateProcessing, ByteLevel,
// Sequence. Anything else is refused at load time with the file and JSON field path.
//
// Where the JavaScript tokenizer and the Rust `tokenizers` library disagree (single_word added
// tokens, Metaspace `split`, ByteLevel `add_prefix_space` inside a Sequence, JS regex classes),
// this class follows the JavaScript one; tokenizer.cc lists each case.
//
// Thread-safe after Load: Encode is const and keeps its scratch state per call. Not copyable.
class Tokenizer {
 public:
  // Loads dir/tokenizer.json and, if present, dir/tokenizer_config.json. NotFound if there is no
  // tokenizer.json; InvalidArgument naming the file and field for anything malformed or
  // unsupported.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& dir);
  // From file contents; `where` names tokenizer.json in errors (tokenizer_config.json errors
  // name its sibling). tokenizer_config_json may be empty (no such file).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(const std::string& tokenizer_json,
                                                             const std::string& tokenizer_config_json,
                                                             const std::string& where);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // The ids Hugging Face's tokenizer.encode(text, {add_special_tokens}) gives. With
  // add_special_tokens the post-processor's template tokens (BOS etc.) are added; special-token
  // strings inside `text` are encoded as those tokens either way. Invalid UTF-8 is an
  // InvalidArgument error naming the byte offset.
  absl::StatusOr<std::vector<int>> Encode(absl::string_view text, bool add_special_tokens) const;

  // The id the post-processor prepends when add_special_tokens is set, or -1 if none.
  int bos_id() const;
  // Max id + 1 over the model vocabulary and the added tokens.
  int vocab_size() const;
  // "byte-level BPE", "BPE with byte fallback" or "BPE".
  const std::string& kind() const;
  // 32 hex digits: XXH3-128 of tokenizer.json's and tokenizer_config.json's bytes.
  const std::string& fingerprint() const;

  struct Impl;  // the loaded pipeline; defined in tokenizer.cc

 private:
  explicit Tokenizer(std::unique_ptr<const Impl> impl);
  std::unique_ptr<const Impl> impl_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_TOKENIZER_H_
