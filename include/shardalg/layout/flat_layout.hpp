// FlatLayout: tensors flattened into one buffer with gaps, cut into equal per-rank windows.
//
// ZeRO-1/2, ZeRO-3 and Megatron's distributed optimizer are all this one shape:
//   - each tensor occupies [begin, begin + numel) of a virtual flat buffer (gaps are padding);
//   - the buffer is a sequence of buckets, each of a size divisible by the group size W;
//   - group member i owns window [b + i*S/W, b + (i+1)*S/W) of every bucket [b, b + S), and its
//     partition is the concatenation of its windows.
// ZeRO-1/2 is one bucket, ZeRO-3 one bucket per parameter, Megatron its computed buckets.
// The tensors may themselves be local tiles of a mesh layout (TP-sharded, strided...): a
// fragment's elements then map through the tile to global coordinates.
#pragma once

#include <algorithm>
#include <functional>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shardalg/core/flat_interval.hpp"
#include "shardalg/core/tile.hpp"

namespace shardalg {

// One tensor being flattened: its (local) shape and where those elements sit globally.
struct FlatTensor {
  std::string name;
  Dims shape;        // the shape that is flattened (a rank's local tile shape when composed)
  Tile tile;         // local -> global positions; Tile::whole(shape) for an unsharded tensor
  Dims global_shape; // the global tensor's shape

  // An unsharded tensor.
  static FlatTensor whole(std::string name, const Dims& shape) {
    Tile tile = Tile::whole(shape);
    return FlatTensor{std::move(name), shape, std::move(tile), shape};
  }
  index_t numel() const { return volume(shape); }
};

struct FlatBucket {
  index_t begin;
  index_t end;
  index_t size() const { return end - begin; }
  friend bool operator==(const FlatBucket&, const FlatBucket&) = default;
};

// A piece of one tensor that one rank owns: `numel` elements starting at flat position
// `tensor_offset` of the tensor, stored at `partition_offset` of the rank's partition.
struct FlatFragment {
  index_t tensor;
  index_t tensor_offset;
  index_t partition_offset;
  index_t numel;
  friend bool operator==(const FlatFragment&, const FlatFragment&) = default;
};

class FlatLayout {
 public:
  // `group`: the ranks that share the buffer, in window order. `tensor_begin[i]`: where tensor i
  // starts in the buffer. Checks: tensors do not overlap, every tensor lies inside one bucket,
  // buckets are consecutive from 0 with sizes divisible by the group size.
  FlatLayout(std::string scheme, std::vector<index_t> group, std::vector<FlatTensor> tensors,
             std::vector<index_t> tensor_begin, std::vector<FlatBucket> buckets)
      : scheme_(std::move(scheme)), group_(std::move(group)), tensors_(std::move(tensors)),
        begin_(std::move(tensor_begin)), buckets_(std::move(buckets)) {
    validate();
  }

  const std::string& scheme() const { return scheme_; }
  const std::vector<index_t>& group() const { return group_; }
  index_t group_size() const { return static_cast<index_t>(group_.size()); }
  const std::vector<FlatTensor>& tensors() const { return tensors_; }
  const std::vector<FlatBucket>& buckets() const { return buckets_; }
  // Where tensor i sits in the flat buffer: [begin, begin + numel).
  index_t tensor_begin(std::size_t i) const { return begin_[i]; }
  index_t buffer_size() const { return buckets_.empty() ? 0 : buckets_.back().end; }
  // Elements in every rank's partition (windows of all buckets, padding included).
  index_t partition_size() const { return buffer_size() / group_size(); }

  // Position of a rank in the group, or -1. Logarithmic time.
  index_t position_of(index_t rank) const {
    auto it = std::lower_bound(rank_positions_.begin(), rank_positions_.end(), std::pair<index_t, index_t>{rank, 0});
    return it == rank_positions_.end() || it->first != rank ? -1 : it->second;
  }

