// TensorLayout: one tensor's layout of either kind, seen through the question every layout
// answers: which global elements does a rank hold, and where are they in its buffer.
//
// - A mesh layout: each rank's buffer is its local tile, dense row-major.
// - A flat layout (one tensor of a ComposedFlatLayout: ZeRO-1/2/3, Megatron): each rank's buffer
//   is its whole partition, shared with the other tensors of that flat layout.
//
// Both answers are lists of pieces: a global box and an affine address of its elements, so one
// planner, one verifier and one executor serve every pair of layout kinds.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shardalg/layout/composed_flat_layout.hpp"
#include "shardalg/layout/piece.hpp"

namespace shardalg {

class TensorLayout {
 public:
  // A mesh layout (implicit: wherever a TensorLayout is wanted, a MeshLayout will do).
  TensorLayout(MeshLayout layout) : mesh_(std::make_shared<const MeshLayout>(std::move(layout))) {}  // NOLINT

  // Tensor `tensor` of a flat layout; its buffer is the rank's partition of `flat`.
  TensorLayout(std::shared_ptr<const ComposedFlatLayout> flat, std::size_t tensor) : flat_(std::move(flat)), tensor_(tensor) {
    if (!flat_) detail::fail("tensor layout: no flat layout given");
    if (tensor >= flat_->tensors().size())
      detail::fail("tensor layout: tensor index ", tensor, " is out of range for ", flat_->tensors().size(), " tensors");
  }

  bool is_flat() const { return flat_ != nullptr; }
  // The mesh layout that places the tensor: itself, or the tensor's layout before flattening
  // (Replicate on the flat dim).
  const MeshLayout& placement_layout() const { return flat_ ? flat_->tensors()[tensor_].layout : *mesh_; }
  const MeshLayout* mesh_layout() const { return mesh_.get(); }
  const ComposedFlatLayout* flat_layout() const { return flat_.get(); }
  std::size_t flat_tensor() const { return tensor_; }
  const DeviceMesh& mesh() const { return placement_layout().mesh(); }
  const Dims& global_shape() const { return placement_layout().global_shape(); }
  std::size_t tensor_ndim() const { return global_shape().size(); }

  // True when every element has exactly one holder (no Replicate or Partial besides the flat dim).
  bool single_holder() const {
    index_t factor = placement_layout().replication_factor();
    return flat_ ? factor == mesh().size(flat_->flat_dim()) : factor == 1;
  }

  // What a rank holds, in buffer order; nothing for a rank outside the layout.
  std::vector<Piece> pieces(index_t rank) const {
    std::vector<Piece> result;
    if (!flat_) return pieces_of(mesh_->tile(rank));
    auto group = flat_->group_index(rank);
    if (!group) return result;
    const FlatLayout& layout = flat_->flat_layout_of_group(*group);
    auto fragment = layout.fragment_of(rank, tensor_);
    if (!fragment) return result;
    const FlatTensor& tensor = layout.tensors()[tensor_];
    Dims strides = row_major_strides(tensor.shape);
    bool contiguous = std::all_of(tensor.tile.maps().begin(), tensor.tile.maps().end(), [](const IndexMap& m) { return m.is_contiguous(); });
    for (Box& local : flat_interval_boxes(tensor.shape, fragment->tensor_offset, fragment->numel)) {
      index_t start = fragment->partition_offset - fragment->tensor_offset;
      if (contiguous) {  // one run per dim: the global box is the local box shifted
        index_t position = start + dot(local.offset, strides);
        for (std::size_t d = 0; d < local.ndim(); ++d) local.offset[d] += tensor.tile.dim(d).first();
        result.push_back(Piece{std::move(local), Dims{position}, strides});
        continue;
      }
      for (Box& global : tensor.tile.global_boxes(local)) {
        index_t position = start;
        for (std::size_t d = 0; d < global.ndim(); ++d) position += *tensor.tile.dim(d).local_of(global.offset[d]) * strides[d];
        result.push_back(Piece{std::move(global), Dims{position}, strides});
      }
    }
    return result;
  }

  // The ranks holding any element of a global box, sorted. Never scans all ranks: a mesh layout
  // searches its shard dims; a flat layout finds the groups whose tiles meet the box, then the
  // windows covering the box's flat range in each.
  std::vector<index_t> ranks_holding(const Box& box) const {
    if (!flat_) return mesh_->ranks_holding(box);
    std::vector<index_t> ranks;
    for (index_t group : flat_->groups_holding(tensor_, box)) {
      const FlatLayout& layout = flat_->flat_layout_of_group(group);
      const FlatTensor& tensor = layout.tensors()[tensor_];
      // The box's local bounding box in the group's tile, as a flat range.
      Dims lo, hi;
      bool meets = true;
      for (std::size_t d = 0; d < box.ndim() && meets; ++d) {
        const IndexMap& map = tensor.tile.dim(d);
        if (map.is_contiguous()) {  // one run: clamp the box's range into it
          index_t a = std::max(box.offset[d], map.empty() ? 0 : map.first()), b = std::min(box.end(d), map.empty() ? 0 : map.global_end());
          meets = a < b;
          lo.push_back(a - (meets ? map.first() : 0));
          hi.push_back(b - 1 - (meets ? map.first() : 0));
          continue;
        }
        IndexMap part = map.restrict_to(box.offset[d], box.end(d));
        meets = !part.empty();
        if (!meets) break;
        lo.push_back(*map.local_of(part.first()));
        hi.push_back(*map.local_of(part.global_end() - 1));
      }
      if (!meets) continue;
      auto [first, last] = layout.positions_holding(tensor_, row_major_position(tensor.shape, lo), row_major_position(tensor.shape, hi) + 1);
      for (index_t position = first; position < last; ++position) ranks.push_back(layout.group()[static_cast<std::size_t>(position)]);
    }
    std::sort(ranks.begin(), ranks.end());
    return ranks;
  }

