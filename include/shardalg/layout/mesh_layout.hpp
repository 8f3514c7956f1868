// MeshLayout: a tensor of a global shape placed on a DeviceMesh, one placement per mesh dim.
// Answers, exactly as PyTorch DTensor computes it, what each rank holds (docs/semantics.md
// sections 1-3).
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shardalg/core/tile.hpp"
#include "shardalg/mesh/device_mesh.hpp"
#include "shardalg/placement/local_split.hpp"
#include "shardalg/placement/placement_text.hpp"
#include "shardalg/placement/shard_order.hpp"

namespace shardalg {

// PyTorch's compute_local_shape_and_global_offset result for one rank.
struct ShardInfo {
  Dims local_shape;
  Dims global_offset;  // first global index per dim; the dim size for an empty shard
  friend bool operator==(const ShardInfo&, const ShardInfo&) = default;
};

// The tile of the rank at `coord`: walk the mesh dims left to right (or, with an explicit
// application order, each tensor dim's mesh dims in that order), composing each split with
// what the dim held before (a shard of a shard is index composition).
// Shared by MeshLayout and the compile-time layer so that both agree by construction.
// Preconditions: validated placements (see MeshLayout), coord inside mesh_shape.
constexpr Tile tile_at_coordinate(std::span<const index_t> mesh_shape, std::span<const index_t> coord,
                                  std::span<const Placement> placements, const Dims& global_shape,
                                  const ShardOrder* application_order = nullptr) {
  Tile tile = Tile::whole(global_shape);
  auto apply = [&](std::size_t m) {
    const Placement& p = placements[m];
    IndexMap& held = tile.dim(static_cast<std::size_t>(p.dim()));
    held = held.compose(local_split(p, held.size(), mesh_shape[m], coord[m]));
  };
  if (application_order == nullptr) {
    for (std::size_t m = 0; m < placements.size(); ++m)
      if (placements[m].splits_tensor()) apply(m);
  } else {
    for (const ShardOrderEntry& entry : *application_order)
      for (index_t m : entry.mesh_dims) apply(static_cast<std::size_t>(m));
  }
  return tile;
}

// Local shape and global offset of a tile (PyTorch: an empty shard's offset is the dim size).
constexpr ShardInfo shard_info_of(const Tile& tile, const Dims& global_shape) {
  ShardInfo info;
  for (std::size_t d = 0; d < tile.ndim(); ++d) {
    info.local_shape.push_back(tile.dim(d).size());
    info.global_offset.push_back(tile.dim(d).empty() ? global_shape[d] : tile.dim(d).first());
  }
  return info;
}

// What is wrong with placements on a mesh of `mesh_shape` for a tensor of `tensor_ndim` dims,
// the first problem found: the one rule MeshLayout (run time, errors naming the values) and
// StaticLayout (compile time, static_asserts) both check.
// Example: (S(2)) on mesh [4] for a 2-d tensor -> {shard_dim, 0}; (BlockCyclic(0, 8, src=3)) on
// mesh [2] -> {block_cyclic_source, 0}.
enum class PlacementProblem : std::uint8_t { none, count, shard_dim, block_cyclic_source };
struct PlacementCheck {
  PlacementProblem problem = PlacementProblem::none;
  std::size_t mesh_dim = 0;  // the placement at fault
};
constexpr PlacementCheck check_placements(std::span<const Placement> placements, std::span<const index_t> mesh_shape, std::size_t tensor_ndim) {
  if (placements.size() != mesh_shape.size()) return {PlacementProblem::count, 0};
  for (std::size_t m = 0; m < placements.size(); ++m) {
    const Placement& p = placements[m];
    if (p.splits_tensor() && p.dim() >= static_cast<index_t>(tensor_ndim)) return {PlacementProblem::shard_dim, m};
    if (p.is_block_cyclic() && p.source_coordinate() >= mesh_shape[m]) return {PlacementProblem::block_cyclic_source, m};
  }
  return {};
}

// Checks placements against a mesh and a tensor shape; Error naming the bad value.
inline void validate_placements(std::span<const Placement> placements, const DeviceMesh& mesh, const Dims& global_shape) {
  PlacementCheck check = check_placements(placements, as_span(mesh.shape()), global_shape.size());
  switch (check.problem) {
    case PlacementProblem::none: break;
    case PlacementProblem::count:
      detail::fail(placements.size(), " placements (", format_placements(placements), ") for mesh ", mesh.to_string(), " of ", mesh.ndim(),
                   " dims; give one placement per mesh dim");
    case PlacementProblem::shard_dim: {
      const Placement& p = placements[check.mesh_dim];
      detail::fail("placement ", to_string(p), " shards dim ", p.dim(), " of a ", global_shape.size(), "-d shape ", global_shape);
    }
    case PlacementProblem::block_cyclic_source: {
      const Placement& p = placements[check.mesh_dim];
      detail::fail("placement ", to_string(p), " starts at coordinate ", p.source_coordinate(), " but mesh dim ", check.mesh_dim, " (",
                   mesh.name(check.mesh_dim), ") has size ", mesh.size(check.mesh_dim));
    }
  }
  for (index_t extent : global_shape)
    if (extent < 0) detail::fail("shape ", global_shape, " has a negative extent ", extent);
  volume(global_shape);  // overflow check: element counts must fit in int64
}

class MeshLayout {
 public:
  // Placements apply left to right (PyTorch's default).
  // Errors: placement count != mesh dims, shard dim >= tensor rank, negative extents, overflow.
  MeshLayout(DeviceMesh mesh, std::vector<Placement> placements, Dims global_shape)
      : mesh_(std::move(mesh)), placements_(std::move(placements)), global_shape_(std::move(global_shape)) {
    validate_placements(placements_, mesh_, global_shape_);
    search_order_ = default_shard_order(placements_);
  }

