// Lowering: a reshard on one mesh as a program of collectives on mesh-dim groups (docs/semantics.md
// section 10), chosen by cost against running the plan point-to-point.
//
// A layout on a fixed mesh is a state: each mesh dim is Replicate, Partial or shards one tensor
// dim, and each tensor dim's shard order (which mesh dim splits it first). StridedShard
// placements are that order in label form. A step changes the mesh dims of one group:
//   local          R -> S(d)        the rank keeps its chunk; appends the dims to d's order
//   all_gather     S(d) -> R        the dims must be the last of d's order; chunks padded to equal size
//   reduce_scatter P -> S(d)        appends the dims to d's order
//   all_reduce     P -> R
//   all_to_all     S(d) -> S(e)     one mesh dim, last of d's order, appended to e's order
// A step over several adjacent mesh dims runs once on their flattened group (row-major); the
// search offers it where it is exact (the tensor dim divides evenly), so it is taken exactly
// when one collective is cheaper than its parts. Dijkstra over states finds the cheapest
// program (ties: fewer collectives, then fewer steps); the tensor dims tried as intermediate
// shard targets are those the source or destination shards.
//
// Example, mesh (2,2,2), shape (8,8,8): S(0),S(0),S(0) -> S(1),S(1),S(1) is all_gather on dim 2,
// all_gather on dim 1, all_to_all on dim 0 (tensor dim 0 -> 1), then two local splits: three
// collectives, as PyTorch's planner.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <queue>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "shardalg/layout/layout_comparison.hpp"
#include "shardalg/plan/communication_volume.hpp"
#include "shardalg/plan/cost_model.hpp"
#include "shardalg/plan/reshard_plan.hpp"

namespace shardalg {

struct LoweredStep {
  CollectiveKind kind;
  std::vector<index_t> mesh_dims;  // the group: these mesh dims, flattened row-major
  index_t tensor_dim = -1;         // split (local, reduce_scatter), gathered (all_gather, all_to_all)
  index_t split_dim = -1;          // all_to_all: the tensor dim split after the exchange
  double buffer_bytes = 0;         // per-rank buffer b of the cost formula, padded
  double bytes = 0;                // bytes between distinct ranks, all groups together
  double cost_us = 0;
};

// The cheapest collective program between two layouts of one mesh, and the layouts it passes
// through: states[i] before step i, states.back() == the destination (in shard-order form).
struct CollectiveProgram {
  std::vector<LoweredStep> steps;
  std::vector<MeshLayout> states;
  double cost_us = 0;
  double bytes = 0;
  // Steps that communicate (all but local ones).
  index_t collectives() const {
    index_t count = 0;
    for (const LoweredStep& step : steps) count += step.kind != CollectiveKind::local;
    return count;
  }
};

enum class LoweringChoice { collectives, p2p };

// What to run: the collective program, or the point-to-point plan when that is cheaper, moves
// fewer bytes, or no collective program exists (then `reason` says why).
struct LoweredProgram {
  LoweringChoice choice = LoweringChoice::p2p;
  std::optional<CollectiveProgram> collectives;
  double p2p_bytes = 0;
  double p2p_us = 0;
  std::string reason;
};

namespace detail {

// A search state packed in 8 bytes per mesh dim: code (0 Replicate, 1 Partial, 2+d Shard(d))
// and the mesh dim's position in tensor dim d's order.
struct LoweringState {
  static constexpr std::size_t max_mesh_dims = 8;
  static constexpr std::uint8_t replicate = 0, partial = 1, first_shard = 2;
  std::array<std::uint8_t, max_mesh_dims> code{};
  std::array<std::uint8_t, max_mesh_dims> position{};

