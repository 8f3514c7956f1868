// Placements: how a tensor is laid out along one mesh dim (PyTorch DTensor placements).
//
//   Replicate()              every rank of the mesh dim holds the whole (current) tensor
//   Shard(d)                 tensor dim d is split with torch.chunk semantics
//   StridedShard(d, sf)      PyTorch _StridedShard: tensor dim d split as if another sharding
//                            into sf pieces had happened first (FSDP2 over TP)
//   Partial(op)              every rank holds a partial value; the tensor is their reduction
//   BlockCyclic(d, b, src)   tensor dim d cut into blocks of b; block k goes to coordinate
//                            (src + k) mod n (ScaLAPACK's distribution; src is RSRC/CSRC)
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "shardalg/core/checked.hpp"
#include "shardalg/core/error.hpp"
#include "shardalg/placement/reduce_op.hpp"

namespace shardalg {

enum class PlacementKind : std::uint8_t { replicate, shard, strided_shard, partial, block_cyclic };

// Which definition of _StridedShard (docs/semantics.md section 2).
enum class StridedSemantics : std::uint8_t {
  // Current PyTorch: chunk the dim into sf pieces, chunk each piece into k; rank i holds piece_j[i]
  // for j = 0..sf-1. Example n=9, sf=2, k=4: r0 {0,1,5}, r1 {2,3,6}, r2 {4,7}, r3 {8}.
  nested_chunk,
  // PyTorch before late 2025: chunk the dim into k*sf pieces; rank i holds pieces i, i+k, i+2k...
  legacy,
};

constexpr std::string_view to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::min: return "min";
    case ReduceOp::max: return "max";
    case ReduceOp::product: return "product";
  }
  return "?";
}

class Placement {
 public:
  static constexpr Placement replicate() { return Placement(PlacementKind::replicate, 0, 1, ReduceOp::sum, {}); }
  // Precondition (checked): dim >= 0.
  static constexpr Placement shard(index_t dim) {
    check_dim(dim);
    return Placement(PlacementKind::shard, dim, 1, ReduceOp::sum, {});
  }
  // Precondition (checked): dim >= 0, split_factor >= 1. StridedShard(d, 1) is its own kind,
  // not equal to Shard(d), as in PyTorch.
  static constexpr Placement strided_shard(index_t dim, index_t split_factor,
                                           StridedSemantics semantics = StridedSemantics::nested_chunk) {
    check_dim(dim);
    if (split_factor < 1)
      detail::fail("StridedShard(dim=", dim, ", sf=", split_factor, "): split factor must be >= 1");
    return Placement(PlacementKind::strided_shard, dim, split_factor, ReduceOp::sum, semantics);
  }
  static constexpr Placement partial(ReduceOp op = ReduceOp::sum) {
    return Placement(PlacementKind::partial, 0, 1, op, {});
  }
  // Precondition (checked): dim >= 0, block >= 1, source >= 0 (and, on a mesh, source < the mesh
  // dim's size; MeshLayout checks that). Example: BlockCyclic(0, 2) of 10 rows on 2 ranks:
  // rank 0 holds rows {0,1,4,5,8,9}, rank 1 {2,3,6,7}.
  static constexpr Placement block_cyclic(index_t dim, index_t block, index_t source = 0) {
    check_dim(dim);
    if (block < 1) detail::fail("BlockCyclic(dim=", dim, ", block=", block, "): block size must be >= 1");
    if (source < 0) detail::fail("BlockCyclic(dim=", dim, ", block=", block, ", src=", source, "): source coordinate must be >= 0");
    Placement p(PlacementKind::block_cyclic, dim, 1, ReduceOp::sum, {});
    p.block_ = block;
    p.source_ = source;
    return p;
  }

  constexpr PlacementKind kind() const { return kind_; }
  constexpr bool is_replicate() const { return kind_ == PlacementKind::replicate; }
  constexpr bool is_shard() const { return kind_ == PlacementKind::shard; }
  constexpr bool is_strided_shard() const { return kind_ == PlacementKind::strided_shard; }
  constexpr bool is_partial() const { return kind_ == PlacementKind::partial; }
  constexpr bool is_block_cyclic() const { return kind_ == PlacementKind::block_cyclic; }
  // Shard, StridedShard or BlockCyclic: the placement splits a tensor dim.
  constexpr bool splits_tensor() const { return is_shard() || is_strided_shard() || is_block_cyclic(); }

  // The tensor dim split. Precondition: splits_tensor().
  constexpr index_t dim() const { return dim_; }
  // The split factor of a StridedShard (1 for every other kind).
  constexpr index_t split_factor() const { return split_factor_; }
  constexpr StridedSemantics semantics() const { return semantics_; }
  constexpr ReduceOp reduce_op() const { return reduce_op_; }
  // BlockCyclic's block size and the coordinate holding block 0 (1 and 0 for other kinds).
  constexpr index_t block_size() const { return block_; }
  constexpr index_t source_coordinate() const { return source_; }

  friend constexpr bool operator==(const Placement&, const Placement&) = default;

 private:
  constexpr Placement(PlacementKind kind, index_t dim, index_t split_factor, ReduceOp op, StridedSemantics semantics)
      : kind_(kind), reduce_op_(op), semantics_(semantics), dim_(dim), split_factor_(split_factor) {}

  static constexpr void check_dim(index_t dim) {
    if (dim < 0) detail::fail("shard dim ", dim, " must be non-negative");
  }

  PlacementKind kind_;
  ReduceOp reduce_op_;
  StridedSemantics semantics_;
  index_t dim_;
  index_t split_factor_;
  index_t block_ = 1;
  index_t source_ = 0;
};

// The reduction a source layout leaves pending: the op of its Partial placements, none without
// them. Error (prefixed by `what`) when two Partial placements name different ops: P(sum) on one
// mesh dim with P(max) on another has no single reduction, so every reshard, lowering and
// collective program refuses it here rather than picking one.
// Example: (P(sum), S(0), P(sum)) -> sum; (R, S(1)) -> none; (P(sum), P(max)) -> error.
inline std::optional<ReduceOp> source_reduce_op(std::span<const Placement> placements, std::string_view what) {
  std::optional<ReduceOp> op;
  for (const Placement& p : placements)
    if (p.is_partial()) {
      if (op && *op != p.reduce_op()) detail::fail(what, ": source mixes Partial reduce ops ", to_string(*op), " and ", to_string(p.reduce_op()));
      op = p.reduce_op();
    }
  return op;
}

}  // namespace shardalg
