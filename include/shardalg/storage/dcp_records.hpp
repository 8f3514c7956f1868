// DCP's `.metadata` record types, and the rules both of its readers share (dcp_metadata.hpp):
// which classes a file may name, which record each class is, and how storage_data's items find
// their chunks.
//
// torch 1.13 keeps the records under torch.distributed._shard.checkpoint (TensorProperties under
// ._shard.sharded_tensor), torch 2.x under torch.distributed.checkpoint; both are accepted.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shardalg/storage/checkpoint_layout.hpp"
#include "shardalg/storage/pickle_reader.hpp"

namespace shardalg::detail {

inline constexpr std::string_view dcp_v1 = "torch.distributed._shard.checkpoint.metadata";
inline constexpr std::string_view dcp_v2 = "torch.distributed.checkpoint.metadata";
inline constexpr std::string_view sharded_tensor_metadata = "torch.distributed._shard.sharded_tensor.metadata";

// Every torch dtype may appear (as an inert global); unsupported ones are refused by name later.
inline constexpr PickleGlobal dcp_metadata_globals[] = {
    {dcp_v1, "Metadata"}, {dcp_v1, "TensorStorageMetadata"}, {dcp_v1, "ChunkStorageMetadata"}, {dcp_v1, "BytesStorageMetadata"},
    {dcp_v1, "MetadataIndex"}, {dcp_v1, "TensorProperties"},
    {dcp_v2, "Metadata"}, {dcp_v2, "TensorStorageMetadata"}, {dcp_v2, "ChunkStorageMetadata"}, {dcp_v2, "BytesStorageMetadata"},
    {dcp_v2, "MetadataIndex"}, {dcp_v2, "TensorProperties"}, {dcp_v2, "_MEM_FORMAT_ENCODING"}, {dcp_v2, "StorageMeta"},
    {sharded_tensor_metadata, "TensorProperties"}, {sharded_tensor_metadata, "MEM_FORMAT_ENCODING"},
    {"torch.distributed._shard.checkpoint.filesystem", "_StorageInfo"}, {"torch.distributed.checkpoint.filesystem", "_StorageInfo"},
    {"torch.serialization", "_get_layout"}, {"builtins", "getattr"}, {"collections", "OrderedDict"},
    {"pathlib", "PosixPath"}, {"pathlib", "PurePosixPath"}, {"pathlib", "WindowsPath"}, {"pathlib", "PureWindowsPath"},
    {"torch", "Size"}, {"torch", "float64"}, {"torch", "float32"}, {"torch", "float16"}, {"torch", "bfloat16"},
    {"torch", "int64"}, {"torch", "int32"}, {"torch", "int16"}, {"torch", "int8"}, {"torch", "uint8"}, {"torch", "bool"},
    {"torch", "complex64"}, {"torch", "complex128"}, {"torch", "float8_e4m3fn"}, {"torch", "float8_e5m2"},
    {"torch", "uint16"}, {"torch", "uint32"}, {"torch", "uint64"},
};

inline std::uint64_t non_negative(std::int64_t value, std::string_view what, std::string_view name) {
  if (value < 0) fail<FormatError>(what, ": '", name, "' has a negative byte offset or length ", value);
  return static_cast<std::uint64_t>(value);
}

// A storage item's file must be a plain name inside the checkpoint folder. Error naming the item.
inline void check_dcp_file_name(std::string_view what, std::string_view fqn, std::string_view path) {
  if (path.empty() || path.find('/') != std::string_view::npos || path == "." || path == "..")
    fail<FormatError>(what, ": '", fqn, "' is stored in '", path, "', not a file name inside the checkpoint folder");
}

// The checkpoint's files, listed as storage_data first names them.
class DcpFiles {
 public:
  explicit DcpFiles(std::vector<std::string>& files) : files_(files) {}
  // The index of `path` (the file of item `fqn`). Errors (FormatError): see check_dcp_file_name.
  std::uint32_t index_of(std::string_view what, std::string_view fqn, std::string_view path) {
    check_dcp_file_name(what, fqn, path);
    auto [at, added] = index_.emplace(path, static_cast<std::uint32_t>(files_.size()));
    if (added) files_.emplace_back(path);
    return at->second;
  }

