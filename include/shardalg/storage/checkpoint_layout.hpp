// A checkpoint is one more layout: per tensor its global shape and dtype, and the saved chunks
// (a global box each) with where their bytes are. Formats differ only in how a chunk's place is
// recorded:
// - safetensors: the raw bytes themselves (row-major, contiguous) at item_offset;
// - PyTorch DCP: a torch.save archive at item_offset whose data.pkl says where in it the raw
//   bytes are and with which strides (found by checkpoint_files.hpp when needed, since the
//   metadata alone does not say).
// Non-tensor values (DCP's bytes entries) are listed as entries.
//
// Example: DCP of a 5x3 fp32 tensor saved by 2 ranks with ChunkShardingSpec(dim=0):
//   tensor "w" fp32 [5, 3]: chunk offsets [0, 0] sizes [3, 3] in __0_0.distcp at 0 (747 bytes),
//                           chunk offsets [3, 0] sizes [2, 3] in __1_0.distcp at 0 (747 bytes).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shardalg/core/box.hpp"
#include "shardalg/core/dims.hpp"
#include "shardalg/core/dtype.hpp"
#include "shardalg/plan/checkpoint_read.hpp"

namespace shardalg {

enum class CheckpointFormat : std::uint8_t { dcp, safetensors };

inline std::string_view to_string(CheckpointFormat format) { return format == CheckpointFormat::dcp ? "dcp" : "safetensors"; }

// Which torch's module paths a DCP metadata file names its records by: torch 1.13 keeps them
// under torch.distributed._shard.checkpoint, torch 2.x under torch.distributed.checkpoint (and
// each loads only its own).
enum class DcpFlavor : std::uint8_t { torch_1_13, torch_2 };

// No file recorded for a chunk (a DCP metadata file without storage info for it).
inline constexpr std::uint32_t no_file = 0xffffffffu;

struct StoredChunk {
  ChunkMeta box;                   // global offsets and sizes
  std::uint32_t file = no_file;    // index into CheckpointLayout::files
  std::uint64_t item_offset = 0;   // where the chunk's item starts in the file
  std::uint64_t item_bytes = 0;    // the item's length
  friend bool operator==(const StoredChunk&, const StoredChunk&) = default;
};

struct StoredTensor {
  std::string name;
  DType dtype = DType::fp32;
  Dims shape;
  std::vector<StoredChunk> chunks;
  friend bool operator==(const StoredTensor&, const StoredTensor&) = default;
};

// A non-tensor value, kept as the bytes the format stored (DCP: a torch.save archive of it).
struct StoredEntry {
  std::string name;
  std::uint32_t file = no_file;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  friend bool operator==(const StoredEntry&, const StoredEntry&) = default;
};

struct CheckpointLayout {
  CheckpointFormat format = CheckpointFormat::dcp;
  DcpFlavor dcp_flavor = DcpFlavor::torch_2;  // DCP: the torch that wrote it
  std::vector<std::string> files;  // relative to the checkpoint folder
  std::vector<StoredTensor> tensors;
  std::vector<StoredEntry> entries;

  // Layouts are equal when all they record is.
  friend bool operator==(const CheckpointLayout& a, const CheckpointLayout& b) {
    return a.format == b.format && a.dcp_flavor == b.dcp_flavor && a.files == b.files && a.tensors == b.tensors && a.entries == b.entries;
  }

  // The tensor named `name`, or none.
  std::optional<std::size_t> find(std::string_view name) const {
    if (index_.size() != tensors.size()) {
      index_.clear();
      for (std::size_t t = 0; t < tensors.size(); ++t) index_.emplace(tensors[t].name, t);
    }
    auto it = index_.find(std::string(name));
    return it == index_.end() ? std::nullopt : std::optional<std::size_t>(it->second);
  }
  std::size_t chunk_count() const {
    std::size_t n = 0;
    for (const StoredTensor& t : tensors) n += t.chunks.size();
    return n;
  }
  // Bytes of tensor data the chunks hold (elements x dtype size; replicas counted each time).
  std::uint64_t tensor_bytes() const {
    std::uint64_t n = 0;
    for (const StoredTensor& t : tensors)
      for (const StoredChunk& c : t.chunks) n += static_cast<std::uint64_t>(checked_mul(volume(c.box.sizes), element_bytes(t.dtype)));
    return n;
  }

