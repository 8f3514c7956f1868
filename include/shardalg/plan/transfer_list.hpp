// Transfer and TransferList: what a plan moves.
//
// A Transfer is one box of global elements moved from a source rank's buffer to a destination
// rank's. A TransferList stores many transfers compactly: a small fixed record per transfer and
// all coordinates in one shared array, because a global plan of a large model has tens of
// millions of boxes (a Transfer value carries four inline coordinate lists; ~8x the bytes).
// Transfers are read back as values, or field by field without building one.
//
// Example: a plan moving rows [0, 2) x cols [0, 4) of a [4, 4] tensor from rank 1 (where the box
// starts at local [0, 0]) to rank 0 (local [2, 0]):
//   TransferList list;
//   list.push_back(Transfer{1, 0, Box({0, 0}, {2, 4}), {0, 0}, {2, 0}});
//   list.dst_rank(0) == 0; list.volume(0) == 8; list[0].global == Box({0, 0}, {2, 4})
#pragma once

#include <algorithm>

#include <cstdint>
#include <iterator>
#include <limits>
#include <span>
#include <vector>

#include "shardalg/core/box.hpp"

namespace shardalg {

// `src_local` / `dst_local`: where the box starts on each side, in the form of Piece::local
// (local tile coordinates for mesh layouts, {partition position} for flat layouts).
// A transfer with src_rank == dst_rank is a local copy. `tensor`: the tensor's index in a
// whole-model plan (0 for a one-tensor plan).
struct Transfer {
  index_t src_rank;
  index_t dst_rank;
  Box global;
  Dims src_local;
  Dims dst_local;
  // Number of partial contributors to these elements (1 without Partial sources); the
  // destination reduces `contributors` values with the source's reduce op.
  index_t contributors = 1;
  index_t tensor = 0;

  friend bool operator==(const Transfer&, const Transfer&) = default;
};

class TransferList {
 public:
  TransferList() = default;
  explicit TransferList(const std::vector<Transfer>& transfers) {
    for (const Transfer& t : transfers) push_back(t);
  }

  std::size_t size() const { return records_.size(); }
  bool empty() const { return records_.empty(); }
  // Room for `transfers` transfers with `coordinates` coordinates in all.
  void reserve(std::size_t transfers, std::size_t coordinates) {
    records_.reserve(transfers);
    coords_.reserve(coordinates);
  }
  // Coordinates stored (offset, shape, source and destination starts of every transfer).
  std::size_t coordinate_count() const { return coords_.size(); }

  // Appends a transfer of box (offset, shape). Precondition: offset and shape of equal rank.
  void push_back(index_t src_rank, index_t dst_rank, std::span<const index_t> offset, std::span<const index_t> shape,
                 std::span<const index_t> src_local, std::span<const index_t> dst_local, index_t contributors = 1,
                 index_t tensor = 0) {
    if (offset.size() != shape.size() || shape.size() > 255 || src_local.size() > 255 || dst_local.size() > 255)
      detail::fail("TransferList: transfer ", src_rank, " -> ", dst_rank, " has coordinate lists of ", offset.size(), ", ",
                   shape.size(), ", ", src_local.size(), " and ", dst_local.size(), " entries");
    records_.push_back(Record{narrow(src_rank, "source rank"), narrow(dst_rank, "destination rank"), narrow(contributors, "contributor count"),
                              narrow(tensor, "tensor index"), coords_.size(), static_cast<std::uint8_t>(shape.size()),
                              static_cast<std::uint8_t>(src_local.size()), static_cast<std::uint8_t>(dst_local.size())});
    // Element by element: the lists are a few values long, too short for memmove to pay.
    for (std::span<const index_t> part : {offset, shape, src_local, dst_local})
      for (index_t value : part) coords_.push_back(value);
  }
  void push_back(const Transfer& t) {
    push_back(t.src_rank, t.dst_rank, as_span(t.global.offset), as_span(t.global.shape), as_span(t.src_local), as_span(t.dst_local),
              t.contributors, t.tensor);
  }
  // Appends transfer i of `other` unchanged.
  void push_back(const TransferList& other, std::size_t i) {
    const Record& r = other.records_[i];
    records_.push_back(r);
    records_.back().coords = coords_.size();
    auto first = other.coords_.begin() + static_cast<std::ptrdiff_t>(r.coords);
    coords_.insert(coords_.end(), first, first + r.width());
  }
  // Appends every transfer of `part`, tagged with `tensor`, with the first coordinate of the
  // source and destination starts shifted (partition positions of a tensor whose window starts
  // elsewhere than the planned one's). Precondition for a non-zero shift: that side is non-empty.
  void append(const TransferList& part, index_t tensor, index_t src_shift = 0, index_t dst_shift = 0) {
    std::int32_t tag = narrow(tensor, "tensor index");  // before anything changes
    std::size_t base = coords_.size();
    coords_.insert(coords_.end(), part.coords_.begin(), part.coords_.end());
    for (Record r : part.records_) {
      r.coords += base;
      r.tensor = tag;
      if (src_shift != 0) coords_[r.coords + 2u * r.ndim] += src_shift;
      if (dst_shift != 0) coords_[r.coords + 2u * r.ndim + r.src_width] += dst_shift;
      records_.push_back(r);
    }
  }

