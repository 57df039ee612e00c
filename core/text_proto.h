// Text-format protos with errors that name the file, line and column.
#ifndef FECSEARCH_CORE_TEXT_PROTO_H_
#define FECSEARCH_CORE_TEXT_PROTO_H_

#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"

namespace fecsearch {

// Parses `text` into `message`; `where` (a file name) prefixes errors as "where:line:col: ...".
// When `locations` is given, the parser records where each field was written (for errors found
// later, during validation).
absl::Status ParseTextProto(const std::string& text, const std::string& where, google::protobuf::Message* message,
                            google::protobuf::TextFormat::ParseInfoTree* locations = nullptr);
// Reads and parses a file.
absl::Status ReadTextProtoFile(const std::string& path, google::protobuf::Message* message);
// Reads a whole file.
absl::Status ReadFile(const std::string& path, std::string* contents);
// Writes a whole file atomically (temporary file + rename). An existing non-regular file
// (/dev/null, a FIFO) is written in place instead; a directory is refused.
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);
// Single-line text format.
std::string ShortText(const google::protobuf::Message& message);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_TEXT_PROTO_H_
