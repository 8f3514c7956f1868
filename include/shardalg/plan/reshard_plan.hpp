// ReshardPlan: how to move a tensor from one layout to another (mesh or flat, same or different
// meshes, world sizes, rank subsets or permutations), computed per destination rank.
//
// Every destination rank's holding is cut into boxes (its tile's boxes, or its flat fragment's);
// each box gets its elements from the source ranks holding them. Where several source ranks hold the same elements (Replicate), exactly one
// is chosen: the destination itself when it holds them (a local copy), else a replica picked by
// the destination's position so that senders share the load. Where source ranks hold partial
// values (Partial), every partial contributor sends and the destination reduces.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shardalg/layout/tensor_layout.hpp"
#include "shardalg/plan/transfer_list.hpp"

namespace shardalg {

namespace detail {
// The reduce op a reshard applies (that of the source's Partial placements, if any), after the
// checks every reshard needs. Errors (prefixed by `what`): a Partial destination, a source
// mixing Partial ops.
inline std::optional<ReduceOp> reshard_reduce_op(std::span<const Placement> source, std::span<const Placement> destination,
                                                 std::string_view what) {
  for (const Placement& p : destination)
    if (p.is_partial()) fail(what, ": destination placement ", to_string(p), " is not supported; destinations hold reduced values");
  return source_reduce_op(source, what);
}
}  // namespace detail

class ReshardPlan {
 public:
  ReshardPlan(TensorLayout source, TensorLayout destination) : src_(std::move(source)), dst_(std::move(destination)) {
    if (src_.global_shape() != dst_.global_shape())
      detail::fail("reshard: source shape ", src_.global_shape(), " and destination shape ", dst_.global_shape(), " differ");
    reduce_op_ = detail::reshard_reduce_op(src_.placement_layout().placements(), dst_.placement_layout().placements(), "reshard");
    unreplicated_source_ = src_.single_holder();
    const MeshLayout& src = src_.placement_layout();
    for (std::size_t m = 0; m < src.placements().size(); ++m)
      if (src.placements()[m].is_replicate()) replicas_ *= src.mesh().size(m);
  }

  const TensorLayout& source() const { return src_; }
  const TensorLayout& destination() const { return dst_; }
  // The reduce op of Partial sources, if any.
  const std::optional<ReduceOp>& reduce_op() const { return reduce_op_; }

  // The transfers that fill what `dst_rank` holds (none for a rank outside the destination).
  // Time proportional to the transfers produced (times the source search), never to all ranks.
  TransferList transfers_to(index_t dst_rank) const {
    if (!src_.mesh_layout() || !dst_.mesh_layout()) return piece_transfers_to(dst_rank);
    TransferList out;
    MeshPlanning planning(*src_.mesh_layout(), MeshPlanning::Tiles::computed_each_time);  // one rank: no per-mesh cache
    mesh_transfers_into(out, *src_.mesh_layout(), *dst_.mesh_layout(), dst_rank, planning);
    return out;
  }

  // Plans destination ranks one at a time for a caller visiting many of them (counting a plan
  // rank by rank): each source rank's tile is computed once and kept, for the ranks that send
  // only. Same transfers as transfers_to. The plan must outlive the planner.
  class DestinationPlanner;

  // The transfers `src_rank` sends (local copies included): found through the destination ranks
  // whose holdings meet its own, never by scanning all ranks.
  TransferList transfers_from(index_t src_rank) const {
    TransferList out;
    std::vector<index_t> receivers;
    for (const Piece& piece : src_.pieces(src_rank)) {
      std::vector<index_t> ranks = dst_.ranks_holding(piece.global);
      receivers.insert(receivers.end(), ranks.begin(), ranks.end());
    }
    std::sort(receivers.begin(), receivers.end());
    receivers.erase(std::unique(receivers.begin(), receivers.end()), receivers.end());
    for (index_t dst_rank : receivers) {
      TransferList part = transfers_to(dst_rank);
      for (std::size_t i = 0; i < part.size(); ++i)
        if (part.src_rank(i) == src_rank) out.push_back(part, i);
    }
    return out;
  }

