// RankPart: one rank's part of a model reshard plan, in the form an executor runs it: a byte
// stream per peer (what this rank sends to it, what it receives from it) and local copies, each
// box as rows of contiguous bytes in one of the rank's buffers.
//
// Sender and receiver derive the same stream from the plan independently: a message's boxes are
// sorted by (tensor, global offset), and each box starts at a multiple of 8 bytes, so that any
// cut of the stream at a multiple of 8 splits no element (element sizes are 1, 2, 4 or 8).
//
// Example: rank 1 sends rank 0 rows [2, 4) of an fp32 [4, 2] tensor held as a [2, 2] tile: one box
// of 2 rows of 8 bytes at buffer byte offsets 0 and 8; the stream is 16 bytes.
#pragma once

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shardalg/plan/model_reshard_plan.hpp"

namespace shardalg {

namespace detail {
inline index_t round_up_8(index_t n) { return (n + 7) / 8 * 8; }
}  // namespace detail

// A box of one tensor as rows of contiguous bytes in one of a rank's buffers.
struct BoxRows {
  std::size_t tensor = 0;  // the tensor's index in the plan (its source index)
  std::size_t buffer = 0;  // which of the rank's buffers (ModelLayout::buffer_of)
  index_t base = 0;        // buffer byte offset of the box's first element
  Dims row_shape;          // the box's outer dims (all but the innermost)
  Dims row_strides;        // byte strides of the outer dims in the buffer
  index_t row_bytes = 0;   // innermost extent x element size
  index_t element_bytes = 1;
  index_t contributors = 1;

  index_t rows() const { return volume(row_shape); }
  index_t bytes() const { return checked_mul(rows(), row_bytes); }
  index_t row_offset(index_t row) const { return base + dot(row_major_coordinate(row_shape, row), row_strides); }
};

// The rows of a box of `shape` elements whose first element is element `first` of a buffer
// addressed with element strides `strides` (its tensor's addressing), `element` bytes each.
// Example: a [2, 3] box at element 8 of a [4, 6] fp32 tile: base 32, row_shape [2], row_strides
// [24], row_bytes 12.
inline BoxRows box_rows(std::size_t tensor, std::size_t buffer, index_t first, std::span<const index_t> shape, const Dims& strides,
                        index_t element) {
  BoxRows box;
  box.tensor = tensor;
  box.buffer = buffer;
  box.base = checked_mul(first, element);
  box.element_bytes = element;
  std::size_t ndim = shape.size();
  box.row_bytes = checked_mul(ndim ? shape[ndim - 1] : 1, element);
  for (std::size_t k = 0; k + 1 < ndim; ++k) {
    box.row_shape.push_back(shape[k]);
    box.row_strides.push_back(checked_mul(strides[k], element));
  }
  return box;
}

// Walks a box's rows in order from `row`, keeping the buffer offset incrementally (no division
// per row). offset(): the current row's first byte; next(): the following row.
class RowCursor {
 public:
  RowCursor(const BoxRows& box, index_t row) : box_(box), coord_(row_major_coordinate(box.row_shape, row)), offset_(box.row_offset(row)) {}
  index_t offset() const { return offset_; }
  void next() { next_coordinate(coord_, box_.row_shape, box_.row_strides, offset_); }

 private:
  const BoxRows& box_;
  Dims coord_;
  index_t offset_;
};

// The boxes exchanged with one peer, in stream order; `starts[k]` is box k's stream offset.
struct Message {
  index_t peer = 0;
  std::vector<BoxRows> boxes;  // in this rank's buffers
  std::vector<index_t> starts;
  index_t bytes = 0;  // stream length (boxes padded to multiples of 8)

  // When the whole stream is one contiguous range of one buffer (one box whose rows are
  // adjacent, no padding): that box. Such messages need no staging.
  const BoxRows* contiguous() const {
    if (boxes.size() != 1 || boxes[0].bytes() != bytes) return nullptr;
    const BoxRows& box = boxes[0];
    index_t extent = box.row_bytes;  // bytes spanned by the inner dims checked so far
    for (std::size_t d = box.row_shape.size(); d-- > 0;) {
      if (box.row_shape[d] > 1 && box.row_strides[d] != extent) return nullptr;
      extent *= box.row_shape[d];
    }
    return &box;
  }