  // Shard placements applied in an explicit order per tensor dim (PyTorch's DTensorSpec
  // shard_order): the order [tp, dp] gives FSDP2-over-TP's physical chunk(chunk(n,T)[t],D)[d].
  // An entry lists each mesh dim whose Shard splits that tensor dim once; a sharded tensor dim
  // without an entry keeps the default order (mesh dims left to right), so the stored order is
  // complete. StridedShard is not allowed here (it is the label form of the same thing).
  // Example: placements S(0),R,S(1),S(1) with order "1:[3,2]" store 0:[0];1:[3,2].
  MeshLayout(DeviceMesh mesh, std::vector<Placement> placements, Dims global_shape, const ShardOrder& application_order)
      : MeshLayout(std::move(mesh), std::move(placements), std::move(global_shape)) {
    for (std::size_t m = 0; m < placements_.size(); ++m)
      if (placements_[m].is_strided_shard())
        detail::fail("an explicit shard order needs Shard placements; mesh dim ", m, " has ",
                     shardalg::to_string(placements_[m]));
    auto describe = [&] { return detail::concat("shard order ", format_shard_order(application_order), ": "); };
    for (const ShardOrderEntry& entry : application_order) {
      if (entry.mesh_dims.empty()) detail::fail(describe(), "tensor dim ", entry.tensor_dim, " lists no mesh dim");
      for (index_t m : entry.mesh_dims)
        if (m < 0 || m >= static_cast<index_t>(placements_.size()) || !placements_[static_cast<std::size_t>(m)].is_shard() ||
            placements_[static_cast<std::size_t>(m)].dim() != entry.tensor_dim)
          detail::fail(describe(), "mesh dim ", m, " does not shard tensor dim ", entry.tensor_dim, " (placements ",
                       format_placements(placements_), ")");
      if (std::count_if(application_order.begin(), application_order.end(),
                        [&](const ShardOrderEntry& e) { return e.tensor_dim == entry.tensor_dim; }) > 1)
        detail::fail(describe(), "tensor dim ", entry.tensor_dim, " has two entries");
    }
    ShardOrder complete;
    for (const ShardOrderEntry& expected : default_shard_order(placements_)) {
      auto given = std::find_if(application_order.begin(), application_order.end(),
                                [&](const ShardOrderEntry& e) { return e.tensor_dim == expected.tensor_dim; });
      if (given == application_order.end()) {
        complete.push_back(expected);
        continue;
      }
      std::vector<index_t> listed = given->mesh_dims;
      std::sort(listed.begin(), listed.end());
      if (listed != expected.mesh_dims)
        detail::fail(describe(), "tensor dim ", expected.tensor_dim, " must list mesh dims ", Dims(expected.mesh_dims),
                     " once each, in any order (its Shard placements: ", format_placements(placements_), ")");
      complete.push_back(*given);
    }
    order_ = std::move(complete);
    search_order_ = *order_;
  }

