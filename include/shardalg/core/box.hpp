// Box: an axis-aligned block of a tensor, an offset and a shape per dim.
#pragma once

#include <algorithm>
#include <ostream>
#include <string>

#include "shardalg/core/dims.hpp"

namespace shardalg {

struct Box {
  Dims offset;
  Dims shape;

  // Checks the invariants: equal ranks, non-negative offsets and extents, end within int64.
  constexpr Box(Dims offset_, Dims shape_) : offset(std::move(offset_)), shape(std::move(shape_)) {
    if (offset.size() != shape.size())
      detail::fail("Box: offset ", offset, " and shape ", shape, " have different ranks");
    for (std::size_t d = 0; d < shape.size(); ++d) {
      if (offset[d] < 0 || shape[d] < 0)
        detail::fail("Box: negative offset or extent in offset ", offset, " shape ", shape);
      checked_add(offset[d], shape[d]);
    }
  }
  // The box [0, shape).
  static constexpr Box whole(const Dims& shape) { return Box(Dims(shape.size(), 0), shape); }

  constexpr std::size_t ndim() const { return shape.size(); }
  constexpr index_t end(std::size_t d) const { return offset[d] + shape[d]; }
  constexpr index_t volume() const { return shardalg::volume(shape); }
  constexpr bool empty() const {
    return std::any_of(shape.begin(), shape.end(), [](index_t e) { return e == 0; });
  }
  constexpr bool contains_point(const Dims& point) const {
    for (std::size_t d = 0; d < ndim(); ++d)
      if (point[d] < offset[d] || point[d] >= end(d)) return false;
    return true;
  }
  // True when every element of inner lies in this box (an empty box is contained everywhere).
  constexpr bool contains(const Box& inner) const {
    if (inner.empty()) return true;
    for (std::size_t d = 0; d < ndim(); ++d)
      if (inner.offset[d] < offset[d] || inner.end(d) > end(d)) return false;
    return true;
  }

  friend constexpr bool operator==(const Box&, const Box&) = default;
};

// The common part of two boxes of equal rank; empty (some extent 0) when they are disjoint.
// Example: [0,8) x [0,4) and [4,12) x [2,6) -> offset [4, 2], shape [4, 2].
constexpr Box intersect(const Box& a, const Box& b) {
  if (a.ndim() != b.ndim()) detail::fail("intersect: boxes of rank ", a.ndim(), " and ", b.ndim());
  Dims offset, shape;
  for (std::size_t d = 0; d < a.ndim(); ++d) {
    index_t lo = std::max(a.offset[d], b.offset[d]);
    index_t hi = std::min(a.end(d), b.end(d));
    offset.push_back(lo);
    shape.push_back(std::max<index_t>(0, hi - lo));
  }
  return Box(offset, shape);
}

// The box as half-open intervals per dim, the form the CLI prints: offset [0, 4], shape [2, 2]
// -> "[0,2)x[4,6)"; a 0-d box (one element) -> "[]".
inline std::string format_box(const Box& box) {
  if (box.ndim() == 0) return "[]";
  std::string out;
  for (std::size_t d = 0; d < box.ndim(); ++d) out += detail::concat(d ? "x" : "", '[', box.offset[d], ',', box.end(d), ')');
  return out;
}

inline std::ostream& operator<<(std::ostream& out, const Box& box) {
  return out << "Box(offset=" << box.offset << ", shape=" << box.shape << ')';
}

}  // namespace shardalg
