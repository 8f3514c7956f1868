// What the collective programs of every backend share (host/program_simulator.hpp,
// mpi/mpi_collective_program.hpp, nccl/nccl_collective_program.hpp): one step of a lowered
// program seen from one rank, the one dispatch on the step's kind, and the row arithmetic of
// slicing and joining dense row-major tiles along one dim. A backend supplies only transport.
//
// A step of kind                 sends (slices of this rank's tile)   receives, joined along join_dim
//   local                        the slice it keeps                   -
//   all_gather                   its whole tile to every member       every member's tile
//   all_to_all                   to member j: j's chunk along split   from member j: its chunk for us
//   reduce_scatter               to member j: j's chunk along dim     reduced, not joined
//   all_reduce                   its whole tile                       reduced, not joined
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "shardalg/plan/lowering.hpp"

namespace shardalg {

// A dense row-major tensor of `shape` seen around dim d: `outer` runs of `extent` positions of
// `inner` elements each, so a slice or a join along d is `outer` contiguous copies.
// Example: shape [4, 6, 2], d = 1: outer 4, extent 6, inner 2.
struct AroundDim {
  index_t outer = 1, extent = 1, inner = 1;
  AroundDim(const Dims& shape, std::size_t d) : extent(shape[d]) {
    for (std::size_t i = 0; i < d; ++i) outer *= shape[i];
    for (std::size_t i = d + 1; i < shape.size(); ++i) inner *= shape[i];
  }
};

// Positions [begin, begin + count) of dim `dim` of a tile.
struct SliceAlong {
  std::size_t dim = 0;
  index_t begin = 0, count = 0;
};

// Positions `slice` of the dense row-major tensor `data` of `shape`, as a dense tensor.
// Example: data 0..11 of shape [3, 4], slice {dim 1, begin 1, count 2} -> 1 2 5 6 9 10.
template <class T>
std::vector<T> slice_along(std::span<const T> data, const Dims& shape, SliceAlong slice) {
  AroundDim around(shape, slice.dim);
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(around.outer * slice.count * around.inner));
  for (index_t o = 0; o < around.outer; ++o) {
    auto from = data.begin() + (o * around.extent + slice.begin) * around.inner;
    out.insert(out.end(), from, from + slice.count * around.inner);
  }
  return out;
}

// Dense row-major tensors of equal shapes except along dim d, joined along d in order.
template <class T>
std::vector<T> concat_along(const std::vector<std::span<const T>>& parts, const std::vector<Dims>& shapes, std::size_t d) {
  index_t outer = AroundDim(shapes.front(), d).outer;
  std::vector<T> out;
  for (index_t o = 0; o < outer; ++o)
    for (std::size_t p = 0; p < parts.size(); ++p) {
      AroundDim around(shapes[p], d);
      index_t run = around.extent * around.inner;
      auto from = parts[p].begin() + o * run;
      out.insert(out.end(), from, from + run);
    }
  return out;
}

// The members' tiles before and after one step, in group order: computed once per group and
// shared by every member's view of the step.
struct GroupTiles {
  std::vector<Tile> before, after;
};

// Step `index` of a lowered program seen from one member of the step's group: what it sends to
// each member and how the parts it receives join. Sizes are in units of `element` bytes, which
// appear as an extra innermost dim of every shape (byte-level slicing for any dtype).
struct CollectiveStep {
  CollectiveKind kind = CollectiveKind::local;
  std::size_t index = 0;              // the step's position in the program
  std::vector<index_t> members;       // the group, flattened order
  std::size_t me = 0;                 // this rank's position among the members
  std::shared_ptr<const GroupTiles> tiles;  // the members' tiles around the step
  Dims shape;                         // this rank's tile before the step (element bytes innermost)
  std::vector<SliceAlong> sends;      // local: the slice kept; all_to_all, reduce_scatter: member j's
  std::vector<Dims> receives;         // all_gather, all_to_all: the shape of member j's part
  std::size_t join_dim = 0;           // the dim the received parts are joined along
  index_t out_bytes = 0;              // this rank's tile after the step
};

namespace detail {

// A tile's shape with the element's bytes as an extra innermost dim.
inline Dims byte_shape(const Tile& tile, index_t element) {
  Dims shape;
  for (std::size_t d = 0; d < tile.ndim(); ++d) shape.push_back(tile.dim(d).size());
  shape.push_back(element);
  return shape;
}

// Where tile `part`'s positions along dim d begin among tile `whole`'s local positions (part is
// a split of whole along d; 0 when part holds nothing there).
inline index_t local_begin(const Tile& whole, const Tile& part, std::size_t d) {
  if (part.dim(d).empty()) return 0;
  return *whole.dim(d).local_of(part.dim(d).first());
}

}  // namespace detail

// The tiles of `members` (a group of step i) before and after the step.
inline std::shared_ptr<const GroupTiles> group_tiles(const CollectiveProgram& program, std::size_t i, const std::vector<index_t>& members) {
  auto tiles = std::make_shared<GroupTiles>();
  for (index_t member : members) {
    tiles->before.push_back(program.states[i].tile(member));
    tiles->after.push_back(program.states[i + 1].tile(member));
  }
  return tiles;
}

