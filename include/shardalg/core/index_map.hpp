// IndexMap: which global positions of one tensor dimension a rank holds, in local order.
//
// A monotone map from local positions 0..size()-1 to global positions, stored as maximal runs
// (global_begin, length); local positions are implicit (cumulative run lengths).
//   Shard         -> one run
//   StridedShard  -> up to split_factor runs
// Maps compose (a shard of a shard) and intersect (two maps of the same dimension share segments).
#pragma once

#include <optional>
#include <ostream>
#include <vector>

#include "shardalg/core/checked.hpp"
#include "shardalg/core/small_vector.hpp"

namespace shardalg {

struct Run {
  index_t global_begin;
  index_t length;
  constexpr index_t global_end() const { return global_begin + length; }
  friend constexpr bool operator==(const Run&, const Run&) = default;
};

// A stretch of positions that two maps of the same dimension share: `length` consecutive
// positions starting at local_a in map a and at local_b in map b (and at `global` globally).
struct Segment {
  index_t local_a;
  index_t local_b;
  index_t global;
  index_t length;
  friend constexpr bool operator==(const Segment&, const Segment&) = default;
};

class IndexMap {
 public:
  // The empty map (holds nothing).
  constexpr IndexMap() = default;

  // [begin, begin + length). Example: contiguous(3, 4) holds 3,4,5,6.
  static constexpr IndexMap contiguous(index_t begin, index_t length) {
    IndexMap map;
    map.append(begin, length);
    return map;
  }

  // Appends [global_begin, global_begin + length) after the current last position.
  // Zero-length runs are skipped; a run adjacent to the last one extends it (runs stay maximal).
  // Precondition (checked): global_begin >= 0 and >= the end of the last run (maps are monotone).
  constexpr void append(index_t global_begin, index_t length) {
    if (length < 0 || global_begin < 0)
      detail::fail("IndexMap::append: negative run (begin ", global_begin, ", length ", length, ")");
    if (length == 0) return;
    index_t end = checked_add(global_begin, length);
    size_ = checked_add(size_, length);
    if (!runs_.empty()) {
      Run& last = runs_.back();
      if (global_begin < last.global_end())
        detail::fail("IndexMap::append: run at ", global_begin, " is not after the previous end ",
                     last.global_end(), " (index maps are increasing)");
      if (global_begin == last.global_end()) {
        last.length = end - last.global_begin;
        return;
      }
    }
    runs_.push_back(Run{global_begin, length});
  }

  constexpr index_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr const SmallVector<Run, 2>& runs() const { return runs_; }
  constexpr bool is_contiguous() const { return runs_.size() <= 1; }

  // Global position of local position 0. Precondition: !empty().
  constexpr index_t first() const { return runs_[0].global_begin; }
  // One past the largest global position held. Precondition: !empty().
  constexpr index_t global_end() const { return runs_.back().global_end(); }

  // Global position of a local one. Precondition: 0 <= local < size().
  constexpr index_t global_at(index_t local) const {
    for (const Run& run : runs_) {
      if (local < run.length) return run.global_begin + local;
      local -= run.length;
    }
    detail::fail("IndexMap::global_at: local position out of range");
  }

  // Local position of a global one, or nothing when the map does not hold it.
  constexpr std::optional<index_t> local_of(index_t global) const {
    index_t local = 0;
    for (const Run& run : runs_) {
      if (global < run.global_begin) return std::nullopt;
      if (global < run.global_end()) return local + (global - run.global_begin);
      local += run.length;
    }
    return std::nullopt;
  }

  constexpr bool contains(index_t global) const { return local_of(global).has_value(); }
  // Local position of `global` when the `length` positions from it lie in one run (held, and
  // contiguous locally too); nothing otherwise. Example: {[0,4), [8,10)}: (2, 2) -> 2;
  // (2, 3) -> nothing (position 4 is not held); (8, 2) -> 4.
  constexpr std::optional<index_t> local_of_range(index_t global, index_t length) const {
    index_t local = 0;
    for (const Run& run : runs_) {
      if (global < run.global_begin) return std::nullopt;
      if (global < run.global_end()) {
        if (length > run.global_end() - global) return std::nullopt;
        return local + (global - run.global_begin);
      }
      local += run.length;
    }
    return std::nullopt;
  }

  // Composition: `selection` picks local positions of this map (its "global" positions are this
  // map's local ones); the result maps them on to this map's global positions.
  // This is how a shard of a shard is computed (PyTorch: global[d] = previous[d][local_index]).
  // Example: {[10,14), [20,24)} composed with contiguous(2, 4) -> {[12,14), [20,22)}.
  // Precondition (checked): selection's positions lie in [0, size()).
  constexpr IndexMap compose(const IndexMap& selection) const {
    IndexMap result;
    std::size_t run = 0;
    index_t run_local_begin = 0;  // local position of runs_[run].global_begin
    for (const Run& pick : selection.runs()) {
      if (pick.global_end() > size_)
        detail::fail("IndexMap::compose: selection reaches ", pick.global_end(), " but the map has ",
                     size_, " positions");
      index_t pos = pick.global_begin;
      index_t remaining = pick.length;
      while (remaining > 0) {
        while (pos >= run_local_begin + runs_[run].length) run_local_begin += runs_[run++].length;
        index_t offset_in_run = pos - run_local_begin;
        index_t take = std::min(remaining, runs_[run].length - offset_in_run);
        result.append(runs_[run].global_begin + offset_in_run, take);
        pos += take;
        remaining -= take;
      }
    }
    return result;
  }

  // The runs restricted to the global range [begin, end), as a map of global positions.
  constexpr IndexMap restrict_to(index_t begin, index_t end) const {
    IndexMap result;
    for (const Run& run : runs_) {
      index_t lo = std::max(begin, run.global_begin);
      index_t hi = std::min(end, run.global_end());
      if (lo < hi) result.append(lo, hi - lo);
    }
    return result;
  }

  friend constexpr bool operator==(const IndexMap& a, const IndexMap& b) { return a.runs_ == b.runs_; }

 private:
  SmallVector<Run, 2> runs_{};
  index_t size_ = 0;
};

// The positions two maps of the same global dimension share, in increasing global order, as
// maximal segments. Time linear in the runs of both.
// Example: a = [0,6), b = {[4,8), [10,12)} -> one segment {local_a 4, local_b 0, global 4, length 2}.
inline std::vector<Segment> intersect(const IndexMap& a, const IndexMap& b) {
  std::vector<Segment> segments;
  const auto& ra = a.runs();
  const auto& rb = b.runs();
  std::size_t i = 0, j = 0;
  index_t base_a = 0, base_b = 0;  // local positions where ra[i], rb[j] begin
  while (i < ra.size() && j < rb.size()) {
    index_t lo = std::max(ra[i].global_begin, rb[j].global_begin);
    index_t hi = std::min(ra[i].global_end(), rb[j].global_end());
    if (lo < hi) {
      // Runs are maximal, so consecutive segments are never contiguous in all three spaces.
      segments.push_back(
          Segment{base_a + (lo - ra[i].global_begin), base_b + (lo - rb[j].global_begin), lo, hi - lo});
    }
    if (ra[i].global_end() <= rb[j].global_end()) base_a += ra[i++].length;
    else base_b += rb[j++].length;
  }
  return segments;
}

inline std::ostream& operator<<(std::ostream& out, const IndexMap& map) {
  out << '{';
  bool first = true;
  for (const Run& run : map.runs()) {
    out << (first ? "" : ", ") << '[' << run.global_begin << ',' << run.global_end() << ')';
    first = false;
  }
  return out << '}';
}

}  // namespace shardalg
