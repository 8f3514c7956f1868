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

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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
};

struct StoredTensor {
  std::string name;
  DType dtype = DType::fp32;
  Dims shape;
  std::vector<StoredChunk> chunks;
};

// A non-tensor value, kept as the bytes the format stored (DCP: a torch.save archive of it).
struct StoredEntry {
  std::string name;
  std::uint32_t file = no_file;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
};

struct CheckpointLayout {
  CheckpointFormat format = CheckpointFormat::dcp;
  DcpFlavor dcp_flavor = DcpFlavor::torch_2;  // DCP: the torch that wrote it
  std::vector<std::string> files;  // relative to the checkpoint folder
  std::vector<StoredTensor> tensors;
  std::vector<StoredEntry> entries;

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

}  // namespace shardalg