 private:
  mutable std::unordered_map<std::string, std::size_t> index_;
};

// Whether `box` has `tensor`'s rank and lies inside it (no overflow for any extents).
inline bool chunk_inside(const StoredTensor& tensor, const ChunkMeta& box) {
  if (box.offsets.size() != tensor.shape.size() || box.sizes.size() != tensor.shape.size()) return false;
  for (std::size_t d = 0; d < tensor.shape.size(); ++d)
    if (box.offsets[d] < 0 || box.sizes[d] < 0 || box.offsets[d] > tensor.shape[d] || box.sizes[d] > tensor.shape[d] - box.offsets[d]) return false;
  return true;
}

// The indices of `tensor`'s chunks that lie inside it (chunk_inside).
inline std::vector<std::size_t> chunks_in_bounds(const StoredTensor& tensor) {
  std::vector<std::size_t> valid;
  for (std::size_t c = 0; c < tensor.chunks.size(); ++c)
    if (chunk_inside(tensor, tensor.chunks[c].box)) valid.push_back(c);
  return valid;
}

// Regions of `tensor` that none of its chunks `valid` (each inside it) holds: at most 8 boxes of the
// grid the chunk boundaries cut. A grid of more than `max_cells` cells is not built; then only
// chunks whose volumes add up to less than the tensor's are found, reported as the whole tensor.
// Example: "w" [6, 2] with chunks rows [0, 2) and [4, 6): one region, offsets [2, 0] shape [2, 2].
inline std::vector<Box> uncovered_regions(const StoredTensor& tensor, const std::vector<std::size_t>& valid, index_t max_cells = index_t{1} << 24) {
  std::size_t n = tensor.shape.size();
  std::vector<Box> missing;
  if (volume(tensor.shape) == 0) return missing;
  std::vector<std::vector<index_t>> bounds(n);
  for (std::size_t d = 0; d < n; ++d) {
    bounds[d] = {0, tensor.shape[d]};
    for (std::size_t c : valid) {
      bounds[d].push_back(tensor.chunks[c].box.offsets[d]);
      bounds[d].push_back(tensor.chunks[c].box.offsets[d] + tensor.chunks[c].box.sizes[d]);
    }
    std::sort(bounds[d].begin(), bounds[d].end());
    bounds[d].erase(std::unique(bounds[d].begin(), bounds[d].end()), bounds[d].end());
  }
  index_t cells = 1;  // capped just past max_cells: only whether the grid is small enough matters then
  for (std::size_t d = 0; d < n; ++d) cells = std::min(max_cells + 1, cells * std::max<index_t>(1, static_cast<index_t>(bounds[d].size()) - 1));
  if (cells > max_cells) {  // too fine a grid: compare volumes only (overlaps only add to the sum)
    index_t covered = 0;
    for (std::size_t c : valid) covered = std::min(volume(tensor.shape), covered + volume(tensor.chunks[c].box.sizes));
    if (covered < volume(tensor.shape)) missing.push_back(Box{Dims(n, 0), tensor.shape});
    return missing;
  }
  std::vector<std::uint8_t> covered(static_cast<std::size_t>(cells), 0);
  auto cell_range = [&](std::size_t d, index_t lo, index_t hi) {
    return std::make_pair(std::lower_bound(bounds[d].begin(), bounds[d].end(), lo) - bounds[d].begin(),
                          std::lower_bound(bounds[d].begin(), bounds[d].end(), hi) - bounds[d].begin());
  };
  for (std::size_t c : valid) {
    const ChunkMeta& box = tensor.chunks[c].box;
    Dims lo(n, 0), hi(n, 0), at(n, 0);
    bool empty = false;
    for (std::size_t d = 0; d < n; ++d) {
      auto [a, b] = cell_range(d, box.offsets[d], box.offsets[d] + box.sizes[d]);
      lo[d] = a;
      hi[d] = b;
      at[d] = a;
      empty = empty || a == b;
    }
    if (empty) continue;
    while (true) {
      index_t cell = 0;
      for (std::size_t d = 0; d < n; ++d) cell = cell * (static_cast<index_t>(bounds[d].size()) - 1) + at[d];
      covered[static_cast<std::size_t>(cell)] = 1;
      std::size_t d = n;
      while (d > 0 && ++at[d - 1] == hi[d - 1]) {
        at[d - 1] = lo[d - 1];
        --d;
      }
      if (d == 0) break;
    }
  }
  for (index_t cell = 0; cell < cells && missing.size() < 8; ++cell) {
    if (covered[static_cast<std::size_t>(cell)]) continue;
    Box box{Dims(n, 0), Dims(n, 0)};
    for (std::size_t d = n, rest = static_cast<std::size_t>(cell); d-- > 0;) {
      std::size_t count = bounds[d].size() - 1, k = rest % count;
      rest /= count;
      box.offset[d] = bounds[d][k];
      box.shape[d] = bounds[d][k + 1] - bounds[d][k];
    }
    missing.push_back(std::move(box));
  }
  return missing;
}

// Pairs of `tensor`'s chunks `valid` that share elements, each pair once (from a chunk index).
inline std::vector<std::pair<std::size_t, std::size_t>> overlapping_chunks(const StoredTensor& tensor, const std::vector<std::size_t>& valid) {
  std::vector<std::pair<std::size_t, std::size_t>> overlaps;
  std::vector<ChunkMeta> boxes;
  for (std::size_t c : valid) boxes.push_back(tensor.chunks[c].box);
  CheckpointIndex index(boxes);
  for (std::size_t i = 0; i < boxes.size(); ++i) {
    if (volume(boxes[i].sizes) == 0) continue;
    for (const ReadItem& item : index.read_items({boxes[i]}))
      if (item.saved > i && volume(item.lengths) > 0) overlaps.emplace_back(valid[i], valid[item.saved]);
  }
  return overlaps;
}

}  // namespace shardalg