 private:
  std::vector<std::string>& files_;
  std::unordered_map<std::string_view, std::uint32_t> index_;
};

// One storage_data item, read but not yet matched to its chunk.
struct DcpStoragePlace {
  std::size_t tensor;
  std::optional<std::int64_t> hint;             // the chunk's index, as MetadataIndex.index says
  std::optional<std::uint32_t> offset_record;   // MetadataIndex.offset's torch.Size, as its reader names it (none: zeros)
  std::uint32_t file = 0;
  std::uint64_t offset = 0, length = 0;
};

// Gives storage places their chunks' file and byte range: the chunk its index hint names where that
// chunk starts at the place's offset (at once where both name the same torch.Size record:
// `chunk_offset_records[t][c]` is chunk c's; torch 1.13 writes a copy, compared by value), else
// the one that does. Places are given in the file's order (a later one for the same chunk wins).
class DcpChunkPlacer {
 public:
  DcpChunkPlacer(CheckpointLayout& layout, const std::vector<std::vector<std::uint32_t>>& chunk_offset_records, std::string_view what)
      : layout_(layout), chunk_offset_records_(chunk_offset_records), what_(what), chunk_by_offset_(layout.tensors.size()) {}

  // The chunk `place` belongs to; reads the layout only (a placer per thread may share it).
  // `offsets_into(record, dims, tensor name)` decodes an offset record (errors naming it).
  // Errors (FormatError): a place at an offset where no chunk of its tensor starts.
  template <class OffsetsInto>
  std::size_t chunk_of(const DcpStoragePlace& place, OffsetsInto&& offsets_into) {
    const StoredTensor& tensor = layout_.tensors[place.tensor];
    bool hinted = place.hint && *place.hint >= 0 && static_cast<std::size_t>(*place.hint) < tensor.chunks.size();
    if (hinted && place.offset_record && *place.offset_record == chunk_offset_records_[place.tensor][static_cast<std::size_t>(*place.hint)])
      return static_cast<std::size_t>(*place.hint);
    chunk_offset_.clear();
    if (place.offset_record)
      offsets_into(*place.offset_record, chunk_offset_, tensor.name);
    else
      for (std::size_t d = 0; d < tensor.shape.size(); ++d) chunk_offset_.push_back(0);
    if (hinted && tensor.chunks[static_cast<std::size_t>(*place.hint)].box.offsets == chunk_offset_) return static_cast<std::size_t>(*place.hint);
    auto& by_offset = chunk_by_offset_[place.tensor];
    if (by_offset.empty())
      for (std::size_t k = 0; k < tensor.chunks.size(); ++k)
        by_offset.emplace(std::vector<index_t>(tensor.chunks[k].box.offsets.begin(), tensor.chunks[k].box.offsets.end()), k);
    auto found = by_offset.find(std::vector<index_t>(chunk_offset_.begin(), chunk_offset_.end()));
    if (found == by_offset.end()) fail<FormatError>(what_, ": storage info for '", tensor.name, "' at offset ", chunk_offset_, ", where no chunk starts");
    return found->second;
  }
  // Gives chunk `c` of the place's tensor the place's file and byte range.
  void assign(const DcpStoragePlace& place, std::size_t c) {
    StoredChunk& chunk = layout_.tensors[place.tensor].chunks[c];
    chunk.file = place.file;
    chunk.item_offset = place.offset;
    chunk.item_bytes = place.length;
  }
  template <class OffsetsInto>
  void place(const DcpStoragePlace& place, OffsetsInto&& offsets_into) {
    assign(place, chunk_of(place, offsets_into));
  }

 private:
  CheckpointLayout& layout_;
  const std::vector<std::vector<std::uint32_t>>& chunk_offset_records_;
  std::string_view what_;
  std::vector<std::map<std::vector<index_t>, std::size_t>> chunk_by_offset_;  // built on a wrong index hint only
  Dims chunk_offset_;
};

}  // namespace shardalg::detail