  // The fragments a rank owns, in partition order; none for a rank outside the group.
  // Time: buckets + log(tensors) + fragments.
  std::vector<FlatFragment> fragments(index_t rank) const {
    std::vector<FlatFragment> result;
    index_t position = position_of(rank);
    if (position < 0) return result;
    index_t partition_offset = 0;
    for (const FlatBucket& bucket : buckets_) {
      index_t window = bucket.size() / group_size();
      index_t lo = bucket.begin + position * window, hi = lo + window;
      // First tensor (in buffer order) ending after lo.
      auto it = std::upper_bound(by_begin_.begin(), by_begin_.end(), lo,
                                 [this](index_t value, std::size_t t) { return value < end_of(t); });
      for (; it != by_begin_.end() && begin_[*it] < hi; ++it) {
        std::size_t t = *it;
        index_t fs = std::max(lo, begin_[t]), fe = std::min(hi, end_of(t));
        if (fs < fe)
          result.push_back(FlatFragment{static_cast<index_t>(t), fs - begin_[t], partition_offset + (fs - lo), fe - fs});
      }
      partition_offset += window;
    }
    return result;
  }

  // The fragment of tensor `t` a rank owns, if any (a tensor lies inside one bucket, so a rank
  // owns at most one piece of it). Time: logarithmic in the group size.
  std::optional<FlatFragment> fragment_of(index_t rank, std::size_t t) const {
    check_tensor(t);
    index_t position = position_of(rank);
    if (position < 0 || tensors_[t].numel() == 0) return std::nullopt;
    const FlatBucket& bucket = buckets_[bucket_of_[t]];
    index_t window = bucket.size() / group_size();
    index_t lo = bucket.begin + position * window, hi = lo + window;
    index_t fs = std::max(lo, begin_[t]), fe = std::min(hi, end_of(t));
    if (fs >= fe) return std::nullopt;
    // Every bucket before this one contributes one window to the partition.
    index_t partition_offset = bucket.begin / group_size() + (fs - lo);
    return FlatFragment{static_cast<index_t>(t), fs - begin_[t], partition_offset, fe - fs};
  }

  // The group positions [first, last) whose windows hold any of tensor `t`'s flat elements
  // [lo, hi) (positions in the flattened tensor). Constant time.
  std::pair<index_t, index_t> positions_holding(std::size_t t, index_t lo, index_t hi) const {
    check_tensor(t);
    if (lo < 0 || hi > tensors_[t].numel() || lo >= hi) return {0, 0};
    const FlatBucket& bucket = buckets_[bucket_of_[t]];
    index_t window = bucket.size() / group_size();
    index_t first = (begin_[t] + lo - bucket.begin) / window;
    index_t last = (begin_[t] + hi - 1 - bucket.begin) / window;
    return {first, last + 1};
  }

  // When tensor `t` alone occupies its bucket from the bucket's start (ZeRO-3's per-parameter
  // buckets): the bucket. Two such tensors with equal tiles and bucket sizes have the same
  // fragments on every rank, apart from where their windows start in the partition
  // (bucket.begin / group size).
  std::optional<FlatBucket> own_bucket(std::size_t t) const {
    check_tensor(t);
    if (!alone_[t]) return std::nullopt;
    return buckets_[bucket_of_[t]];
  }

  // Padding elements in a rank's partition (its partition size less the elements it owns).
  index_t padding(index_t rank) const {
    if (position_of(rank) < 0) return 0;
    index_t owned = 0;
    for (const FlatFragment& f : fragments(rank)) owned += f.numel;
    return partition_size() - owned;
  }

  // The global boxes of a fragment: its flat interval as local boxes, mapped through the tile.
  std::vector<Box> global_boxes(const FlatFragment& fragment) const {
    const FlatTensor& tensor = tensors_[static_cast<std::size_t>(fragment.tensor)];
    std::vector<Box> result;
    for (const Box& local : flat_interval_boxes(tensor.shape, fragment.tensor_offset, fragment.numel))
      for (Box& global : tensor.tile.global_boxes(local)) result.push_back(std::move(global));
    return result;
  }

  // The reconstruction view: tensor `t` (its flattened local elements) assembled from the ranks'
  // partition buffers, each rank contributing exactly its fragments. `partition_of(rank)` returns
  // that rank's buffer, which must hold partition_size() elements.
  template <class T>
  std::vector<T> reconstruct(std::size_t t, const std::function<std::span<const T>(index_t rank)>& partition_of) const {
    check_tensor(t);
    std::vector<T> result(static_cast<std::size_t>(tensors_[t].numel()));
    for (index_t rank : group_) {
      std::span<const T> partition = partition_of(rank);
      if (static_cast<index_t>(partition.size()) != partition_size())
        detail::fail(scheme_, ": the partition of rank ", rank, " has ", partition.size(), " elements, expected ", partition_size());
      for (const FlatFragment& f : fragments(rank))
        if (f.tensor == static_cast<index_t>(t))
          std::copy_n(partition.begin() + f.partition_offset, f.numel, result.begin() + f.tensor_offset);
    }
    return result;
  }

