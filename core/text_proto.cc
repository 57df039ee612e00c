// Text-format proto parsing with located errors, and small file helpers.
#include "core/text_proto.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace fecsearch {
namespace {

class Collector : public google::protobuf::io::ErrorCollector {
 public:
  explicit Collector(std::string where) : where_(std::move(where)) {}
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty()) first_ = absl::StrCat(where_, ":", line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int, int, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string where_, first_;
};

}  // namespace

absl::Status ParseTextProto(const std::string& text, const std::string& where, google::protobuf::Message* message,
                            google::protobuf::TextFormat::ParseInfoTree* locations) {
  Collector collector(where);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  if (locations != nullptr) parser.WriteLocationsTo(locations);
  if (!parser.ParseFromString(text, message)) {
    return absl::InvalidArgumentError(collector.first().empty()
                                          ? absl::StrCat(where, ": not a valid ", message->GetTypeName())
                                          : collector.first());
  }
  return absl::OkStatus();
}

absl::Status ReadFile(const std::string& path, std::string* contents) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open (", std::strerror(errno), ")"));
  std::stringstream ss;
  ss << in.rdbuf();
  *contents = ss.str();
  return absl::OkStatus();
}

absl::Status ReadTextProtoFile(const std::string& path, google::protobuf::Message* message) {
  std::string text;
  absl::Status s = ReadFile(path, &text);
  if (!s.ok()) return s;
  return ParseTextProto(text, path, message);
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  // An existing non-regular file (/dev/null, a FIFO, a terminal) is written in place:
  // renaming a temporary file over it would replace the device node itself (as root, a
  // report sent to /dev/null would turn /dev/null into a regular file for every process).
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(absl::StrCat(path, ": is a directory, not a file"));
    std::ofstream out(path, std::ios::binary);
    if (!out) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot write (", std::strerror(errno), ")"));
    out << contents;
    out.flush();
    if (!out.good()) return absl::DataLossError(absl::StrCat(path, ": write failed"));
    return absl::OkStatus();
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::PermissionDeniedError(absl::StrCat(tmp, ": cannot write (", std::strerror(errno), ")"));
    out << contents;
    if (!out.good()) return absl::DataLossError(absl::StrCat(tmp, ": write failed"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(path, ": cannot rename into place (", std::strerror(errno), ")"));
  }
  return absl::OkStatus();
}

std::string ShortText(const google::protobuf::Message& message) {
  google::protobuf::TextFormat::Printer printer;
  printer.SetSingleLineMode(true);
  std::string out;
  printer.PrintToString(message, &out);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace fecsearch