  // Reads the PyTorch-style text forms: mesh "dp=4,tp=2", placements "_S(0,2),S(0)".
  static MeshLayout parse(std::string_view mesh_spec, std::string_view placements, const Dims& global_shape,
                          std::string_view device_list = {}) {
    return MeshLayout(DeviceMesh::parse(mesh_spec, device_list), parse_placements(placements), global_shape);
  }

  const DeviceMesh& mesh() const { return mesh_; }
  const std::vector<Placement>& placements() const { return placements_; }
  const Dims& global_shape() const { return global_shape_; }
  std::size_t tensor_ndim() const { return global_shape_.size(); }
  // The explicit application order, when one was given.
  const std::optional<ShardOrder>& application_order() const { return order_; }

  // Layout transforms: the same mesh and placements over a reshaped tensor, each placement
  // following its tensor dim (a Shard, StridedShard or BlockCyclic of dim d acts on where d goes).
  // Example: TransformerEngine's GroupedLinear stacks K weights [out, in] laid out S(0) into
  // [K, out, in]: stack(K) gives S(1), so rank r holds [0, K) x its rows of every weight, where
  // reusing S(0) verbatim would split the K weights instead.

  // A new dim 0 of extent `count` that no placement splits. Error: count < 0.
  MeshLayout stack(index_t count) const {
    if (count < 0) detail::fail("stack: count ", count, " must be non-negative");
    Dims shape{count};
    for (index_t extent : global_shape_) shape.push_back(extent);
    return remapped(std::move(shape), [](index_t d) { return d + 1; });
  }
  // A new dim of extent 1 at `dim` (0 <= dim <= tensor_ndim()).
  MeshLayout unsqueeze(index_t dim) const {
    if (dim < 0 || dim > static_cast<index_t>(tensor_ndim())) detail::fail("unsqueeze: dim ", dim, " is out of range for ", tensor_ndim(), " dims");
    Dims shape;
    for (std::size_t d = 0; d <= tensor_ndim(); ++d) {
      if (static_cast<index_t>(d) == dim) shape.push_back(1);
      if (d < tensor_ndim()) shape.push_back(global_shape_[d]);
    }
    return remapped(std::move(shape), [dim](index_t d) { return d >= dim ? d + 1 : d; });
  }
  // Removes dim `dim` of extent 1. Errors: another extent, or a placement that splits that dim.
  MeshLayout squeeze(index_t dim) const {
    if (dim < 0 || dim >= static_cast<index_t>(tensor_ndim())) detail::fail("squeeze: dim ", dim, " is out of range for ", tensor_ndim(), " dims");
    if (global_shape_[static_cast<std::size_t>(dim)] != 1)
      detail::fail("squeeze: dim ", dim, " of shape ", global_shape_, " has extent ", global_shape_[static_cast<std::size_t>(dim)], ", not 1");
    for (const Placement& p : placements_)
      if (p.splits_tensor() && p.dim() == dim) detail::fail("squeeze: dim ", dim, " is split by ", shardalg::to_string(p));
    Dims shape;
    for (std::size_t d = 0; d < tensor_ndim(); ++d)
      if (static_cast<index_t>(d) != dim) shape.push_back(global_shape_[d]);
    return remapped(std::move(shape), [dim](index_t d) { return d > dim ? d - 1 : d; });
  }
  // Dims d0 and d1 swapped (their extents and the placements that split them).
  MeshLayout transpose(index_t d0, index_t d1) const {
    for (index_t d : {d0, d1})
      if (d < 0 || d >= static_cast<index_t>(tensor_ndim())) detail::fail("transpose: dim ", d, " is out of range for ", tensor_ndim(), " dims");
    Dims shape = global_shape_;
    std::swap(shape[static_cast<std::size_t>(d0)], shape[static_cast<std::size_t>(d1)]);
    return remapped(std::move(shape), [d0, d1](index_t d) { return d == d0 ? d1 : d == d1 ? d0 : d; });
  }

  // What the rank at a mesh coordinate holds.
  Tile tile_at(const Dims& coord) const {
    return tile_at_coordinate(as_span(mesh_.shape()), as_span(coord), placements_, global_shape_,
                              order_ ? &*order_ : nullptr);
  }

