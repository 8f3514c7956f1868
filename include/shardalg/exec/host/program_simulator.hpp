// Runs a lowered collective program over every rank's local tile in one process: the reference
// for what each collective of the program does to the bytes (the MPI and NCCL backends run the
// same steps on sub-communicators). Tests compare its result with the direct plan's.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "shardalg/exec/collective_step.hpp"
#include "shardalg/exec/element_ops.hpp"
#include "shardalg/exec/host/host_simulator.hpp"
#include "shardalg/plan/lowering.hpp"

namespace shardalg {

namespace detail {

// One member of a group running a step, with every member's tile at hand (all ranks live in this
// process): the reference each backend's transport is checked against. Works in elements
// (element size 1), so shapes are the tiles' shapes with an innermost 1.
template <class T>
struct SimulatedMember {
  const std::vector<CollectiveStep>& views;  // the step seen from each member
  const std::vector<std::span<const T>>& parts;  // each member's tile before the step
  std::size_t k;                               // which member this is
  ReduceOp op;

  std::vector<T> local(const CollectiveStep& step) const { return slice_along(parts[k], step.shape, step.sends.front()); }
  std::vector<T> all_gather(const CollectiveStep& step) const { return concat_along(parts, step.receives, step.join_dim); }
  std::vector<T> all_to_all(const CollectiveStep& step) const {
    std::vector<std::vector<T>> pieces;
    for (std::size_t j = 0; j < parts.size(); ++j) pieces.push_back(slice_along(parts[j], views[j].shape, views[j].sends[k]));
    return concat_along(std::vector<std::span<const T>>(pieces.begin(), pieces.end()), step.receives, step.join_dim);
  }
  std::vector<T> reduce_scatter(const CollectiveStep&) const {
    std::vector<std::vector<T>> pieces;
    for (std::size_t j = 0; j < parts.size(); ++j) pieces.push_back(slice_along(parts[j], views[j].shape, views[j].sends[k]));
    return reduce(pieces);
  }
  std::vector<T> all_reduce(const CollectiveStep&) const {
    std::vector<std::vector<T>> pieces;
    for (const auto& part : parts) pieces.emplace_back(part.begin(), part.end());
    return reduce(pieces);
  }

 private:
  std::vector<T> reduce(const std::vector<std::vector<T>>& pieces) const {
    std::vector<T> acc(pieces.front().size(), identity_value<T>(op));
    for (const std::vector<T>& piece : pieces)
      for (std::size_t i = 0; i < piece.size(); ++i) acc[i] = reduce_value(acc[i], piece[i], op, static_cast<index_t>(pieces.size()));
    return acc;
  }
};

}  // namespace detail

// Runs `program` on the ranks' local tiles of its first state (buffers as scatter_to_ranks makes
// them; Partial sources hold each rank's partial values). Returns the tiles of its last state.
// Errors: a missing or wrongly sized source buffer (named), a source mixing Partial ops; nothing
// runs then.
template <class T>
RankBuffers<T> run_collective_program(const CollectiveProgram& program, const RankBuffers<T>& sources) {
  if (program.states.empty()) detail::fail("collective program: no states");
  const MeshLayout& first = program.states.front();
  ReduceOp op = source_reduce_op(first.placements(), "collective program").value_or(ReduceOp::sum);
  for (index_t rank : first.mesh().devices()) detail::check_buffer(sources, TensorLayout(first), rank, "collective program: source");
  RankBuffers<T> buffers = sources;
  for (std::size_t i = 0; i < program.steps.size(); ++i) {
    RankBuffers<T> next;
    for (const std::vector<index_t>& group : program.states[i].mesh().flattened_groups(program.steps[i].mesh_dims)) {
      std::shared_ptr<const GroupTiles> tiles = group_tiles(program, i, group);  // once for all members
      std::vector<CollectiveStep> views;
      std::vector<std::span<const T>> parts;
      for (index_t rank : group) {
        views.push_back(describe_collective_step(program, i, group, tiles, rank, 1));
        parts.emplace_back(buffers.at(rank));
      }
      for (std::size_t k = 0; k < group.size(); ++k) {
        detail::SimulatedMember<T> member{views, parts, k, op};
        std::vector<T>& out = next[group[k]] = run_collective_step(views[k], member, "collective program");
        if (static_cast<index_t>(out.size()) != views[k].out_bytes)
          detail::fail("collective program: step ", i, " (", to_string(views[k].kind), ") left rank ", group[k], " with ", out.size(),
                       " elements, its tile has ", views[k].out_bytes);
      }
    }
    buffers = std::move(next);
  }
  return buffers;
}

}  // namespace shardalg
