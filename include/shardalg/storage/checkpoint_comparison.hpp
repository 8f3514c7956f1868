// Two checkpoints compared element by element, whatever their formats and layouts: every tensor
// of one is read band by band from both (each through its own chunks) and the bytes compared;
// non-tensor entries are compared byte for byte. Memory stays bounded (two bands per thread).
//
// Example: after converting "ck8" (DCP at 8 ranks) to "ck6" (at 6 ranks),
//   compare_checkpoints(Checkpoint::open("ck8"), Checkpoint::open("ck6")).equal()  // true
// and a flipped byte in ck6 gives the difference "tensor 'w': element [3, 1] differs".
#pragma once

#include <cstring>

#include "shardalg/core/work_share.hpp"
#include "shardalg/storage/chunk_bands.hpp"

namespace shardalg {

struct CheckpointComparison {
  std::size_t tensors = 0, entries = 0;
  std::uint64_t bytes = 0;               // tensor bytes compared
  std::vector<std::string> differences;  // at most one per tensor or entry, at most `max_differences`
  bool equal() const { return differences.empty(); }
};

// Compares every tensor (and, with `entries`, every non-tensor entry) of `expected` with those of
// the same name in `actual`: missing ones, other shapes or dtypes, and differing elements (the
// first per tensor) are differences.
// Errors: unreadable or inconsistent files (FormatError naming them).
// With a `share` of several processes, each compares the chunks of `actual` that owners_by_size
// gives it (and the leader also the names, shapes and entries): the shares' results together are
// the whole comparison.
inline CheckpointComparison compare_checkpoints(const Checkpoint& expected, const Checkpoint& actual, unsigned threads = 4,
                                                std::uint64_t memory_limit = std::uint64_t{256} << 20, bool entries = true,
                                                std::size_t max_differences = 20, const ProcessShare& share = {}) {
  check_share(share);
  CheckpointComparison result;
  std::mutex mutex;
  auto differ = [&](std::string text) {
    std::lock_guard lock(mutex);
    if (!share.leader()) return;  // every process finds these; the leader reports them
    if (result.differences.size() < max_differences) result.differences.push_back(std::move(text));
  };
  const CheckpointLayout &want = expected.layout(), &got = actual.layout();
  struct Task {
    std::size_t expected_tensor, actual_tensor, chunk;
    std::vector<ReadItem> reads;  // from expected's chunks, for actual's chunk
  };
  std::vector<Task> tasks;
  for (std::size_t t = 0; t < want.tensors.size(); ++t) {
    const StoredTensor& tensor = want.tensors[t];
    auto other = got.find(tensor.name);
    if (!other) {
      differ(detail::concat("tensor '", tensor.name, "' is missing"));
      continue;
    }
    const StoredTensor& copy = got.tensors[*other];
    if (copy.shape != tensor.shape || copy.dtype != tensor.dtype) {
      differ(detail::concat("tensor '", tensor.name, "' is ", copy.dtype, " ", copy.shape, " instead of ", tensor.dtype, " ", tensor.shape));
      continue;
    }
    ++result.tensors;
    std::vector<ChunkMeta> saved;
    for (const StoredChunk& c : tensor.chunks) saved.push_back(c.box);
    CheckpointIndex index(std::move(saved));
    for (std::size_t c = 0; c < copy.chunks.size(); ++c) tasks.push_back(Task{t, *other, c, index.read_items({copy.chunks[c].box})});
  }
  for (const StoredTensor& tensor : got.tensors)
    if (!want.find(tensor.name)) differ(detail::concat("tensor '", tensor.name, "' is not in the original"));
  if (share.processes > 1) {
    std::vector<std::uint64_t> sizes;
    for (const Task& task : tasks) {
      const StoredTensor& copy = got.tensors[task.actual_tensor];
      sizes.push_back(static_cast<std::uint64_t>(volume(copy.chunks[task.chunk].box.sizes) * element_bytes(copy.dtype)));
    }
    std::vector<index_t> owners = owners_by_size(sizes, share.processes);
    std::vector<Task> mine;
    for (std::size_t i = 0; i < tasks.size(); ++i)
      if (owners[i] == share.process) mine.push_back(std::move(tasks[i]));
    tasks = std::move(mine);
    entries = entries && share.leader();
  }
  std::vector<bool> tensor_differs(want.tensors.size(), false);
  threads = std::max(1u, threads);
  std::uint64_t band_bytes = std::max<std::uint64_t>(memory_limit / threads / 4, 1 << 16);
  std::vector<std::vector<std::byte>> buffers(2 * threads), bounces(threads);
  std::atomic<std::uint64_t> compared{0};
  auto compare = [&](unsigned worker, std::size_t i) {
    const Task& task = tasks[i];
    const StoredTensor& copy = got.tensors[task.actual_tensor];
    const ChunkMeta& box = copy.chunks[task.chunk].box;
    std::vector<ReadItem> own{ReadItem{0, task.chunk, Dims(box.sizes.size(), 0), Dims(box.sizes.size(), 0), box.sizes}};
    std::uint64_t element = static_cast<std::uint64_t>(element_bytes(copy.dtype));
    std::vector<std::byte>&a = buffers[2 * worker], &b = buffers[2 * worker + 1];
    bool reported = false;
    for_each_band(box.sizes, element, band_bytes, [&](const Dims& offset, const Dims& shape, std::uint64_t) {
      if (reported) return;
      std::uint64_t bytes = static_cast<std::uint64_t>(volume(shape)) * element;
      a.resize(std::max<std::size_t>(a.size(), bytes));
      b.resize(std::max<std::size_t>(b.size(), bytes));
      read_band(expected, task.expected_tensor, task.reads, offset, shape, a.data(), bounces[worker], band_bytes);
      read_band(actual, task.actual_tensor, own, offset, shape, b.data(), bounces[worker], band_bytes);
      compared += bytes;
      if (std::memcmp(a.data(), b.data(), static_cast<std::size_t>(bytes)) == 0) return;
      std::uint64_t k = 0;
      while (a[k] == b[k]) ++k;
      // The element's global index: the band's offset + its position in the band, + the chunk's offset.
      Dims at = offset;
      index_t linear = static_cast<index_t>(k / element);
      Dims strides = row_major_strides(shape);
      for (std::size_t d = 0; d < at.size(); ++d) {
        at[d] += linear / strides[d] + box.offsets[d];
        linear %= strides[d];
      }
      reported = true;
      std::lock_guard lock(mutex);
      if (tensor_differs[task.expected_tensor]) return;
      tensor_differs[task.expected_tensor] = true;
      if (result.differences.size() < max_differences) result.differences.push_back(detail::concat("tensor '", copy.name, "': element ", at, " differs"));
    });
  };
  run_chunk_tasks(tasks.size(), threads, compare, [] {}, std::chrono::milliseconds(200));
  result.bytes = compared;
  for (std::size_t e = 0; entries && e < want.entries.size(); ++e) {
    const StoredEntry& entry = want.entries[e];
    auto other = std::find_if(got.entries.begin(), got.entries.end(), [&](const StoredEntry& x) { return x.name == entry.name; });
    if (other == got.entries.end()) {
      differ(detail::concat("entry '", entry.name, "' is missing"));
      continue;
    }
    ++result.entries;
    if (expected.read_entry(e) != actual.read_entry(static_cast<std::size_t>(other - got.entries.begin()))) differ(detail::concat("entry '", entry.name, "' differs"));
  }
  return result;
}

}  // namespace shardalg
