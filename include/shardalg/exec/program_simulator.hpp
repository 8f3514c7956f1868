// Runs a lowered collective program over every rank's local tile in one process: the reference
// for what each collective of the program does to the bytes (the MPI and NCCL backends run the
// same steps on sub-communicators). Tests compare its result with the direct plan's.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "shardalg/exec/element_ops.hpp"
#include "shardalg/exec/host_simulator.hpp"
#include "shardalg/plan/lowering.hpp"

namespace shardalg {

namespace detail {

// Positions [begin, begin + count) of dim d of a dense row-major tensor of `shape`.
template <class T>
std::vector<T> slice_along(std::span<const T> data, const Dims& shape, std::size_t d, index_t begin, index_t count) {
  index_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < d; ++i) outer *= shape[i];
  for (std::size_t i = d + 1; i < shape.size(); ++i) inner *= shape[i];
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(outer * count * inner));
  for (index_t o = 0; o < outer; ++o) {
    auto from = data.begin() + (o * shape[d] + begin) * inner;
    out.insert(out.end(), from, from + count * inner);
  }
  return out;
}

// Dense row-major tensors of equal shape except along dim d, joined along d.
template <class T>
std::vector<T> concat_along(const std::vector<std::span<const T>>& parts, const std::vector<Dims>& shapes, std::size_t d) {
  index_t outer = 1, inner = 1;
  const Dims& first = shapes.front();
  for (std::size_t i = 0; i < d; ++i) outer *= first[i];
  for (std::size_t i = d + 1; i < first.size(); ++i) inner *= first[i];
  std::vector<T> out;
  for (index_t o = 0; o < outer; ++o)
    for (std::size_t p = 0; p < parts.size(); ++p) {
      index_t run = shapes[p][d] * inner;
      auto from = parts[p].begin() + o * run;
      out.insert(out.end(), from, from + run);
    }
  return out;
}

inline Dims tile_shape(const Tile& tile) {
  Dims shape;
  for (std::size_t d = 0; d < tile.ndim(); ++d) shape.push_back(tile.dim(d).size());
  return shape;
}

// A tile's shape with the element's bytes as an extra innermost dim (byte-level slicing).
inline Dims byte_shape(const Tile& tile, index_t element) {
  Dims shape = tile_shape(tile);
  shape.push_back(element);
  return shape;
}

// The tiles step i of a program works on, seen from `rank` of the step's group `members`.
struct StepTiles {
  Tile mine_before, mine_after;
  std::vector<Tile> before, after;  // the members' tiles, in group order
  Dims shape;                       // byte_shape of mine_before
  StepTiles(const CollectiveProgram& program, std::size_t i, const std::vector<index_t>& members, index_t rank, index_t element)
      : mine_before(program.states[i].tile(rank)), mine_after(program.states[i + 1].tile(rank)), shape(byte_shape(mine_before, element)) {
    for (index_t member : members) {
      before.push_back(program.states[i].tile(member));
      after.push_back(program.states[i + 1].tile(member));
    }
  }
};

// Where tile `part`'s positions along dim d begin among tile `whole`'s local positions (part is
// a split of whole along d; 0 when part holds nothing there).
inline index_t local_begin(const Tile& whole, const Tile& part, std::size_t d) {
  if (part.dim(d).empty()) return 0;
  return *whole.dim(d).local_of(part.dim(d).first());
}