  // What a rank holds; a rank outside the mesh holds nothing.
  Tile tile(index_t rank) const {
    auto coord = mesh_.coordinate_of(rank);
    if (!coord) return Tile::nothing(tensor_ndim());
    return tile_at(*coord);
  }

  // PyTorch's local shape and global offset; a rank outside the mesh gets zeros for both.
  ShardInfo shard_info(index_t rank) const {
    if (!mesh_.contains(rank)) return ShardInfo{Dims(tensor_ndim(), 0), Dims(tensor_ndim(), 0)};
    return shard_info_of(tile(rank), global_shape_);
  }

  // How many ranks hold each element: the product of the Replicate and Partial mesh dims' sizes.
  index_t replication_factor() const {
    index_t factor = 1;
    for (std::size_t m = 0; m < placements_.size(); ++m)
      if (!placements_[m].splits_tensor()) factor *= mesh_.size(m);
    return factor;
  }

  // Groups of ranks holding equal tiles, each sorted, ordered by their first rank. With Partial
  // placements the members hold partial values of the same elements (a reduction group).
  std::vector<std::vector<index_t>> replica_groups() const {
    std::map<std::vector<index_t>, std::vector<index_t>> by_tile;
    for (index_t rank : mesh_.devices()) by_tile[tile_key(tile(rank))].push_back(rank);
    std::vector<std::vector<index_t>> groups;
    for (auto& [key, ranks] : by_tile) {
      std::sort(ranks.begin(), ranks.end());
      groups.push_back(std::move(ranks));
    }
    std::sort(groups.begin(), groups.end());
    return groups;
  }

  // The ranks holding any element of a global box, sorted. Never scans all ranks: per tensor dim,
  // a search over the mesh dims that split it keeps only the coordinates whose part meets the box
  // (arithmetic for contiguous shards), and the answer is the product of those coordinate sets
  // with every coordinate of the Replicate and Partial dims.
  std::vector<index_t> ranks_holding(const Box& box) const {
    return holders(box, [](Dims&) {}, true);
  }

  // The ranks holding any element of a global box, one of each set of replicas (ranks differing
  // only on Replicate mesh dims hold equal tiles), sorted. `choose(coord)` gets a coordinate set
  // on every other mesh dim and sets the Replicate dims to the replica wanted. Cost proportional
  // to the answer: independent of how many replicas there are.
  // Example: S(0),R on dp=2,tp=4 of [8], box [0,8) and choose setting tp to 3: ranks {3, 7}.
  template <class ChooseReplica>
  std::vector<index_t> one_replica_holding(const Box& box, ChooseReplica&& choose) const {
    return holders(box, choose, false);
  }

  // Equal layouts hold the same elements at the same places on the same ranks.
  friend bool operator==(const MeshLayout& a, const MeshLayout& b) {
    return a.global_shape_ == b.global_shape_ && a.placements_ == b.placements_ && a.order_ == b.order_ && a.mesh_ == b.mesh_;
  }

  // "MeshLayout(DeviceMesh(...), [S(0), R], shape=[8, 8])".
  std::string to_string() const {
    std::string out = detail::concat("MeshLayout(", mesh_.to_string(), ", [", format_placements(placements_), "], shape=",
                                     global_shape_);
    if (order_) out += ", shard_order=" + format_shard_order(*order_);
    return out + ")";
  }

 private:
  // This layout over `shape`, each splitting placement's tensor dim d moved to dim_of(d), the
  // explicit application order (if any) likewise.
  template <class DimOf>
  MeshLayout remapped(Dims shape, DimOf dim_of) const {
    std::vector<Placement> placements;
    for (const Placement& p : placements_) {
      switch (p.kind()) {
        case PlacementKind::shard: placements.push_back(Placement::shard(dim_of(p.dim()))); break;
        case PlacementKind::strided_shard: placements.push_back(Placement::strided_shard(dim_of(p.dim()), p.split_factor(), p.semantics())); break;
        case PlacementKind::block_cyclic:
          placements.push_back(Placement::block_cyclic(dim_of(p.dim()), p.block_size(), p.source_coordinate()));
          break;
        default: placements.push_back(p);
      }
    }
    if (!order_) return MeshLayout(mesh_, std::move(placements), std::move(shape));
    ShardOrder order = *order_;
    for (ShardOrderEntry& entry : order) entry.tensor_dim = dim_of(entry.tensor_dim);
    return MeshLayout(mesh_, std::move(placements), std::move(shape), order);
  }

