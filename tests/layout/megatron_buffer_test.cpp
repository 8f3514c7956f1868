#include <limits>

#include "../test_support.hpp"

using namespace shardalg;
using F = FlatFragment;

TEST_CASE("Megatron buffer: reverse order, 64-aligned starts, one bucket (docs/semantics.md section 7)") {
  FlatLayout layout = megatron_layout(flat_tensors_from_numels({1000, 10, 300}), iota_ranks(3));
  CHECK(layout.tensor_begin(2) == 0);
  CHECK(layout.tensor_begin(1) == 320);
  CHECK(layout.tensor_begin(0) == 384);
  CHECK(layout.buckets() == std::vector<FlatBucket>{{0, 1536}});
  CHECK(layout.partition_size() == 512);
  // Rank 0: [0, 512) holds p2 [0,300), p1 [320,330), p0 [384,512).
  CHECK(layout.fragments(0) == std::vector<F>{{2, 0, 0, 300}, {1, 0, 320, 10}, {0, 0, 384, 128}});
  CHECK(layout.fragments(2) == std::vector<F>{{0, 640, 0, 360}});
  CHECK(layout.padding(2) == 152);
}

TEST_CASE("Megatron buffer: bucket_size closes buckets") {
  MegatronBufferOptions options;
  options.bucket_size = 200;
  FlatLayout layout = megatron_layout(flat_tensors_from_numels({1000, 10, 300}), iota_ranks(3), options);
  CHECK(layout.buckets() == std::vector<FlatBucket>{{0, 384}, {384, 1536}});
  CHECK(layout.tensor_begin(1) == 384);
  CHECK(layout.tensor_begin(0) == 448);
  CHECK(layout.partition_size() == 128 + 384);
  // Rank 1: bucket 0 window [128, 256) of p2; bucket 1 window [768, 1152) of p0.
  CHECK(layout.fragments(1) == std::vector<F>{{2, 128, 0, 128}, {0, 320, 128, 384}});
}

TEST_CASE("Megatron buffer: a size past int64 names the parameter") {
  const index_t max = std::numeric_limits<index_t>::max();
  // Laid out in reverse: param1 first, then param0 starts past param1's 64-aligned end.
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_layout(flat_tensors_from_numels({max - 100, 200}), iota_ranks(2)), OverflowError,
                                   "megatron: param 'param0' (9223372036854775707 elements): int64 overflow");
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_layout(flat_tensors_from_numels({max - 10}), iota_ranks(2)), OverflowError,
                                   "megatron: the last bucket, padded to a multiple of 128: int64 overflow");
}

TEST_CASE("Megatron buffer: shared embedding in its own bucket, NCCL bus-bandwidth padding") {
  MegatronBufferOptions options;
  options.own_bucket_params = {1};
  FlatLayout layout = megatron_layout(flat_tensors_from_numels({1000, 10, 300}), iota_ranks(3), options);
  // p2 closes at 320 -> padded to 384; p1 alone in [384, 768); p0 in [768, 1920).
  CHECK(layout.buckets() == std::vector<FlatBucket>{{0, 384}, {384, 768}, {768, 1920}});
  CHECK(layout.tensor_begin(1) == 384);
  CHECK(layout.tensor_begin(0) == 768);
  options.own_bucket_params.clear();
  options.pad_for_high_nccl_busbw = true;
  FlatLayout padded = megatron_layout(flat_tensors_from_numels({1000, 10, 300}), iota_ranks(3), options);
  CHECK(padded.buffer_size() == 196608);  // lcm(3, 128, 65536)
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_layout(flat_tensors_from_numels({10}), iota_ranks(2), MegatronBufferOptions{0, false, {}}),
                                   Error, "bucket size 0 must be positive");
  SHARDALG_CHECK_THROWS_CONTAINING(megatron_layout(flat_tensors_from_numels({10}), iota_ranks(2), MegatronBufferOptions{{}, false, {4}}),
                                   Error, "param index 4 is out of range");
}