  // Calls f(box, from, to, stream offset of `from`) for each box that stream bytes [begin, end)
  // reach, with [from, to) the bytes of the box's own dense stream among them. Precondition:
  // 0 <= begin <= end <= bytes.
  template <class F>
  void for_each_box(index_t begin, index_t end, F&& f) const {
    auto k = static_cast<std::size_t>(std::upper_bound(starts.begin(), starts.end(), begin) - starts.begin()) - 1;
    for (; k < boxes.size() && starts[k] < end; ++k) {
      index_t from = std::max(begin, starts[k]) - starts[k], to = std::min(end, starts[k] + boxes[k].bytes()) - starts[k];
      if (from < to) f(boxes[k], from, to, starts[k] + from);
    }
  }

  // Calls f(box, buffer byte offset, stream offset, length) for the contiguous runs of stream
  // bytes [begin, end). Precondition: 0 <= begin <= end <= bytes.
  template <class F>
  void for_each_run(index_t begin, index_t end, F&& f) const {
    for_each_box(begin, end, [&](const BoxRows& box, index_t from, index_t to, index_t stream) {
      RowCursor cursor(box, from / box.row_bytes);
      for (index_t at = from, within = from % box.row_bytes; at < to; within = 0, cursor.next()) {  // `at`: byte within the box
        index_t length = std::min(box.row_bytes - within, to - at);
        f(box, cursor.offset() + within, stream + (at - from), length);
        at += length;
      }
    });
  }
};

// Calls f(start, block) for the row-major blocks that rows [first, last) of a box of row shape
// `shape` are made of: `start` the first row's coordinate, `block` the block's shape (1 in the
// dims it does not span). At most 2 x shape.size() blocks.
// Example: rows [1, 6) of row shape [2, 3] are {start [0,1], block [1,2]}, {start [1,0], block [1,3]}.
template <class F>
void for_each_row_block(const Dims& shape, index_t first, index_t last, F&& f) {
  Dims start(shape.size(), 0);
  auto blocks = [&](auto& self, std::size_t d, index_t r0, index_t r1) -> void {
    if (r0 >= r1) return;
    if (d == shape.size()) {  // a single row
      f(start, Dims(shape.size(), 1));
      return;
    }
    index_t inner = 1;
    for (std::size_t k = d + 1; k < shape.size(); ++k) inner *= shape[k];
    auto emit_slab = [&](index_t i0, index_t i1) {  // whole sub-boxes i0..i1-1 along d
      if (i0 >= i1) return;
      start[d] = i0;
      Dims block(shape.size(), 1);
      block[d] = i1 - i0;
      for (std::size_t k = d + 1; k < shape.size(); ++k) {
        block[k] = shape[k];
        start[k] = 0;
      }
      f(start, block);
    };
    index_t i0 = r0 / inner, i1 = r1 / inner;
    if (r0 % inner == 0 && r1 % inner == 0) return emit_slab(i0, i1);
    if (i0 == (r1 - 1) / inner) {  // within one sub-box along d
      start[d] = i0;
      return self(self, d + 1, r0 - i0 * inner, r1 - i0 * inner);
    }
    if (r0 % inner) {
      start[d] = i0;
      self(self, d + 1, r0 % inner, inner);
      ++i0;
    }
    emit_slab(i0, i1);
    if (r1 % inner) {
      start[d] = i1;
      self(self, d + 1, 0, r1 % inner);
    }
  };
  blocks(blocks, 0, first, last);
}

namespace detail {

// Calls f(box byte offset, stream byte offset, block shape, row bytes) for the blocks that bytes
// [from, to) of `box`'s dense stream (its rows back to back) are made of: a partial first row,
// blocks of whole rows, a partial last row. Precondition: 0 <= from <= to <= box.bytes().
template <class F>
void for_each_stream_block(const BoxRows& box, index_t from, index_t to, F&& f) {
  if (from >= to) return;
  index_t first_row = from / box.row_bytes, last_row = to / box.row_bytes;  // whole rows: [first_row, last_row)
  if (index_t head = from % box.row_bytes) {                                 // the partial first row
    index_t end = std::min(to, (first_row + 1) * box.row_bytes);
    f(box.row_offset(first_row) + head, from, Dims{}, end - from);
    if (end == to) return;
    ++first_row;
  }
  for_each_row_block(box.row_shape, first_row, last_row, [&](const Dims& start, const Dims& block) {
    index_t row = 0;
    for (std::size_t d = 0; d < start.size(); ++d) row = row * box.row_shape[d] + start[d];
    f(box.base + dot(start, box.row_strides), row * box.row_bytes, block, box.row_bytes);
  });
  if (index_t tail = to - last_row * box.row_bytes; tail > 0) f(box.row_offset(last_row), last_row * box.row_bytes, Dims{}, tail);  // the partial last row
}

}  // namespace detail

// Merges the trailing outer dims of `boxes` (all with the same row shape and row bytes) into
// their rows while every box holds them densely: fewer, longer rows of the same bytes in the same
// order. A tile's full-width box becomes one run; a local copy's two sides stay alike.
// Example: rows [4] of 64 bytes at stride 64 merge into one row of 256 bytes.
template <class... Boxes>
void merge_dense_rows(BoxRows& first, Boxes&... rest) {
  auto dense = [](const BoxRows& box) { return box.row_shape.back() == 1 || box.row_strides.back() == box.row_bytes; };
  while (!first.row_shape.empty() && dense(first) && (dense(rest) && ...)) {
    for (BoxRows* box : {&first, &rest...}) {
      box->row_bytes = checked_mul(box->row_bytes, box->row_shape.back());
      box->row_shape.pop_back();
      box->row_strides.pop_back();
    }
  }
}

// What one of a rank's buffers must be: its bytes and element type (from the layout), the first
// tensor it holds (to name it), and the end of the last byte the rank's part touches in it.
struct BufferNeed {
  index_t bytes = 0;
  DType dtype = DType::bytes;
  std::string tensor;
  index_t touched_end = 0;
};

// A local copy: the same box in a source buffer and a destination buffer of this rank.
struct LocalCopy {
  BoxRows from;
  BoxRows to;
};

class RankPart {
 public:
  // Precondition: none; a rank outside both layouts gets an empty part.
  RankPart(const ModelReshardPlan& plan, index_t rank) : rank_(rank) {
    const ModelLayout& src = plan.source();
    const ModelLayout& dst = plan.destination();
    std::map<index_t, std::vector<std::size_t>> to_peer, from_peer;  // peer -> transfer indices
    TransferList sends = plan.transfers_from(rank), receives = plan.transfers_to(rank);
    Addresses addresses;
    for (std::size_t i = 0; i < sends.size(); ++i)
      if (sends.dst_rank(i) != rank) to_peer[sends.dst_rank(i)].push_back(i);
    for (std::size_t i = 0; i < receives.size(); ++i) {
      if (receives.src_rank(i) != rank) {
        from_peer[receives.src_rank(i)].push_back(i);
        continue;
      }
      auto t = static_cast<std::size_t>(receives.tensor(i));
      LocalCopy copy{rows_of(addresses, src, t, receives, i, true), rows_of(addresses, dst, plan.destination_index(t), receives, i, false)};
      merge_dense_rows(copy.from, copy.to);  // both sides together: executors copy row i to row i
      local_.push_back(std::move(copy));
    }
    for (auto& [peer, indices] : to_peer) sends_.push_back(message(addresses, plan, src, sends, peer, indices, true));
    for (auto& [peer, indices] : from_peer) receives_.push_back(message(addresses, plan, dst, receives, peer, indices, false));
    source_needs_ = needs_of(src);
    destination_needs_ = needs_of(dst);
    for (std::size_t t = 0; t < plan.size(); ++t) {
      const ReshardPlan& tensor_plan = plan.tensor_plan(t);
      std::size_t d = plan.destination_index(t);
      const TensorLayout& layout = dst[d].layout;
      if (!tensor_plan.reduce_op() || !layout.mesh().contains(rank)) continue;
      const TensorLayout::Addressing& address = addressing(addresses, layout);
      index_t element = element_bytes(dst[d].dtype);
      for (const Piece& held : layout.pieces(rank)) {
        BoxRows box = box_rows(t, dst.buffer_of(d), address.base(held.local), held.global.shape, address.strides, element);
        merge_dense_rows(box);
        identity_.push_back(std::move(box));
      }
    }
    auto touch = [](std::vector<BufferNeed>& needs, const BoxRows& box) {
      if (box.rows() == 0) return;
      index_t end = box.base + box.row_bytes;
      for (std::size_t d = 0; d < box.row_shape.size(); ++d) end = checked_add(end, checked_mul(box.row_shape[d] - 1, box.row_strides[d]));
      needs[box.buffer].touched_end = std::max(needs[box.buffer].touched_end, end);
    };
    for (const Message& m : sends_)
      for (const BoxRows& box : m.boxes) touch(source_needs_, box);
    for (const Message& m : receives_)
      for (const BoxRows& box : m.boxes) touch(destination_needs_, box);
    for (const LocalCopy& copy : local_) {
      touch(source_needs_, copy.from);
      touch(destination_needs_, copy.to);
    }
    for (const BoxRows& box : identity_) touch(destination_needs_, box);
  }