  // The whole plan: the union of every destination rank's part, in destination-mesh order.
  TransferList all_transfers() const {
    TransferList out;
    if (src_.mesh_layout() && dst_.mesh_layout()) {
      const MeshLayout &src = *src_.mesh_layout(), &dst = *dst_.mesh_layout();
      MeshPlanning planning(src, MeshPlanning::Tiles::cached);  // each source tile computed once for all destinations
      // One holder per element and at most 4 source ranks per destination rank: index the
      // source's runs once (cost proportional to the destinations visited anyway).
      std::optional<SourceRuns> runs;
      if (unreplicated_source_ && src.mesh().size() <= 4 * dst.mesh().size()) runs = SourceRuns::build(src);
      const std::vector<index_t>& ranks = dst.mesh().devices();
      for (std::size_t i = 0; i < ranks.size(); ++i) {
        if (runs) runs->transfers_into(out, dst.tile(ranks[i]), ranks[i]);
        else mesh_transfers_into(out, src, dst, ranks[i], planning);
        // Ranks' parts are alike in size: room for all of them, with headroom for larger ones
        // (reserved pages never written cost nothing; a reallocation copies everything).
        if (i == 0) out.reserve(out.size() * ranks.size() * 3 / 2, out.coordinate_count() * ranks.size() * 3 / 2);
      }
      return out;
    }
    for (index_t rank : dst_.mesh().devices()) out.append(piece_transfers_to(rank), 0);
    return out;
  }

  // Elements a destination rank must receive from other ranks at least: those it holds in the
  // destination but not in the source (the lower bound for unreplicated, non-partial sources).
  index_t lower_bound_elements(index_t dst_rank) const {
    if (src_.mesh_layout() && dst_.mesh_layout()) {
      Tile dst_tile = dst_.mesh_layout()->tile(dst_rank);
      return dst_tile.volume() - intersect(dst_tile, src_.mesh_layout()->tile(dst_rank)).volume();
    }
    index_t kept = 0;
    std::vector<Piece> own = src_.pieces(dst_rank);
    for (const Piece& want : dst_.pieces(dst_rank))
      for (const Piece& have : own) kept += intersect(want.global, have.global).volume();
    return dst_.held_elements(dst_rank) - kept;
  }

  // Product of the Partial mesh dims' sizes: how many partial values each element has.
  index_t partial_contributors() const {
    const MeshLayout& src = src_.placement_layout();
    index_t n = 1;
    for (std::size_t m = 0; m < src.placements().size(); ++m)
      if (src.placements()[m].is_partial()) n *= src.mesh().size(m);
    return n;
  }

  // A source rank's partial class: its row-major position over the Partial mesh dims (0 without
  // Partial). Ranks of different classes contribute separately to the same elements.
  index_t partial_class(index_t src_rank) const {
    if (!reduce_op_) return 0;
    const MeshLayout& src = src_.placement_layout();
    Dims coord = *src.mesh().coordinate_of(src_rank);
    index_t position = 0;
    for (std::size_t m = 0; m < src.placements().size(); ++m)
      if (src.placements()[m].is_partial()) position = position * src.mesh().size(m) + coord[m];
    return position;
  }

