// Megatron-LM's distributed-optimizer parameter buffer as a flat layout (docs/semantics.md section 7).
#pragma once

#include <numeric>
#include <optional>
#include <set>

#include "shardalg/layout/flat_layout.hpp"

namespace shardalg {

struct MegatronBufferOptions {
  std::optional<index_t> bucket_size;      // elements; a bucket closes once it reaches this size
  bool pad_for_high_nccl_busbw = false;    // pad buckets to lcm(D, 128, 65536) instead of lcm(D, 128)
  std::set<index_t> own_bucket_params;     // params that get a bucket of their own (shared embedding)
};

// The buffer of one data-parallel group of D ranks (the expert-DP group for expert params):
// params are walked in reverse order, each start rounded up to a multiple of 64 elements; a
// bucket closes when it reaches bucket_size (or at a shared-embedding param, which gets its own
// bucket); each bucket's end is padded to a multiple of lcm(D, 128) (or lcm(D, 128, 65536)).
// DP rank r owns [b + r*S/D, b + (r+1)*S/D) of every bucket [b, b + S).
// Example: params [1000, 10, 300], D = 3, one bucket: p2 [0,300), p1 [320,330), p0 [384,1384),
// bucket [0,1536), each rank 512 elements.
inline FlatLayout megatron_layout(std::vector<FlatTensor> tensors, std::vector<index_t> group,
                                  const MegatronBufferOptions& options = {}) {
  if (group.empty()) detail::fail("megatron: the data-parallel group is empty");
  if (tensors.empty()) detail::fail("megatron: no params");
  for (const FlatTensor& t : tensors)
    if (t.numel() <= 0) detail::fail("megatron: param '", t.name, "' has ", t.numel(), " elements; numels must be positive");
  if (options.bucket_size && *options.bucket_size <= 0)
    detail::fail("megatron: bucket size ", *options.bucket_size, " must be positive");
  for (index_t p : options.own_bucket_params)
    if (p < 0 || p >= static_cast<index_t>(tensors.size()))
      detail::fail("megatron: shared-embedding param index ", p, " is out of range for ", tensors.size(), " params");
  index_t d = static_cast<index_t>(group.size());
  index_t divisor = std::lcm(d, index_t{128});
  if (options.pad_for_high_nccl_busbw) divisor = std::lcm(divisor, index_t{65536});
  auto pad = [](index_t value, index_t multiple) { return checked_mul(ceil_div(value, multiple), multiple); };

  std::vector<index_t> begin(tensors.size(), 0);
  std::vector<FlatBucket> buckets;
  index_t bucket_start = 0, param_start = 0;
  bool bucket_has_params = false;
  auto close_bucket = [&](index_t end) {
    index_t padded = pad(end, divisor);
    buckets.push_back(FlatBucket{bucket_start, padded});
    bucket_start = padded;
    bucket_has_params = false;
    return padded;
  };
  std::size_t k = tensors.size();
  auto lay_out = [&] {
    for (; k-- > 0;) {
      bool own_bucket = options.own_bucket_params.count(static_cast<index_t>(k)) > 0;
      param_start = pad(param_start, 64);
      if (own_bucket && bucket_has_params) param_start = close_bucket(param_start);
      index_t param_end = checked_add(param_start, tensors[k].numel());
      begin[k] = param_start;
      bucket_has_params = true;
      if ((options.bucket_size && param_end - bucket_start >= *options.bucket_size) || own_bucket)
        param_start = close_bucket(param_end);
      else
        param_start = param_end;
    }
    if (bucket_has_params) close_bucket(param_start);
  };
  with_overflow_context(lay_out, [&] {
    return k < tensors.size() ? detail::concat("megatron: param '", tensors[k].name, "' (", tensors[k].numel(), " elements)")
                              : detail::concat("megatron: the last bucket, padded to a multiple of ", divisor);
  });
  return FlatLayout("megatron", std::move(group), std::move(tensors), std::move(begin), std::move(buckets));
}

}  // namespace shardalg
