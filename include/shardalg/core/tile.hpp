// Tile: what a rank holds of one tensor, the product of one IndexMap per tensor dim, laid out
// densely in row-major order in the rank's local buffer.
#pragma once

#include <optional>
#include <ostream>
#include <vector>

#include "shardalg/core/box.hpp"
#include "shardalg/core/index_map.hpp"

namespace shardalg {

class Tile {
 public:
  constexpr Tile() = default;
  constexpr explicit Tile(SmallVector<IndexMap, 4> maps) : maps_(std::move(maps)) {}

  // The whole tensor of the given shape.
  static constexpr Tile whole(const Dims& shape) {
    SmallVector<IndexMap, 4> maps;
    for (index_t extent : shape) maps.push_back(IndexMap::contiguous(0, extent));
    return Tile(std::move(maps));
  }
  // Holds nothing (a rank outside the mesh, or an empty shard), with the given rank. A 0-d
  // tile has no index map to leave empty: it remembers that it lacks the scalar.
  static constexpr Tile nothing(std::size_t ndim) {
    Tile tile(SmallVector<IndexMap, 4>(ndim, IndexMap()));
    tile.empty_scalar_ = ndim == 0;
    return tile;
  }

  constexpr std::size_t ndim() const { return maps_.size(); }
  constexpr const IndexMap& dim(std::size_t d) const { return maps_[d]; }
  constexpr IndexMap& dim(std::size_t d) { return maps_[d]; }
  constexpr const SmallVector<IndexMap, 4>& maps() const { return maps_; }

  // Local extent per dim.
  constexpr Dims shape() const {
    Dims result;
    for (const IndexMap& map : maps_) result.push_back(map.size());
    return result;
  }
  constexpr index_t volume() const { return empty_scalar_ ? 0 : shardalg::volume(shape()); }
  constexpr bool empty() const {
    if (empty_scalar_) return true;
    for (const IndexMap& map : maps_)
      if (map.empty()) return true;
    return false;
  }

  constexpr bool contains(const Dims& global) const {
    if (empty_scalar_) return false;
    for (std::size_t d = 0; d < ndim(); ++d)
      if (!maps_[d].contains(global[d])) return false;
    return true;
  }

  // Row-major position in the local buffer of a global coordinate, or nothing if not held.
  constexpr std::optional<index_t> local_position(const Dims& global) const {
    if (empty_scalar_) return std::nullopt;
    index_t position = 0;
    for (std::size_t d = 0; d < ndim(); ++d) {
      auto local = maps_[d].local_of(global[d]);
      if (!local) return std::nullopt;
      position = position * maps_[d].size() + *local;
    }
    return position;
  }

  // The maximal boxes of the tile in local (row-major) order: the product of each dim's runs.
  // An empty tile has none. Example: rows {[0,2),[5,6)} x cols [0,5) -> two boxes.
  std::vector<Box> boxes() const {
    std::vector<Box> result;
    if (empty()) return result;
    Dims pick(ndim(), 0);  // run index per dim, last dim fastest
    while (true) {
      Dims offset, shape;
      for (std::size_t d = 0; d < ndim(); ++d) {
        const Run& run = maps_[d].runs()[static_cast<std::size_t>(pick[d])];
        offset.push_back(run.global_begin);
        shape.push_back(run.length);
      }
      result.emplace_back(offset, shape);
      std::size_t d = ndim();
      while (d > 0) {
        --d;
        if (++pick[d] < static_cast<index_t>(maps_[d].runs().size())) break;
        pick[d] = 0;
        if (d == 0) return result;
      }
      if (ndim() == 0) return result;
    }
  }

  // The global boxes of a box of local positions: each dim's local range mapped through its
  // index map (several runs for strided dims), and their product.
  // Example: rows {[0,2),[5,6)} x cols [0,5); local box rows [1,3) x cols [0,2) ->
  // [1,2)x[0,2) and [5,6)x[0,2).
  std::vector<Box> global_boxes(const Box& local) const {
    if (local.ndim() != ndim()) detail::fail("Tile::global_boxes: box ", local, " for a tile of rank ", ndim());
    std::vector<Box> result;
    if (local.empty() || empty()) return result;
    SmallVector<IndexMap, 4> parts;
    for (std::size_t d = 0; d < ndim(); ++d) parts.push_back(maps_[d].compose(IndexMap::contiguous(local.offset[d], local.shape[d])));
    Tile product(std::move(parts));
    return product.boxes();
  }

  friend constexpr bool operator==(const Tile& a, const Tile& b) { return a.maps_ == b.maps_ && a.empty_scalar_ == b.empty_scalar_; }

 private:
  SmallVector<IndexMap, 4> maps_{};
  bool empty_scalar_ = false;
};

// A key that identifies a tile's elements (equal keys exactly when tiles are equal), for
// grouping ranks that hold the same elements in ordered containers.
inline std::vector<index_t> tile_key(const Tile& tile) {
  std::vector<index_t> key{tile.empty() ? 0 : 1};  // tells the two 0-d tiles apart
  for (const IndexMap& map : tile.maps()) {
    for (const Run& run : map.runs()) {
      key.push_back(run.global_begin);
      key.push_back(run.length);
    }
    key.push_back(-1);  // dim separator (global positions are never negative)
  }
  return key;
}

// What two tiles of the same tensor share, in separable form: per dim, the segments the two
// dims' index maps share. The shared elements are the product of the per-dim segment lists.
struct TileOverlap {
  std::vector<std::vector<Segment>> dims;
  bool nothing = false;  // a side holds nothing (a 0-d tile has no dims to show it)

  // Number of shared elements (the product of the per-dim shared lengths).
  index_t volume() const {
    if (nothing) return 0;
    index_t total = 1;
    for (const auto& segments : dims) {
      index_t length = 0;
      for (const Segment& s : segments) length += s.length;
      total = checked_mul(total, length);
    }
    return total;
  }
  bool empty() const { return volume() == 0; }
};

inline TileOverlap intersect(const Tile& a, const Tile& b) {
  if (a.ndim() != b.ndim()) detail::fail("intersect: tiles of rank ", a.ndim(), " and ", b.ndim());
  TileOverlap overlap;
  overlap.nothing = a.empty() || b.empty();
  for (std::size_t d = 0; d < a.ndim(); ++d) overlap.dims.push_back(intersect(a.dim(d), b.dim(d)));
  return overlap;
}

inline std::ostream& operator<<(std::ostream& out, const Tile& tile) {
  if (tile.ndim() == 0 && tile.empty()) return out << "Tile(nothing)";
  out << "Tile(";
  for (std::size_t d = 0; d < tile.ndim(); ++d) out << (d ? " x " : "") << tile.dim(d);
  return out << ')';
}

}  // namespace shardalg