 private:
  // The runs of a source in which every element has one holder and every rank holds one run
  // per tensor dim (Shard placements in any order, no strided or block-cyclic splits): per
  // tensor dim the distinct runs, sorted and disjoint, and the rank holding each combination
  // (a dense table). A destination box then finds its sources by one binary search per dim, and
  // each overlap is arithmetic: no holder search and no tiles per box.
  // Example: S(0) over 4 ranks of [8, 3]: dim 0 runs [0,2) [2,4) [4,6) [6,8), dim 1 [0,3);
  // box [3,6)x[0,3) meets runs 1 and 2 of dim 0: ranks 1 and 2.
  class SourceRuns {
   public:
    // None when the source does not qualify (some rank holds several runs of a dim, or the run
    // combinations outnumber the ranks more than 4 times).
    static std::optional<SourceRuns> build(const MeshLayout& source) {
      SourceRuns index;
      std::size_t ndim = source.tensor_ndim();
      index.runs_.resize(ndim);
      std::vector<std::pair<index_t, Tile>> held;
      for (index_t rank : source.mesh().devices()) {
        Tile tile = source.tile(rank);
        if (tile.empty()) continue;
        for (std::size_t d = 0; d < ndim; ++d) {
          if (tile.dim(d).runs().size() != 1) return std::nullopt;
          index.runs_[d].push_back(tile.dim(d).runs()[0]);
        }
        held.emplace_back(rank, std::move(tile));
      }
      std::size_t combinations = 1;
      for (std::vector<Run>& runs : index.runs_) {
        std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.global_begin < b.global_begin; });
        runs.erase(std::unique(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.global_begin == b.global_begin; }), runs.end());
        for (std::size_t i = 1; i < runs.size(); ++i)
          if (runs[i].global_begin < runs[i - 1].global_end()) return std::nullopt;  // overlapping runs: not one holder each
        combinations *= runs.size();
        if (combinations > 4 * static_cast<std::size_t>(source.mesh().size()) + 16) return std::nullopt;
      }
      index.rank_of_.assign(combinations, -1);
      for (const auto& [rank, tile] : held) {
        std::size_t at = 0;
        for (std::size_t d = 0; d < ndim; ++d) at = at * index.runs_[d].size() + index.position(d, tile.dim(d).first());
        index.rank_of_[at] = rank;
      }
      return index;
    }

    // Appends the transfers filling `dst_tile` of `dst_rank`.
    void transfers_into(TransferList& out, const Tile& dst_tile, index_t dst_rank) {
      std::size_t ndim = runs_.size();
      for (const Box& box : dst_tile.boxes()) {
        // Per dim, the runs meeting the box: [first_[d], first_[d] + count_[d]).
        first_.clear();
        count_.clear();
        for (std::size_t d = 0; d < ndim; ++d) {
          const std::vector<Run>& runs = runs_[d];
          auto from = std::partition_point(runs.begin(), runs.end(), [&](const Run& r) { return r.global_end() <= box.offset[d]; });
          auto to = std::partition_point(from, runs.end(), [&](const Run& r) { return r.global_begin < box.end(d); });
          if (from == to) break;
          first_.push_back(static_cast<std::size_t>(from - runs.begin()));
          count_.push_back(to - from);
        }
        if (first_.size() != ndim) continue;  // a dim no run meets: nothing held (verification reports it)
        dst_begin_.clear();
        for (std::size_t d = 0; d < ndim; ++d) dst_begin_.push_back(*dst_tile.dim(d).local_of(box.offset[d]));
        Dims pick(ndim, 0);  // which run of each dim
        coordinates_.resize(4 * ndim);
        std::span<const index_t> c(coordinates_);
        do {
          std::size_t at = 0;
          for (std::size_t d = 0; d < ndim; ++d) {
            std::size_t run_index = first_[d] + static_cast<std::size_t>(pick[d]);
            const Run& run = runs_[d][run_index];
            index_t lo = std::max(box.offset[d], run.global_begin), hi = std::min(box.end(d), run.global_end());
            coordinates_[d] = lo;
            coordinates_[ndim + d] = hi - lo;
            coordinates_[2 * ndim + d] = lo - run.global_begin;
            coordinates_[3 * ndim + d] = dst_begin_[d] + (lo - box.offset[d]);
            at = at * runs_[d].size() + run_index;
          }
          if (index_t rank = rank_of_[at]; rank >= 0)
            out.push_back(rank, dst_rank, c.subspan(0, ndim), c.subspan(ndim, ndim), c.subspan(2 * ndim, ndim), c.subspan(3 * ndim, ndim));
        } while (next_coordinate(pick, count_));
      }
    }

   private:
    std::size_t position(std::size_t d, index_t begin) const {
      const std::vector<Run>& runs = runs_[d];
      return static_cast<std::size_t>(
          std::partition_point(runs.begin(), runs.end(), [&](const Run& r) { return r.global_begin < begin; }) - runs.begin());
    }

    std::vector<std::vector<Run>> runs_;  // per tensor dim
    std::vector<index_t> rank_of_;        // per combination of runs (row-major over dims), -1: none
    std::vector<std::size_t> first_;
    Dims count_;
    std::vector<index_t> dst_begin_, coordinates_;
  };

  // What mesh-to-mesh planning reuses: add_overlap's buffers, so that planning many boxes
  // allocates nothing per transfer, and for the whole plan the source ranks' tiles, each computed
  // on first use (by mesh position). One rank's plan caches no tiles: its cost stays proportional
  // to its output, not to the source mesh.
  class MeshPlanning {
   public:
    // cached: a slot per source rank (planning every destination); touched: kept for the ranks
    // used only (planning many destinations one at a time); computed_each_time: one rank's part.
    enum class Tiles { cached, touched, computed_each_time };
    MeshPlanning(const MeshLayout& source, Tiles tiles) : source_(source), mode_(tiles) {}
    // Valid until the next call when tiles are computed each time.
    const Tile& tile_of(index_t rank) {
      if (mode_ == Tiles::computed_each_time) return last_ = source_.tile(rank);
      if (mode_ == Tiles::touched) {
        auto [it, added] = touched_.try_emplace(rank);
        if (added) it->second = source_.tile(rank);
        return it->second;
      }
      auto position = static_cast<std::size_t>(*source_.mesh().position_of(rank));
      if (tiles_.empty()) tiles_.resize(static_cast<std::size_t>(source_.mesh().size()));
      std::optional<Tile>& tile = tiles_[position];
      if (!tile) tile = source_.tile(rank);
      return *tile;
    }

    struct Overlap {  // one source run inside a box along one dim
      index_t global, length, src_local, dst_local;
    };
    std::vector<Overlap> overlaps;
    std::vector<std::size_t> first;        // dim d's overlaps: [first[d], first[d + 1])
    std::vector<index_t> coordinates;      // one transfer's offset, shape, source and destination starts
    std::vector<index_t> dst_begin;        // the current box's local start in the destination tile

   private:
    const MeshLayout& source_;
    Tiles mode_;
    std::vector<std::optional<Tile>> tiles_;
    std::unordered_map<index_t, Tile> touched_;
    Tile last_;
  };

  // Mesh to mesh: tiles intersect per dim (separable), no pieces needed. Appends to `out`.
  void mesh_transfers_into(TransferList& out, const MeshLayout& src, const MeshLayout& dst, index_t dst_rank, MeshPlanning& planning) const {
    Tile dst_tile = dst.tile(dst_rank);
    if (dst_tile.empty()) return;
    index_t contributors = partial_contributors();
    // For choose_replica: the destination's source coordinate (if it is a source rank) and position.
    std::optional<Dims> own = unreplicated_source_ ? std::nullopt : src.mesh().coordinate_of(dst_rank);
    index_t position = unreplicated_source_ ? 0 : dst_position(dst_rank);
    for (const Box& box : dst_tile.boxes()) {
      // Where the box starts in the destination tile (it is one run of the tile per dim).
      planning.dst_begin.clear();
      for (std::size_t d = 0; d < box.ndim(); ++d) planning.dst_begin.push_back(*dst_tile.dim(d).local_of(box.offset[d]));
      if (unreplicated_source_) {  // every element has exactly one holder: no choice to make
        for (index_t rank : src.ranks_holding(box)) add_overlap(out, rank, planning.tile_of(rank), dst_rank, box, 1, planning);
        continue;
      }
      // One replica of each holder (the one choose_senders would pick among all of them, found
      // without visiting the others), grouped by the tile it holds.
      std::map<std::vector<index_t>, std::vector<index_t>> by_tile;  // tile key -> ranks
      std::map<std::vector<index_t>, Tile> tiles;
      for (index_t rank : src.one_replica_holding(box, [&](Dims& coord) { choose_replica(coord, own, position); })) {
        const Tile& tile = planning.tile_of(rank);
        std::vector<index_t> key = tile_key(tile);
        by_tile[key].push_back(rank);
        tiles.emplace(key, tile);
      }
      for (auto& [key, ranks] : by_tile) {
        const Tile& src_tile = tiles.at(key);
        for (index_t sender : choose_senders(ranks, dst_rank)) add_overlap(out, sender, src_tile, dst_rank, box, contributors, planning);
      }
    }
  }

  // Any layouts: the destination's pieces against the pieces of the source ranks holding them.
  TransferList piece_transfers_to(index_t dst_rank) const {
    TransferList out;
    std::unordered_map<index_t, std::vector<Piece>> source_pieces;
    auto pieces_of = [&](index_t rank) -> const std::vector<Piece>& {
      auto it = source_pieces.find(rank);
      if (it == source_pieces.end()) it = source_pieces.emplace(rank, src_.pieces(rank)).first;
      return it->second;
    };
    auto send = [&](index_t sender, const Piece& want, index_t contributors) {
      for (const Piece& have : pieces_of(sender)) {
        Box shared = intersect(want.global, have.global);
        if (shared.empty()) continue;
        Dims src_local = have.local_at(shared.offset), dst_local = want.local_at(shared.offset);
        out.push_back(sender, dst_rank, as_span(shared.offset), as_span(shared.shape), as_span(src_local), as_span(dst_local),
                      contributors);
      }
    };
    index_t contributors = partial_contributors();
    for (const Piece& want : dst_.pieces(dst_rank)) {
      std::vector<index_t> holders = src_.ranks_holding(want.global);
      if (unreplicated_source_) {
        for (index_t rank : holders) send(rank, want, 1);
        continue;
      }
      if (src_.is_flat()) {
        for (index_t rank : flat_senders(holders, dst_rank)) send(rank, want, 1);
        continue;
      }
      // Mesh replicas hold equal tiles: holders offering the same boxes of this piece are
      // replicas (or partial contributors).
      std::map<std::vector<index_t>, std::vector<index_t>> by_offer;
      for (index_t rank : holders) {
        std::vector<index_t> key;
        bool offers = false;  // not !key.empty(): a 0-d tensor's box has no coordinates
        for (const Piece& have : pieces_of(rank)) {
          Box shared = intersect(want.global, have.global);
          if (shared.empty()) continue;
          offers = true;
          key.insert(key.end(), shared.offset.begin(), shared.offset.end());
          key.insert(key.end(), shared.shape.begin(), shared.shape.end());
        }
        if (offers) by_offer[key].push_back(rank);
      }
      for (auto& [key, ranks] : by_offer)
        for (index_t sender : choose_senders(ranks, dst_rank)) send(sender, want, contributors);
    }
    return out;
  }

  // A replicated flat source: groups whose members flatten equal tiles hold the same elements,
  // but cut into windows at other places when the groups' buffers differ (other tensors'
  // tiles of other shapes). So one whole group sends per distinct tile: the destination's own
  // group if it holds the tile, else the one at (destination's position) mod count.
  std::vector<index_t> flat_senders(const std::vector<index_t>& holders, index_t dst_rank) const {
    const ComposedFlatLayout& flat = *src_.flat_layout();
    std::map<std::vector<index_t>, std::map<index_t, std::vector<index_t>>> by_tile;  // tile -> group -> ranks
    for (index_t rank : holders) {
      index_t group = *flat.group_index(rank);
      by_tile[tile_key(flat.flat_layout_of_group(group).tensors()[src_.flat_tensor()].tile)][group].push_back(rank);
    }
    std::optional<index_t> own_group = flat.group_index(dst_rank);
    std::vector<index_t> senders;
    for (auto& [key, groups] : by_tile) {
      auto chosen = own_group ? groups.find(*own_group) : groups.end();
      if (chosen == groups.end()) {
        chosen = groups.begin();
        std::advance(chosen, dst_position(dst_rank) % static_cast<index_t>(groups.size()));
      }
      senders.insert(senders.end(), chosen->second.begin(), chosen->second.end());
    }
    return senders;
  }

  // Among ranks holding the same tile: one sender per distinct coordinate on the Partial dims
  // (all of them contribute); among the ranks sharing Partial coordinates (replicas), the
  // destination itself if present, else the one at (destination's position) mod count in source
  // mesh order (choose_replica's rule, for holders already listed).
  std::vector<index_t> choose_senders(const std::vector<index_t>& ranks, index_t dst_rank) const {
    const DeviceMesh& mesh = src_.mesh();
    std::map<index_t, std::vector<index_t>> by_partial;
    for (index_t rank : ranks) by_partial[partial_class(rank)].push_back(rank);
    std::vector<index_t> senders;
    for (auto& [coord, replicas] : by_partial) {
      auto self = std::find(replicas.begin(), replicas.end(), dst_rank);
      if (self != replicas.end()) {
        senders.push_back(dst_rank);
        continue;
      }
      std::sort(replicas.begin(), replicas.end(), [&](index_t a, index_t b) { return *mesh.position_of(a) < *mesh.position_of(b); });
      senders.push_back(replicas[static_cast<std::size_t>(dst_position(dst_rank) % static_cast<index_t>(replicas.size()))]);
    }
    return senders;
  }

  // choose_senders' rule computed from coordinates: given a source coordinate set on every mesh
  // dim but the Replicate ones, sets those to the destination's own source coordinate `own` when
  // the destination is that replica, else to replica number (destination's `position`) mod
  // (replicas), counted row-major over the Replicate dims (the order of their mesh positions).
  // Example: S(0),R on dp=2,tp=4, destination rank 6 of a dp=8 mesh: not a source replica of
  // dp=0, so tp = 6 mod 4 = 2 (rank 2); of dp=1 it is itself (tp = 2, rank 6).
  void choose_replica(Dims& coord, const std::optional<Dims>& own, index_t position) const {
    const MeshLayout& src = src_.placement_layout();
    bool is_replica = own.has_value();
    for (std::size_t m = 0; m < coord.size() && is_replica; ++m)
      is_replica = src.placements()[m].is_replicate() || coord[m] == (*own)[m];
    index_t k = position % replicas_;
    for (std::size_t m = coord.size(); m-- > 0;) {
      if (!src.placements()[m].is_replicate()) continue;
      if (is_replica) {
        coord[m] = (*own)[m];
      } else {
        coord[m] = k % src.mesh().size(m);
        k /= src.mesh().size(m);
      }
    }
  }

  index_t dst_position(index_t dst_rank) const {
    return row_major_position(dst_.mesh().shape(), *dst_.mesh().coordinate_of(dst_rank));
  }

  // The part of `box` (a maximal box of the destination tile, starting at scratch.dst_begin in
  // it) that the source tile holds, as boxes with their local starts on both sides: per dim, the
  // source runs inside the box's range (with where each starts locally in both tiles), then one
  // transfer per combination of runs.
  // Example: box [0,4)x[0,6), source tile {[0,2),[3,4)} x {[2,6)}: two transfers,
  // [0,2)x[2,6) and [3,4)x[2,6).
  static void add_overlap(TransferList& out, index_t src_rank, const Tile& src_tile, index_t dst_rank, const Box& box, index_t contributors,
                          MeshPlanning& scratch) {
    std::size_t ndim = box.ndim();
    auto& overlaps = scratch.overlaps;
    auto& first = scratch.first;
    overlaps.clear();
    first.assign(1, 0);
    for (std::size_t d = 0; d < ndim; ++d) {
      index_t begin = box.offset[d], end = box.end(d);
      index_t dst_begin = scratch.dst_begin[d];
      index_t local = 0;
      for (const Run& run : src_tile.dim(d).runs()) {
        index_t lo = std::max(begin, run.global_begin), hi = std::min(end, run.global_end());
        if (lo < hi) overlaps.push_back({lo, hi - lo, local + (lo - run.global_begin), dst_begin + (lo - begin)});
        local += run.length;
      }
      if (overlaps.size() == first.back()) return;  // nothing of the box along dim d
      first.push_back(overlaps.size());
    }
    auto& c = scratch.coordinates;  // offset, shape, source start, destination start
    c.resize(4 * ndim);
    std::span<const index_t> all(c);
    Dims count(ndim, 0), pick(ndim, 0);  // which overlap of each dim
    for (std::size_t d = 0; d < ndim; ++d) count[d] = static_cast<index_t>(first[d + 1] - first[d]);
    do {
      for (std::size_t d = 0; d < ndim; ++d) {
        const auto& overlap = overlaps[first[d] + static_cast<std::size_t>(pick[d])];
        c[d] = overlap.global;
        c[ndim + d] = overlap.length;
        c[2 * ndim + d] = overlap.src_local;
        c[3 * ndim + d] = overlap.dst_local;
      }
      out.push_back(src_rank, dst_rank, all.subspan(0, ndim), all.subspan(ndim, ndim), all.subspan(2 * ndim, ndim), all.subspan(3 * ndim, ndim),
                    contributors);
    } while (next_coordinate(pick, count));
  }

  TensorLayout src_;
  TensorLayout dst_;
  std::optional<ReduceOp> reduce_op_;
  bool unreplicated_source_ = false;
  index_t replicas_ = 1;  // product of the source's Replicate mesh dims' sizes
};

class ReshardPlan::DestinationPlanner {
 public:
  explicit DestinationPlanner(const ReshardPlan& plan) : plan_(plan) {
    if (plan.src_.mesh_layout() && plan.dst_.mesh_layout()) planning_.emplace(*plan.src_.mesh_layout(), MeshPlanning::Tiles::touched);
  }
  TransferList transfers_to(index_t dst_rank) {
    if (!planning_) return plan_.piece_transfers_to(dst_rank);
    TransferList out;
    plan_.mesh_transfers_into(out, *plan_.src_.mesh_layout(), *plan_.dst_.mesh_layout(), dst_rank, *planning_);
    return out;
  }

 private:
  const ReshardPlan& plan_;
  std::optional<MeshPlanning> planning_;
};

}  // namespace shardalg