  // Elements of the tensor a rank holds.
  index_t held_elements(index_t rank) const {
    if (!flat_) return mesh_->tile(rank).volume();
    auto group = flat_->group_index(rank);
    if (!group) return 0;
    auto fragment = flat_->flat_layout_of_group(*group).fragment_of(rank, tensor_);
    return fragment ? fragment->numel : 0;
  }

  // Elements of the rank's buffer: its tile, or its whole partition (padding included).
  index_t buffer_elements(index_t rank) const {
    if (!flat_) return mesh_->tile(rank).volume();
    auto group = flat_->group_index(rank);
    return group ? flat_->flat_layout_of_group(*group).partition_size() : 0;
  }

  // How a rank's buffer is addressed: buffer position of local form `local` (a piece's `local`)
  // plus `delta` steps along the global dims is  base(local) + dot(delta, strides).
  struct Addressing {
    bool flat;
    Dims strides;
    index_t base(const Dims& local) const { return flat ? local[0] : dot(local, strides); }
  };
  Addressing addressing(index_t rank) const {
    if (!flat_) return Addressing{false, row_major_strides(mesh_->tile(rank).shape())};
    auto group = flat_->group_index(rank);
    if (!group) return Addressing{true, Dims(tensor_ndim(), 0)};
    return Addressing{true, row_major_strides(flat_->flat_layout_of_group(*group).tensors()[tensor_].shape)};
  }

  // Tensors whose layouts share a rank's buffer have the same buffer owner (their flat layout);
  // a mesh layout's buffer is its own.
  const void* buffer_owner() const { return flat_ ? static_cast<const void*>(flat_.get()) : static_cast<const void*>(mesh_.get()); }

  // Translation class of a flat tensor that alone fills a bucket of a one-group flat layout
  // (pure ZeRO-3): tensors of one flat layout with equal placement layouts and equal `size` hold
  // the same pieces on every rank, apart from partition positions shifted by `start`
  // (the bucket's window start). Nothing for other layouts.
  struct OwnBucket {
    index_t size;
    index_t start;
  };
  std::optional<OwnBucket> own_bucket() const {
    if (!flat_ || flat_->group_count() != 1) return std::nullopt;
    const FlatLayout& layout = flat_->flat_layout_of_group(0);
    auto bucket = layout.own_bucket(tensor_);
    if (!bucket) return std::nullopt;
    return OwnBucket{bucket->size(), bucket->begin / layout.group_size()};
  }

  // When this layout holds on every rank exactly what `other` holds, at local positions shifted
  // by a constant, that shift: 0 for equal layouts; for ZeRO-3 tensors of one flat layout with
  // equal placement layouts and own-bucket sizes, the difference of their window starts. Lets a
  // model's repeated layers share the work of one. Nothing otherwise.
  std::optional<index_t> shift_from(const TensorLayout& other) const {
    if (*this == other) return 0;
    if (!flat_ || flat_ != other.flat_) return std::nullopt;
    auto mine = own_bucket(), theirs = other.own_bucket();
    if (!mine || !theirs || mine->size != theirs->size || placement_layout() != other.placement_layout()) return std::nullopt;
    return mine->start - theirs->start;
  }

  // Same layout: equal mesh layouts, or the same tensor of the same flat layout object.
  friend bool operator==(const TensorLayout& a, const TensorLayout& b) {
    if (a.flat_ || b.flat_) return a.flat_ == b.flat_ && a.tensor_ == b.tensor_;
    return a.mesh_ == b.mesh_ || *a.mesh_ == *b.mesh_;
  }

  // Equal layouts hash alike, and so do the flat tensors shift_from relates (those with own
  // buckets of one size: the hash takes the bucket's size, not which tensor it is). A flat tensor
  // sharing its bucket equals only itself, so its hash takes its index: a model of n such
  // tensors (Megatron's distributed optimizer) then meets no hash collisions, not n^2 of them.
  std::size_t hash() const {
    std::size_t h = flat_ ? std::hash<const void*>()(flat_.get()) : mesh().hash();
    for (index_t extent : global_shape()) h = h * 31 + static_cast<std::size_t>(extent);
    for (const Placement& p : placement_layout().placements()) h = h * 31 + static_cast<std::size_t>(p.dim() + 7 * static_cast<int>(p.kind()));
    if (flat_) {
      std::optional<OwnBucket> bucket = own_bucket();
      h = h * 31 + (bucket ? 2 * static_cast<std::size_t>(bucket->size) : 2 * tensor_ + 1);
    }
    return h;
  }

  std::string to_string() const {
    if (!flat_) return mesh_->to_string();
    return detail::concat("FlatLayout(", shardalg::to_string(flat_->options().scheme), " over '",
                          mesh().name(flat_->flat_dim()), "' of ", placement_layout().to_string(), ", tensor '",
                          flat_->tensors()[tensor_].name, "')");
  }

 private:
  std::shared_ptr<const MeshLayout> mesh_;
  std::shared_ptr<const ComposedFlatLayout> flat_;
  std::size_t tensor_ = 0;
};

}  // namespace shardalg