  std::uint64_t key() const {
    std::uint64_t k = 0;
    for (std::size_t m = 0; m < max_mesh_dims; ++m) k |= static_cast<std::uint64_t>(code[m] << 4 | position[m]) << (8 * m);
    return k;
  }
  static LoweringState from_key(std::uint64_t k) {
    LoweringState s;
    for (std::size_t m = 0; m < max_mesh_dims; ++m) {
      auto byte = static_cast<std::uint8_t>(k >> (8 * m));
      s.code[m] = static_cast<std::uint8_t>(byte >> 4);
      s.position[m] = static_cast<std::uint8_t>(byte & 15);
    }
    return s;
  }
  bool shards(std::size_t m, index_t d) const { return code[m] == first_shard + d; }
  // How many mesh dims split tensor dim d.
  std::uint8_t count(std::size_t mesh_ndim, index_t d) const {
    std::uint8_t n = 0;
    for (std::size_t m = 0; m < mesh_ndim; ++m) n = static_cast<std::uint8_t>(n + shards(m, d));
    return n;
  }
};

class LoweringSearch {
 public:
  LoweringSearch(const MeshLayout& src, const MeshLayout& dst, index_t element_bytes, const CostModel& model)
      : mesh_(src.mesh()), shape_(src.global_shape()), element_bytes_(static_cast<double>(element_bytes)), model_(model) {
    mesh_ndim_ = mesh_.ndim();
    op_ = source_reduce_op(src.placements(), "lowering").value_or(ReduceOp::sum);
    for (std::size_t m = 0; m < mesh_ndim_; ++m)
      for (const MeshLayout* layout : {&src, &dst})
        if (layout->placements()[m].splits_tensor()) {
          index_t d = layout->placements()[m].dim();
          if (std::find(candidates_.begin(), candidates_.end(), d) == candidates_.end()) candidates_.push_back(d);
        }
    std::sort(candidates_.begin(), candidates_.end());
    // Links of every contiguous range of mesh dims (the flattened groups).
    link_.assign(mesh_ndim_ * mesh_ndim_, nullptr);
    group_size_.assign(mesh_ndim_ * mesh_ndim_, 1);
    for (std::size_t a = 0; a < mesh_ndim_; ++a)
      for (std::size_t b = a; b < mesh_ndim_; ++b) {
        std::vector<index_t> dims;
        index_t size = 1;
        for (std::size_t m = a; m <= b; ++m) {
          dims.push_back(static_cast<index_t>(m));
          size *= mesh_.size(m);
        }
        link_[a * mesh_ndim_ + b] = &model_.group_link(mesh_, dims);
        group_size_[a * mesh_ndim_ + b] = size;
      }
  }

  static LoweringState state_of(const MeshLayout& layout, const ShardOrder& order) {
    LoweringState s;
    for (std::size_t m = 0; m < layout.placements().size(); ++m)
      s.code[m] = layout.placements()[m].is_partial() ? LoweringState::partial : LoweringState::replicate;
    for (const ShardOrderEntry& entry : order)
      for (std::size_t i = 0; i < entry.mesh_dims.size(); ++i) {
        auto m = static_cast<std::size_t>(entry.mesh_dims[i]);
        s.code[m] = static_cast<std::uint8_t>(LoweringState::first_shard + entry.tensor_dim);
        s.position[m] = static_cast<std::uint8_t>(i);
      }
    return s;
  }

  // The cheapest program from `from` to `to`; nothing when no program reaches `to`.
  std::optional<CollectiveProgram> run(const LoweringState& from, const LoweringState& to) {
    struct Node {
      double cost;
      index_t collectives, steps;
      std::uint64_t previous;
      LoweredStep step;
      bool done;
    };
    struct Entry {
      double cost;
      index_t collectives, steps;
      std::uint64_t key;
      bool operator>(const Entry& o) const {
        return std::tie(cost, collectives, steps, key) > std::tie(o.cost, o.collectives, o.steps, o.key);
      }
    };
    std::unordered_map<std::uint64_t, Node> nodes;
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> queue;
    std::uint64_t start = from.key(), goal = to.key();
    nodes.emplace(start, Node{0, 0, 0, start, {}, false});
    queue.push(Entry{0, 0, 0, start});
    while (!queue.empty()) {
      Entry top = queue.top();
      queue.pop();
      Node& node = nodes.at(top.key);
      if (node.done) continue;
      node.done = true;
      if (top.key == goal) break;
      for_each_move(LoweringState::from_key(top.key), [&](const LoweringState& next, const LoweredStep& step) {
        Entry candidate{top.cost + step.cost_us, top.collectives + (step.kind != CollectiveKind::local), top.steps + 1, next.key()};
        auto [it, inserted] = nodes.try_emplace(candidate.key, Node{candidate.cost, candidate.collectives, candidate.steps, top.key, step, false});
        if (!inserted) {
          if (it->second.done || !(Entry{it->second.cost, it->second.collectives, it->second.steps, candidate.key} > candidate)) return;
          it->second = Node{candidate.cost, candidate.collectives, candidate.steps, top.key, step, false};
        }
        queue.push(candidate);
      });
    }
    auto found = nodes.find(goal);
    if (found == nodes.end() || !found->second.done) return std::nullopt;
    CollectiveProgram program;
    std::vector<std::uint64_t> keys{goal};
    for (std::uint64_t k = goal; k != start; k = nodes.at(k).previous) {
      program.steps.push_back(nodes.at(k).step);
      keys.push_back(nodes.at(k).previous);
    }
    std::reverse(program.steps.begin(), program.steps.end());
    std::reverse(keys.begin(), keys.end());
    for (std::uint64_t k : keys) program.states.push_back(layout_of(LoweringState::from_key(k)));
    for (const LoweredStep& step : program.steps) {
      program.cost_us += step.cost_us;
      program.bytes += step.bytes;
    }
    return program;
  }