  index_t rank() const { return rank_; }
  const std::vector<Message>& sends() const { return sends_; }
  const std::vector<Message>& receives() const { return receives_; }
  const std::vector<LocalCopy>& local_copies() const { return local_; }
  // What this rank holds of the destinations of Partial tensors (box.tensor: the plan's index):
  // these elements start at the reduce op's identity, and contributions are reduced into them.
  const std::vector<BoxRows>& identity_boxes() const { return identity_; }
  // What each of this rank's source and destination buffers must be (computed once, so that
  // checking buffers before a run costs one comparison per buffer).
  const std::vector<BufferNeed>& source_needs() const { return source_needs_; }
  const std::vector<BufferNeed>& destination_needs() const { return destination_needs_; }
  // Bytes of the longest message this rank sends or receives (0 when it has none).
  index_t longest_message() const {
    index_t longest = 0;
    for (const std::vector<Message>* messages : {&sends_, &receives_})
      for (const Message& m : *messages) longest = std::max(longest, m.bytes);
    return longest;
  }
  // Rounds when every message moves `round_bytes` per round (its j-th stretch in round j).
  index_t rounds(index_t round_bytes) const {
    index_t longest = longest_message();
    return longest == 0 ? 0 : (longest + round_bytes - 1) / round_bytes;
  }