  // ranks_holding and one_replica_holding: the product of the coordinates meeting the box per
  // tensor dim with every coordinate of the Partial dims, and of the Replicate dims when
  // `every_replica` (else `choose` sets them).
  template <class ChooseReplica>
  std::vector<index_t> holders(const Box& box, ChooseReplica&& choose, bool every_replica) const {
    if (box.ndim() != tensor_ndim())
      detail::fail("box ", box, " has rank ", box.ndim(), " but the tensor has rank ", tensor_ndim());
    Box query = intersect(box, Box::whole(global_shape_));
    if (query.empty()) return {};
    const ShardOrder& order = search_order_;
    // Per order entry: the coordinate tuples (one per listed mesh dim, flattened) whose tile
    // meets the box.
    std::vector<std::vector<index_t>> tuples_per_entry;
    for (const ShardOrderEntry& entry : order) {
      std::size_t d = static_cast<std::size_t>(entry.tensor_dim);
      std::vector<index_t> tuples;
      Dims prefix;
      collect_holders(entry.mesh_dims, 0, IndexMap::contiguous(0, global_shape_[d]), query.offset[d], query.end(d), prefix, tuples);
      if (tuples.empty()) return {};
      tuples_per_entry.push_back(std::move(tuples));
    }
    // Enumerate the product: entries' tuples x free mesh dims' coordinates.
    std::vector<index_t> ranks;
    std::size_t count = 1;
    for (std::size_t e = 0; e < order.size(); ++e) count *= tuples_per_entry[e].size() / order[e].mesh_dims.size();
    Dims coord(mesh_.ndim(), 0);
    SmallVector<std::size_t, 8> free_dims;
    for (std::size_t m = 0; m < placements_.size(); ++m)
      if (placements_[m].is_partial() || (every_replica && placements_[m].is_replicate())) free_dims.push_back(m);
    SmallVector<std::size_t, 8> pick(tuples_per_entry.size(), 0);
    Dims free_coord(free_dims.size(), 0);
    for (std::size_t f : free_dims) count *= static_cast<std::size_t>(mesh_.size(f));
    ranks.reserve(count);
    while (true) {
      for (std::size_t e = 0; e < order.size(); ++e) {
        std::size_t width = order[e].mesh_dims.size();
        for (std::size_t i = 0; i < width; ++i)
          coord[static_cast<std::size_t>(order[e].mesh_dims[i])] = tuples_per_entry[e][pick[e] * width + i];
      }
      for (std::size_t f = 0; f < free_dims.size(); ++f) coord[free_dims[f]] = free_coord[f];
      if (!every_replica) choose(coord);
      ranks.push_back(mesh_.rank_at(coord));
      // Advance: free dims fastest, then entries.
      std::size_t f = free_dims.size();
      bool carried = true;
      while (carried && f > 0) {
        --f;
        if (++free_coord[f] < mesh_.size(free_dims[f])) carried = false;
        else free_coord[f] = 0;
      }
      std::size_t e = pick.size();
      while (carried && e > 0) {
        --e;
        if (++pick[e] < tuples_per_entry[e].size() / order[e].mesh_dims.size()) carried = false;
        else pick[e] = 0;
      }
      if (carried) break;
    }
    if (!std::is_sorted(ranks.begin(), ranks.end())) std::sort(ranks.begin(), ranks.end());  // iota meshes come out sorted
    return ranks;
  }