  // The mesh layout of a state: Shard placements with an explicit order.
  MeshLayout layout_of(const LoweringState& s) const {
    std::vector<Placement> placements;
    ShardOrder order;
    for (std::size_t m = 0; m < mesh_ndim_; ++m) {
      if (s.code[m] == LoweringState::replicate) placements.push_back(Placement::replicate());
      else if (s.code[m] == LoweringState::partial) placements.push_back(Placement::partial(op_));
      else placements.push_back(Placement::shard(s.code[m] - LoweringState::first_shard));
    }
    for (index_t d : candidates_) {
      ShardOrderEntry entry{d, std::vector<index_t>(s.count(mesh_ndim_, d))};
      for (std::size_t m = 0; m < mesh_ndim_; ++m)
        if (s.shards(m, d)) entry.mesh_dims[s.position[m]] = static_cast<index_t>(m);
      if (!entry.mesh_dims.empty()) order.push_back(std::move(entry));
    }
    return MeshLayout(mesh_, std::move(placements), shape_, order);
  }

 private:
  // The largest local extent per tensor dim (torch.chunk's first chunk is the largest).
  Dims max_extents(const LoweringState& s) const {
    Dims extents = shape_;
    for (index_t d : candidates_) {
      std::uint8_t n = s.count(mesh_ndim_, d);
      for (std::uint8_t pos = 0; pos < n; ++pos)
        for (std::size_t m = 0; m < mesh_ndim_; ++m)
          if (s.shards(m, d) && s.position[m] == pos) extents[static_cast<std::size_t>(d)] = ceil_div(extents[static_cast<std::size_t>(d)], mesh_.size(m));
    }
    return extents;
  }
  double bytes_of(const Dims& extents) const {
    double v = element_bytes_;
    for (index_t e : extents) v *= static_cast<double>(e);
    return v;
  }
  // True when tensor dim d divides evenly by every mesh dim that splits it in `s`: chunks are
  // equal, so nested chunking equals chunking by the flattened group.
  bool even(const LoweringState& s, index_t d) const {
    index_t product = 1;
    for (std::size_t m = 0; m < mesh_ndim_; ++m)
      if (s.shards(m, d)) product *= mesh_.size(m);
    return shape_[static_cast<std::size_t>(d)] % product == 0;
  }

  LoweredStep make_step(CollectiveKind kind, std::size_t a, std::size_t b, index_t d, index_t e, double buffer) const {
    LoweredStep step{kind, {}, d, e, buffer, 0, 0};
    for (std::size_t m = a; m <= b; ++m) step.mesh_dims.push_back(static_cast<index_t>(m));
    index_t n = group_size_[a * mesh_ndim_ + b];
    step.cost_us = model_.collective_us(kind, *link_[a * mesh_ndim_ + b], n, buffer);
    if (kind != CollectiveKind::local && n > 1) {
      double factor = kind == CollectiveKind::all_reduce ? 2.0 : 1.0;
      step.bytes = static_cast<double>(mesh_.size()) * factor * static_cast<double>(n - 1) / static_cast<double>(n) * buffer;
    }
    return step;
  }

