// Probe hashes do not depend on the evaluation's thread count: the probe is captured through
// the model with the context's threads, and the functional hash must be bit-identical for 1, 2
// and 3 threads (else the thread count would have to enter the context fingerprint).
#include "hashing/candidate_hasher.h"

#include "hashing/kv_probe.h"

#include <string>
#include <vector>

#include "core/text_proto.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

std::shared_ptr<EvaluationContext> Context(const std::string& model, int threads) {
  EvaluationSpec spec;
  spec.set_model_path(model);
  spec.set_text_path("data/tinylm-bytes-5m/eval.txt");
  spec.set_window_length(256);
  spec.set_threads(threads);
  auto ctx = EvaluationContext::Create(spec);
  EXPECT_TRUE(ctx.ok()) << ctx.status();
  return *ctx;
}

TEST(CandidateHasherTest, FunctionalHashesDoNotDependOnThreads) {
  const std::vector<std::string> genomes = {
      "",
      "layers { keys { format: INT bits: 4 axis: PER_CHANNEL group_size: 16 pre_rope: true } values { format: INT bits: 4 } }",
      "layers { keys { format: NUQ bits: 3 outlier_fraction: 0.01 } values { format: FP8_E4M3 } eviction { policy: H2O keep_ratio: 0.5 } }",
      "layers { keys { format: INT bits: 2 sink_tokens: 4 recent_window: 32 } values { format: INT bits: 2 } head_clusters: 1 }",
      "layers { eviction { policy: SNAPKV keep_ratio: 0.25 observation_window: 16 pooling_kernel: 5 } } layers { keys { format: NF bits: 4 } }",
  };
  for (const char* model : {"data/tinylm-bytes-5m", "tests/data/qwen3-qknorm-sharded-bf16", "tests/data/llama-yarn-sharded"}) {
    FecSpec fec;
    fec.set_probe_tokens(96);
    std::vector<std::string> reference;
    for (int threads : {1, 2, 3}) {
      std::unique_ptr<KvHashSource> source;
      auto hasher = MakeKvCandidateHasher(Context(model, threads), fec, &source);
      ASSERT_TRUE(hasher.ok()) << hasher.status();
      for (size_t i = 0; i < genomes.size(); ++i) {
        Candidate c;
        ASSERT_TRUE(ParseTextProto(genomes[i], "test", c.mutable_genome()).ok());
        auto h = (*hasher)->Hash(c);
        ASSERT_TRUE(h.ok()) << h.status();
        if (threads == 1) {
          reference.push_back(h->functional.Hex());
        } else {
          EXPECT_EQ(h->functional.Hex(), reference[i]) << model << ", genome " << i << ", " << threads << " threads";
        }
      }
    }
  }
}

}  // namespace
}  // namespace fecsearch