// The ranks of each group of `mesh_dims` (flattened row-major), one group per coordinate of the
// other mesh dims.
inline std::vector<std::vector<index_t>> flattened_groups(const DeviceMesh& mesh, const std::vector<index_t>& mesh_dims) {
  Dims sizes;
  for (index_t m : mesh_dims) sizes.push_back(mesh.size(static_cast<std::size_t>(m)));
  std::vector<std::vector<index_t>> groups;
  for (index_t rank : mesh.devices()) {
    Dims coord = *mesh.coordinate_of(rank);
    bool leader = true;
    for (index_t m : mesh_dims) leader = leader && coord[static_cast<std::size_t>(m)] == 0;
    if (!leader) continue;
    std::vector<index_t> group;
    for (index_t i = 0; i < volume(sizes); ++i) {
      Dims within = row_major_coordinate(sizes, i);
      for (std::size_t k = 0; k < mesh_dims.size(); ++k) coord[static_cast<std::size_t>(mesh_dims[k])] = within[k];
      group.push_back(mesh.rank_at(coord));
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

// Where `rank` sits among the groups of `mesh_dims`: its group's leader (the first rank, the
// colour of a communicator split), the members in flattened order, and the rank's position (the
// split's key). None for a rank outside the mesh.
struct GroupMembership {
  index_t leader = 0;
  std::vector<index_t> members;
  index_t position = 0;
};
inline std::optional<GroupMembership> group_of(const DeviceMesh& mesh, const std::vector<index_t>& mesh_dims, index_t rank) {
  std::optional<Dims> coord = mesh.coordinate_of(rank);
  if (!coord) return std::nullopt;
  GroupMembership result;
  Dims leader = *coord;
  for (index_t m : mesh_dims) leader[static_cast<std::size_t>(m)] = 0;
  result.leader = mesh.rank_at(leader);
  for (auto& group : flattened_groups(mesh, mesh_dims))
    if (group.front() == result.leader) result.members = std::move(group);
  result.position = static_cast<index_t>(std::find(result.members.begin(), result.members.end(), rank) - result.members.begin());
  return result;
}

}  // namespace detail

// Runs `program` on the ranks' local tiles of its first state (buffers as scatter_to_ranks makes
// them; Partial sources hold each rank's partial values). Returns the tiles of its last state.
// Errors: a missing or wrongly sized source buffer (named); nothing runs then.
template <class T>
RankBuffers<T> run_collective_program(const CollectiveProgram& program, const RankBuffers<T>& sources) {
  if (program.states.empty()) detail::fail("collective program: no states");
  const MeshLayout& first = program.states.front();
  ReduceOp op = ReduceOp::sum;
  for (const Placement& p : first.placements())
    if (p.is_partial()) op = p.reduce_op();
  for (index_t rank : first.mesh().devices()) detail::check_buffer(sources, TensorLayout(first), rank, "collective program: source");
  RankBuffers<T> buffers = sources;
  for (std::size_t i = 0; i < program.steps.size(); ++i) {
    const LoweredStep& step = program.steps[i];
    const MeshLayout& before = program.states[i];
    const MeshLayout& after = program.states[i + 1];
    RankBuffers<T> next;
    for (const std::vector<index_t>& group : detail::flattened_groups(before.mesh(), step.mesh_dims)) {
      std::vector<Tile> old_tiles, new_tiles;
      std::vector<Dims> old_shapes;
      std::vector<std::span<const T>> parts;
      for (index_t rank : group) {
        old_tiles.push_back(before.tile(rank));
        new_tiles.push_back(after.tile(rank));
        old_shapes.push_back(detail::tile_shape(old_tiles.back()));
        parts.emplace_back(buffers.at(rank));
      }
      auto n = static_cast<index_t>(group.size());
      auto d = static_cast<std::size_t>(step.tensor_dim);
      // The reduction over the group of each member's slice along dim d for member `target`
      // (the whole buffer for all-reduce).
      auto reduced = [&](std::size_t target, bool scatter) {
        std::vector<T> acc;
        for (std::size_t j = 0; j < group.size(); ++j) {
          std::vector<T> part = scatter ? detail::slice_along(parts[j], old_shapes[j], d, detail::local_begin(old_tiles[j], new_tiles[target], d),
                                                               new_tiles[target].dim(d).size())
                                        : std::vector<T>(parts[j].begin(), parts[j].end());
          if (acc.empty()) acc.assign(part.size(), detail::identity_value<T>(op));
          for (std::size_t k = 0; k < part.size(); ++k) acc[k] = detail::reduce_value(acc[k], part[k], op, n);
        }
        return acc;
      };
      for (std::size_t k = 0; k < group.size(); ++k) {
        std::vector<T>& out = next[group[k]];
        switch (step.kind) {
          case CollectiveKind::local:
            out = detail::slice_along(parts[k], old_shapes[k], d, detail::local_begin(old_tiles[k], new_tiles[k], d), new_tiles[k].dim(d).size());
            break;
          case CollectiveKind::all_gather: out = detail::concat_along(parts, old_shapes, d); break;
          case CollectiveKind::reduce_scatter: out = reduced(k, true); break;
          case CollectiveKind::all_reduce: out = reduced(k, false); break;
          case CollectiveKind::all_to_all: {
            auto e = static_cast<std::size_t>(step.split_dim);
            std::vector<std::vector<T>> pieces;
            std::vector<Dims> shapes;
            for (std::size_t j = 0; j < group.size(); ++j) {
              pieces.push_back(detail::slice_along(parts[j], old_shapes[j], e, detail::local_begin(old_tiles[j], new_tiles[k], e),
                                                   new_tiles[k].dim(e).size()));
              shapes.push_back(old_shapes[j]);
              shapes.back()[e] = new_tiles[k].dim(e).size();
            }
            std::vector<std::span<const T>> views(pieces.begin(), pieces.end());
            out = detail::concat_along(views, shapes, d);
            break;
          }
          case CollectiveKind::p2p: detail::fail("collective program: a p2p step has no collective to run");
        }
        if (static_cast<index_t>(out.size()) != new_tiles[k].volume())
          detail::fail("collective program: step ", i, " (", to_string(step.kind), ") left rank ", group[k], " with ", out.size(),
                       " elements, its tile has ", new_tiles[k].volume());
      }
    }
    buffers = std::move(next);
  }
  return buffers;
}

}  // namespace shardalg
