// Every message of the vocabulary survives binary, text and JSON round trips.
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "protos/cache.pb.h"
#include "protos/evaluation.pb.h"
#include "protos/experiment.pb.h"
#include "protos/kv_compression.pb.h"
#include "protos/candidate.pb.h"
#include "protos/pipeline_graph.pb.h"
#include "protos/worker.pb.h"

namespace fecsearch {
namespace {

using google::protobuf::Message;
using google::protobuf::TextFormat;
using google::protobuf::util::MessageDifferencer;

void RoundTrip(const Message& m) {
  std::unique_ptr<Message> binary(m.New()), text(m.New()), json(m.New());
  ASSERT_TRUE(binary->ParseFromString(m.SerializeAsString()));
  EXPECT_TRUE(MessageDifferencer::Equals(m, *binary)) << m.GetTypeName();
  std::string t;
  ASSERT_TRUE(TextFormat::PrintToString(m, &t));
  ASSERT_TRUE(TextFormat::ParseFromString(t, text.get()));
  EXPECT_TRUE(MessageDifferencer::Equals(m, *text)) << m.GetTypeName();
  std::string j;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(m, &j).ok());
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(j, json.get()).ok()) << j;
  EXPECT_TRUE(MessageDifferencer::Equals(m, *json)) << m.GetTypeName() << " " << j;
}

template <typename T>
T Parse(const std::string& text) {
  T m;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &m)) << text;
  return m;
}

TEST(ProtosTest, GenomeRoundTrips) {
  RoundTrip(Parse<KvCompressionGenome>(R"pb(
    layers {
      keys { format: NUQ bits: 3 axis: PER_CHANNEL group_size: 32 pre_rope: true outlier_fraction: 0.01 sink_tokens: 1 }
      values { format: INT bits: 2 symmetric: false group_size: 32 recent_window: 128 }
      eviction { policy: SNAPKV keep_ratio: 0.5 observation_window: 32 pooling_kernel: 5 }
      head_clusters: 2
    }
    layers { keys { format: POSIT bits: 8 posit_es: 1 } }
  )pb"));
}

TEST(ProtosTest, CandidatesRoundTrip) {
  RoundTrip(Parse<Candidate>(R"pb(
    pipeline {
      layers {
        ops { name: "keys" type: KEYS_INPUT }
        ops { name: "rope" type: ROPE }
        ops { name: "q" type: QUANTIZE quantizer { format: INT bits: 2 axis: PER_CHANNEL group_size: 32 } }
        ops { name: "r" type: RESIDUAL_QUANTIZE quantizer { format: INT bits: 2 } }
        ops { name: "values" type: VALUES_INPUT }
        ops { name: "evict" type: EVICT eviction { policy: KEY_NORM keep_ratio: 0.5 } }
        ops { name: "cache" type: OUTPUT }
        edges { from: "keys" to: "rope" }
        edges { from: "rope" to: "q" }
        edges { from: "q" to: "r" }
        edges { from: "r" to: "cache" }
        edges { from: "q" to: "evict" }
        edges { from: "evict" to: "cache" }
        edges { from: "values" to: "cache" }
      }
    }
  )pb"));
  RoundTrip(Parse<Candidate>("genome { layers { head_clusters: 3 } }"));
}

TEST(ProtosTest, ExperimentRoundTripsAndHasDocumentedDefaults) {
  ExperimentSpec empty;
  EXPECT_EQ(empty.search().algorithm(), SearchSpec::NSGA2);
  EXPECT_EQ(empty.search().population_size(), 32);
  EXPECT_EQ(empty.fec().mantissa_bits(), 8);
  EXPECT_EQ(empty.evaluation().chunk_length(), 16);
  EXPECT_EQ(empty.evaluation().window_length(), 1024);
  EXPECT_EQ(empty.output().database_path(), "fecsearch.db");
  EXPECT_FALSE(empty.has_fec()) << "leaving out fec switches the cache off";
  RoundTrip(Parse<ExperimentSpec>(R"pb(
    name: "t"
    search { algorithm: REGULARIZED_EVOLUTION population_size: 10 objectives { metric: MEAN_NLL weight: 2 } constraints { metric: EFFECTIVE_BITS max_value: 4 } }
    search_space { layer_groups: 2 keys { formats { format: INT bits: 2 } axes: [PER_CHANNEL] } eviction { policies: [H2O] keep_ratios: [0.5] } head_clusters: [0, 2] }
    fec { mantissa_bits: 12 max_num_evals: 3 remove_probability: 0.1 }
    evaluation { eval_windows: [0, 1] chunk_length: 32 }
    workers { targets: "dns:///workers:50051" tls { ca_cert_path: "ca.pem" } auth_token_file: "token" }
    output { database_path: "x.db" }
  )pb"));
}

TEST(ProtosTest, ResultsRequestsAndCacheEntriesRoundTrip) {
  RoundTrip(Parse<EvaluationResult>(R"pb(
    status { code: 0 }
    objectives { mean_nll: 1.6 effective_bits: 3.1 perplexity: 4.9 perplexity_increase_percent: 2.5 }
    layers { layer: 0 attention_relative_error: 0.1 effective_bits: 3 kept_token_fraction: 1 }
    cache_bytes: 123 cost_seconds: 0.5 evaluator_version: "v" context_fingerprint: "abc"
  )pb"));
  RoundTrip(Parse<rpc::EvaluateRequest>("candidate_id: 7 candidate { genome { } } context_fingerprint: \"f\" attempt: 2"));
  RoundTrip(Parse<rpc::EvaluateResponse>("candidate_id: 7 worker: \"w1\" result { status { code: 3 message: \"bad\" } }"));
  RoundTrip(Parse<rpc::DescribeResponse>("worker: \"w\" version: \"0.1\" capacity: 4 mode: \"model\""));
  RoundTrip(Parse<CacheEntry>("hash: \"00ff\" num_evals: 2 hits: 10 first_candidate_id: 3 objectives { mean_nll: 1 }"));
}

}  // namespace
}  // namespace fecsearch
