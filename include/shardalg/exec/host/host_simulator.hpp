// The host simulator: runs a reshard plan over in-memory buffers of all ranks in one process.
// The reference executor: the MPI and NCCL backends must produce the same bytes.
//
// Buffers hold elements of any type T (numbers that stand for elements, in tests), or raw bytes:
// over std::byte buffers each tensor's elements are element_bytes(its dtype) wide, copies move
// bytes exactly and Partial sources reduce with exec/element_ops.hpp's arithmetic, as the
// executors do (bf16 and fp16 included).
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <map>
#include <type_traits>
#include <vector>

#include "shardalg/exec/element_ops.hpp"
#include "shardalg/plan/plan_verification.hpp"

namespace shardalg {

// Each rank's buffer: its local tile (mesh layouts) or its partition (flat layouts).
template <class T>
using RankBuffers = std::map<index_t, std::vector<T>>;

namespace detail {

// Calls f(buffer position, global row-major position, count) for every row of elements a rank
// holds (`count` elements adjacent on both sides: a tile's and a partition's innermost stride is
// 1), piece by piece in row-major order. Both positions advance by strides (an odometer over the
// piece's outer dims), so a row costs two additions, not a coordinate decomposition.
template <class F>
void for_each_held_row(const TensorLayout& layout, index_t rank, F&& f) {
  TensorLayout::Addressing address = layout.addressing(rank);
  Dims global_strides = row_major_strides(layout.global_shape());
  for (const Piece& piece : layout.pieces(rank)) {
    const Dims& shape = piece.global.shape;
    if (piece.global.volume() == 0) continue;
    index_t local = address.base(piece.local), global = dot(piece.global.offset, global_strides);
    if (shape.empty()) {
      f(local, global, index_t{1});
      continue;
    }
    std::size_t inner = shape.size() - 1;
    Dims coordinate(shape.size(), 0);
    for (bool more = true; more;) {
      f(local, global, shape[inner]);
      more = false;
      for (std::size_t d = inner; d-- > 0;) {  // next row: carry through the outer dims
        local += address.strides[d];
        global += global_strides[d];
        if (++coordinate[d] < shape[d]) {
          more = true;
          break;
        }
        local -= coordinate[d] * address.strides[d];
        global -= coordinate[d] * global_strides[d];
        coordinate[d] = 0;
      }
    }
  }
}

// Calls f(buffer position, global row-major position) for every element a rank holds.
template <class F>
void for_each_held(const TensorLayout& layout, index_t rank, F&& f) {
  for_each_held_row(layout, rank, [&](index_t local, index_t global, index_t count) {
    for (index_t i = 0; i < count; ++i) f(local + i, global + i);
  });
}

// `width`: the size of one element in units of T (a dtype's bytes for std::byte buffers).
template <class T>
void check_buffer(const RankBuffers<T>& buffers, const TensorLayout& layout, index_t rank, std::string_view what, index_t width = 1) {
  index_t expected = checked_mul(layout.buffer_elements(rank), width);
  auto it = buffers.find(rank);
  index_t got = it == buffers.end() ? 0 : static_cast<index_t>(it->second.size());
  if (it == buffers.end() || got != expected)
    fail(what, " rank ", rank, " needs a buffer of ", expected, std::is_same_v<T, std::byte> ? " bytes" : " elements", ", got ", got);
}

}  // namespace detail

// Writes a global row-major tensor into every rank's buffer under `layout`, creating missing
// buffers (zero-filled, padding included). Tensors of one flat layout share each rank's buffer:
// scatter them one after another into the same RankBuffers.
template <class T>
void scatter_into(const TensorLayout& layout, const std::vector<T>& global, RankBuffers<T>& buffers) {
  if (static_cast<index_t>(global.size()) != volume(layout.global_shape()))
    detail::fail("scatter: the global buffer has ", global.size(), " elements, the shape ", layout.global_shape(), " has ",
                 volume(layout.global_shape()));
  for (index_t rank : layout.mesh().devices()) {
    std::vector<T>& local = buffers[rank];
    if (local.empty()) local.assign(static_cast<std::size_t>(layout.buffer_elements(rank)), T{});
    detail::check_buffer(buffers, layout, rank, "scatter:");
    detail::for_each_held(layout, rank, [&](index_t at, index_t from) {
      local[static_cast<std::size_t>(at)] = global[static_cast<std::size_t>(from)];
    });
  }
}

// Every rank's buffer under `layout` for a global row-major tensor.
template <class T>
RankBuffers<T> scatter_to_ranks(const TensorLayout& layout, const std::vector<T>& global) {
  RankBuffers<T> buffers;
  scatter_into(layout, global, buffers);
  return buffers;
}

// Reassembles the global tensor from the ranks' buffers (any holder of an element).
template <class T>
std::vector<T> gather_from_ranks(const TensorLayout& layout, const RankBuffers<T>& buffers) {
  std::vector<T> global(static_cast<std::size_t>(volume(layout.global_shape())));
  for (index_t rank : layout.mesh().devices()) {
    detail::check_buffer(buffers, layout, rank, "gather:");
    const std::vector<T>& local = buffers.at(rank);
    detail::for_each_held(layout, rank, [&](index_t at, index_t to) {
      global[static_cast<std::size_t>(to)] = local[static_cast<std::size_t>(at)];
    });
  }
  return global;
}

namespace detail {

// Runs transfers of one tensor's plan between two ranks' buffers, after checking every buffer
// against the layouts (construction fails before anything is written). `dtype`: the tensor's
// element type, used by std::byte buffers only.
template <class T>
class TransferRunner {
  static constexpr bool raw = std::is_same_v<T, std::byte>;