 private:
  index_t end_of(std::size_t t) const { return begin_[t] + tensors_[t].numel(); }
  void check_tensor(std::size_t t) const {
    if (t >= tensors_.size()) detail::fail(scheme_, ": tensor index ", t, " is out of range for ", tensors_.size(), " tensors");
  }

  void validate() {
    if (group_.empty()) detail::fail(scheme_, ": the partition group is empty");
    for (std::size_t i = 0; i < group_.size(); ++i) rank_positions_.emplace_back(group_[i], static_cast<index_t>(i));
    std::sort(rank_positions_.begin(), rank_positions_.end());
    for (std::size_t i = 1; i < rank_positions_.size(); ++i)
      if (rank_positions_[i].first == rank_positions_[i - 1].first)
        detail::fail(scheme_, ": the partition group lists rank ", rank_positions_[i].first, " twice");
    if (begin_.size() != tensors_.size())
      detail::fail(scheme_, ": ", begin_.size(), " offsets for ", tensors_.size(), " tensors");
    index_t expected = 0;
    for (const FlatBucket& b : buckets_) {
      if (b.begin != expected || b.end < b.begin || b.size() % group_size() != 0)
        detail::fail(scheme_, ": bucket [", b.begin, ", ", b.end, ") is not consecutive or not divisible by the group size ",
                     group_size());
      expected = b.end;
    }
    by_begin_.resize(tensors_.size());
    bucket_of_.assign(tensors_.size(), 0);
    for (std::size_t t = 0; t < tensors_.size(); ++t) by_begin_[t] = t;
    std::sort(by_begin_.begin(), by_begin_.end(), [this](std::size_t a, std::size_t b) { return begin_[a] < begin_[b]; });
    alone_.assign(tensors_.size(), false);
    for (std::size_t k = 0; k < by_begin_.size(); ++k) {
      std::size_t t = by_begin_[k];
      if (tensors_[t].tile.shape() != tensors_[t].shape)
        detail::fail(scheme_, ": tensor '", tensors_[t].name, "' has shape ", tensors_[t].shape, " but its tile holds ",
                     tensors_[t].tile.shape());
      if (k > 0 && begin_[t] < end_of(by_begin_[k - 1]))
        detail::fail(scheme_, ": tensors '", tensors_[by_begin_[k - 1]].name, "' and '", tensors_[t].name, "' overlap");
      // The bucket holding the tensor: the last one starting at or before it.
      auto bucket = std::upper_bound(buckets_.begin(), buckets_.end(), begin_[t],
                                     [](index_t value, const FlatBucket& b) { return value < b.begin; });
      bool inside = bucket != buckets_.begin() && end_of(t) <= std::prev(bucket)->end && begin_[t] < std::prev(bucket)->end;
      bucket_of_[t] = inside ? static_cast<std::size_t>(std::prev(bucket) - buckets_.begin()) : 0;
      if (!inside && tensors_[t].numel() > 0)
        detail::fail(scheme_, ": tensor '", tensors_[t].name, "' at [", begin_[t], ", ", end_of(t), ") is not inside one bucket");
      const FlatBucket& b = buckets_[bucket_of_[t]];
      bool starts = inside && begin_[t] == b.begin && (k == 0 || end_of(by_begin_[k - 1]) <= b.begin);
      bool next_outside = k + 1 == by_begin_.size() || begin_[by_begin_[k + 1]] >= b.end;
      alone_[t] = starts && next_outside;
    }
  }

  std::string scheme_;
  std::vector<index_t> group_;
  std::vector<FlatTensor> tensors_;
  std::vector<index_t> begin_;
  std::vector<FlatBucket> buckets_;
  std::vector<std::size_t> by_begin_;  // tensor indices in buffer order
  std::vector<std::size_t> bucket_of_;  // bucket index per tensor
  std::vector<bool> alone_;             // per tensor: alone in its bucket, from its start
  std::vector<std::pair<index_t, index_t>> rank_positions_;  // (rank, position in group), sorted
};

}  // namespace shardalg
