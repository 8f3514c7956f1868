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
  }

  const TensorLayout& source() const { return src_; }
  const TensorLayout& destination() const { return dst_; }
  // The reduce op of Partial sources, if any.
  const std::optional<ReduceOp>& reduce_op() const { return reduce_op_; }

  // The transfers that fill what `dst_rank` holds (none for a rank outside the destination).
  // Time proportional to the transfers produced (times the source search), never to all ranks.
  TransferList transfers_to(index_t dst_rank) const {
    if (src_.mesh_layout() && dst_.mesh_layout()) return mesh_transfers_to(*src_.mesh_layout(), *dst_.mesh_layout(), dst_rank);
    return piece_transfers_to(dst_rank);
  }

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
    for (index_t rank : dst_.mesh().devices()) out.append(transfers_to(rank), 0);
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
  // Mesh to mesh: tiles intersect per dim (separable), no pieces needed.
  TransferList mesh_transfers_to(const MeshLayout& src, const MeshLayout& dst, index_t dst_rank) const {
    TransferList out;
    Tile dst_tile = dst.tile(dst_rank);
    if (dst_tile.empty()) return out;
    index_t contributors = partial_contributors();
    for (const Box& box : dst_tile.boxes()) {
      if (unreplicated_source_) {  // every element has exactly one holder: no choice to make
        for (index_t rank : src.ranks_holding(box)) add_overlap(out, rank, src.tile(rank), dst_rank, dst_tile, box, 1);
        continue;
      }
      // Source ranks grouped by the tile they hold; each group holds identical elements.
      std::map<std::vector<index_t>, std::vector<index_t>> by_tile;  // tile key -> ranks
      std::map<std::vector<index_t>, Tile> tiles;
      for (index_t rank : src.ranks_holding(box)) {
        Tile tile = src.tile(rank);
        std::vector<index_t> key = tile_key(tile);
        by_tile[key].push_back(rank);
        tiles.emplace(key, std::move(tile));
      }
      for (auto& [key, ranks] : by_tile) {
        const Tile& src_tile = tiles.at(key);
        for (index_t sender : choose_senders(ranks, dst_rank)) add_overlap(out, sender, src_tile, dst_rank, dst_tile, box, contributors);
      }
    }
    return out;
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
  // destination itself if present, else the one at (destination's position) mod count.
  std::vector<index_t> choose_senders(const std::vector<index_t>& ranks, index_t dst_rank) const {
    std::map<index_t, std::vector<index_t>> by_partial;
    for (index_t rank : ranks) by_partial[partial_class(rank)].push_back(rank);
    std::vector<index_t> senders;
    for (auto& [coord, replicas] : by_partial) {
      auto self = std::find(replicas.begin(), replicas.end(), dst_rank);
      if (self != replicas.end()) senders.push_back(dst_rank);
      else senders.push_back(replicas[static_cast<std::size_t>(dst_position(dst_rank) % static_cast<index_t>(replicas.size()))]);
    }
    return senders;
  }

  index_t dst_position(index_t dst_rank) const {
    return row_major_position(dst_.mesh().shape(), *dst_.mesh().coordinate_of(dst_rank));
  }

  // The part of `box` (a maximal box of the destination tile) that the source tile holds, as
  // boxes with their local starts on both sides.
  static void add_overlap(TransferList& out, index_t src_rank, const Tile& src_tile, index_t dst_rank, const Tile& dst_tile,
                          const Box& box, index_t contributors) {
    // Per dim: the source runs inside the box's range.
    SmallVector<IndexMap, 4> parts;
    for (std::size_t d = 0; d < box.ndim(); ++d) {
      IndexMap part = src_tile.dim(d).restrict_to(box.offset[d], box.end(d));
      if (part.empty()) return;
      parts.push_back(std::move(part));
    }
    for (Box& piece : Tile(std::move(parts)).boxes()) {
      Dims src_local, dst_local;
      for (std::size_t d = 0; d < piece.ndim(); ++d) {
        src_local.push_back(*src_tile.dim(d).local_of(piece.offset[d]));
        dst_local.push_back(*dst_tile.dim(d).local_of(piece.offset[d]));
      }
      out.push_back(src_rank, dst_rank, as_span(piece.offset), as_span(piece.shape), as_span(src_local), as_span(dst_local), contributors);
    }
  }

  TensorLayout src_;
  TensorLayout dst_;
  std::optional<ReduceOp> reduce_op_;
  bool unreplicated_source_ = false;
};

}  // namespace shardalg