 public:
  TransferRunner(const ReshardPlan& plan, const RankBuffers<T>& sources, RankBuffers<T>& destinations, DType dtype = DType::bytes)
      : plan_(plan), sources_(sources), destinations_(destinations), dtype_(dtype), width_(raw ? element_bytes(dtype) : 1) {
    if (raw && plan.reduce_op()) arithmetic_dtype(dtype);  // a Partial source of fp8 or raw bytes: refused before anything runs
    for (index_t rank : plan.source().mesh().devices()) {
      check_buffer(sources, plan.source(), rank, "simulate: source", width_);
      src_address_.emplace(rank, plan.source().addressing(rank));
    }
    for (index_t rank : plan.destination().mesh().devices()) {
      check_buffer(destinations, plan.destination(), rank, "simulate: destination", width_);
      dst_address_.emplace(rank, plan.destination().addressing(rank));
    }
  }

  // Reductions start from the op's identity in every element the destination holds.
  void start() {
    if (!plan_.reduce_op()) return;
    for (index_t rank : plan_.destination().mesh().devices()) {
      T* buffer = destinations_[rank].data();
      if constexpr (raw) {
        for_each_held(plan_.destination(), rank, [&](index_t at, index_t) { fill_identity(dtype_, *plan_.reduce_op(), buffer + at * width_, 1); });
      } else {
        T initial = identity_value<T>(*plan_.reduce_op());
        for_each_held(plan_.destination(), rank, [&](index_t at, index_t) { buffer[at] = initial; });
      }
    }
  }

  void run(const Transfer& t) {
    const std::vector<T>& from = sources_.at(t.src_rank);
    std::vector<T>& to = destinations_.at(t.dst_rank);
    const TensorLayout::Addressing& sa = src_address_.at(t.src_rank);
    const TensorLayout::Addressing& da = dst_address_.at(t.dst_rank);
    std::size_t ndim = t.global.ndim();
    index_t row_length = ndim ? t.global.shape[ndim - 1] : 1;
    Dims row_shape = t.global.shape;
    if (ndim) row_shape[ndim - 1] = 1;
    index_t sbase = sa.base(t.src_local), dbase = da.base(t.dst_local);
    for (index_t r = 0; r < volume(row_shape); ++r) {  // one innermost row at a time (stride 1 on both sides)
      Dims delta = row_major_coordinate(row_shape, r);
      const T* sbegin = from.data() + (sbase + dot(delta, sa.strides)) * width_;
      T* dbegin = to.data() + (dbase + dot(delta, da.strides)) * width_;
      if (!plan_.reduce_op()) {
        std::copy_n(sbegin, row_length * width_, dbegin);
      } else if constexpr (raw) {
        reduce_bytes(dtype_, *plan_.reduce_op(), t.contributors, dbegin, sbegin, row_length);
      } else {
        for (index_t i = 0; i < row_length; ++i) dbegin[i] = reduce_value(dbegin[i], sbegin[i], *plan_.reduce_op(), t.contributors);
      }
    }
  }