  template <class F>
  void for_each_move(const LoweringState& s, F&& visit) const {
    Dims extents = max_extents(s);
    double current = bytes_of(extents);
    for (std::size_t a = 0; a < mesh_ndim_; ++a) {
      for (std::size_t b = a; b < mesh_ndim_; ++b) {
        std::uint8_t code = s.code[a];
        bool uniform = true;
        for (std::size_t m = a + 1; m <= b; ++m) uniform = uniform && s.code[m] == code;
        index_t n = group_size_[a * mesh_ndim_ + b];
        bool single = a == b;
        if (code == LoweringState::partial && uniform) {
          LoweringState next = s;
          for (std::size_t m = a; m <= b; ++m) next.code[m] = LoweringState::replicate;
          visit(next, make_step(CollectiveKind::all_reduce, a, b, -1, -1, current));
          for (index_t d : candidates_) {
            LoweringState split = append(s, a, b, d);
            if (!single && !even(split, d)) continue;
            Dims after = max_extents(split);
            after[static_cast<std::size_t>(d)] *= n;  // the padded input
            visit(split, make_step(CollectiveKind::reduce_scatter, a, b, d, -1, bytes_of(after)));
          }
        } else if (code == LoweringState::replicate && single) {
          for (index_t d : candidates_) {
            LoweringState split = append(s, a, b, d);
            visit(split, make_step(CollectiveKind::local, a, b, d, -1, bytes_of(max_extents(split))));
          }
        } else if (code >= LoweringState::first_shard) {
          index_t d = code - LoweringState::first_shard;
          // The dims a..b must be the last of d's order, ascending.
          std::size_t count = s.count(mesh_ndim_, d), width = b - a + 1;
          bool tail = count >= width;
          for (std::size_t m = a; m <= b && tail; ++m)
            tail = s.shards(m, d) && std::size_t{s.position[m]} == count - width + (m - a);
          if (!tail || (!single && !even(s, d))) continue;
          LoweringState gathered = s;
          for (std::size_t m = a; m <= b; ++m) gathered.code[m] = LoweringState::replicate, gathered.position[m] = 0;
          visit(gathered, make_step(CollectiveKind::all_gather, a, b, d, -1, current * static_cast<double>(n)));
          if (!single) continue;
          for (index_t e : candidates_) {
            if (e == d) continue;
            LoweringState moved = append(gathered, a, b, e);
            Dims exchange = max_extents(moved);
            exchange[static_cast<std::size_t>(d)] = extents[static_cast<std::size_t>(d)];
            exchange[static_cast<std::size_t>(e)] *= n;  // n padded pieces of the split dim
            visit(moved, make_step(CollectiveKind::all_to_all, a, b, d, e, bytes_of(exchange)));
          }
        }
      }
    }
  }

  // `s` with mesh dims a..b appended, in order, to tensor dim d's order.
  LoweringState append(const LoweringState& s, std::size_t a, std::size_t b, index_t d) const {
    LoweringState next = s;
    std::uint8_t count = s.count(mesh_ndim_, d);
    for (std::size_t m = a; m <= b; ++m) {
      next.code[m] = static_cast<std::uint8_t>(LoweringState::first_shard + d);
      next.position[m] = static_cast<std::uint8_t>(count + (m - a));
    }
    return next;
  }