// Step i of `program` for `rank`, a member of the step's group `members` (flattened order, as
// DeviceMesh::flattened_groups lists them, with their `tiles`), elements of `element` bytes.
// Example: S(0) -> R on mesh a=2 over shape [4, 3], rank 1: an all_gather whose receives are
// [2, 3, element] from ranks 0 and 1, joined along dim 0; out_bytes 12 * element.
inline CollectiveStep describe_collective_step(const CollectiveProgram& program, std::size_t i, std::vector<index_t> members,
                                               std::shared_ptr<const GroupTiles> tiles, index_t rank, index_t element) {
  CollectiveStep step;
  const LoweredStep& lowered = program.steps[i];
  step.kind = lowered.kind;
  step.index = i;
  step.me = static_cast<std::size_t>(std::find(members.begin(), members.end(), rank) - members.begin());
  step.members = std::move(members);
  step.tiles = std::move(tiles);
  const std::vector<Tile>&before = step.tiles->before, &after = step.tiles->after;
  const Tile &mine_before = before[step.me], &mine_after = after[step.me];
  step.shape = detail::byte_shape(mine_before, element);
  step.out_bytes = mine_after.volume() * element;
  auto d = static_cast<std::size_t>(std::max<index_t>(0, lowered.tensor_dim));
  step.join_dim = d;
  // The chunk of this rank's tile along `dim` that member j holds after the step.
  auto chunk_for = [&](std::size_t j, std::size_t dim) {
    return SliceAlong{dim, detail::local_begin(mine_before, after[j], dim), after[j].dim(dim).size()};
  };
  switch (lowered.kind) {
    case CollectiveKind::local: step.sends.push_back(chunk_for(step.me, d)); break;
    case CollectiveKind::all_gather:
      for (const Tile& t : before) step.receives.push_back(detail::byte_shape(t, element));
      break;
    case CollectiveKind::all_to_all: {
      auto e = static_cast<std::size_t>(lowered.split_dim);
      for (std::size_t j = 0; j < step.members.size(); ++j) {
        step.sends.push_back(chunk_for(j, e));
        step.receives.push_back(detail::byte_shape(before[j], element));
        step.receives.back()[e] = mine_after.dim(e).size();
      }
      break;
    }
    case CollectiveKind::reduce_scatter:
      for (std::size_t j = 0; j < step.members.size(); ++j) step.sends.push_back(chunk_for(j, d));
      break;
    case CollectiveKind::all_reduce:
    case CollectiveKind::p2p: break;
  }
  return step;
}

// What a backend implements to run collective steps: one member per kind, each returning the
// rank's tile after the step (the type the backend keeps tiles in).
template <class Backend>
concept CollectiveBackend = requires(Backend& backend, const CollectiveStep& step) {
  backend.local(step);
  backend.all_gather(step);
  backend.all_to_all(step);
  backend.reduce_scatter(step);
  backend.all_reduce(step);
};

// Runs `step` with the backend's member for its kind: the one place that dispatches on a
// collective's kind. Error (prefixed by `who`) for a p2p step, which has no collective.
template <CollectiveBackend Backend>
auto run_collective_step(const CollectiveStep& step, Backend& backend, std::string_view who) {
  switch (step.kind) {
    case CollectiveKind::local: return backend.local(step);
    case CollectiveKind::all_gather: return backend.all_gather(step);
    case CollectiveKind::all_to_all: return backend.all_to_all(step);
    case CollectiveKind::reduce_scatter: return backend.reduce_scatter(step);
    case CollectiveKind::all_reduce: return backend.all_reduce(step);
    case CollectiveKind::p2p: break;
  }
  detail::fail(who, ": step ", step.index, " is a p2p step; run point-to-point plans with the engine");
}

// Where `rank` sits among the groups of `mesh_dims`: its group's leader (the first rank, the
// colour of a communicator split), the members in flattened order, and the rank's position (the
// split's key). None for a rank outside the mesh.
struct GroupMembership {
  index_t leader = 0;
  std::vector<index_t> members;
  index_t position = 0;
};
inline std::optional<GroupMembership> group_membership(const DeviceMesh& mesh, const std::vector<index_t>& mesh_dims, index_t rank) {
  std::optional<Dims> coord = mesh.coordinate_of(rank);
  if (!coord) return std::nullopt;
  GroupMembership result;
  Dims leader = *coord;
  for (index_t m : mesh_dims) leader[static_cast<std::size_t>(m)] = 0;
  result.leader = mesh.rank_at(leader);
  for (auto& group : mesh.flattened_groups(mesh_dims))
    if (group.front() == result.leader) result.members = std::move(group);
  result.position = static_cast<index_t>(std::find(result.members.begin(), result.members.end(), rank) - result.members.begin());
  return result;
}

}  // namespace shardalg