 private:
  const ReshardPlan& plan_;
  const RankBuffers<T>& sources_;
  RankBuffers<T>& destinations_;
  DType dtype_;
  index_t width_;  // units of T per element
  std::map<index_t, TensorLayout::Addressing> src_address_, dst_address_;
};

}  // namespace detail

// Verifies the plan, checks every source and destination buffer against the layouts, then runs
// every transfer into `destinations` (which keep the elements no transfer writes, such as
// padding or other tensors of a shared partition). Nothing runs after an error.
template <class T>
void simulate_into(const ReshardPlan& plan, const TransferList& transfers, const RankBuffers<T>& sources,
                   RankBuffers<T>& destinations) {
  verify_plan(plan, transfers);
  detail::TransferRunner<T> runner(plan, sources, destinations);
  runner.start();
  for (const Transfer& t : transfers) runner.run(t);
}

// As simulate_into, with zero-filled destination buffers. Returns the destination buffers.
template <class T>
RankBuffers<T> simulate(const ReshardPlan& plan, const TransferList& transfers, const RankBuffers<T>& sources) {
  RankBuffers<T> out;
  for (index_t rank : plan.destination().mesh().devices())
    out[rank].assign(static_cast<std::size_t>(plan.destination().buffer_elements(rank)), T{});
  simulate_into(plan, transfers, sources, out);
  return out;
}

// A whole model's buffers: one RankBuffers per buffer of the ModelLayout (buffer_of(t)).
template <class T>
using ModelBuffers = std::vector<RankBuffers<T>>;

// Every rank's buffers for the model's global tensors (`globals[t]` row-major, in layout order).
template <class T>
ModelBuffers<T> scatter_model(const ModelLayout& layout, const std::vector<std::vector<T>>& globals) {
  if (globals.size() != layout.size()) detail::fail("scatter: ", globals.size(), " tensors given for a model of ", layout.size());
  ModelBuffers<T> buffers(layout.buffer_count());
  for (std::size_t t = 0; t < layout.size(); ++t) {
    try {
      scatter_into(layout[t].layout, globals[t], buffers[layout.buffer_of(t)]);
    } catch (const Error& e) {
      detail::fail("tensor '", layout[t].name, "': ", e.what());
    }
  }
  return buffers;
}

// The model's global tensors, in layout order, from every rank's buffers.
template <class T>
std::vector<std::vector<T>> gather_model(const ModelLayout& layout, const ModelBuffers<T>& buffers) {
  if (buffers.size() != layout.buffer_count()) detail::fail("gather: ", buffers.size(), " buffers given for ", layout.buffer_count());
  std::vector<std::vector<T>> globals;
  for (std::size_t t = 0; t < layout.size(); ++t) {
    try {
      globals.push_back(gather_from_ranks(layout[t].layout, buffers[layout.buffer_of(t)]));
    } catch (const Error& e) {
      detail::fail("tensor '", layout[t].name, "': ", e.what());
    }
  }
  return globals;
}

// Verifies the whole plan and checks every buffer of every tensor, then runs it. Returns the
// destination model's buffers (zero-filled where nothing is written). Nothing runs after an error.
// Over std::byte buffers, each tensor at its dtype (see the top of this header).
template <class T>
ModelBuffers<T> simulate_model(const ModelReshardPlan& plan, const TransferList& transfers, const ModelBuffers<T>& sources) {
  verify_plan(plan, transfers);
  const ModelLayout& src = plan.source();
  const ModelLayout& dst = plan.destination();
  if (sources.size() != src.buffer_count()) detail::fail("simulate: ", sources.size(), " source buffers given for ", src.buffer_count());
  ModelBuffers<T> out(dst.buffer_count());
  auto width = [](DType dtype) { return std::is_same_v<T, std::byte> ? element_bytes(dtype) : 1; };
  for (std::size_t t = 0; t < dst.size(); ++t)  // tensors of a flat layout share each rank's buffer: zero it once
    for (index_t rank : dst[t].layout.mesh().devices())
      if (std::vector<T>& buffer = out[dst.buffer_of(t)][rank]; buffer.empty())
        buffer.assign(static_cast<std::size_t>(checked_mul(dst[t].layout.buffer_elements(rank), width(dst[t].dtype))), T{});
  std::vector<detail::TransferRunner<T>> runners;
  for (std::size_t t = 0; t < plan.size(); ++t) {
    try {
      runners.emplace_back(plan.tensor_plan(t), sources[src.buffer_of(t)], out[dst.buffer_of(plan.destination_index(t))], src[t].dtype);
    } catch (const Error& e) {
      detail::fail("tensor '", src[t].name, "': ", e.what());
    }
  }
  for (auto& runner : runners) runner.start();
  for (const Transfer& t : transfers) runners[static_cast<std::size_t>(t.tensor)].run(t);
  return out;
}

}  // namespace shardalg