  const DeviceMesh& mesh_;
  Dims shape_;
  double element_bytes_;
  const CostModel& model_;
  std::size_t mesh_ndim_ = 0;
  ReduceOp op_ = ReduceOp::sum;
  std::vector<index_t> candidates_;
  std::vector<const LinkParameters*> link_;
  std::vector<index_t> group_size_;
};

// The shard order of a layout, or nothing (legacy strided or block-cyclic placements, or a
// StridedShard label that does not hold what its order holds).
// A _StridedShard label names a shard order, but holds that order's elements only when the
// extents divide evenly: _S(0,2),S(0) on (4, 2) with 9 rows gives rank 6 one row, its order
// [1, 0] none. Programs move the elements the ranks hold, so such a label has no state.
inline std::optional<ShardOrder> lowering_order(const MeshLayout& layout) {
  if (layout.application_order()) return layout.application_order();
  std::optional<ShardOrder> order = shard_order_from_placements(layout.mesh().shape(), layout.placements());
  auto strided = [](const Placement& p) { return p.is_strided_shard(); };
  if (!order || std::none_of(layout.placements().begin(), layout.placements().end(), strided)) return order;
  std::vector<Placement> shards = layout.placements();
  for (Placement& p : shards)
    if (p.is_strided_shard()) p = Placement::shard(p.dim());
  if (!compare_layouts(layout, MeshLayout(layout.mesh(), shards, layout.global_shape(), *order)).equivalent()) return std::nullopt;
  return order;
}

}  // namespace detail

// The cheapest collective program from `src` to `dst` (both on the same mesh) for elements of
// `element_bytes` bytes, or nothing when the layouts are not expressible as states
// (block-cyclic or legacy strided placements, a StridedShard label whose uneven extents hold
// other elements than its shard order, a mesh of more than 8 dims or a tensor of more than 14).
// Errors: different meshes or shapes, a Partial destination, mixed Partial ops.
// Time: a Dijkstra over the states reachable more cheaply than the answer (milliseconds for
// 4-D meshes; see docs/benchmarks.md).
inline std::optional<CollectiveProgram> search_collectives(const MeshLayout& src, const MeshLayout& dst, index_t element_bytes,
                                                           const CostModel& model = {}) {
  model.validate();
  if (!(src.mesh() == dst.mesh()))
    detail::fail("lowering: the layouts are on different meshes (", src.mesh().to_string(), " and ", dst.mesh().to_string(),
                 "); collectives need one mesh");
  if (src.global_shape() != dst.global_shape())
    detail::fail("lowering: source shape ", src.global_shape(), " and destination shape ", dst.global_shape(), " differ");
  if (element_bytes < 1) detail::fail("lowering: element size ", element_bytes, " must be >= 1 byte");
  detail::reshard_reduce_op(src.placements(), dst.placements(), "lowering");
  if (src.mesh().ndim() > detail::LoweringState::max_mesh_dims || src.tensor_ndim() > 14) return std::nullopt;
  auto src_order = detail::lowering_order(src), dst_order = detail::lowering_order(dst);
  if (!src_order || !dst_order) return std::nullopt;
  detail::LoweringSearch search(src, dst, element_bytes, model);
  return search.run(detail::LoweringSearch::state_of(src, *src_order), detail::LoweringSearch::state_of(dst, *dst_order));
}

// Lowers a same-mesh reshard: the cheapest collective program, compared with the direct
// point-to-point plan (its bytes between distinct ranks and its alpha-beta time). Collectives
// are chosen only when they move no more bytes and cost no more time than point-to-point.
// Layouts on different meshes always run point-to-point (the reason says so).
inline LoweredProgram lower_reshard(const MeshLayout& src, const MeshLayout& dst, index_t element_bytes, const CostModel& model = {}) {
  LoweredProgram result;
  model.validate();
  ReshardPlan plan(src, dst);
  const index_t sizes[] = {element_bytes};
  CommunicationVolume volume(plan.all_transfers(), sizes, model);
  result.p2p_bytes = volume.moved_bytes();
  result.p2p_us = volume.point_to_point_us();
  if (!(src.mesh() == dst.mesh())) {
    result.reason = "the layouts are on different meshes";
    return result;
  }
  result.collectives = search_collectives(src, dst, element_bytes, model);
  if (!result.collectives) {
    result.reason = "a layout has no shard-order form (block-cyclic or legacy strided placements, a strided label over "
                    "uneven extents, or too many dims)";
    return result;
  }
  const CollectiveProgram& program = *result.collectives;
  if (program.bytes > result.p2p_bytes) {
    result.reason = detail::concat("collectives move more bytes (", program.bytes, ") than point-to-point (", result.p2p_bytes, ")");
  } else if (program.cost_us > result.p2p_us) {
    result.reason = detail::concat("collectives cost more time (", program.cost_us, " us) than point-to-point (", result.p2p_us, " us)");
  } else {
    result.choice = LoweringChoice::collectives;
  }
  return result;
}

}  // namespace shardalg
