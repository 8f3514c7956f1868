// PyTorch Distributed Checkpoint's `.metadata` file, written: the pickle of DCP's record types
// (see dcp_metadata.hpp for the records) for a checkpoint layout whose chunks and entries all have
// their file and byte range, under the module paths of the torch that is to load it.
//
// Each chunk's storage key is MetadataIndex(fqn, offset, index) with the chunk's position in its
// tensor's list as the index hint, as DCP's own saver records it; planner_data is None.
//
// Example: a layout with tensor "w" fp32 [5, 3] in two chunks and the entry "step" gives a file
// that torch.distributed.checkpoint's FileSystemReader(folder).read_metadata() loads as
// Metadata(state_dict_metadata={'w': TensorStorageMetadata(...), 'step': BytesStorageMetadata()},
// storage_data={MetadataIndex('w', Size([0, 0]), 0): _StorageInfo('__0_0.distcp', 0, 747), ...}).
#pragma once

#include <string>

#include "shardalg/storage/dcp_metadata.hpp"
#include "shardalg/storage/pickle_writer.hpp"

namespace shardalg {

namespace detail {

struct DcpModules {
  std::string_view metadata, properties, memory_format, storage_info;
};

inline DcpModules dcp_modules(DcpFlavor flavor) {
  if (flavor == DcpFlavor::torch_1_13) return {dcp_v1, sharded_tensor_metadata, "MEM_FORMAT_ENCODING", "torch.distributed._shard.checkpoint.filesystem"};
  return {dcp_v2, dcp_v2, "_MEM_FORMAT_ENCODING", "torch.distributed.checkpoint.filesystem"};
}

inline void pickle_size(PickleWriter& p, const Dims& dims) {
  p.global("torch", "Size");
  p.mark();
  for (index_t extent : dims) p.integer(extent);
  p.tuple(-1);
  p.tuple(1);
  p.reduce();
}

// An object of a dataclass: cls.__new__(cls), then its fields set by BUILD from a dict whose
// items `fields` pushes (key, value, key, value, ...).
template <class Fields>
void pickle_dataclass(PickleWriter& p, std::string_view module, std::string_view name, Fields&& fields) {
  p.global(module, name);
  p.new_object();
  p.empty_dict();
  p.mark();
  fields();
  p.set_items();
  p.build();
}

}  // namespace detail

// Pre: layout.format is dcp; every chunk and entry names a file (error otherwise).
inline std::string dcp_metadata_bytes(const CheckpointLayout& layout, DcpFlavor flavor) {
  detail::DcpModules modules = detail::dcp_modules(flavor);
  PickleWriter p;
  auto file_name = [&](std::uint32_t f, std::string_view what) -> const std::string& {
    if (f >= layout.files.size()) detail::fail("DCP metadata: ", what, " has no file");
    return layout.files[f];
  };
  auto storage_info = [&](const std::string& file, std::uint64_t offset, std::uint64_t bytes) {
    detail::pickle_dataclass(p, modules.storage_info, "_StorageInfo", [&] {
      p.string("relative_path");
      p.string(file);
      p.string("offset");
      p.integer(static_cast<std::int64_t>(offset));
      p.string("length");
      p.integer(static_cast<std::int64_t>(bytes));
    });
  };
  detail::pickle_dataclass(p, modules.metadata, "Metadata", [&] {
    p.string("state_dict_metadata");
    p.empty_dict();
    p.mark();
    for (const StoredTensor& tensor : layout.tensors) {
      p.string(tensor.name);
      detail::pickle_dataclass(p, modules.metadata, "TensorStorageMetadata", [&] {
        p.string("properties");
        p.global(modules.properties, "TensorProperties");
        p.new_object();
        p.mark();  // state: (dtype, layout, requires_grad, memory_format, pin_memory)
        p.global("torch", torch_dtype_name(tensor.dtype));
        p.global("torch.serialization", "_get_layout");
        p.string("torch.strided");
        p.tuple(1);
        p.reduce();
        p.boolean(false);
        p.global("builtins", "getattr");
        p.global(modules.properties, modules.memory_format);
        p.string("TORCH_CONTIGUOUS_FORMAT");
        p.tuple(2);
        p.reduce();
        p.boolean(false);
        p.tuple(-1);
        p.build();
        p.string("size");
        detail::pickle_size(p, tensor.shape);
        p.string("chunks");
        p.empty_list();
        p.mark();
        for (const StoredChunk& chunk : tensor.chunks)
          detail::pickle_dataclass(p, modules.metadata, "ChunkStorageMetadata", [&] {
            p.string("offsets");
            detail::pickle_size(p, chunk.box.offsets);
            p.string("sizes");
            detail::pickle_size(p, chunk.box.sizes);
          });
        p.append_items();
      });
    }
    for (const StoredEntry& entry : layout.entries) {
      p.string(entry.name);
      detail::pickle_dataclass(p, modules.metadata, "BytesStorageMetadata", [] {});
    }
    p.set_items();
    p.string("planner_data");
    p.none();
    p.string("storage_data");
    p.empty_dict();
    p.mark();
    for (const StoredTensor& tensor : layout.tensors)
      for (std::size_t c = 0; c < tensor.chunks.size(); ++c) {
        const StoredChunk& chunk = tensor.chunks[c];
        const std::string& file = file_name(chunk.file, detail::concat("chunk ", c, " of tensor '", tensor.name, "'"));
        detail::pickle_dataclass(p, modules.metadata, "MetadataIndex", [&] {
          p.string("fqn");
          p.string(tensor.name);
          p.string("offset");
          detail::pickle_size(p, chunk.box.offsets);
          p.string("index");
          p.integer(static_cast<std::int64_t>(c));
        });
        storage_info(file, chunk.item_offset, chunk.item_bytes);
      }
    for (const StoredEntry& entry : layout.entries) {
      const std::string& file = file_name(entry.file, detail::concat("entry '", entry.name, "'"));
      detail::pickle_dataclass(p, modules.metadata, "MetadataIndex", [&] {
        p.string("fqn");
        p.string(entry.name);
        p.string("offset");
        p.none();
        p.string("index");
        p.none();
      });
      storage_info(file, entry.offset, entry.bytes);
    }
    p.set_items();
  });
  return p.finish();
}

}  // namespace shardalg
