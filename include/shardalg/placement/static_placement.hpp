// Placements as types, for the compile-time layer. Each has `value`, the run-time Placement.
//
//   StaticShard<0>, StaticStridedShard<0, 2>, StaticReplicate, StaticPartial<ReduceOp::sum>,
//   StaticBlockCyclic<0, 64> and the matching objects shard_c<0>, strided_shard_c<0, 2>,
//   replicate_c, partial_c<>, block_cyclic_c<0, 64>.
#pragma once

#include <concepts>

#include "shardalg/placement/placement.hpp"

namespace shardalg {

struct StaticReplicate {
  static constexpr Placement value = Placement::replicate();
};

template <index_t Dim>
struct StaticShard {
  static_assert(Dim >= 0, "shardalg: a Shard tensor dim must be non-negative");
  static constexpr Placement value = Placement::shard(Dim);
};

template <index_t Dim, index_t SplitFactor, StridedSemantics Semantics = StridedSemantics::nested_chunk>
struct StaticStridedShard {
  static_assert(Dim >= 0, "shardalg: a StridedShard tensor dim must be non-negative");
  static_assert(SplitFactor >= 1, "shardalg: a StridedShard split factor (sf) must be >= 1");
  static constexpr Placement value = Placement::strided_shard(Dim, SplitFactor, Semantics);
};

template <ReduceOp Op = ReduceOp::sum>
struct StaticPartial {
  static constexpr Placement value = Placement::partial(Op);
};

template <index_t Dim, index_t Block, index_t Source = 0>
struct StaticBlockCyclic {
  static_assert(Dim >= 0, "shardalg: a BlockCyclic tensor dim must be non-negative");
  static_assert(Block >= 1, "shardalg: a BlockCyclic block size must be >= 1");
  static_assert(Source >= 0, "shardalg: a BlockCyclic source coordinate must be >= 0");
  static constexpr Placement value = Placement::block_cyclic(Dim, Block, Source);
};

template <class T>
concept StaticPlacement = requires {
  { T::value } -> std::convertible_to<Placement>;
};

inline constexpr StaticReplicate replicate_c{};
template <index_t Dim>
inline constexpr StaticShard<Dim> shard_c{};
template <index_t Dim, index_t SplitFactor, StridedSemantics Semantics = StridedSemantics::nested_chunk>
inline constexpr StaticStridedShard<Dim, SplitFactor, Semantics> strided_shard_c{};
template <ReduceOp Op = ReduceOp::sum>
inline constexpr StaticPartial<Op> partial_c{};
template <index_t Dim, index_t Block, index_t Source = 0>
inline constexpr StaticBlockCyclic<Dim, Block, Source> block_cyclic_c{};

}  // namespace shardalg