 private:
  // Each tensor layout's addressing of this rank, computed once (it builds the rank's tile).
  using Addresses = std::map<const TensorLayout*, TensorLayout::Addressing>;

  const TensorLayout::Addressing& addressing(Addresses& addresses, const TensorLayout& layout) const {
    auto found = addresses.find(&layout);
    if (found == addresses.end()) found = addresses.emplace(&layout, layout.addressing(rank_)).first;
    return found->second;
  }

  // Box i of `list` in this rank's buffers of `layout` (the source side or the destination
  // side), where the tensor has index `tensor`.
  BoxRows rows_of(Addresses& addresses, const ModelLayout& layout, std::size_t tensor, const TransferList& list, std::size_t i,
                  bool source_side) const {
    const TensorLayout& tl = layout[tensor].layout;
    const TensorLayout::Addressing& address = addressing(addresses, tl);
    index_t element = element_bytes(layout[tensor].dtype);
    Dims local(source_side ? list.src_local(i) : list.dst_local(i));
    BoxRows box = box_rows(static_cast<std::size_t>(list.tensor(i)), layout.buffer_of(tensor), address.base(local), list.shape(i), address.strides, element);
    box.contributors = list.contributors(i);
    return box;
  }

  std::vector<BufferNeed> needs_of(const ModelLayout& layout) const {
    std::vector<BufferNeed> needs(layout.buffer_count());
    std::vector<bool> seen(layout.buffer_count(), false);
    for (std::size_t t = 0; t < layout.size(); ++t) {
      std::size_t b = layout.buffer_of(t);
      if (seen[b]) continue;  // a flat partition: its tensors need the same buffer
      seen[b] = true;
      const TensorLayout& tl = layout[t].layout;
      index_t elements = tl.mesh().contains(rank_) ? tl.buffer_elements(rank_) : 0;
      needs[b] = BufferNeed{checked_mul(elements, element_bytes(layout[t].dtype)), layout[t].dtype, layout[t].name, 0};
    }
    return needs;
  }

  Message message(Addresses& addresses, const ModelReshardPlan& plan, const ModelLayout& layout, const TransferList& list, index_t peer,
                  std::vector<std::size_t>& indices, bool source_side) const {
    // Stream order: (tensor, global offset), the same on both sides of the message.
    std::sort(indices.begin(), indices.end(), [&](std::size_t a, std::size_t b) {
      if (list.tensor(a) != list.tensor(b)) return list.tensor(a) < list.tensor(b);
      auto oa = list.offset(a), ob = list.offset(b);
      return std::lexicographical_compare(oa.begin(), oa.end(), ob.begin(), ob.end());
    });
    Message m;
    m.peer = peer;
    for (std::size_t i : indices) {
      auto t = static_cast<std::size_t>(list.tensor(i));
      std::size_t on_this_side = source_side ? t : plan.destination_index(t);
      m.boxes.push_back(rows_of(addresses, layout, on_this_side, list, i, source_side));
      merge_dense_rows(m.boxes.back());  // each side on its own: a message is a stream of bytes
      m.starts.push_back(m.bytes);
      m.bytes = checked_add(m.bytes, detail::round_up_8(m.boxes.back().bytes()));
    }
    return m;
  }

  index_t rank_;
  std::vector<Message> sends_, receives_;
  std::vector<LocalCopy> local_;
  std::vector<BoxRows> identity_;
  std::vector<BufferNeed> source_needs_, destination_needs_;
};

}  // namespace shardalg
