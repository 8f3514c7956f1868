// A chunk moved in bands: row-major slabs of bounded size, each contiguous in the chunk, filled
// from the saved chunks that overlap it. Converting and comparing checkpoints go band by band, so
// memory stays bounded whatever the tensor's size, and bands come in element order (a checksum of
// the chunk is the checksum of its bands in turn).
//
// Example: a bf16 [1000, 4096] chunk in 1 MiB bands: 128 rows each ([0,128), [128,256), ...,
//   [896,1000)); a [4, 1024, 4096] chunk in 1 MiB bands: 128 rows of one [1024, 4096] slab each.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

#include "shardalg/storage/checkpoint_files.hpp"

namespace shardalg {

// Calls f(offset, shape, byte_offset) for the bands of a chunk of `shape` with `element` bytes per
// element, in row-major order: each band is a box [offset, offset + shape) whose leading dims
// have extent 1, at most `max_bytes` (or one element if that is larger), at byte_offset
// of the chunk. A chunk of zero elements has no band; a scalar has one.
template <class F>
void for_each_band(const Dims& shape, std::uint64_t element, std::uint64_t max_bytes, F&& f) {
  std::size_t n = shape.size();
  if (n == 0) {
    f(Dims{}, Dims{}, std::uint64_t{0});
    return;
  }
  if (volume(shape) == 0) return;
  // The split dim k: the first whose one index (a slab of the dims after it) fits the band.
  std::size_t k = 0;
  std::uint64_t slab = static_cast<std::uint64_t>(volume(shape)) / static_cast<std::uint64_t>(shape[0]) * element;
  while (k + 1 < n && slab > max_bytes) {
    ++k;
    slab /= static_cast<std::uint64_t>(shape[k]);
  }
  index_t rows = static_cast<index_t>(std::max<std::uint64_t>(1, max_bytes / slab));
  Dims offset(n, 0), band = shape;
  for (std::size_t d = 0; d < k; ++d) band[d] = 1;
  Dims strides = row_major_strides(shape);
  while (true) {
    for (index_t j = 0; j < shape[k]; j += rows) {
      offset[k] = j;
      band[k] = std::min(rows, shape[k] - j);
      std::uint64_t at = 0;
      for (std::size_t d = 0; d < n; ++d) at += static_cast<std::uint64_t>(offset[d] * strides[d]);
      f(std::as_const(offset), std::as_const(band), at * element);
    }
    offset[k] = 0;
    std::size_t d = k;  // next index of the dims before k
    while (d > 0 && ++offset[d - 1] == shape[d - 1]) offset[--d] = 0;
    if (d == 0) return;
  }
}

// Fills the band [offset, offset + shape) of a wanted chunk (row-major at `out`) from `reads` of
// tensor `tensor` of `source` (read items of that chunk: dest offsets within it). Pre: the reads
// cover the band (they cover the whole chunk).
inline void read_band(const Checkpoint& source, std::size_t tensor, const std::vector<ReadItem>& reads, const Dims& offset, const Dims& shape,
                      std::byte* out, std::vector<std::byte>& bounce, std::uint64_t bounce_limit) {
  std::size_t n = shape.size();
  std::uint64_t element = static_cast<std::uint64_t>(element_bytes(source.layout().tensors[tensor].dtype));
  Dims strides = row_major_strides(shape), length(n, 0), storage(n, 0);
  for (const ReadItem& r : reads) {
    bool empty = false;
    std::uint64_t at = 0;
    for (std::size_t d = 0; d < n && !empty; ++d) {
      index_t lo = std::max(r.dest_offsets[d], offset[d]), hi = std::min(r.dest_offsets[d] + r.lengths[d], offset[d] + shape[d]);
      empty = hi <= lo;
      length[d] = hi - lo;
      storage[d] = r.storage_offsets[d] + (lo - r.dest_offsets[d]);
      at += static_cast<std::uint64_t>((lo - offset[d]) * strides[d]);
    }
    if (!empty) source.read_box(tensor, r.saved, storage, length, out + at * element, strides, &bounce, bounce_limit);
  }
}

// Runs task(worker, i) for every i in [0, count) on `threads` threads (tasks taken in order, each
// worker's state indexed by `worker`), calling poll() on the calling thread about every
// `interval` meanwhile. The first exception stops the remaining tasks and is rethrown after every
// thread has finished.
template <class Task, class Poll>
void run_chunk_tasks(std::size_t count, unsigned threads, Task&& task, Poll&& poll, std::chrono::milliseconds interval) {
  threads = std::max(1u, static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(count, 1))));
  std::atomic<std::size_t> next{0};
  std::atomic<unsigned> finished{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  {
    std::vector<std::jthread> pool;  // joined on leaving the block, whatever happens
    for (unsigned w = 0; w < threads; ++w)
      pool.emplace_back([&, w] {
        try {
          for (std::size_t i = next++; i < count && !failed; i = next++) task(w, i);
        } catch (...) {
          std::lock_guard lock(error_mutex);
          if (!error) error = std::current_exception();
          failed = true;
        }
        ++finished;
      });
    auto last = std::chrono::steady_clock::now();
    try {
      while (finished < threads) {
        std::this_thread::sleep_for(std::min(interval, std::chrono::milliseconds(20)));
        if (std::chrono::steady_clock::now() - last >= interval) {
          poll();
          last = std::chrono::steady_clock::now();
        }
      }
    } catch (...) {
      failed = true;
      throw;
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace shardalg
