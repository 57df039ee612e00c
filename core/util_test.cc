// File helpers and located text-proto parsing.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/model_test_util.h"
#include "core/text_proto.h"
#include "gtest/gtest.h"
#include "protos/kv_compression.pb.h"

namespace fecsearch {
namespace {

TEST(TextProtoTest, ErrorsNameFileLineAndColumn) {
  LayerCompression layer;
  const absl::Status s = ParseTextProto("keys {\n  bits: 4\n  no_such_gene: 1\n}", "genome.textproto", &layer);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("genome.textproto:3:"), std::string::npos) << s;
  EXPECT_NE(s.message().find("no_such_gene"), std::string::npos) << s;
}

TEST(WriteFileAtomicallyTest, ReplacesARegularFileWhole) {
  const std::string path = TestTempDir("write_atomic") + "/out.txt";
  ASSERT_TRUE(WriteFileAtomically(path, "first version, longer").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second").ok());
  std::string contents;
  ASSERT_TRUE(ReadFile(path, &contents).ok());
  EXPECT_EQ(contents, "second");
  EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0) << "no temporary file left behind";
}

TEST(WriteFileAtomicallyTest, WritesIntoDevicesAndPipesInsteadOfReplacingThem) {
  // A report sent to /dev/null (or a FIFO) must reach it, not replace the node with a file.
  const std::string fifo = TestTempDir("write_fifo") + "/pipe";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string received;
  std::thread reader([&] {
    std::ifstream in(fifo);
    std::stringstream ss;
    ss << in.rdbuf();
    received = ss.str();
  });
  EXPECT_TRUE(WriteFileAtomically(fifo, "through the pipe").ok());
  reader.join();
  EXPECT_EQ(received, "through the pipe");
  struct stat st;
  ASSERT_EQ(stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced";
  const std::string dir = TestTempDir("write_dir");
  const absl::Status s = WriteFileAtomically(dir, "x");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("is a directory"), std::string::npos) << s;
}

}  // namespace
}  // namespace fecsearch