  index_t src_rank(std::size_t i) const { return records_[i].src_rank; }
  index_t dst_rank(std::size_t i) const { return records_[i].dst_rank; }
  index_t contributors(std::size_t i) const { return records_[i].contributors; }
  index_t tensor(std::size_t i) const { return records_[i].tensor; }
  std::size_t ndim(std::size_t i) const { return records_[i].ndim; }
  std::span<const index_t> offset(std::size_t i) const { return field(i, 0, records_[i].ndim); }
  std::span<const index_t> shape(std::size_t i) const { return field(i, records_[i].ndim, records_[i].ndim); }
  std::span<const index_t> src_local(std::size_t i) const { return field(i, 2u * records_[i].ndim, records_[i].src_width); }
  std::span<const index_t> dst_local(std::size_t i) const {
    const Record& r = records_[i];
    return field(i, 2u * r.ndim + r.src_width, r.dst_width);
  }
  // Elements moved by transfer i (overflow-checked).
  index_t volume(std::size_t i) const { return checked_product(shape(i)); }

  // Transfer i as a value. at() checks i.
  Transfer operator[](std::size_t i) const {
    const Record& r = records_[i];
    return Transfer{r.src_rank, r.dst_rank, Box{Dims(offset(i)), Dims(shape(i))}, Dims(src_local(i)), Dims(dst_local(i)),
                    r.contributors, r.tensor};
  }
  Transfer at(std::size_t i) const {
    if (i >= size()) detail::fail("TransferList: index ", i, " out of ", size(), " transfers");
    return (*this)[i];
  }
  std::vector<Transfer> to_vector() const {
    std::vector<Transfer> out;
    out.reserve(size());
    for (std::size_t i = 0; i < size(); ++i) out.push_back((*this)[i]);
    return out;
  }

  // Iterates transfers as values: `for (const Transfer& t : list)`.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Transfer;
    using difference_type = std::ptrdiff_t;
    using reference = Transfer;
    using pointer = void;
    iterator() = default;
    iterator(const TransferList* list, std::size_t i) : list_(list), i_(i) {}
    Transfer operator*() const { return (*list_)[i_]; }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++i_;
      return old;
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.i_ == b.i_; }

   private:
    const TransferList* list_ = nullptr;
    std::size_t i_ = 0;
  };
  iterator begin() const { return {this, 0}; }
  iterator end() const { return {this, size()}; }

  friend bool operator==(const TransferList& a, const TransferList& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (a[i] != b[i]) return false;
    return true;
  }

 private:
  // 32 bytes: ranks are below rank_limit, contributors at most a mesh's ranks, and tensors few
  // (a 405B global plan holds 11 M records, so every byte here is 11 MB).
  struct Record {
    std::int32_t src_rank;
    std::int32_t dst_rank;
    std::int32_t contributors;
    std::int32_t tensor;
    std::size_t coords;  // where this transfer's coordinates start in coords_
    std::uint8_t ndim, src_width, dst_width;
    std::size_t width() const { return 2u * ndim + src_width + dst_width; }
  };
  static_assert(sizeof(Record) == 32, "TransferList records are 32 bytes");
  // `value` as a record field; Error naming it when it does not fit.
  static std::int32_t narrow(index_t value, const char* what) {
    if (value < std::numeric_limits<std::int32_t>::min() || value > std::numeric_limits<std::int32_t>::max())
      detail::fail("TransferList: ", what, " ", value, " does not fit a transfer record (32 bits)");
    return static_cast<std::int32_t>(value);
  }
  std::span<const index_t> field(std::size_t i, std::size_t at, std::size_t length) const {
    return {coords_.data() + records_[i].coords + at, length};
  }

  std::vector<Record> records_;
  std::vector<index_t> coords_;  // per transfer: offset, shape, src_local, dst_local
};

}  // namespace shardalg
