// DeepSpeed ZeRO partitions as flat layouts (docs/semantics.md sections 5 and 6).
#pragma once

#include <numeric>
#include <optional>

#include "shardalg/core/rank_limit.hpp"
#include "shardalg/layout/flat_layout.hpp"

namespace shardalg {

namespace detail {
inline void check_flat_inputs(std::string_view scheme, const std::vector<FlatTensor>& tensors, const std::vector<index_t>& group) {
  if (group.empty()) fail(scheme, ": the partition group is empty");
  if (tensors.empty()) fail(scheme, ": no tensors to partition");
  for (const FlatTensor& t : tensors)
    if (t.numel() <= 0) fail(scheme, ": tensor '", t.name, "' has ", t.numel(), " elements; numels must be positive");
}
}  // namespace detail

// The ranks 0..count-1: the partition group of a job whose DP group is the whole world.
inline std::vector<index_t> iota_ranks(index_t count) {
  if (count <= 0) detail::fail("partition group size ", count, " must be positive");
  if (count > max_ranks) detail::fail("partition group size ", count, " is over the limit ", max_ranks, " (flat layouts list their ranks)");
  std::vector<index_t> ranks(static_cast<std::size_t>(count));
  std::iota(ranks.begin(), ranks.end(), index_t{0});
  return ranks;
}

// ZeRO-3: every parameter is partitioned on its own over the group of W ranks.
// P = ceil(numel / W); rank r owns [r*P, r*P + P) of the flattened parameter (past numel is
// padding). A rank's flat partition is the concatenation of its per-parameter partitions.
// Example: numels [10, 6, 3], W = 4: P = 3, 2, 1; each rank's partition has 6 elements with the
// parameters at offsets 0, 3, 5; rank 3 owns element 9 of the first and padding elsewhere.
inline FlatLayout zero3_layout(std::vector<FlatTensor> tensors, std::vector<index_t> group) {
  detail::check_flat_inputs("zero3", tensors, group);
  index_t w = static_cast<index_t>(group.size());
  std::vector<index_t> begin;
  std::vector<FlatBucket> buckets;
  index_t at = 0;
  for (const FlatTensor& t : tensors) {
    index_t end = with_overflow_context([&] { return checked_add(at, checked_mul(ceil_div(t.numel(), w), w)); }, [&] {
      return detail::concat("zero3: param '", t.name, "' (", t.numel(), " elements) padded for ", w, " ranks");
    });
    begin.push_back(at);
    buckets.push_back(FlatBucket{at, end});
    at = end;
  }
  return FlatLayout("zero3", std::move(group), std::move(tensors), std::move(begin), std::move(buckets));
}

// A ZeRO-3 optimizer sub-group: consecutive parameters whose per-rank partitions are
// concatenated into one flat fp32 buffer.
struct Zero3SubGroup {
  index_t first_param;
  index_t param_count;
  index_t partition_offset;  // where the sub-group starts in each rank's partition
  index_t partition_numel;   // elements of each rank's partition in the sub-group
  friend bool operator==(const Zero3SubGroup&, const Zero3SubGroup&) = default;
};

// DeepSpeed's sub-group rule: parameters accumulate (by per-rank partition size) until the sum
// reaches sub_group_size, which closes the sub-group; the last parameter closes the last one.
// No size (or one at least the total) gives a single sub-group.
inline std::vector<Zero3SubGroup> zero3_sub_groups(const FlatLayout& zero3, std::optional<index_t> sub_group_size) {
  if (sub_group_size && *sub_group_size <= 0) detail::fail("zero3: sub_group_size ", *sub_group_size, " must be positive");
  std::vector<Zero3SubGroup> groups;
  index_t params = static_cast<index_t>(zero3.tensors().size());
  index_t total = zero3.partition_size();
  bool single = !sub_group_size || *sub_group_size >= total;
  Zero3SubGroup current{0, 0, 0, 0};
  for (index_t i = 0; i < params; ++i) {
    current.param_count += 1;
    current.partition_numel += zero3.buckets()[static_cast<std::size_t>(i)].size() / zero3.group_size();
    if ((!single && current.partition_numel >= *sub_group_size) || i == params - 1) {
      groups.push_back(current);
      current = Zero3SubGroup{i + 1, 0, current.partition_offset + current.partition_numel, 0};
    }
  }
  return groups;
}

// ZeRO-1/2: all parameters concatenated, zero-padded at the end to a multiple of
// alignment_factor * W (2 for 2-byte dtypes: 4-byte alignment), cut into W equal partitions.
// Example: numels [10, 6, 3], W = 4: 19 elements, aligned to 24, P = 6; rank 3 holds element 2 of
// the last parameter and 5 elements of padding.
inline FlatLayout zero12_layout(std::vector<FlatTensor> tensors, std::vector<index_t> group, index_t alignment_factor = 2) {
  detail::check_flat_inputs("zero12", tensors, group);
  if (alignment_factor <= 0) detail::fail("zero12: alignment factor ", alignment_factor, " must be positive");
  index_t w = static_cast<index_t>(group.size());
  std::vector<index_t> begin;
  index_t total = 0;
  for (const FlatTensor& t : tensors) {
    begin.push_back(total);
    total = with_overflow_context([&] { return checked_add(total, t.numel()); },
                                  [&] { return detail::concat("zero12: params up to '", t.name, "'"); });
  }
  index_t aligned = with_overflow_context(
      [&] {
        index_t unit = checked_mul(alignment_factor, w);
        return checked_mul(ceil_div(total, unit), unit);
      },
      [&] { return detail::concat("zero12: ", total, " elements aligned to ", alignment_factor, " x ", w, " ranks"); });
  return FlatLayout("zero12", std::move(group), std::move(tensors), std::move(begin), {FlatBucket{0, aligned}});
}

// Elastic reload of a ZeRO-1/2 checkpoint on a different group: the saved unpadded partitions,
// concatenated in rank order, are the parameters in order; re-aligned to the new group and
// re-split. Example: 19 elements saved at W = 4, reloaded at W = 3: aligned 24, P = 8.
inline FlatLayout zero12_elastic(const FlatLayout& saved, std::vector<index_t> new_group, index_t alignment_factor = 2) {
  if (saved.scheme() != "zero12") detail::fail("zero12_elastic: the saved layout is ", saved.scheme(), ", not zero12");
  return zero12_layout(saved.tensors(), std::move(new_group), alignment_factor);
}

// Unsharded tensors with consecutive numels, named param0, param1, ... (for the CLI and tests).
// Whole tensors of the given shapes, named param0, param1, ...
inline std::vector<FlatTensor> flat_tensors_from_shapes(const std::vector<Dims>& shapes) {
  std::vector<FlatTensor> tensors;
  for (std::size_t i = 0; i < shapes.size(); ++i) tensors.push_back(FlatTensor::whole("param" + std::to_string(i), shapes[i]));
  return tensors;
}

inline std::vector<FlatTensor> flat_tensors_from_numels(const std::vector<index_t>& numels) {
  std::vector<FlatTensor> tensors;
  for (std::size_t i = 0; i < numels.size(); ++i) {
    if (numels[i] <= 0) detail::fail("numel ", numels[i], " of param ", i, " must be positive");
    tensors.push_back(FlatTensor::whole("param" + std::to_string(i), Dims{numels[i]}));
  }
  return tensors;
}

}  // namespace shardalg