  // Depth-first over the mesh dims that split one tensor dim, keeping only coordinates whose
  // part of [lo, hi) is non-empty. `held`: what the coordinates chosen so far hold of the dim.
  // Appends each tuple's coordinates to `out` (mesh_dims.size() values a tuple).
  void collect_holders(const std::vector<index_t>& mesh_dims, std::size_t depth, const IndexMap& held, index_t lo,
                       index_t hi, Dims& prefix, std::vector<index_t>& out) const {
    if (depth == mesh_dims.size()) {
      out.insert(out.end(), prefix.begin(), prefix.end());
      return;
    }
    std::size_t m = static_cast<std::size_t>(mesh_dims[depth]);
    const Placement& p = placements_[m];
    index_t k = mesh_.size(m);
    index_t length = held.size();
    if (length == 0) return;
    std::vector<index_t> candidates;  // coordinates whose part may meet [lo, hi), ascending
    if (held.is_contiguous() && p.is_block_cyclic()) {
      // The blocks meeting [lo, hi) and their owners; all coordinates once k blocks are met.
      index_t local_lo = std::max<index_t>(0, lo - held.first());
      index_t local_hi = std::min(length, hi - held.first());
      if (local_lo >= local_hi) return;
      index_t first_block = local_lo / p.block_size(), last_block = (local_hi - 1) / p.block_size();
      for (index_t b = first_block; b <= last_block && b - first_block < k; ++b) candidates.push_back((p.source_coordinate() + b) % k);
      std::sort(candidates.begin(), candidates.end());
      candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    } else if (held.is_contiguous() && (p.is_shard() || (p.is_strided_shard() && p.semantics() == StridedSemantics::nested_chunk))) {
      // Local positions of [lo, hi) within the contiguous run, then the chunks meeting them:
      // one chunk range for Shard, one per piece for a nested-chunk StridedShard.
      index_t local_lo = std::max<index_t>(0, lo - held.first());
      index_t local_hi = std::min(length, hi - held.first());
      if (local_lo >= local_hi) return;
      index_t pieces = p.is_shard() ? 1 : p.split_factor();
      // Only the pieces meeting [local_lo, local_hi): the split factor may exceed the length.
      for (index_t j = chunk_holding(length, pieces, local_lo); j < pieces; ++j) {
        Chunk piece = p.is_shard() ? Chunk{0, length} : chunk_of(length, pieces, j);
        if (piece.offset >= local_hi) break;
        index_t a = std::max(local_lo, piece.offset) - piece.offset;
        index_t b = std::min(local_hi, piece.offset + piece.size) - piece.offset;
        if (a >= b) continue;
        index_t first = chunk_holding(piece.size, k, a), last = chunk_holding(piece.size, k, b - 1);
        candidates.reserve(candidates.size() + static_cast<std::size_t>(last - first + 1));
        for (index_t c = first; c <= last; ++c) candidates.push_back(c);
      }
      std::sort(candidates.begin(), candidates.end());
      candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    } else {
      for (index_t c = 0; c < k; ++c) candidates.push_back(c);
    }
    // A Shard of a contiguous run: the candidates are exactly the chunks meeting [lo, hi), and
    // each one's part is a run of its own (no composition needed).
    bool exact = held.is_contiguous() && p.is_shard();
    if (exact && depth + 1 == mesh_dims.size()) {  // the last mesh dim: the coordinates are the answer
      out.reserve(out.size() + candidates.size() * mesh_dims.size());
      for (index_t c : candidates) {
        out.insert(out.end(), prefix.begin(), prefix.end());
        out.push_back(c);
      }
      return;
    }
    for (index_t c : candidates) {
      IndexMap part;
      if (exact) {
        Chunk chunk = chunk_of(length, k, c);
        part = IndexMap::contiguous(held.first() + chunk.offset, chunk.size);
      } else {
        part = held.compose(local_split(p, length, k, c));
        if (part.restrict_to(lo, hi).empty()) continue;
      }
      prefix.push_back(c);
      collect_holders(mesh_dims, depth + 1, part, lo, hi, prefix, out);
      prefix.pop_back();
    }
  }

  DeviceMesh mesh_;
  std::vector<Placement> placements_;
  Dims global_shape_;
  std::optional<ShardOrder> order_;
  ShardOrder search_order_;  // order_, or the default order: what ranks_holding walks
};

// The full ("universal", unsharded) layout: every listed rank holds the whole tensor (one rank:
// the consolidated checkpoint; several: a replicated copy).
inline MeshLayout full_layout(const Dims& global_shape, std::vector<index_t> ranks = {0}) {
  if (ranks.empty()) detail::fail("full layout: no ranks given");
  index_t count = static_cast<index_t>(ranks.size());
  return MeshLayout(DeviceMesh({"replica"}, Dims{count}, std::move(ranks)), {Placement::replicate()}, global_shape);
}

}  // namespace shardalg
